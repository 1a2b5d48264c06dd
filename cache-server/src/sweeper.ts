// Expiry and space. Blobs older than blobttl since their last access go (when storage.delete is
// enabled); with a size cap, least-recently-used blobs go from the high watermark down to the
// low one. A blob with an open reader is skipped, never deleted under a client; a reader in
// another process holds an open descriptor, which survives the unlink (store.deleteBlob).
import type { CacheMetrics } from "./metrics.js";
import type { BlobStore } from "./store.js";
import type { Clock } from "./clock.js";

export interface SweepOptions {
  readonly blobTtlMs: number;
  readonly deleteEnabled: boolean;
  readonly maxSizeBytes: number | undefined;
  readonly highWatermark: number;
  readonly lowWatermark: number;
}

export interface SweepResult {
  readonly expired: number;
  readonly evicted: number;
  readonly skippedInUse: number;
}

export async function sweep(store: BlobStore, clock: Clock, opts: SweepOptions, metrics?: CacheMetrics): Promise<SweepResult> {
  let expired = 0;
  let evicted = 0;
  let skippedInUse = 0;
  // Other processes sharing the root commit, read and delete too: the pass starts from the
  // directory, not from this process's view of it.
  await store.resync();
  const now = clock.now();
  const byAge = store.blobsByAge();
  if (opts.deleteEnabled) {
    for (const blob of byAge) {
      if (now - blob.lastAccess < opts.blobTtlMs) break; // sorted: the rest are younger
      if (await store.deleteBlob(blob.digest)) expired++;
      else skippedInUse++;
    }
  }
  if (opts.maxSizeBytes !== undefined && store.totalBytes > opts.maxSizeBytes * opts.highWatermark) {
    const target = opts.maxSizeBytes * opts.lowWatermark;
    for (const blob of store.blobsByAge()) {
      if (store.totalBytes <= target) break;
      if (await store.deleteBlob(blob.digest)) evicted++;
      else skippedInUse++;
    }
  }
  metrics?.evictions.inc({ reason: "ttl" }, expired);
  metrics?.evictions.inc({ reason: "size" }, evicted);
  metrics?.diskBytes.set(store.totalBytes);
  metrics?.diskBlobs.set(store.blobCount);
  return { expired, evicted, skippedInUse };
}
