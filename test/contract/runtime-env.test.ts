// The cache image sets the environment that runtime-env.ts defines (and that every test and
// benchmark starts the cache with): one list of values, checked here against the Dockerfile so
// the image cannot drift from what was measured.
import { readFileSync } from "node:fs";
import { RUNTIME_ENV, withRuntimeEnv } from "@dtrcache/cache-server";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url).pathname;

/** KEY=VALUE pairs of every ENV instruction (continuation lines joined). */
function dockerfileEnv(path: string): Record<string, string> {
  const text = readFileSync(path, "utf8").replace(/\\\n/g, " ");
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (!m?.[1]) continue;
    for (const pair of m[1].trim().split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

describe("cache-server runtime environment", () => {
  it("the image's ENV carries every value of RUNTIME_ENV", () => {
    const env = dockerfileEnv(`${root}deploy/cache-server.Dockerfile`);
    expect(Object.keys(RUNTIME_ENV).length).toBeGreaterThan(0);
    for (const [key, value] of Object.entries(RUNTIME_ENV)) expect(env[key], key).toBe(value);
  });

  it("withRuntimeEnv keeps a caller's NODE_OPTIONS after ours and the rest of the environment", () => {
    const env = withRuntimeEnv({ PATH: "/bin", NODE_OPTIONS: "--enable-source-maps" });
    expect(env.PATH).toBe("/bin");
    expect(env.NODE_OPTIONS).toBe(`${RUNTIME_ENV.NODE_OPTIONS} --enable-source-maps`);
    expect(env.MALLOC_ARENA_MAX).toBe(RUNTIME_ENV.MALLOC_ARENA_MAX);
    expect(withRuntimeEnv({}).NODE_OPTIONS).toBe(RUNTIME_ENV.NODE_OPTIONS);
  });
});
