// The drift check and the reconciler's bookkeeping on their own, with a DtrSync and a list call
// that the test answers (no HTTP): what counts as drift, stopping, and a verification asked for
// while a pass runs.
import type { ResolvedCache } from "@dtrcache/crds";
import { describe, expect, it } from "vitest";
import type { ContentCacheRecord } from "../dtr/client.js";
import { DtrError } from "../dtr/errors.js";
import type { DtrApplyRequest, DtrCacheStatus, DtrSync } from "../dtr/sync.js";
import { silentLogger } from "../logger.js";
import { FakeClock } from "../runner/fake-clock.js";
import { FakeSwarm } from "../swarm/fake.js";
import { load, runbookText } from "../testing/specs.js";
import { DtrDriftCheck } from "./drift.js";
import { DtrReconciler } from "./reconciler.js";

function cacheOf(): ResolvedCache {
  const loaded = load(runbookText({ users: ["alice"] }));
  if (!loaded.ok || loaded.spec.caches[0] === undefined) throw new Error("runbook does not load");
  return loaded.spec.caches[0];
}

/** A DtrSync whose passes register `host` as id r1; a pass can be held open with `gate`. */
function fakeSync(host: string) {
  const calls: DtrApplyRequest[] = [];
  let gate: Promise<void> | undefined;
  let fail: Error | undefined;
  const sync: DtrSync = {
    async apply(cache, request) {
      calls.push(request);
      if (gate) await gate;
      if (fail) throw fail;
      return { registrationId: "r1", host, users: request.assign.map((username) => ({ username, state: "assigned" as const })) } satisfies DtrCacheStatus;
    },
    remove: () => Promise.resolve({ foreign: [] }),
  };
  return {
    sync,
    calls,
    hold(): () => void {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
    failWith(error: Error | undefined): void {
      fail = error;
    },
  };
}

function rig() {
  const cache = cacheOf();
  const clock = new FakeClock();
  const requeued: string[] = [];
  const dtrSync = fakeSync(cache.spec.externalURL);
  const reconciler = new DtrReconciler({
    swarm: new FakeSwarm(),
    owner: "t",
    dtrSync: dtrSync.sync,
    logger: silentLogger,
    now: () => clock.now().getTime(),
    verifyEveryMs: 60_000,
    requeue: (name) => requeued.push(name),
  });
  let listed: ContentCacheRecord[] | Error = [];
  let listCalls = 0;
  const check = new DtrDriftCheck({
    reconciler,
    clock,
    intervalMs: 10_000,
    logger: silentLogger,
    lister: {
      listRegistrations: (_dtr, signal) => {
        listCalls += 1;
        if (listed instanceof Error) return Promise.reject(listed);
        const answer = listed;
        // "hang" stands for a DTR that accepts the connection and never answers.
        if (answer.some((r) => r.id === "hang"))
          return new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
        return Promise.resolve(answer);
      },
    },
  });
  const signal = new AbortController().signal;
  return {
    cache,
    clock,
    requeued,
    dtrSync,
    reconciler,
    check,
    pass: () => reconciler.reconcile(cache, "g1", undefined, signal),
    list(answer: ContentCacheRecord[] | Error): void {
      listed = answer;
    },
    listCalls: () => listCalls,
  };
}

describe("DtrDriftCheck", () => {
  it("finds a missing or re-hosted registration, not one that matches, and queues only the drifted cache", async () => {
    const r = rig();
    await r.pass();
    const host = r.cache.spec.externalURL;
    r.list([{ id: "r1", name: r.cache.name, host: `${host}/` }]);
    expect(await r.check.checkOnce()).toEqual([]);
    r.list([{ id: "r1", name: r.cache.name, host: "https://elsewhere.example.com" }]);
    expect(await r.check.checkOnce()).toEqual([
      { cache: r.cache.name, reason: `registration r1 is now ${r.cache.name} https://elsewhere.example.com in DTR (confirmed ${r.cache.name} ${host})` },
    ]);
    expect(r.requeued).toEqual([r.cache.name]);
    // Already due for verification: not reported again until a pass confirms it.
    r.list([]);
    expect(await r.check.checkOnce()).toEqual([]);
    const passes = r.dtrSync.calls.length;
    await r.pass();
    expect(r.dtrSync.calls.length).toBe(passes + 1);
    expect(await r.check.checkOnce()).toEqual([{ cache: r.cache.name, reason: "registration r1 is no longer in DTR's list" }]);
  });

  it("a verification asked for while a full pass runs is not lost when that pass finishes", async () => {
    const r = rig();
    await r.pass();
    r.reconciler.reverify(r.cache.name, "drift");
    const release = r.dtrSync.hold();
    const running = r.pass();
    // The pass has read its due work; a second drift arrives before it ends.
    await new Promise((resolve) => setTimeout(resolve, 10));
    r.reconciler.reverify(r.cache.name, "drift again");
    release();
    await running;
    const before = r.dtrSync.calls.length;
    await r.pass();
    expect(r.dtrSync.calls.length).toBe(before + 1);
    expect(r.dtrSync.calls.at(-1)?.assign).toEqual(["alice"]);
    // And then nothing is due any more.
    await r.pass();
    expect(r.dtrSync.calls.length).toBe(before + 1);
  });

  it("a failed list marks the DTR down; its next answer re-verifies every cache on it", async () => {
    const r = rig();
    await r.pass();
    r.list(new DtrError("DTR_UNAVAILABLE", "GET /api/v0/content_caches: 503", true, 503));
    expect(await r.check.checkOnce()).toEqual([]);
    expect(r.requeued).toEqual([]);
    r.list([{ id: "r1", name: r.cache.name, host: r.cache.spec.externalURL }]);
    await r.check.checkOnce();
    expect(r.requeued).toEqual([r.cache.name]);
    // Only once: the DTR is no longer down.
    await r.check.checkOnce();
    expect(r.requeued).toEqual([r.cache.name]);
  });

  it("a pass that fails with DTR_UNAVAILABLE marks the DTR down too; a refused one (401) does not", async () => {
    const r = rig();
    await r.pass();
    r.reconciler.reverify(r.cache.name, "drift");
    r.requeued.length = 0;
    r.dtrSync.failWith(new DtrError("DTR_UNAUTHENTICATED", "401", false, 401));
    await r.pass();
    r.list([{ id: "r1", name: r.cache.name, host: r.cache.spec.externalURL }]);
    await r.check.checkOnce();
    expect(r.requeued).toEqual([]);
    r.dtrSync.failWith(new DtrError("DTR_UNAVAILABLE", "503", true, 503));
    r.clock.advance(60_000);
    await r.pass();
    await r.check.checkOnce();
    expect(r.requeued).toEqual([r.cache.name]);
  });

  it("runs every interval on the clock; stop() aborts a call in flight, leaves no timer, and the abort is not an outage", async () => {
    const r = rig();
    await r.pass();
    r.list([{ id: "r1", name: r.cache.name, host: r.cache.spec.externalURL }]);
    r.check.start();
    r.clock.advance(9_999);
    expect(r.listCalls()).toBe(0);
    r.clock.advance(1);
    await r.check.settled();
    expect(r.listCalls()).toBe(1);
    r.clock.advance(10_000);
    await r.check.settled();
    expect(r.listCalls()).toBe(2);

    r.list([{ id: "hang", name: "x", host: "x" }]);
    r.clock.advance(10_000);
    expect(r.listCalls()).toBe(3);
    await r.check.stop();
    expect(r.clock.timers).toBe(0);
    r.list([{ id: "r1", name: r.cache.name, host: r.cache.spec.externalURL }]);
    await r.check.checkOnce();
    expect(r.requeued).toEqual([]);
  });
});
