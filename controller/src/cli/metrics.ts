// The controller's Prometheus metrics. Per-cache gauges are computed from the status snapshot at
// scrape time (they can never disagree with /status); counters and the duration histogram are fed
// by the controller's reconcile reports.
//
// A cache's series stay present while the controller cannot say anything about it: a cache known
// to this process (seen in a snapshot, or found owned in the swarm at start) that is missing from
// the snapshot while the spec is rejected or not loaded reads cache_ready 0 and Ready=Unknown,
// instead of vanishing — an absent series disarms `cache_ready == 0` alerts exactly when they
// matter. Only a valid spec without the cache (it left the spec) forgets it.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { registerDtrMetrics, type DtrMetrics } from "../dtr/metrics.js";
import type { RuntimeSnapshot } from "./snapshot.js";

export interface ControllerMetrics {
  /** Called once per finished reconcile of one cache. */
  observeReconcile(cache: string, outcome: "success" | "error", durationSeconds: number, errorCode?: string): void;
  setQueueDepth(depth: number): void;
  /** Caches known to exist (owned in the swarm), kept present until a valid spec drops them. */
  rememberCaches(names: Iterable<string>): void;
  /** One Swarm write of the controller for a cache, or one refused by the write budget. */
  observeSwarmWrite(cache: string, refused: boolean): void;
  /** The DTR side: requests by route and status class, last good sync per cache (dtr/metrics.ts). */
  readonly dtr: DtrMetrics;
}

export function registerControllerMetrics(registry: Registry, snapshot: () => RuntimeSnapshot): ControllerMetrics {
  const reconciles = new Counter({
    name: "dtrcache_controller_reconciles_total",
    help: "Reconciles of one cache, by outcome.",
    labelNames: ["cache", "outcome"],
    registers: [registry],
  });
  const errors = new Counter({
    name: "dtrcache_controller_reconcile_errors_total",
    help: "Failed reconciles by stable error code.",
    labelNames: ["code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "dtrcache_controller_reconcile_duration_seconds",
    help: "Time to reconcile one cache.",
    labelNames: ["cache"],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  const writes = new Counter({
    name: "dtrcache_controller_swarm_writes_total",
    help: "Swarm writes the controller made for a cache (store and lease writes excluded).",
    labelNames: ["cache"],
    registers: [registry],
  });
  const refusedWrites = new Counter({
    name: "dtrcache_controller_swarm_writes_refused_total",
    help: "Swarm writes for a cache refused by the write budget (Contended: its writes keep being undone).",
    labelNames: ["cache"],
    registers: [registry],
  });
  const known = new Set<string>();
  /** The snapshot's caches, plus known caches it lacks while the spec is not valid (as undefined). */
  const perCache = (): { caches: RuntimeSnapshot["caches"]; unknown: string[] } => {
    const current = snapshot();
    const listed = new Set(current.caches.map((c) => c.name));
    const specValid = current.spec.loaded && current.spec.errors.length === 0;
    for (const name of [...known]) if (!listed.has(name) && specValid) known.delete(name);
    for (const name of listed) known.add(name);
    return { caches: current.caches, unknown: [...known].filter((n) => !listed.has(n)).sort() };
  };
  const queue = new Gauge({ name: "dtrcache_controller_queue_depth", help: "Cache names waiting to be reconciled.", registers: [registry] });
  new Gauge({
    name: "dtrcache_controller_cache_ready",
    help: "1 when the cache's Ready condition is True.",
    labelNames: ["cache"],
    registers: [registry],
    collect() {
      this.reset();
      const { caches, unknown } = perCache();
      for (const cache of caches) this.set({ cache: cache.name }, cache.conditions.some((c) => c.type === "Ready" && c.status === "True") ? 1 : 0);
      for (const name of unknown) this.set({ cache: name }, 0);
    },
  });
  new Gauge({
    name: "dtrcache_controller_cache_condition",
    help: "1 for each (cache, condition, status) that holds now.",
    labelNames: ["cache", "condition", "status"],
    registers: [registry],
    collect() {
      this.reset();
      const { caches, unknown } = perCache();
      for (const cache of caches) for (const c of cache.conditions) this.set({ cache: cache.name, condition: c.type, status: c.status }, 1);
      for (const name of unknown) this.set({ cache: name, condition: "Ready", status: "Unknown" }, 1);
    },
  });
  new Gauge({
    name: "dtrcache_controller_cache_tasks",
    help: "Running and desired tasks of each cache's service.",
    labelNames: ["cache", "state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const cache of snapshot().caches) {
        this.set({ cache: cache.name, state: "running" }, cache.tasks.running);
        this.set({ cache: cache.name, state: "desired" }, cache.tasks.desired);
      }
    },
  });
  new Gauge({
    name: "dtrcache_controller_spec_loaded",
    help: "1 when the last spec load succeeded (0: the last good spec stays in force).",
    registers: [registry],
    collect() {
      const spec = snapshot().spec;
      this.set(spec.loaded && spec.errors.length === 0 ? 1 : 0);
    },
  });
  return {
    observeReconcile(cache, outcome, durationSeconds, errorCode) {
      reconciles.inc({ cache, outcome });
      duration.observe({ cache }, durationSeconds);
      if (errorCode !== undefined) errors.inc({ code: errorCode });
    },
    setQueueDepth: (depth) => queue.set(depth),
    rememberCaches(names) {
      for (const name of names) known.add(name);
    },
    observeSwarmWrite: (cache, refused) => (refused ? refusedWrites : writes).inc({ cache }),
    dtr: registerDtrMetrics(registry),
  };
}
