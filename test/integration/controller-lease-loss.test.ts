// A leading controller loses its lease while a reconcile is in flight, on the real engine
// (issue 10/11 follow-up): from the moment the loss is known it makes no Swarm write, and it stops
// without the 10 s grace period. startRuntime as `dtrcache run` wires it (file mode, with the
// lease); the reconcile is held in its first read (listNodes) through the runtime's wrapSwarm
// seam, another holder is written into the lease record, and the read is let go once the loss is
// known. The writes that pass the controller's fence are counted where they go to the engine.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, inject, it } from "vitest";
import {
  createDockerClient,
  DockerodeSwarmApi,
  isMutating,
  labels,
  resolveDockerConnection,
  startRuntime,
  type Runtime,
  type SwarmApi,
  type SwarmCall,
} from "@dtrcache/controller";
import { prepareSpecDir, removeOwned, runbookVariant } from "../bench/controller/support.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `lease-${suffix}`;
const cacheName = `lost-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
let runtime: Runtime | undefined;
let dir = "";

/** Holds listNodes while `held`; records every mutating call that reaches it, with its time. */
function gateAndCount(inner: SwarmApi) {
  const state = { held: true, hit: false, writes: [] as { call: SwarmCall; at: number }[], release: [] as (() => void)[] };
  const api = new Proxy(inner, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      const fn = value as (...a: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]): Promise<unknown> => {
        if (prop === "listNodes" && state.held) {
          state.hit = true;
          await new Promise<void>((resolve) => state.release.push(resolve));
        }
        if (isMutating(prop as SwarmCall)) state.writes.push({ call: prop as SwarmCall, at: performance.now() });
        return fn.apply(target, args);
      };
    },
  });
  return { api, state };
}

afterAll(async () => {
  await runtime?.stop().catch(() => undefined);
  await removeOwned(api, owner).catch(() => undefined);
  for (const c of await api.listConfigs({ labels: [] }).catch(() => []))
    if (c.name === `dtrcache-lease-${owner}`) await api.removeConfig(c.id).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a controller that loses its lease", () => {
  it("makes no Swarm write after the loss is known and stops without the grace period", async () => {
    dir = await mkdtemp(join(harness.workDir, "lease-loss-"));
    await prepareSpecDir(dir);
    const specPath = join(dir, "cachespec.yaml");
    await writeFile(
      specPath,
      await runbookVariant({
        cache: cacheName,
        hostname: node.hostname,
        nodeLabel: `dtr.cache.${suffix}=true`,
        port: 26_000 + Math.floor(Math.random() * 3_000),
        image: harness.images.testHttp,
      }),
    );
    const engine: { gate?: ReturnType<typeof gateAndCount> } = {};
    let lostAt: number | undefined;
    let lostReason = "";
    runtime = await startRuntime({
      specPath,
      id: owner,
      dockerHost: harness.dockerHost,
      logger: pino({ level: "silent" }),
      persistEvents: false,
      lease: {
        identity: `a-${suffix}`,
        renewMs: 500,
        durationMs: 5_000,
        onLost: (reason) => {
          lostAt = performance.now();
          lostReason = reason;
        },
      },
      wrapSwarm: (inner) => (engine.gate = gateAndCount(inner)).api,
      controllerOptions: { settleMs: 0, resyncIntervalMs: 3_600_000 },
    });
    const gate = engine.gate;
    if (!gate) throw new Error("wrapSwarm was not called");
    // Leading, and its first reconcile waits in listNodes: nothing written yet.
    await expect.poll(() => gate.state.hit, { timeout: 30_000, interval: 20 }).toBe(true);
    expect(gate.state.writes).toEqual([]);

    // Another candidate took the lease (as after a partition): the record names it.
    const record = (await api.listConfigs({ labels: [] })).find((c) => c.name === `dtrcache-lease-${owner}`);
    if (!record) throw new Error("no lease record on the engine");
    const inspected = await api.inspectConfig(record.id);
    const seq = Number(inspected.labels["io.dtrcache.lease.seq"] ?? "0");
    await api.updateConfigLabels(record.id, inspected.version, record.name, {
      ...inspected.labels,
      "io.dtrcache.lease.holder": `b-${suffix}`,
      "io.dtrcache.lease.seq": String(seq + 1),
    });
    const takenAt = performance.now();

    await expect.poll(() => runtime?.snapshot().lease?.role, { timeout: 10_000, interval: 10 }).toBe("stopped");
    // The engine answers the held read now.
    for (const release of gate.state.release.splice(0)) release();
    gate.state.held = false;
    await expect.poll(() => lostAt, { timeout: 15_000, interval: 10 }).toBeDefined();
    // From the takeover: up to one renewal (500 ms) to notice it, then the stop itself.
    const stopMs = (lostAt ?? 0) - takenAt;
    // A few seconds more: anything the old leader still had in hand would have written by now.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    console.log(
      `lease lost (${lostReason}); controller stopped ${stopMs.toFixed(0)} ms after the takeover (renewal every 500 ms); ${gate.state.writes.length} Swarm writes after it`,
    );
    expect(lostReason).toContain(`b-${suffix}`);
    expect(gate.state.writes).toEqual([]);
    expect(await api.listServices(labels.ownerFilter(owner, cacheName))).toEqual([]);
    // Not the 10 s grace period.
    expect(stopMs).toBeLessThan(2_500);
  });
});
