// One reconcile reads one spec snapshot (issue 10, defect 7): a spec edit that lands while a
// reconcile awaits the engine is the next reconcile's business; the one in hand must not mix it
// into its materials or its status.
import { describe, expect, it, vi } from "vitest";
import type { LoadResult, ResolvedCache } from "@dtrcache/crds";
import { createController } from "./controller.js";
import { specGeneration } from "./reconcile/desired.js";
import { staticSpecSource } from "./source.js";
import type { CacheStatus } from "./status.js";
import type { SwarmApi } from "./swarm/api.js";
import { FakeSwarm } from "./swarm/fake.js";
import { load, runbookText } from "./testing/specs.js";

/** The fake, with a hook run inside listTasks (the middle of a reconcile's observation) and awaited there. */
function withHook(fake: FakeSwarm, hook: { next?: () => Promise<void> }): SwarmApi {
  return new Proxy(fake, {
    get(target, prop, receiver) {
      if (prop === "listTasks") {
        return async (id: string) => {
          const tasks = await target.listTasks(id);
          const run = hook.next;
          delete hook.next;
          await run?.(); // the edit is loaded while this reconcile is in the middle of observing
          return tasks;
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const cacheIn = (r: LoadResult): ResolvedCache => {
  if (!r.ok || !r.spec.caches[0]) throw new Error("spec without cache");
  return r.spec.caches[0];
};

describe("one spec snapshot per reconcile (defect 7)", () => {
  it("reports each reconcile's status from the spec it started with, although an edit loaded during it", async () => {
    const fake = new FakeSwarm(["node-1", "node-2"]);
    const hook: { next?: () => Promise<void> } = {};
    const specs = [load(runbookText()), load(runbookText({ blobTTL: "12h" })), load(runbookText({ blobTTL: "6h", hostname: "node-2" }))];
    const byGeneration = new Map(specs.map((s) => [specGeneration(cacheIn(s)), cacheIn(s)]));
    const source = staticSpecSource(specs[0] as LoadResult);
    const seen: CacheStatus[] = [];
    const controller = createController({
      docker: withHook(fake, hook),
      specSource: source,
      id: "test",
      settleMs: 0,
      rolloutPollMs: 20,
      resyncIntervalMs: 3_600_000,
      onReconcile: () => {
        const s = controller.status().caches[0];
        if (s) seen.push(s);
      },
    });
    await controller.start();
    try {
      await controller.idle();
      // The edit to 12h starts a reconcile; while it observes the engine, the next edit (6h, other node) loads.
      const third = specGeneration(cacheIn(specs[2] as LoadResult));
      hook.next = async () => {
        source.set(specs[2] as LoadResult);
        await vi.waitFor(() => expect(specGeneration(controller.spec()?.caches[0] as ResolvedCache)).toBe(third), { timeout: 5_000, interval: 1 });
      };
      source.set(specs[1] as LoadResult);
      await expect
        .poll(() => seen.some((s) => s.observedGeneration === specGeneration(cacheIn(specs[2] as LoadResult))), { timeout: 5_000, interval: 20 })
        .toBe(true);
      await controller.idle();
    } finally {
      await controller.stop();
    }
    expect(hook.next).toBeUndefined(); // the edit did land during a reconcile
    for (const status of seen) {
      const cache = byGeneration.get(status.observedGeneration);
      expect(cache, `status of an unknown generation ${status.observedGeneration}`).toBeDefined();
      const hostname = cache?.spec.node && "hostname" in cache.spec.node ? cache.spec.node.hostname : undefined;
      expect({ generation: status.observedGeneration, hostname: status.node.hostname, desired: status.tasks.desired }).toEqual({
        generation: status.observedGeneration,
        hostname,
        desired: cache?.spec.replicas,
      });
    }
  });
});
