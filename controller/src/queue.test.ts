import { describe, expect, it } from "vitest";
import { ControllerError } from "./errors.js";
import { WorkQueue, type ErrorClass, type WorkResult } from "./queue.js";
import { FakeClock } from "./runner/fake-clock.js";

class Failure extends Error {
  constructor(readonly klass: ErrorClass) {
    super(klass);
  }
}

const classify = (error: unknown): ErrorClass => (error instanceof Failure ? error.klass : "backoff");

/** Lets every promise callback that is ready run (the queue's runs are async but do not sleep). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** A promise and its resolve function. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe("WorkQueue", () => {
  it("never runs one key twice at once and runs it once more when added while running", async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const first = gate();
    const queue = new WorkQueue({
      classify,
      clock: new FakeClock(),
      worker: async () => {
        active += 1;
        runs += 1;
        maxActive = Math.max(maxActive, active);
        if (runs === 1) await first.promise;
        active -= 1;
        return {};
      },
    });
    queue.add("a");
    await settle();
    expect(runs).toBe(1);
    queue.add("a");
    queue.add("a");
    first.open();
    await queue.idle();
    expect(maxActive).toBe(1);
    expect(runs).toBe(2);
  });

  it("keeps a key running after an immediate retry: no second run at once, idle() waits for it (issue 10, defect 6)", async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const second = gate();
    const queue = new WorkQueue({
      classify,
      clock: new FakeClock(),
      worker: async () => {
        runs += 1;
        active += 1;
        maxActive = Math.max(maxActive, active);
        try {
          if (runs === 1) throw new Failure("immediate");
          if (runs === 2) await second.promise;
          return {};
        } finally {
          active -= 1;
        }
      },
    });
    queue.add("k");
    await settle();
    expect(runs).toBe(2);
    // The retry (run 2) is in flight: idle() must not resolve and an add must wait for it.
    let idle = false;
    void queue.idle().then(() => (idle = true));
    queue.add("k");
    await settle();
    expect(idle).toBe(false);
    expect(maxActive).toBe(1);
    second.open();
    await queue.idle();
    expect(idle).toBe(true);
    expect(runs).toBe(3);
    expect(maxActive).toBe(1);
  });

  it("retries a conflict at once, backs off on a transient error, and stops on a terminal one", async () => {
    const clock = new FakeClock();
    const seen: string[] = [];
    const runs: string[] = [];
    const outcomes: Record<string, ErrorClass[]> = { c: ["immediate"], t: ["backoff"], x: ["terminal"] };
    const queue = new WorkQueue({
      classify,
      clock,
      baseDelayMs: 20,
      onError: (key, _e, klass, retryIn) => seen.push(`${key}:${klass}:${retryIn === undefined ? "none" : retryIn === 0 ? "now" : "later"}`),
      worker: (key) => {
        runs.push(key);
        const next = outcomes[key]?.shift();
        return next ? Promise.reject(new Failure(next)) : Promise.resolve({});
      },
    });
    for (const k of ["c", "t", "x"]) queue.add(k);
    await queue.idle();
    expect(seen.sort()).toEqual(["c:immediate:now", "t:backoff:later", "x:terminal:none"]);
    expect(runs.filter((k) => k === "c")).toHaveLength(2); // retried at once
    expect(runs.filter((k) => k === "t")).toHaveLength(1); // not yet: its back-off is a timer
    clock.advance(20); // the back-off of the first failure is at most base (20 ms)
    await queue.idle();
    expect(runs.filter((k) => k === "t")).toHaveLength(2);
    expect(runs.filter((k) => k === "x")).toHaveLength(1);
    await queue.shutdown();
  });

  it("grows the back-off exponentially for a key that keeps failing", async () => {
    const clock = new FakeClock();
    const delays: number[] = [];
    const queue = new WorkQueue({
      classify,
      clock,
      baseDelayMs: 5,
      maxDelayMs: 1000,
      onError: (_k, _e, _c, retryIn) => delays.push(retryIn ?? -1),
      worker: () => Promise.reject(new Error("down")),
    });
    queue.add("k");
    for (let i = 0; i < 5; i++) {
      await queue.idle();
      clock.advance(delays.at(-1) ?? 0);
    }
    await queue.shutdown();
    // jittered in [exp/2, exp]: the 5th delay (exp 80) is above the 1st's maximum (exp 5)
    expect(delays.length).toBeGreaterThanOrEqual(5);
    expect(delays[4] ?? 0).toBeGreaterThan(delays[0] ?? 0);
    expect(delays[4] ?? 0).toBeGreaterThanOrEqual(40);
  });

  it("answers runOnce with the run that starts after the call, not the one already in hand", async () => {
    const clock = new FakeClock();
    let runs = 0;
    const first = gate();
    const queue = new WorkQueue<{ run: number; requeueAfterMs?: number }>({
      classify,
      clock,
      worker: async () => {
        runs += 1;
        const run = runs;
        if (run === 1) await first.promise;
        return { run };
      },
    });
    queue.add("k");
    await settle();
    const answer = queue.runOnce("k"); // run 1 is in hand: it read an older state
    first.open();
    await expect(answer).resolves.toEqual({ ok: true, value: { run: 2 } });
    await expect(queue.runOnce("k")).resolves.toEqual({ ok: true, value: { run: 3 } });
  });

  it("schedules no requeue or retry while follow-ups are off (a one-shot pass without the loop)", async () => {
    const clock = new FakeClock();
    const outcomes = [Promise.reject(new Failure("backoff")), Promise.resolve({ requeueAfterMs: 50 })];
    outcomes[0]?.catch(() => undefined);
    const queue = new WorkQueue({ classify, clock, worker: () => outcomes.shift() ?? Promise.resolve({}) });
    queue.followUps = false;
    expect((await queue.runOnce("a")).ok).toBe(false);
    expect((await queue.runOnce("b")).ok).toBe(true);
    expect(clock.timers).toBe(0);
    queue.followUps = true;
    queue.add("c"); // the loop's runs do schedule theirs
    await queue.idle();
    expect(clock.timers).toBe(0); // c succeeded without requeue
  });

  it("lets a run in hand finish within the grace period, then aborts it, and answers later waiters with STOPPED", async () => {
    const clock = new FakeClock();
    let aborted = false;
    const queue = new WorkQueue({
      classify,
      clock,
      concurrency: 1,
      worker: (_key, signal) =>
        new Promise<WorkResult>((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted = true;
            reject(new Error("aborted"));
          });
        }),
    });
    const running = queue.runOnce("slow");
    const waiting = queue.runOnce("next"); // concurrency 1: never starts
    await settle();
    let stopped = false;
    const stop = queue.shutdown(1_000).then(() => (stopped = true));
    await expect(waiting).resolves.toMatchObject({ ok: false, error: expect.any(ControllerError) });
    clock.advance(999);
    await settle();
    expect(stopped).toBe(false);
    expect(aborted).toBe(false);
    clock.advance(1);
    await stop;
    expect(aborted).toBe(true);
    await expect(running).resolves.toMatchObject({ ok: false });
  });
});
