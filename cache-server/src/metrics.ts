// Prometheus metrics, one registry per server instance (tests start several servers in one
// process, so nothing is registered globally).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * A count bumped on the hot path as a plain number and added to its prom-client counter when the
 * registry is read (the counter's collect hook). A labelled prom-client inc builds a label key
 * per call; on a cache hit three of them were a measurable share of the request.
 */
export class Tally {
  n = 0;
  inc(by = 1): void {
    this.n += by;
  }
}

/** The hot path's counts: hits answered from memory or disk, remembered grants, body bytes. */
export interface HitTallies {
  /** cache_requests_total{kind="manifest_digest",result="hit"} */
  readonly manifestDigest: Tally;
  /** cache_requests_total{kind="blob",result="hit"} */
  readonly blob: Tally;
  /** cache_auth_decisions_total{source="remembered",result="allow"} */
  readonly rememberedAllow: Tally;
  /** cache_bytes_served_total */
  readonly bytesServed: Tally;
}

function fold<L extends string>(counter: Counter<L>, tally: Tally, labels?: Partial<Record<L, string>>): void {
  if (tally.n === 0) return;
  if (labels) counter.inc(labels, tally.n);
  else counter.inc(tally.n);
  tally.n = 0;
}

export interface CacheMetrics {
  readonly registry: Registry;
  readonly hits: HitTallies;
  readonly requests: Counter<"kind" | "result">;
  readonly coalescedWaiters: Counter<"kind">;
  readonly bytesServed: Counter;
  readonly bytesFetched: Counter;
  readonly upstreamLatency: Histogram<"upstream" | "method">;
  readonly upstreamErrors: Counter<"upstream" | "reason">;
  readonly upstreamRedirects: Counter<"kind">;
  readonly evictions: Counter<"reason">;
  readonly diskBytes: Gauge;
  readonly diskBlobs: Gauge;
  readonly fillsInFlight: Gauge;
  readonly fillFailures: Counter<"reason">;
  readonly diskFull: Counter;
  readonly authDecisions: Counter<"source" | "result">;
}

export function createMetrics(withDefaults = true): CacheMetrics {
  const registry = new Registry();
  if (withDefaults) collectDefaultMetrics({ register: registry, prefix: "cache_" });
  const r = [registry];
  const hits: HitTallies = { manifestDigest: new Tally(), blob: new Tally(), rememberedAllow: new Tally(), bytesServed: new Tally() };
  return {
    registry,
    hits,
    requests: new Counter({
      name: "cache_requests_total",
      help: "Registry requests by kind (blob, manifest_tag, manifest_digest) and result (hit, miss, stale, error)",
      labelNames: ["kind", "result"],
      registers: r,
      collect() {
        fold(this, hits.manifestDigest, { kind: "manifest_digest", result: "hit" });
        fold(this, hits.blob, { kind: "blob", result: "hit" });
      },
    }),
    coalescedWaiters: new Counter({
      name: "cache_coalesced_waiters_total",
      help: "Requests that joined an in-flight fill or revalidation instead of asking upstream",
      labelNames: ["kind"],
      registers: r,
    }),
    bytesServed: new Counter({
      name: "cache_bytes_served_total",
      help: "Body bytes sent to clients",
      registers: r,
      collect() {
        fold(this, hits.bytesServed);
      },
    }),
    bytesFetched: new Counter({ name: "cache_bytes_fetched_total", help: "Body bytes received from upstreams for fills", registers: r }),
    upstreamLatency: new Histogram({
      name: "cache_upstream_latency_seconds",
      help: "Time to response headers from an upstream",
      labelNames: ["upstream", "method"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    upstreamErrors: new Counter({ name: "cache_upstream_errors_total", help: "Upstream failures by reason", labelNames: ["upstream", "reason"], registers: r }),
    upstreamRedirects: new Counter({
      name: "cache_upstream_redirects_total",
      help: "Upstream blob redirects by how they were handled (self, same-origin, foreign, invalid)",
      labelNames: ["kind"],
      registers: r,
    }),
    evictions: new Counter({ name: "cache_evictions_total", help: "Blobs removed by reason (ttl, size)", labelNames: ["reason"], registers: r }),
    // Every cluster worker sees the same directory: aggregated as the max, never summed.
    diskBytes: new Gauge({ name: "cache_disk_bytes", help: "Bytes of blobs in the store", registers: r, aggregator: "max" }),
    diskBlobs: new Gauge({ name: "cache_disk_blobs", help: "Blobs in the store", registers: r, aggregator: "max" }),
    fillsInFlight: new Gauge({ name: "cache_fills_in_flight", help: "Upstream blob fills in progress", registers: r }),
    fillFailures: new Counter({ name: "cache_fill_failures_total", help: "Fills that kept nothing, by reason", labelNames: ["reason"], registers: r }),
    authDecisions: new Counter({
      name: "cache_auth_decisions_total",
      help: "Authorization answers for one (credential, repository, digest) by source (remembered, upstream, outage) and result",
      labelNames: ["source", "result"],
      registers: r,
      collect() {
        fold(this, hits.rememberedAllow, { source: "remembered", result: "allow" });
      },
    }),
    diskFull: new Counter({
      name: "cache_disk_full_total",
      help: "Fills that hit ENOSPC and were streamed straight through without keeping the blob",
      registers: r,
    }),
  };
}
