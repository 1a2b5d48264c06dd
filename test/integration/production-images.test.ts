// The images the tests, the demo and the e2e runs deploy are the production images:
// deploy/cache-server.Dockerfile and deploy/controller.Dockerfile built by deploy/build.mjs on the
// harness engine, FROM node:24-bookworm-slim (here the debootstrap stand-in the harness imports).
// Both run Node 24 as the unprivileged "node" user, carry OCI labels, and the cache's HEALTHCHECK
// reaches /healthz on its debug listener: a cache started with the runbook's entrypoint becomes
// healthy, also when config.yml moves the debug listener to another port.
import { mkdtemp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { dockerCli, repoRoot } from "../harness/index.js";
import { run, waitFor } from "../harness/proc.js";

const harness = inject("harness");

async function docker(...args: string[]): Promise<string> {
  const result = await run(await dockerCli(), ["-H", harness.dockerHost, ...args], {
    env: { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost, HOME: harness.workDir },
    timeoutMs: 60_000,
  });
  return result.stdout.trim();
}

interface ImageInspect {
  Size: number;
  Config: { User: string; Labels: Record<string, string> | null; Healthcheck?: { Test: string[] }; Entrypoint: string[] };
}

const images = (): [string, string][] => [
  ["cache-server", harness.images.cacheServer ?? ""],
  ["controller", harness.images.controller ?? ""],
];

describe("deploy/build.mjs", () => {
  it("has --help and targets the engine named by --host, else DOCKER_HOST, else the local socket", async () => {
    const script = join(repoRoot(), "deploy", "build.mjs");
    const help = await run(process.execPath, [script, "--help"], { env: { PATH: process.env.PATH ?? "" } });
    expect(help.stdout).toContain("-H, --host HOST");
    expect(help.stdout).toContain("--make-base");
    const bad = await run(process.execPath, [script, "--nope"], { allowFailure: true });
    expect(bad.code).toBe(2);
    const { parseArgs } = (await import(script)) as { parseArgs: (argv: string[], env: Record<string, string>) => { host: string; services: string[] } };
    expect(parseArgs([], {}).host).toBe("unix:///var/run/docker.sock");
    expect(parseArgs([], { DOCKER_HOST: "tcp://m:2376" }).host).toBe("tcp://m:2376");
    expect(parseArgs(["-H", "ssh://ops@m", "controller"], { DOCKER_HOST: "tcp://m:2376" })).toMatchObject({ host: "ssh://ops@m", services: ["controller"] });
    expect(parseArgs([], {}).services).toEqual(["cache-server", "controller"]);
  });

  it("the healthcheck finds the debug listener in config.yml (default 127.0.0.1:5001)", async () => {
    const { debugTarget } = (await import(join(repoRoot(), "deploy", "image", "healthcheck.mjs"))) as {
      debugTarget: (text: string) => { host: string; port: number };
    };
    expect(debugTarget("http:\n  addr: 0.0.0.0:443\n")).toEqual({ host: "127.0.0.1", port: 5001 });
    expect(debugTarget("http:\n  addr: 0.0.0.0:443\n  debug:\n    addr: 0.0.0.0:5999\n")).toEqual({ host: "127.0.0.1", port: 5999 });
    expect(debugTarget('http:\n  debug:\n    addr: ":6001"\n')).toEqual({ host: "127.0.0.1", port: 6001 });
  });
});

describe("production images", () => {
  it("were built (both services compiled)", () => {
    expect(harness.images.cacheServer).toMatch(/^dtrcache\/cache-server:/);
    expect(harness.images.controller).toMatch(/^dtrcache\/controller:/);
  });

  for (const [service] of images()) {
    it(`${service}: node --version prints v24, the user is not root, OCI labels, entrypoint /start.sh`, async () => {
      const image = images().find(([s]) => s === service)?.[1] ?? "";
      const version = await docker("run", "--rm", "--entrypoint", "node", image, "--version");
      expect(version).toMatch(/^v24\./);
      const uid = await docker("run", "--rm", "--entrypoint", "id", image, "-u");
      expect(uid).not.toBe("0");
      expect(await docker("run", "--rm", "--entrypoint", "id", image, "-un")).toBe("node");
      const [inspect] = JSON.parse(await docker("image", "inspect", image)) as ImageInspect[];
      expect(inspect?.Config.User).toBe("node");
      expect(inspect?.Config.Entrypoint).toEqual(["/start.sh"]);
      const labels = inspect?.Config.Labels ?? {};
      expect(labels["org.opencontainers.image.version"]).toMatch(/^\d+\.\d+\.\d+/);
      expect(labels["org.opencontainers.image.title"]).toContain(service);
      expect(labels["org.opencontainers.image.revision"]).toMatch(/^[0-9a-f]{40}$|^unknown$/);
      expect(labels["org.opencontainers.image.base.name"]).toBe("node:24-bookworm-slim");
      process.stderr.write(`${image}: ${(inspect!.Size / 1e6).toFixed(1)} MB\n`);
    });
  }

  it("cache-server: the HEALTHCHECK turns healthy on /healthz of the debug listener (default and moved)", async () => {
    const image = harness.images.cacheServer ?? "";
    const [inspect] = JSON.parse(await docker("image", "inspect", image)) as ImageInspect[];
    expect(inspect?.Config.Healthcheck?.Test).toEqual(["CMD", "node", "/app/healthcheck.mjs"]);
    const dir = await mkdtemp(join(harness.workDir, "health-"));
    // the renderer's format (crds/src/render.ts), plain HTTP, an upstream nobody answers on
    const config = (debug: string) => `version: 0.1
log:
  level: info
storage:
  delete:
    enabled: true
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: 0.0.0.0:5000
  secret: ${"s".repeat(32)}
  host: http://cache.example:5000
${debug}middleware:
  registry:
      - name: downstream
        options:
          blobttl: 24h
          upstreams:
            - http://127.0.0.1:1
`;
    await writeFile(join(dir, "default.yml"), config(""));
    await writeFile(join(dir, "moved.yml"), config("  debug:\n    addr: 0.0.0.0:5999\n"));
    const names: string[] = [];
    try {
      for (const [file, path] of [
        ["default.yml", "/config.yml"],
        ["moved.yml", "/etc/cache/config.yml"],
      ] as const) {
        const id = await docker("run", "-d", "--health-interval", "1s", "-v", `${join(dir, file)}:${path}:ro`, image, path);
        names.push(id);
        const status = await waitFor(
          `${file}: healthy`,
          async () => {
            const state = await docker("inspect", "--format", "{{.State.Health.Status}} {{.State.Status}}", id);
            if (state.startsWith("unhealthy") || state.endsWith("exited")) throw new Error(`${file}: ${state}: ${await docker("logs", id).catch(() => "")}`);
            return state.startsWith("healthy") ? state : undefined;
          },
          40_000,
          500,
        );
        expect(status).toMatch(/^healthy/);
      }
    } finally {
      for (const id of names) await docker("rm", "-f", id).catch(() => undefined);
    }
  }, 120_000);
});
