// The event journal (issue 11, item 7 leftover): events survive a controller restart or failover —
// a new recorder attached to the same swarm shows the previous controller's events first — with
// bounded content, rate-limited writes (none while idle), and no write after the lease is lost.
import { describe, expect, it } from "vitest";
import { EventRecorder, type ControllerEvent } from "../events/recorder.js";
import { FakeSwarm } from "../swarm/fake.js";
import { recordSwarmApi } from "../swarm/recording.js";
import { boundEvents, EventJournal, EVENTS_DATA, journalConfigName } from "./events-journal.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function clock(start = Date.parse("2026-12-01T10:00:00Z")): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

describe("EventJournal", () => {
  it("restores the previous controller's events into a new recorder, before the new ones", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const first = new EventRecorder({ now: clock() });
    const journal = new EventJournal({ swarm: fake, owner: "dtrcache", intervalMs: 20 });
    expect(await journal.attach(first)).toBe(0);
    first.record({ cache: "region-asia", type: "Normal", source: "swarm", reason: "ServiceCreated", message: "created service region-asia" });
    first.record({ cache: "region-asia", type: "Warning", source: "dtr", reason: "DtrSyncFailed", message: "DTR_UNAVAILABLE: 503" });
    first.record({ type: "Normal", source: "swarm", reason: "NodeLabelsUpdated", message: "updated labels of node node-1" });
    await journal.close(first);

    // a new process (restart or failover): a fresh recorder, the same swarm
    const second = new EventRecorder({ now: clock(Date.parse("2026-12-01T11:00:00Z")) });
    const again = new EventJournal({ swarm: fake, owner: "dtrcache", intervalMs: 20 });
    expect(await again.attach(second)).toBe(3);
    second.record({ cache: "region-asia", type: "Normal", source: "reconcile", reason: "TasksRunning", message: "Ready=True" });
    expect(second.list("region-asia").map((e) => e.reason)).toEqual(["ServiceCreated", "DtrSyncFailed", "NodeLabelsUpdated", "TasksRunning"]);
    expect(second.list("region-asia")[1]).toMatchObject({ type: "Warning", message: "DTR_UNAVAILABLE: 503", count: 1 });
    await again.close(second);
    // the journal is a config named for the owner, outside the store's dtrcache- prefix
    const configs = await fake.listConfigs({ labels: [] });
    expect(configs.map((c) => c.name)).toEqual([journalConfigName("dtrcache")]);
    expect(journalConfigName("dtrcache").startsWith("dtrcache-")).toBe(false);
  });

  it("writes at most once per interval while events arrive, and nothing while idle", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const recording = recordSwarmApi(fake);
    const recorder = new EventRecorder({ now: clock() });
    const journal = new EventJournal({ swarm: recording, owner: "dtrcache", intervalMs: 100 });
    await journal.attach(recorder);
    for (let i = 0; i < 200; i += 1)
      recorder.record({ cache: "region-asia", type: "Normal", source: "swarm", reason: "ServiceUpdated", message: `update ${i}` });
    await sleep(250);
    expect(journal.writes).toBe(1);
    await sleep(250);
    expect(journal.writes).toBe(1);
    recorder.record({ cache: "region-asia", type: "Normal", source: "swarm", reason: "ServiceUpdated", message: "one more" });
    await sleep(250);
    expect(journal.writes).toBe(2);
    const writes = recording.calls.filter((c) => c.call === "createConfig" || c.call === "updateConfigLabels").map((c) => c.call);
    expect(writes).toEqual(["createConfig", "updateConfigLabels"]);
    await journal.close(recorder);
    expect(journal.writes).toBe(2);
  });

  it("writes nothing after the lease is lost (abandon), so the new leader's journal stands", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const recorder = new EventRecorder({ now: clock() });
    const journal = new EventJournal({ swarm: fake, owner: "dtrcache", intervalMs: 50 });
    await journal.attach(recorder);
    recorder.record({ cache: "a", type: "Normal", source: "swarm", reason: "R", message: "m" });
    journal.abandon();
    await sleep(150);
    await journal.close(recorder);
    expect(journal.writes).toBe(0);
  });

  it("keeps the journal bounded: perCache per cache, and under maxBytes by dropping the oldest", () => {
    const events: ControllerEvent[] = [];
    for (let c = 0; c < 5; c += 1)
      for (let i = 0; i < 30; i += 1)
        events.push({
          cache: `c${c}`,
          type: "Normal",
          source: "swarm",
          reason: "R",
          message: `m${i}`.padEnd(100, "x"),
          firstTime: `2026-12-01T10:${String(i).padStart(2, "0")}:0${c}Z`,
          lastTime: `2026-12-01T10:${String(i).padStart(2, "0")}:0${c}Z`,
          count: 1,
        });
    const perCache = boundEvents(events, 20, 1_000_000);
    expect(perCache).toHaveLength(100);
    expect(perCache.filter((e) => e.cache === "c0").map((e) => e.message.slice(0, 3))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i + 10}`.slice(0, 3)));
    const small = boundEvents(events, 20, 4096);
    expect(Buffer.byteLength(JSON.stringify(small))).toBeLessThanOrEqual(4096);
    expect(small.length).toBeGreaterThan(0);
    expect(small[small.length - 1]?.lastTime).toBe(perCache[perCache.length - 1]?.lastTime);
  });

  it("reads a damaged journal as no events", async () => {
    const fake = new FakeSwarm(["node-1"]);
    await fake.createConfig({
      name: journalConfigName("x"),
      labels: { "io.dtrcache.events": "v1", "io.dtrcache.events.owner": "x", [EVENTS_DATA]: "{not json" },
      data: Buffer.from(""),
    });
    expect(await new EventJournal({ swarm: fake, owner: "x" }).load()).toEqual([]);
  });
});
