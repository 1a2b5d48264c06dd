// A one-shot converge (`dtrcache reconcile --once` runs it beside the started loop) goes through the
// loop's queue: with the second per-cache lock gone, the queue alone must keep one run per cache.
import { describe, expect, it } from "vitest";
import { createController } from "./controller.js";
import { FakeClock } from "./runner/fake-clock.js";
import { staticSpecSource } from "./source.js";
import type { SwarmApi } from "./swarm/api.js";
import { FakeSwarm } from "./swarm/fake.js";
import { chainedText, load, runbookText } from "./testing/specs.js";

/** The fake, with a slow listTasks that counts how many observations of one service overlap. */
function overlapCounting(fake: FakeSwarm, seen: { active: Map<string, number>; max: number }): SwarmApi {
  return new Proxy(fake, {
    get(target, prop, receiver) {
      if (prop === "listTasks") {
        return async (id: string) => {
          const now = (seen.active.get(id) ?? 0) + 1;
          seen.active.set(id, now);
          seen.max = Math.max(seen.max, now);
          try {
            await new Promise((resolve) => setTimeout(resolve, 5));
            return await target.listTasks(id);
          } finally {
            seen.active.set(id, (seen.active.get(id) ?? 1) - 1);
          }
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("one-shot converge through the queue", () => {
  it("never overlaps its runs with the loop's runs of the same cache, and reports each cache once", async () => {
    const fake = new FakeSwarm(["node-1", "node-2"]);
    const seen = { active: new Map<string, number>(), max: 0 };
    const source = staticSpecSource(load(chainedText()));
    const controller = createController({
      docker: overlapCounting(fake, seen),
      specSource: source,
      id: "test",
      settleMs: 0,
      rolloutPollMs: 5,
      resyncIntervalMs: 3_600_000,
    });
    await controller.start();
    try {
      const passes = await Promise.all([controller.reconcileOnce(), controller.reconcileOnce(), controller.reconcileOnce()]);
      for (const reports of passes) {
        expect(reports.map((r) => r.cache)).toEqual([...reports.map((r) => r.cache)].sort());
        expect(new Set(reports.map((r) => r.cache)).size).toBe(reports.length);
      }
      await controller.idle();
    } finally {
      await controller.stop();
    }
    expect(seen.max).toBe(1);
    expect(seen.active.size).toBeGreaterThan(0); // the services were observed at all
  });

  it("runs the one-shot pass without a started loop and leaves no requeue behind", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const clock = new FakeClock();
    const controller = createController({ docker: fake, specSource: staticSpecSource(load(runbookText())), id: "test", settleMs: 0, clock });
    const reports = await controller.reconcileOnce();
    expect(reports.map((r) => [r.cache, r.mode, r.error])).toEqual([["region-asia", "apply", undefined]]);
    expect(reports[0]?.actions.length).toBeGreaterThan(0);
    // The service was just written; a running loop would poll the rollout, a one-shot pass does not.
    expect(clock.timers).toBe(0);
  });
});
