// Metrics of the connection limits and of store verification, registered on the server's own
// registry (metrics.ts keeps the request-path metrics). Reused when a registry already holds them
// (a test may hand one CacheMetrics to two servers in turn).
import { Counter, Gauge, type Registry } from "prom-client";

export interface OpsMetrics {
  readonly connectionsRefused: Counter;
  readonly stalledResponses: Counter;
  readonly blobsVerified: Counter<"result">;
  readonly blobsUnverified: Gauge;
}

export function opsMetrics(registry: Registry): OpsMetrics {
  const r = [registry];
  const reuse = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    connectionsRefused: reuse(
      "cache_connections_refused_total",
      () => new Counter({ name: "cache_connections_refused_total", help: "Connections closed at accept because maxconnections were open", registers: r }),
    ),
    stalledResponses: reuse(
      "cache_stalled_responses_total",
      () => new Counter({ name: "cache_stalled_responses_total", help: "Responses destroyed because the client took no bytes for stalltimeout", registers: r }),
    ),
    blobsVerified: reuse(
      "cache_store_verified_total",
      () =>
        new Counter({
          name: "cache_store_verified_total",
          help: "Blobs hashed after an unclean stop, by result (ok, mismatch, unreadable; the latter two deleted)",
          labelNames: ["result"],
          registers: r,
        }),
    ),
    blobsUnverified: reuse(
      "cache_store_unverified_blobs",
      () => new Gauge({ name: "cache_store_unverified_blobs", help: "Blobs not yet hashed since an unclean stop", registers: r }),
    ),
  };
}
