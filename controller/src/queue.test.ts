import { describe, expect, it } from "vitest";
import { WorkQueue, type ErrorClass } from "./queue.js";

class Failure extends Error {
  constructor(readonly klass: ErrorClass) {
    super(klass);
  }
}

const classify = (error: unknown): ErrorClass => (error instanceof Failure ? error.klass : "backoff");

describe("WorkQueue", () => {
  it("never runs one key twice at once and runs it once more when added while running", async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    let release: () => void = () => undefined;
    const queue = new WorkQueue({
      classify,
      worker: async () => {
        active += 1;
        runs += 1;
        maxActive = Math.max(maxActive, active);
        if (runs === 1) await new Promise<void>((resolve) => (release = resolve));
        active -= 1;
        return {};
      },
    });
    queue.add("a");
    await expect.poll(() => runs).toBe(1);
    queue.add("a");
    queue.add("a");
    release();
    await expect.poll(() => runs).toBe(2);
    await queue.idle();
    expect(maxActive).toBe(1);
    expect(runs).toBe(2);
  });

  it("keeps a key running after an immediate retry: no second run at once, idle() waits for it (issue 10, defect 6)", async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    let release: () => void = () => undefined;
    const queue = new WorkQueue({
      classify,
      worker: async () => {
        runs += 1;
        active += 1;
        maxActive = Math.max(maxActive, active);
        try {
          if (runs === 1) throw new Failure("immediate");
          if (runs === 2) await new Promise<void>((resolve) => (release = resolve));
          return {};
        } finally {
          active -= 1;
        }
      },
    });
    queue.add("k");
    await expect.poll(() => runs).toBe(2);
    // The retry (run 2) is in flight: idle() must not resolve and an add must wait for it.
    let idle = false;
    void queue.idle().then(() => (idle = true));
    queue.add("k");
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(idle).toBe(false);
    expect(maxActive).toBe(1);
    release();
    await queue.idle();
    expect(idle).toBe(true);
    expect(runs).toBe(3);
    expect(maxActive).toBe(1);
  });

  it("retries a conflict at once, backs off on a transient error, and stops on a terminal one", async () => {
    const seen: string[] = [];
    const outcomes: Record<string, ErrorClass[]> = { c: ["immediate"], t: ["backoff"], x: ["terminal"] };
    const queue = new WorkQueue({
      classify,
      baseDelayMs: 20,
      onError: (key, _e, klass, retryIn) => seen.push(`${key}:${klass}:${retryIn === undefined ? "none" : retryIn === 0 ? "now" : "later"}`),
      worker: (key) => {
        const next = outcomes[key]?.shift();
        return next ? Promise.reject(new Failure(next)) : Promise.resolve({});
      },
    });
    for (const k of ["c", "t", "x"]) queue.add(k);
    await expect.poll(() => seen.sort()).toEqual(["c:immediate:now", "t:backoff:later", "x:terminal:none"]);
    await queue.shutdown();
  });

  it("grows the back-off exponentially for a key that keeps failing", async () => {
    const delays: number[] = [];
    const queue = new WorkQueue({ classify, baseDelayMs: 5, maxDelayMs: 1000, onError: (_k, _e, _c, retryIn) => delays.push(retryIn ?? -1), worker: () => Promise.reject(new Error("down")) });
    queue.add("k");
    await expect.poll(() => delays.length, { timeout: 5000 }).toBeGreaterThanOrEqual(5);
    await queue.shutdown();
    // jittered in [exp/2, exp]: the 5th delay (exp 80) is above the 1st's maximum (exp 5)
    expect(delays[4] ?? 0).toBeGreaterThan(delays[0] ?? 0);
    expect(delays[4] ?? 0).toBeGreaterThanOrEqual(40);
  });
});
