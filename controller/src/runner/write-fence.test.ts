// The write fence on its own: what a closed fence refuses and what it lets through.
import { describe, expect, it } from "vitest";
import type { DtrSync } from "../dtr/sync.js";
import { FakeSwarm } from "../swarm/fake.js";
import { recordSwarmApi } from "../swarm/recording.js";
import { load, runbookText } from "../testing/specs.js";
import { AbortedError } from "../abort.js";
import { fencedDtrSync, fencedSwarm, WriteFence } from "./write-fence.js";

const blob = { name: "c-config-00000000", labels: { "io.dtrcache.owner": "t" }, data: Buffer.from("x") };

describe("WriteFence", () => {
  it("lets writes through while open; once closed refuses every Swarm write before the engine, and reads still go", async () => {
    const recorded = recordSwarmApi(new FakeSwarm(["node-1"]));
    const fence = new WriteFence();
    const swarm = fencedSwarm(recorded, fence);
    await swarm.createConfig(blob);
    fence.close(new Error("lease lost"));
    await expect(swarm.createConfig({ ...blob, name: "c-config-11111111" })).rejects.toBeInstanceOf(AbortedError);
    await expect(swarm.removeService("c")).rejects.toThrow("lease lost");
    expect(await swarm.listConfigs({ labels: ["io.dtrcache.owner=t"] })).toHaveLength(1);
    expect(recorded.mutatingCalls().map((c) => c.call)).toEqual(["createConfig"]);
  });

  it("refuses DTR passes and removals once closed, and keeps the DtrSync's other members", async () => {
    const loaded = load(runbookText());
    if (!loaded.ok || loaded.spec.caches[0] === undefined) throw new Error("runbook does not load");
    const cache = loaded.spec.caches[0];
    let applied = 0;
    const inner: DtrSync & { listRegistrations: () => Promise<[]> } = {
      apply: () => {
        applied += 1;
        return Promise.resolve({ users: [] });
      },
      remove: () => Promise.resolve({ foreign: [] }),
      listRegistrations: () => Promise.resolve([]),
    };
    const fence = new WriteFence();
    const sync = fencedDtrSync(inner, fence);
    const signal = new AbortController().signal;
    await sync.apply(cache, { owned: [], assign: [], reset: [] }, signal);
    fence.close(new Error("stopped"));
    await expect(sync.apply(cache, { owned: [], assign: [], reset: [] }, signal)).rejects.toBeInstanceOf(AbortedError);
    await expect(sync.remove({ cacheName: cache.name, dtr: cache.dtr, users: [], owned: [] }, signal)).rejects.toBeInstanceOf(AbortedError);
    expect(applied).toBe(1);
    expect(await sync.listRegistrations()).toEqual([]);
  });
});
