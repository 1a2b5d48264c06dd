// What `dtrcache status` says about each cache's spec (issue 13, item 2): the generation the
// controller has acted on against the one stored, whether the spec is accepted, and since when the
// cache's current spec exists — an age, not a state word.
//
// The controller's status knows its spec only by content hash (observedGeneration/generation). In
// store mode a spec has a real, user-visible generation: the store revision `dtrcache get -o yaml`
// shows as metadata.generation. This tracker wraps the spec source and, at every successful load,
// notes which store revision (number and time written) each cache's hash came from, so the
// snapshot can map "observed hash" back to "observed store generation". In file mode there are no
// revisions: the hashes' short forms stand in, and the age is the time this process first loaded
// the cache's current spec.
import type { CacheSpec } from "@dtrcache/crds";
import { specGeneration } from "../reconcile/desired.js";
import type { SpecSource } from "../source.js";
import type { SpecStore } from "../store/store.js";
import type { CacheSnapshot, RuntimeSnapshot, SpecView } from "./snapshot.js";

interface Origin {
  /** Store revision of the ContentCache (store mode). */
  readonly storeGeneration?: number;
  /** When that revision was written (store) or first loaded by this process (file). */
  readonly since: string;
}

export class SpecViewTracker {
  /** Per cache: spec hash → where it came from. Bounded: only the last few hashes are kept. */
  private readonly origins = new Map<string, Map<string, Origin>>();
  /** Per cache: the hash of the spec loaded last. */
  private readonly latest = new Map<string, string>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  /** Records a successful load; `revisions` maps cache name → its store head (store mode). */
  loaded(spec: CacheSpec, revisions?: ReadonlyMap<string, { generation: number; when: string }>): void {
    const names = new Set(spec.caches.map((c) => c.name));
    for (const name of [...this.latest.keys()]) if (!names.has(name)) this.latest.delete(name);
    for (const cache of spec.caches) {
      const hash = specGeneration(cache);
      const byHash = this.origins.get(cache.name) ?? new Map<string, Origin>();
      this.origins.set(cache.name, byHash);
      const revision = revisions?.get(cache.name);
      const known = byHash.get(hash);
      // A re-applied identical spec keeps the hash: keep the first time it appeared (its age),
      // but take the newer store generation (that is what `get` shows as current).
      const origin: Origin = revision
        ? { storeGeneration: revision.generation, since: known?.since ?? revision.when }
        : (known ?? { since: this.now().toISOString() });
      byHash.delete(hash);
      byHash.set(hash, origin);
      while (byHash.size > 8) byHash.delete(byHash.keys().next().value ?? "");
      this.latest.set(cache.name, hash);
    }
  }

  /** The spec view of one cache of a snapshot. */
  view(cache: CacheSnapshot, specRejected: boolean): SpecView {
    const byHash = this.origins.get(cache.name);
    const latestHash = this.latest.get(cache.name) ?? cache.generation;
    const latest = byHash?.get(latestHash);
    const observed = cache.observedGeneration === "" ? undefined : byHash?.get(cache.observedGeneration);
    const state: SpecView["state"] = cache.terminating ? "Removed" : specRejected ? "Rejected" : "Valid";
    return {
      state,
      ...(latest?.storeGeneration !== undefined ? { storedGeneration: latest.storeGeneration } : {}),
      ...(observed?.storeGeneration !== undefined ? { observedStoreGeneration: observed.storeGeneration } : {}),
      ...(latest ? { since: latest.since } : {}),
    };
  }

  decorate(snapshot: RuntimeSnapshot): RuntimeSnapshot {
    const rejected = snapshot.spec.errors.length > 0;
    return { ...snapshot, caches: snapshot.caches.map((c) => ({ ...c, spec: this.view(c, rejected) })) };
  }
}

/** The spec source with each successful load reported to `tracker` (with store heads in store mode). */
export function trackedSpecSource(inner: SpecSource, tracker: SpecViewTracker, store?: SpecStore): SpecSource {
  return {
    description: inner.description,
    watch: (onChange) => inner.watch(onChange),
    async load() {
      // Heads first: a revision written between the two reads is picked up by the next load
      // (the watch fires for it), so the numbers shown can lag one load, never lead.
      const heads = store ? await store.heads().catch(() => undefined) : undefined;
      const result = await inner.load();
      if (result.ok) {
        const revisions = heads
          ? new Map(heads.filter((r) => r.kind === "ContentCache" && !r.deleted).map((r) => [r.name, { generation: r.generation, when: r.when }]))
          : undefined;
        tracker.loaded(result.spec, revisions);
      }
      return result;
    },
  };
}
