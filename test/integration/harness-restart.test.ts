// stopNode/startNode on a node that runs a task: the restart must behave like a machine that
// crashed and booted again (runtime state gone, data kept), so the engine comes back, rejoins the
// swarm and Swarm runs the task there again. This file starts its own 2-node swarm, because
// killing a node of the suite's swarm would disturb other files.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { dockerCli, HarnessError, startSwarm, type SwarmHandle, type SwarmNode } from "../harness/index.js";
import { leftovers, NOTHING_LEFT, runDirOf } from "../harness/leftovers.js";
import { run } from "../harness/proc.js";
import { shimSocketsOf } from "../harness/shims.js";

const harness = inject("harness");
const PORT = 18_000 + Math.floor(Math.random() * 2_000);

let swarm: SwarmHandle | undefined;
let docker = "";

const managerCli = async (...args: string[]): Promise<string> => {
  if (!swarm) throw new Error("no swarm");
  return (await run(docker, ["-H", swarm.manager.dockerHost, ...args])).stdout.trim();
};

/** The worker's task as the manager sees it: id and state of the one task that should run. */
async function runningTask(): Promise<{ id: string; state: string } | undefined> {
  const line = (await managerCli("service", "ps", "web", "--filter", "desired-state=running", "--no-trunc", "--format", "{{.ID}} {{.CurrentState}}"))
    .split("\n")
    .find(Boolean);
  const [id = "", state = ""] = line?.split(" ") ?? [];
  return id ? { id, state } : undefined;
}

/** Waits until the manager has recorded the running task as Running (it answers HTTP a little earlier). */
async function waitForRunningTask(): Promise<{ id: string; state: string } | undefined> {
  await expect.poll(async () => (await runningTask())?.state.split(" ")[0], { timeout: 30_000, interval: 250 }).toBe("Running");
  return runningTask();
}

/** Waits until a restarted node is Ready and a task other than `beforeId` runs on it and answers. */
async function expectBackAfterRestart(worker: SwarmNode, beforeId: string | undefined): Promise<void> {
  await expect.poll(() => managerCli("node", "inspect", worker.hostname, "--format", "{{.Status.State}}"), { timeout: 60_000, interval: 250 }).toBe("ready");
  await expect
    .poll(
      async () => {
        const task = await runningTask();
        return task && task.id !== beforeId ? task.state.split(" ")[0] : undefined;
      },
      { timeout: 90_000, interval: 500 },
    )
    .toBe("Running");
  await expect.poll(() => healthz(worker), { timeout: 30_000, interval: 250 }).toBe(200);
}

async function healthz(node: SwarmNode): Promise<number | string> {
  try {
    return (await fetch(`http://${node.ip}:${PORT}/healthz`, { signal: AbortSignal.timeout(2_000) })).status;
  } catch (error) {
    return error instanceof Error ? error.name : "error";
  }
}

const execRootOf = (node: SwarmNode): string => join(runDirOf(node.dockerHost), `n${node.index}`);

beforeAll(async () => {
  docker = await dockerCli();
  swarm = await startSwarm({ nodes: 2 });
  // Swarm's default heartbeat (5 s) takes ~15 s to call a dead node Down; 1 s makes it a few seconds
  await managerCli("swarm", "update", "--dispatcher-heartbeat", "1s");
  await swarm.loadImage(harness.images.testHttp, harness.dockerHost);
});

afterAll(async () => {
  await swarm?.stop();
});

describe("a node restarted with stopNode/startNode", () => {
  it("comes back Ready after a crash with a running task, and Swarm runs the task on it again", async () => {
    if (!swarm) throw new Error("no swarm");
    const worker = swarm.nodes[1] as SwarmNode;
    await managerCli(
      "service",
      "create",
      "--detach",
      "--quiet",
      "--name",
      "web",
      "--no-resolve-image",
      "--constraint",
      `node.hostname==${worker.hostname}`,
      "--publish",
      `mode=host,target=8080,published=${PORT}`,
      harness.images.testHttp,
    );
    await expect.poll(() => healthz(worker), { timeout: 60_000, interval: 250 }).toBe(200);
    const before = await waitForRunningTask();
    const oldShims = await shimSocketsOf(execRootOf(worker));
    expect(oldShims).toHaveLength(1);
    expect(oldShims.every((s) => existsSync(s))).toBe(true);

    await swarm.stopNode(worker.index);
    await expect.poll(() => managerCli("node", "inspect", worker.hostname, "--format", "{{.Status.State}}"), { timeout: 30_000, interval: 250 }).toBe("down");
    expect(await healthz(worker)).not.toBe(200);

    const started = Date.now();
    await swarm.startNode(worker.index);
    process.stderr.write(`harness-restart: startNode answered after ${Date.now() - started} ms\n`);
    // a new task (the killed one is reported failed), running on the restarted worker and answering
    await expectBackAfterRestart(worker, before?.id);
    process.stderr.write(`harness-restart: task answering again ${Date.now() - started} ms after startNode was called\n`);
    const history = await managerCli("service", "ps", "web", "--no-trunc", "--format", "{{.ID}} {{.Node}} {{.DesiredState}}");
    expect(history).toContain(`${before?.id} ${worker.hostname} Shutdown`);

    // the dead shim's socket went with the reboot; the new task has its own
    expect(oldShims.filter((s) => existsSync(s))).toEqual([]);
    const newShims = await shimSocketsOf(execRootOf(worker));
    expect(newShims).toHaveLength(1);
    expect(newShims).not.toEqual(oldShims);
    // the engine kept its data-root: the image loaded before the crash is still there
    expect((await run(docker, ["-H", worker.dockerHost, "image", "ls", "-q", harness.images.testHttp])).stdout.trim()).not.toBe("");
  });

  it("boots again right after the kill, while the killed containerd may still be an unreaped zombie", async () => {
    if (!swarm) throw new Error("no swarm");
    const worker = swarm.nodes[1] as SwarmNode;
    const before = await waitForRunningTask();
    // no pause in between: a zombie containerd still answers kill(pid, 0), and a pidfile naming it
    // made the restarted dockerd wait for that containerd instead of starting its own
    await swarm.stopNode(worker.index);
    await swarm.startNode(worker.index);
    await expectBackAfterRestart(worker, before?.id);
  });

  it("refuses to start a node that is still running, and leaves it running", async () => {
    if (!swarm) throw new Error("no swarm");
    const worker = swarm.nodes[1] as SwarmNode;
    const failure = await swarm.startNode(worker.index).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(HarnessError);
    expect((failure as HarnessError).code).toBe("BAD_ARGUMENT");
    expect(await healthz(worker)).toBe(200);
  });

  it("leaves nothing behind when the swarm is stopped after a restart", async () => {
    if (!swarm) throw new Error("no swarm");
    const runDir = runDirOf(swarm.manager.dockerHost);
    const shimSockets = (await Promise.all(swarm.nodes.map((n) => shimSocketsOf(execRootOf(n))))).flat();
    expect(shimSockets.length).toBeGreaterThan(0);
    const view = { id: swarm.id, runDir, workDir: swarm.workDir, shimSockets };
    await swarm.stop();
    swarm = undefined;
    await expect.poll(() => leftovers(view), { timeout: 10_000, interval: 200 }).toEqual(NOTHING_LEFT);
  });
});
