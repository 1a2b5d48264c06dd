// The store source reloads the spec for spec revisions only. The lease config
// (dtrcache-lease-<owner>) shares the revisions' name prefix and is relabelled on every renewal
// (every 2 s in production); before the source looked at labels, each renewal reloaded the spec.
import { describe, expect, it } from "vitest";
import { LeaderElector } from "../lease/elector.js";
import { memoryLogger } from "../logger.js";
import { FakeSwarm } from "../swarm/fake.js";
import type { LabelFilter, SwarmConfig } from "../swarm/api.js";
import { EXAMPLES_DIR, runbookText } from "../testing/specs.js";
import { admit, writeChanges } from "./admission.js";
import { STORE } from "./labels.js";
import { storeSpecSource } from "./source.js";
import { SpecStore } from "./store.js";

/** FakeSwarm counting the store listings (a reload lists the heads, then reads them) and inspects. */
class CountingSwarm extends FakeSwarm {
  storeListings = 0;
  inspects = 0;
  override listConfigs(filter: LabelFilter): Promise<SwarmConfig[]> {
    if (filter.labels.some((l) => l.startsWith(`${STORE}=`))) this.storeListings += 1;
    return super.listConfigs(filter);
  }
  override inspectConfig(id: string): Promise<SwarmConfig> {
    this.inspects += 1;
    return super.inspectConfig(id);
  }
}

async function apply(store: SpecStore, text: string): Promise<void> {
  const admitted = await admit(store, { texts: [{ file: `${EXAMPLES_DIR}spec.yaml`, text, baseDir: EXAMPLES_DIR }] });
  await writeChanges(store, admitted.changes);
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe("store spec source: what a config event reloads", () => {
  it("does not reload for the lease's renewals (10 renewals: 0 reloads, 0 store listings); a new revision still reloads", async () => {
    const swarm = new CountingSwarm();
    const store = new SpecStore({ swarm, owner: "o", who: "alice@host" });
    await apply(store, runbookText());
    const source = storeSpecSource(store, swarm, { debounceMs: 1, resyncMs: 3_600_000 });
    let reloads = 0;
    const stop = await source.watch(() => (reloads += 1));
    try {
      const lease = new LeaderElector({ swarm, owner: "o", identity: "a", logger: memoryLogger() });
      expect(await lease.tryAcquireOrRenew()).toBe("leader");
      await settle();
      const [listingsBefore, inspectsBefore] = [swarm.storeListings, swarm.inspects];
      for (let i = 0; i < 10; i += 1) {
        expect(await lease.tryAcquireOrRenew()).toBe("leader");
        await settle();
      }
      // Before: every renewal fired onChange, i.e. one spec reload (two store listings) each.
      expect(reloads).toBe(0);
      expect(swarm.storeListings - listingsBefore).toBe(0);
      // The lease's id was judged once, at its creation (before the count), and remembered: the
      // only inspects left are the elector's own reads of its record, one per renewal.
      expect(swarm.inspects - inspectsBefore).toBe(10);

      await apply(store, runbookText({ blobTTL: "2h" }));
      await settle();
      expect(reloads).toBeGreaterThan(0);
    } finally {
      await stop();
    }
  });

  it("ignores another owner's revisions, by their owner label", async () => {
    const swarm = new FakeSwarm();
    const mine = new SpecStore({ swarm, owner: "o", who: "alice@host" });
    const theirs = new SpecStore({ swarm, owner: "other", who: "bob@host" });
    await apply(mine, runbookText());
    const source = storeSpecSource(mine, swarm, { debounceMs: 1, resyncMs: 3_600_000 });
    let reloads = 0;
    const stop = await source.watch(() => (reloads += 1));
    try {
      await apply(theirs, runbookText({ blobTTL: "3h" }));
      await settle();
      expect(reloads).toBe(0);
      await apply(mine, runbookText({ blobTTL: "3h" }));
      await settle();
      expect(reloads).toBeGreaterThan(0);
    } finally {
      await stop();
    }
  });
});
