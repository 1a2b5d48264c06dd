// Finding 6 of issue 9: a rejected config must not print the credential it rejects. Runs what
// the entry file runs (startFromArgs) with its stderr and JSON log captured, and looks for the
// password anywhere in either.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { startFromArgs } from "./cli.js";
import { maskCredentials } from "./mask.js";

const PW = "Sup3rSecretPW";
const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() ?? "", { recursive: true, force: true });
});

function configWith(upstreamLines: string): string {
  return `version: 0.1
storage:
  filesystem:
    rootdirectory: /tmp/never-used
http:
  addr: 127.0.0.1:0
  secret: ${PW}-http-secret
middleware:
  registry:
    - name: downstream
      options:
        blobttl: 24h
        upstreams: ${upstreamLines}
`;
}

async function rejected(text: string): Promise<{ code: number; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), "cache-mask-"));
  dirs.push(dir);
  const file = join(dir, "config.yml");
  await writeFile(file, text);
  let output = "";
  const log = new Writable({
    write(chunk: Buffer, _e, cb) {
      output += chunk.toString();
      cb();
    },
  });
  const outcome = await startFromArgs([file], { stderr: (t) => (output += t), log });
  if (outcome.kind !== "exit") {
    if (outcome.kind === "running") await outcome.running.close();
    throw new Error("the config was accepted");
  }
  return { code: outcome.code, output };
}

describe("a rejected config never prints credentials", () => {
  it.each([
    ["user:password in an upstream URL", `[https://user:${PW}@dtr.example.com]`, "https://user:***@dtr.example.com"],
    ["a password holding an @", `[https://user:${PW}@x@dtr.example.com]`, "https://user:***@dtr.example.com"],
    ["a token as the user part", `[https://${PW}@dtr.example.com]`, "https://***@dtr.example.com"],
    ["credentials in a 2.3-era originhost", `[{originhost: "https://user:${PW}@dtr.example.com"}]`, "https://user:***@dtr.example.com"],
    ["credentials in upstreamhosts", `[{originhost: dtr, upstreamhosts: ["https://user:${PW}@hop:443"]}]`, "https://user:***@hop:443"],
    ["a token in the query", `[https://dtr.example.com?token=${PW}]`, "https://dtr.example.com?***"],
    ["a broken YAML line quoting the URL", `[https://user:${PW}@dtr.example.com]]`, undefined],
  ])("%s", async (_name, upstreams, shown) => {
    const { code, output } = await rejected(configWith(upstreams));
    expect(code).toBe(1);
    expect(output).toContain("invalid configuration");
    expect(output).not.toContain(PW);
    if (shown) expect(output).toContain(shown);
  });

  it("masks inside free text without touching URLs that carry nothing", () => {
    expect(maskCredentials('got "https://u:p@h:5000" and http://h2/x')).toBe('got "https://u:***@h:5000" and http://h2/x');
    expect(maskCredentials("https://dtr.example.com:443")).toBe("https://dtr.example.com:443");
  });
});
