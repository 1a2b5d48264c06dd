// Events survive a controller restart (issue 11, item 7 leftover; store/events-journal.ts): an
// in-cluster-style controller (startRuntime in store mode with the lease, as `dtrcache run`)
// records events, stops gracefully, and the next controller of the same owner id serves them at
// /events/{cache} from its first answer — on the real engine, so Swarm's acceptance of the journal
// (a config whose labels are rewritten) is what is tested, with a journal near its 64 KiB bound.
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import pino from "pino";
import { createDockerClient, DockerodeSwarmApi, resolveDockerConnection, startRuntime, type Runtime } from "@dtrcache/controller";

const harness = inject("harness");
const owner = `ev-${randomBytes(3).toString("hex")}`;
const api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
const runtimes: Runtime[] = [];

async function start(identity: string): Promise<Runtime> {
  const runtime = await startRuntime({
    store: true,
    id: owner,
    dockerHost: harness.dockerHost,
    logger: pino({ level: "silent" }),
    listen: { host: "127.0.0.1", port: 0 },
    lease: { onLost: () => undefined, identity },
    eventJournal: { intervalMs: 200 },
  });
  runtimes.push(runtime);
  return runtime;
}

async function eventsOf(runtime: Runtime, cache: string): Promise<{ reason: string; message: string; count: number }[]> {
  const response = await fetch(`${runtime.statusUrl ?? ""}/events/${cache}?limit=100`, { signal: AbortSignal.timeout(5_000) });
  return ((await response.json()) as { events: { reason: string; message: string; count: number }[] }).events;
}

afterAll(async () => {
  for (const r of runtimes) await r.stop().catch(() => undefined);
  for (const c of await api.listConfigs({ labels: [] }).catch(() => []))
    if (c.name === `dtrcache.events.${owner}` || c.name === `dtrcache-lease-${owner}`) await api.removeConfig(c.id).catch(() => undefined);
});

describe("events across a controller restart", () => {
  it("the next controller of the owner id shows the previous one's events, a full journal included", async () => {
    const a = await start("events-a");
    // leading once the lease is taken and the controller started (the store is empty: its first
    // load is refused with STORE_EMPTY, which shows it started, after the journal was read)
    await expect.poll(() => a.snapshot().spec.errors.join(" "), { timeout: 30_000, interval: 100 }).toContain("holds no resources yet");
    // more than the journal's 64 KiB: the oldest (the fillers) are dropped, the newest kept
    for (let c = 0; c < 20; c += 1)
      for (let i = 0; i < 20; i += 1)
        a.events.record({ cache: `filler-${c}`, type: "Normal", source: "dtr", reason: "DtrSynced", message: `pass ${i} ${"y".repeat(150)}` });
    for (let i = 0; i < 30; i += 1)
      a.events.record({
        cache: "region-asia",
        type: "Normal",
        source: "swarm",
        reason: "ServiceUpdated",
        message: `updated service region-asia (step ${i}) ${"x".repeat(150)}`,
      });
    a.events.record({
      cache: "region-asia",
      type: "Warning",
      source: "dtr",
      reason: "DtrSyncFailed",
      message: "DTR_UNAVAILABLE: DTR GET /api/v0/content_caches: 503",
    });
    await a.stop();

    const journal = (await api.listConfigs({ labels: [] })).find((c) => c.name === `dtrcache.events.${owner}`);
    expect(journal, "the journal config exists").toBeDefined();
    const size = Buffer.byteLength((await api.inspectConfig(journal?.id ?? "")).labels["io.dtrcache.events.data"] ?? "");
    console.log(`event journal: ${size} bytes of labels`);
    expect(size).toBeGreaterThan(32 * 1024);
    expect(size).toBeLessThanOrEqual(64 * 1024);

    const b = await start("events-b");
    await expect.poll(async () => (await eventsOf(b, "region-asia")).length, { timeout: 30_000, interval: 200 }).toBeGreaterThan(0);
    const events = await eventsOf(b, "region-asia");
    expect(events).toHaveLength(20);
    expect(events.at(-1)).toMatchObject({ reason: "DtrSyncFailed", message: "DTR_UNAVAILABLE: DTR GET /api/v0/content_caches: 503" });
    expect(events.filter((e) => e.reason === "ServiceUpdated").length).toBeGreaterThan(0);
  });
});
