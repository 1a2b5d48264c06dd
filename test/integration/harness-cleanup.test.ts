import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { build } from "esbuild";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { cleanupStale, dockerCli, ping, startSwarm, type SwarmHandle } from "../harness/index.js";
import { leftovers, NOTHING_LEFT as NOTHING, processesMentioning, runDirOf } from "../harness/leftovers.js";
import { run } from "../harness/proc.js";
import { shimSocketsOf } from "../harness/shims.js";

const harness = inject("harness");

describe("a separate 3-node swarm", () => {
  let swarm: SwarmHandle | undefined;

  it("runs next to the suite's swarm on its own subnet, with engines that only use their own sockets and config", async () => {
    swarm = await startSwarm({ nodes: 3 });
    try {
      expect(swarm.subnet).not.toBe(harness.subnet);
      expect(swarm.nodes.map((n) => n.hostname)).toEqual([1, 2, 3].map((i) => `node${i}-${swarm?.id}`));
      const runDir = runDirOf(swarm.manager.dockerHost);
      for (const node of swarm.nodes) expect(node.dockerHost).toBe(`unix://${runDir}/n${node.index}.sock`);
      const docker = await dockerCli();
      const nodes = (await run(docker, ["-H", swarm.manager.dockerHost, "node", "ls", "--format", "{{.Hostname}} {{.Status}}"])).stdout;
      expect(nodes.trim().split("\n").sort()).toEqual(swarm.nodes.map((n) => `${n.hostname} Ready`));
      // every engine was started with our socket and an empty config file, never the defaults
      const engines = await processesMentioning([`${runDir}/daemon.json`]);
      expect(engines.filter((p) => p.includes(" dockerd "))).toHaveLength(3);
      for (const line of engines) {
        expect(line).not.toContain("docker.sock");
        expect(line).not.toContain("/etc/docker");
      }

      // a global service with a host-mode port answers on every node's address
      await swarm.loadImage(harness.images.testHttp, harness.dockerHost);
      await run(docker, [
        "-H",
        swarm.manager.dockerHost,
        "service",
        "create",
        "--detach",
        "--quiet",
        "--name",
        "web",
        "--mode",
        "global",
        "--no-resolve-image",
        "--publish",
        "mode=host,target=8080,published=8080",
        harness.images.testHttp,
      ]);
      for (const node of swarm.nodes) {
        await expect
          .poll(async () => (await fetch(`http://${node.ip}:8080/healthz`, { signal: AbortSignal.timeout(2000) })).status, { timeout: 60_000, interval: 250 })
          .toBe(200);
      }
      // each node's task has a shim whose socket sits in the host-wide /run/containerd/s/: teardown must remove it
      for (const node of swarm.nodes) expect(await shimSocketsOf(join(runDirOf(node.dockerHost), `n${node.index}`))).toHaveLength(1);
    } finally {
      const runDir = runDirOf(swarm.manager.dockerHost);
      const shimSockets = (await Promise.all(swarm.nodes.map((n) => shimSocketsOf(join(runDir, `n${n.index}`))))).flat();
      const view = { id: swarm.id, runDir, workDir: swarm.workDir, shimSockets };
      await swarm.stop();
      await expect.poll(() => leftovers(view), { timeout: 10_000, interval: 200 }).toEqual(NOTHING);
    }
    // the suite's own engine is untouched by another instance's teardown
    expect(await ping(harness.dockerHost)).toBe(true);
  });
});

describe("cleanupStale", () => {
  let cli = "";
  beforeAll(async () => {
    // the harness CLI in one file, so that a plain node child process can own an instance
    cli = join(harness.workDir, "harness-cli.mjs");
    await build({
      entryPoints: [join(import.meta.dirname, "../harness/cli.ts")],
      outfile: cli,
      bundle: true,
      platform: "node",
      format: "esm",
      logLevel: "warning",
    });
  });

  it("removes the swarm and registry of a run whose process was killed with SIGKILL, and leaves live runs alone", async () => {
    const child = spawn(process.execPath, [cli, "up", "--nodes", "1", "--registry"], { stdio: ["ignore", "pipe", "inherit"] });
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once("line", resolve);
      child.once("exit", (code) => reject(new Error(`harness cli exited with ${code} before it was up`)));
    });
    const info = JSON.parse(first) as { id: string; dockerHost: string; workDir: string; registry: { url: string } };
    const view = { id: info.id, runDir: runDirOf(info.dockerHost), workDir: info.workDir };
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;

    // the crash left a running engine, registry and namespaces behind
    expect(await ping(info.dockerHost)).toBe(true);
    expect((await fetch(`${info.registry.url}/v2/`)).status).toBe(200);
    const before = await leftovers(view);
    expect(before.netns).toHaveLength(2);
    expect((before.processes as string[]).some((p) => p.includes(" dockerd "))).toBe(true);
    expect((before.processes as string[]).some((p) => p.includes("docker-registry"))).toBe(true);

    const cleaned = await cleanupStale();
    expect(cleaned.instances).toBe(1);
    expect(cleaned.processes).toBe(1);
    await expect.poll(() => leftovers(view), { timeout: 10_000, interval: 200 }).toEqual(NOTHING);
    // the suite's instance belongs to a live process: untouched
    expect(await ping(harness.dockerHost)).toBe(true);
    expect((await fetch(`${harness.registry.url}/v2/`)).status).toBe(200);
  });
});
