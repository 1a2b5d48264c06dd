// `dtrcache` on PATH: `npm i -g` (or `npx`) of the tarball scripts/pack-cli.mjs makes (the CLI bundled into
// one file: the controller workspace depends on the private @dtrcache/crds, which no registry
// has), and scripts/dtrcache in the checkout. Both run a verb that needs no engine. Needs the
// compiled workspace (npm run check builds it first).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const root = new URL("../../../", import.meta.url).pathname;
const runbook = join(root, "crds/examples/runbook.yaml");
const version = (JSON.parse(readFileSync(join(root, "controller/package.json"), "utf8")) as { version: string }).version;
const dir = mkdtempSync(join(tmpdir(), "dtrcache-install-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("dtrcache on PATH", () => {
  it("the controller package names dtrcache as its bin, an executable node script", () => {
    const pkg = JSON.parse(readFileSync(join(root, "controller/package.json"), "utf8")) as { bin: Record<string, string> };
    expect(pkg.bin["dtrcache"]).toBe("dist/cli/main.js");
    expect(readFileSync(join(root, "controller/src/cli/main.ts"), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it("npm i -g of the packed tarball puts a working dtrcache on PATH (no registry needed)", async () => {
    const { stdout } = await exec(process.execPath, [join(root, "scripts/pack-cli.mjs"), "--out", dir]);
    const tarball = stdout.trim();
    expect(tarball).toMatch(new RegExp(`dtrcache-${version.replace(/\./g, "\\.")}\\.tgz$`));
    const prefix = join(dir, "global");
    const env = { ...process.env, PATH: `${join(prefix, "bin")}:${process.env["PATH"] ?? ""}`, npm_config_cache: join(dir, "npm-cache") };
    await exec("npm", ["i", "-g", "--prefix", prefix, "--offline", "--no-audit", "--no-fund", tarball], { env });
    expect(existsSync(join(prefix, "bin", "dtrcache"))).toBe(true);
    expect((await exec("dtrcache", ["--version"], { env })).stdout.trim()).toBe(version);
    expect((await exec("dtrcache", ["validate", "-f", runbook], { env })).stdout).toContain("valid (1 DTR, 1 cache: region-asia)");
    expect(existsSync(join(prefix, "lib/node_modules/dtrcache/completion/dtrcache.bash"))).toBe(true);
  }, 60_000);

  it("npx runs the packed tarball without installing it (./ path, or --package= with an absolute one)", async () => {
    const { stdout } = await exec(process.execPath, [join(root, "scripts/pack-cli.mjs"), "--out", join(dir, "npx")]);
    const tarball = stdout.trim();
    // a cache of its own: npx unpacks the tarball there, nothing comes from a registry (--offline)
    const env = { ...process.env, npm_config_cache: join(dir, "npx-cache"), npm_config_update_notifier: "false" };
    const relative = await exec("npx", ["--yes", "--offline", `./${basename(tarball)}`, "--help"], { env, cwd: dirname(tarball) });
    expect(relative.stdout).toContain("Usage: dtrcache");
    // npx takes a bare absolute path for a command, not a package: --package names the tarball
    const absolute = await exec("npx", ["--yes", "--offline", `--package=${tarball}`, "--", "dtrcache", "--version"], { env });
    expect(absolute.stdout.trim()).toBe(version);
  }, 60_000);

  it("pack-cli --help prints its usage and packs nothing; a bad argument exits 2", async () => {
    const cwd = join(dir, "help");
    mkdirSync(cwd, { recursive: true });
    const help = await exec(process.execPath, [join(root, "scripts/pack-cli.mjs"), "--help"], { cwd });
    expect(help.stdout).toContain("Usage: node scripts/pack-cli.mjs [--out DIR]");
    expect(readdirSync(cwd)).toEqual([]);
    for (const args of [["--out"], ["--outdir", "x"]]) {
      const failed = await exec(process.execPath, [join(root, "scripts/pack-cli.mjs"), ...args], { cwd }).then(
        () => ({ code: 0, stderr: "" }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed.code, args.join(" ")).toBe(2);
      expect(failed.stderr).toMatch(/^pack-cli: (--out needs a directory|unknown argument --outdir)/);
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("scripts/dtrcache runs the checkout's CLI on the project's Node 24", async () => {
    const { stdout } = await exec(join(root, "scripts/dtrcache"), ["validate", "-f", runbook]);
    expect(stdout).toContain("valid (1 DTR, 1 cache: region-asia)");
  });
});
