// A DTR that does not answer is asked again on the cache's back-off (1 s doubling to 60 s), not on
// every look at the cache: the rollout poll (rolloutPollMs, down to 50 ms), Docker events and the
// resync all reconcile the cache, and before the fix each of those looks ran a full DTR pass while
// the cache had never been verified (issue 10 follow-up: the back-off was skipped while
// `verifiedAt` was unset).
import type { ResolvedCache } from "@dtrcache/crds";
import { describe, expect, it } from "vitest";
import { DtrError } from "../dtr/errors.js";
import type { DtrApplyRequest, DtrSync } from "../dtr/sync.js";
import { silentLogger } from "../logger.js";
import { FakeClock } from "../runner/fake-clock.js";
import { FakeSwarm } from "../swarm/fake.js";
import { load, runbookText } from "../testing/specs.js";
import { DtrReconciler } from "./reconciler.js";

function cacheOf(): ResolvedCache {
  const loaded = load(runbookText({ users: ["alice", "bob"] }));
  if (!loaded.ok || loaded.spec.caches[0] === undefined) throw new Error("runbook does not load");
  return loaded.spec.caches[0];
}

/** A DtrSync that fails with DTR_UNAVAILABLE while `down` is set, and counts every call. */
function outage(host: string) {
  const calls: { at: number; request: DtrApplyRequest }[] = [];
  const state = { down: true };
  const sync = (clock: FakeClock): DtrSync => ({
    apply(_cache, request) {
      calls.push({ at: clock.now().getTime(), request });
      if (state.down) return Promise.reject(new DtrError("DTR_UNAVAILABLE", "connect ECONNREFUSED", true));
      return Promise.resolve({ registrationId: "r1", host, users: request.assign.map((username) => ({ username, state: "assigned" as const })) });
    },
    remove: () => Promise.resolve({ foreign: [] }),
  });
  return { calls, state, sync };
}

function rig() {
  const cache = cacheOf();
  const clock = new FakeClock();
  const dtr = outage(cache.spec.externalURL);
  const reconciler = new DtrReconciler({
    swarm: new FakeSwarm(),
    owner: "t",
    dtrSync: dtr.sync(clock),
    logger: silentLogger,
    now: () => clock.now().getTime(),
    verifyEveryMs: 60_000,
    requeue: () => undefined,
  });
  const signal = new AbortController().signal;
  const start = clock.now().getTime();
  return {
    cache,
    clock,
    dtr,
    reconciler,
    look: () => reconciler.reconcile(cache, "g1", undefined, signal),
    /** Seconds since the rig was built, of each DTR call. */
    callTimes: () => dtr.calls.map((c) => (c.at - start) / 1000),
    /** Looks at the cache every `everyMs` of fake time for `totalMs`, as the rollout poll would. */
    async poll(everyMs: number, totalMs: number): Promise<void> {
      for (let t = 0; t < totalMs; t += everyMs) {
        await reconciler.reconcile(cache, "g1", undefined, signal);
        clock.advance(everyMs);
      }
    },
  };
}

describe("DtrReconciler during a DTR outage", () => {
  it("asks a DTR that never answered again only on the back-off, whatever polls the cache", async () => {
    const r = rig();
    // 10 s of fake time, looked at every 50 ms: 200 looks.
    await r.poll(50, 10_000);
    // First pass at 0 s, then 1 s, 2 s, 4 s after each failure: 0, 1, 3, 7.
    expect(r.callTimes()).toEqual([0, 1, 3, 7]);
  });

  it("keeps the back-off growing to its cap over a long outage", async () => {
    const r = rig();
    await r.poll(50, 300_000);
    // 0, 1, 3, 7, 15, 31, 63 (32 s), then every 60 s: 123, 183, 243.
    expect(r.callTimes()).toEqual([0, 1, 3, 7, 15, 31, 63, 123, 183, 243]);
  });

  it("holds per-user retries too while the whole pass backs off", async () => {
    const r = rig();
    r.dtr.state.down = false;
    await r.look();
    expect(r.dtr.calls).toHaveLength(1);
    // Verified once; then a drift check asks for a full pass, and DTR is down for it.
    r.reconciler.reverify(r.cache.name, "drift");
    r.dtr.state.down = true;
    r.clock.advance(50);
    await r.look();
    expect(r.dtr.calls).toHaveLength(2);
    await r.poll(50, 900);
    expect(r.dtr.calls).toHaveLength(2);
  });

  it("still runs at once when a verification is asked for (DTR answers again) or the spec changes", async () => {
    const r = rig();
    await r.look();
    expect(r.dtr.calls).toHaveLength(1);
    r.clock.advance(100);
    r.dtr.state.down = false;
    // The drift check's list got an answer: every cache on that DTR is verified now, not in 900 ms.
    r.reconciler.reverify(r.cache.name, "DTR answers again after an outage");
    await r.look();
    expect(r.dtr.calls).toHaveLength(2);
    const outcome = await r.look();
    expect(outcome.condition.status).toBe("True");
    expect(r.dtr.calls).toHaveLength(2);

    r.dtr.state.down = true;
    r.reconciler.reverify(r.cache.name, "drift");
    await r.look();
    expect(r.dtr.calls).toHaveLength(3);
    await r.reconciler.reconcile(r.cache, "g2", undefined, new AbortController().signal);
    expect(r.dtr.calls).toHaveLength(4);
  });
});
