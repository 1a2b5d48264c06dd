// Issue 12, item 5: the cache-server carries no zod and no crds. It reads its config.yml through
// @dtrcache/config-yml, whose only runtime dependency is yaml; before that package, the loader
// imported a duration parser from crds and with it every zod schema (~850 KB of bundle input).
// Checked on what esbuild puts into the cache's image (the same bundling the images use: one
// file from the entry), and on the package manifests that npm installs from.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const repo = (rel: string): string => fileURLToPath(new URL(`../../${rel}`, import.meta.url));

/** Every file esbuild bundles for an entry, relative to the repository; workspace packages from source. */
async function bundleInputs(entry: string): Promise<string[]> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [repo(entry)],
    bundle: true,
    write: false,
    metafile: true,
    platform: "node",
    format: "esm",
    logLevel: "silent",
    external: ["cpu-features", "*.node"],
    alias: {
      "@dtrcache/config-yml": repo("config-yml/src/index.ts"),
      "@dtrcache/crds": repo("crds/src/index.ts"),
    },
  });
  return Object.keys(result.metafile.inputs);
}

function dependencies(pkg: string): string[] {
  const manifest = JSON.parse(readFileSync(repo(`${pkg}/package.json`), "utf8")) as { dependencies?: Record<string, string> };
  return Object.keys(manifest.dependencies ?? {});
}

describe("the cache-server's dependencies", () => {
  it("bundles no zod and nothing of crds into the cache-server", async () => {
    const inputs = await bundleInputs("cache-server/src/main.ts");
    expect(inputs.filter((p) => /(^|\/)node_modules\/zod\//.test(p))).toEqual([]);
    expect(inputs.filter((p) => p.startsWith("crds/"))).toEqual([]);
    expect(
      inputs.some((p) => p.startsWith("config-yml/src/")),
      "the config.yml contract is in the bundle",
    ).toBe(true);
  });

  it("declares neither zod nor @dtrcache/crds", () => {
    expect(dependencies("cache-server")).not.toContain("zod");
    expect(dependencies("cache-server")).not.toContain("@dtrcache/crds");
  });

  it("keeps the config.yml contract package to yaml and node built-ins", async () => {
    expect(dependencies("config-yml")).toEqual(["yaml"]);
    const outside = (await bundleInputs("config-yml/src/index.ts")).filter((p) => !p.startsWith("config-yml/src/") && !/(^|\/)node_modules\/yaml\//.test(p));
    expect(outside).toEqual([]);
  });
});
