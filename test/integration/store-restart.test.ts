// Issue 11, "a restarted controller reads the last good spec from the store: it never orphans a
// cache": the spec is applied into the swarm's store with `dtrcache apply`, an in-cluster-style
// controller (startRuntime in store mode, with the lease, as `dtrcache run` without -f) deploys
// the cache and registers it with the DTR emulator; it is stopped and a new one started on the
// same store. The new one makes 0 mutating Engine API calls (the controller's own calls are
// recorded; lease renewals go through the unrecorded engine and are not cache writes), lists the
// cache in /status from its first answer on, and reports it Ready and DtrSynced.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import pino from "pino";
import {
  createDockerClient,
  DockerodeSwarmApi,
  recordSwarmApi,
  resolveDockerConnection,
  startRuntime,
  type RecordingSwarmApi,
  type Runtime,
  type SwarmApi,
} from "@dtrcache/controller";
import { removeOwned } from "../bench/controller/support.js";
import { repoRoot } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { startDtrStack, type DtrStack } from "../support/dtr-stack.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `sr-${suffix}`;
const cacheName = `sr-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const port = 30_000 + Math.floor(Math.random() * 4_000);
const cli = join(repoRoot(), "controller", "dist", "cli", "main.js");

let dir = "";
let stack: DtrStack;
let api: SwarmApi;
const runtimes: Runtime[] = [];

interface CacheView {
  name: string;
  conditions: { type: string; status: string }[];
}

async function start(recording: { current?: RecordingSwarmApi }): Promise<Runtime> {
  const runtime = await startRuntime({
    store: true,
    id: owner,
    dockerHost: harness.dockerHost,
    env: { ...process.env, ...stack.env },
    logger: pino({ level: "silent" }),
    listen: { host: "127.0.0.1", port: 0 },
    lease: { onLost: () => undefined, identity: `store-restart-${runtimes.length}` },
    wrapSwarm: (raw) => (recording.current = recordSwarmApi(raw)),
    controllerOptions: { settleMs: 0, rolloutPollMs: 250 },
  });
  runtimes.push(runtime);
  return runtime;
}

async function statusOf(runtime: Runtime): Promise<CacheView[] | undefined> {
  try {
    const response = await fetch(`${runtime.statusUrl ?? ""}/status`, { signal: AbortSignal.timeout(2_000) });
    return ((await response.json()) as { caches: CacheView[] }).caches;
  } catch {
    return undefined;
  }
}
const conditionOf = (caches: CacheView[] | undefined, type: string): string | undefined =>
  caches?.find((c) => c.name === cacheName)?.conditions.find((c) => c.type === type)?.status;

beforeAll(async () => {
  dir = await mkdtemp(join(harness.workDir, "store-restart-"));
  api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
  stack = await startDtrStack({ workDir: join(dir, "stack"), hostIp: harness.hostIp, dockerHost: harness.dockerHost, repository: `sr/web-${suffix}` });
  const spec = await stack.writeSpec({
    cacheName,
    nodeHostname: node.hostname,
    port,
    externalURL: `http://${node.ip}:${port}`,
    users: ["alice"],
    image: harness.images.cacheServer ?? harness.images.testHttp,
    nodeLabel: `dtr.cache.sr${suffix}=true`,
  });
  const applied = await run(process.execPath, [cli, "apply", "-f", spec, "--id", owner], {
    env: { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost, ...stack.env },
    allowFailure: true,
  });
  if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}`);
});

afterAll(async () => {
  for (const r of runtimes) await r.stop().catch(() => undefined);
  await removeOwned(api, owner).catch(() => undefined);
  for (const c of await api.listConfigs({ labels: [] }).catch(() => []))
    if (c.name.startsWith(`dtrcache-${owner}-`) || c.name === `dtrcache-lease-${owner}`) await api.removeConfig(c.id).catch(() => undefined);
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("controller restart with a stored spec", () => {
  it("the new controller lists the cache from its first answer, makes 0 mutating calls, and reports it Ready and DtrSynced", async () => {
    const first: { current?: RecordingSwarmApi } = {};
    const a = await start(first);
    await expect.poll(async () => conditionOf(await statusOf(a), "Ready"), { timeout: 90_000, interval: 500 }).toBe("True");
    await expect.poll(async () => conditionOf(await statusOf(a), "DtrSynced"), { timeout: 30_000, interval: 500 }).toBe("True");
    expect(first.current?.mutatingCalls().length ?? 0).toBeGreaterThan(0);
    // Graceful stop: the lease is released, so the next controller leads at once.
    await a.stop();
    const registrations = stack.emulator.contentCaches().filter((c) => c.name === cacheName);

    const second: { current?: RecordingSwarmApi } = {};
    const startedAt = Date.now();
    const b = await start(second);
    // Listed from the store before and after its first reconcile: never "no caches".
    await expect.poll(async () => (await statusOf(b))?.some((c) => c.name === cacheName), { timeout: 20_000, interval: 100 }).toBe(true);
    const listedAfterMs = Date.now() - startedAt;
    await expect.poll(async () => conditionOf(await statusOf(b), "Ready"), { timeout: 60_000, interval: 500 }).toBe("True");
    await expect.poll(async () => conditionOf(await statusOf(b), "DtrSynced"), { timeout: 30_000, interval: 500 }).toBe("True");
    await b.controller.idle();
    // A resync (10 s store, 30 s controller) more: still nothing written.
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    await b.controller.idle();
    const writes = second.current?.mutatingCalls() ?? [];
    console.log(
      `restarted controller: cache listed ${listedAfterMs} ms after start; ${second.current?.calls.length ?? 0} Engine API calls, ${writes.length} mutating`,
    );
    expect(writes).toEqual([]);
    expect(stack.emulator.contentCaches().filter((c) => c.name === cacheName)).toEqual(registrations);
    expect(stack.emulator.settings()["alice"]).toBe(registrations[0]?.id);
  });
});
