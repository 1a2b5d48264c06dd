// Whether what `status` shows is about the spec that is stored (issue 13 follow-up). A cache whose
// controller has not yet acted on its newest stored revision is not converged, however Ready the
// previous revision is: right after `dtrcache apply` the conditions still describe revision 3
// while revision 4 is stored. `status` says "Applying revision 4 (running 3)" and exits 1 then,
// and `apply --wait` waits for the revision it wrote.
//
// Two sources of "behind": the store's revision numbers (store mode; the snapshot's own numbers,
// raised to the store's heads when the CLI can read them, because the controller only learns of
// a revision when it loads it), and the spec hashes the controller reports (any mode: a spec it
// has loaded but not finished reconciling).
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";

/** A cache whose stored spec the controller has not finished acting on. */
export interface PendingChange {
  readonly cache: string;
  /** "Applying revision 4 (running 3)". */
  readonly words: string;
}

/**
 * The snapshot with each cache's stored revision raised to the store's head, where the store is
 * ahead of what the controller has loaded (it has not seen the newest `apply` yet). Only caches
 * the controller reports with store revisions (store mode) are touched: a file-mode controller's
 * caches have no revisions to compare.
 */
export function withStoreHeads(status: RuntimeSnapshot, heads: ReadonlyMap<string, number>): RuntimeSnapshot {
  return {
    ...status,
    caches: status.caches.map((cache) => {
      const stored = cache.spec?.storedGeneration;
      const head = heads.get(cache.name);
      if (cache.spec === undefined || stored === undefined || head === undefined || head <= stored) return cache;
      return { ...cache, spec: { ...cache.spec, storedGeneration: head } };
    }),
  };
}

const short = (hash: string): string => hash.slice(0, 7);

/** Why this cache's conditions are not about its current spec, or undefined when they are. */
export function pendingOf(cache: CacheSnapshot): string | undefined {
  if (cache.terminating) return undefined;
  const stored = cache.spec?.storedGeneration;
  const observed = cache.spec?.observedStoreGeneration;
  if (stored !== undefined && (observed === undefined || observed < stored))
    return `Applying revision ${stored} (${observed === undefined ? "none reconciled yet" : `running ${observed}`})`;
  if (cache.observedGeneration === "") return "Applying its spec (not reconciled yet)";
  if (cache.observedGeneration !== cache.generation) {
    // store mode, same revision: a resource it uses (its DTR) changed
    return stored !== undefined
      ? `Applying revision ${stored} with a changed DTR resource`
      : `Applying a changed spec (running ${short(cache.observedGeneration)}, loaded ${short(cache.generation)})`;
  }
  return undefined;
}

export function pendingChanges(status: RuntimeSnapshot): PendingChange[] {
  return status.caches.flatMap((cache) => {
    const words = pendingOf(cache);
    return words === undefined ? [] : [{ cache: cache.name, words }];
  });
}

/** Lines `status` prints under the table, one per cache not yet on its stored spec. */
export function pendingLines(status: RuntimeSnapshot): string[] {
  return pendingChanges(status).map((p) => `  ${p.cache}: ${p.words}`);
}

/** Why `status` exits 1: the spec is rejected, a cache is behind its stored spec or not Ready; undefined when all is well. */
export function statusProblem(status: RuntimeSnapshot): string | undefined {
  // a standby does not reconcile: its view of the caches says nothing about them (ask the leader)
  if (status.lease !== undefined && status.lease.role === "standby") return undefined;
  const problems: string[] = [];
  if (status.spec.errors.length > 0)
    problems.push(
      `the spec is rejected (${status.spec.errors.length} error${status.spec.errors.length === 1 ? "" : "s"}; the controller keeps the last good spec)`,
    );
  const pending = pendingChanges(status);
  if (pending.length > 0) problems.push(`not converged: ${pending.map((p) => `${p.cache} ${p.words.charAt(0).toLowerCase()}${p.words.slice(1)}`).join(", ")}`);
  const behind = new Set(pending.map((p) => p.cache));
  const notReady = status.caches.filter((c) => !behind.has(c.name) && c.conditions.find((x) => x.type === "Ready")?.status !== "True").map((c) => c.name);
  if (notReady.length > 0) problems.push(`not Ready: ${notReady.join(", ")}`);
  return problems.length > 0 ? problems.join("; ") : undefined;
}
