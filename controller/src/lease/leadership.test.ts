// A controller that loses its lease stops writing at the moment the loss is known (issue 10/11
// follow-up). Before, the loss called the same stop() as a shutdown: the reconcile in hand had the
// 10 s grace period to go on writing while the new leader might already write.
import { describe, expect, it } from "vitest";
import { createController } from "../controller.js";
import type { DtrSync } from "../dtr/sync.js";
import { memoryLogger } from "../logger.js";
import { FakeClock } from "../runner/fake-clock.js";
import { staticSpecSource } from "../source.js";
import type { SwarmApi, SwarmNode } from "../swarm/api.js";
import { FakeSwarm } from "../swarm/fake.js";
import { recordSwarmApi } from "../swarm/recording.js";
import { load, runbookText } from "../testing/specs.js";
import { LeaderElector } from "./elector.js";
import { followLease } from "./leadership.js";
import { leaseConfigName, readLease, recordLabels } from "./record.js";

/** The fake, whose listNodes (a reconcile's first read) waits while `gate.held`: the reconcile is "in flight" there. */
function gated(fake: FakeSwarm) {
  const waiting: (() => void)[] = [];
  const gate = { held: true, hit: false };
  const api = new Proxy(fake, {
    get(target, prop, receiver) {
      if (prop === "listNodes") {
        return (): Promise<SwarmNode[]> => {
          if (!gate.held) return target.listNodes();
          gate.hit = true;
          return new Promise<void>((resolve) => waiting.push(resolve)).then(() => target.listNodes());
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as SwarmApi;
  return {
    api,
    gate,
    release(): void {
      gate.held = false;
      for (const resolve of waiting.splice(0)) resolve();
    },
  };
}

/** Another candidate writes the lease record as its holder (it took over after a partition). */
async function takeLease(fake: FakeSwarm, owner: string, clock: FakeClock): Promise<void> {
  const record = await readLease(fake, owner);
  if (!record) throw new Error("no lease record");
  const now = clock.now().toISOString();
  await fake.updateConfigLabels(
    record.configId,
    { index: record.version },
    leaseConfigName(owner),
    recordLabels(owner, { holder: "b", renewedAt: now, acquiredAt: now, durationMs: record.durationMs, seq: record.seq + 1 }),
  );
}

describe("losing the lease while a reconcile is in flight", () => {
  it("makes no Swarm write after the loss is known, and stops without waiting for the grace period", async () => {
    const clock = new FakeClock();
    const fake = new FakeSwarm(["node-1"]);
    const engine = gated(fake);
    const recorded = recordSwarmApi(engine.api);
    const logger = memoryLogger();
    // The default 10 s grace: the loss must not use it.
    const controller = createController({
      docker: recorded,
      specSource: staticSpecSource(load(runbookText())),
      logger,
      id: "test",
      settleMs: 0,
      resyncIntervalMs: 3_600_000,
      clock,
    });
    const elector = new LeaderElector({ swarm: fake, owner: "test", identity: "a", clock, renewMs: 2_000, durationMs: 10_000, logger });
    const lost: string[] = [];
    followLease({ elector, controller, lead: () => controller.start(), onLost: (reason) => lost.push(reason), signal: new AbortController().signal });

    // The first reconcile observes the engine and waits in listNodes: it has written nothing yet.
    await expect.poll(() => engine.gate.hit, { timeout: 5_000, interval: 5 }).toBe(true);
    expect(recorded.mutatingCalls()).toEqual([]);

    await takeLease(fake, "test", clock);
    clock.advance(2_000); // the renewal finds the record taken
    await expect.poll(() => elector.status().role, { timeout: 5_000, interval: 5 }).toBe("stopped");

    // The engine answers the reconcile's read now; the run must not act on it.
    engine.release();
    await expect.poll(() => lost, { timeout: 5_000, interval: 5 }).toEqual(["the lease was taken by b"]);
    expect(recorded.mutatingCalls()).toEqual([]);
    expect(await fake.listServices({ labels: [] })).toEqual([]);
    expect(logger.entries.map((e) => e.message)).toContain("reconcile aborted: the controller is stopping");
    // Nothing is left running or scheduled on the controller's clock (the grace timer included).
    clock.advance(60_000);
    expect(recorded.mutatingCalls()).toEqual([]);
  });
});

describe("stop({ graceMs: 0 })", () => {
  it("aborts the run in hand at once: the engine's late answer leads to no write", async () => {
    const clock = new FakeClock();
    const fake = new FakeSwarm(["node-1"]);
    const engine = gated(fake);
    const recorded = recordSwarmApi(engine.api);
    const controller = createController({
      docker: recorded,
      specSource: staticSpecSource(load(runbookText())),
      id: "test",
      settleMs: 0,
      resyncIntervalMs: 3_600_000,
      clock,
    });
    await controller.start();
    await expect.poll(() => engine.gate.hit, { timeout: 5_000, interval: 5 }).toBe(true);
    const stopping = controller.stop({ graceMs: 0 });
    engine.release();
    await stopping;
    expect(recorded.mutatingCalls()).toEqual([]);
    // It returned without the controller's clock moving: no grace timer was waited for.
    expect(clock.timers).toBe(0);
  });

  it("aborts a DTR pass in flight at the moment of the call and starts no other", async () => {
    const clock = new FakeClock();
    const fake = new FakeSwarm(["node-1"]);
    const signals: AbortSignal[] = [];
    // A DTR that never answers: only the abort ends a pass.
    const dtrSync: DtrSync = {
      apply: (_cache, _request, signal) => {
        signals.push(signal);
        return new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
      },
      remove: () => Promise.resolve({ foreign: [] }),
    };
    const controller = createController({
      docker: fake,
      specSource: staticSpecSource(load(runbookText())),
      dtrSync,
      id: "test",
      settleMs: 0,
      rolloutPollMs: 1_000,
      resyncIntervalMs: 3_600_000,
      dtrCheckMs: 0,
      clock,
    });
    await controller.start();
    // The first pass creates the service; the poll a second later finds it Ready and calls DTR.
    for (let i = 0; i < 50 && signals.length === 0; i += 1) {
      clock.advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(signals).toHaveLength(1);
    const stopping = controller.stop({ graceMs: 0 });
    expect(signals[0]?.aborted).toBe(true);
    await stopping;
    clock.advance(120_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(signals).toHaveLength(1);
  });
});
