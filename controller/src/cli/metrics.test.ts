import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { registerControllerMetrics } from "./metrics.js";
import type { RuntimeSnapshot } from "./snapshot.js";

function snapshotWith(ready: "True" | "False"): RuntimeSnapshot {
  return {
    controllerId: "dtrcache",
    engine: { reachable: true, manager: true },
    spec: { path: "/spec.yaml", loaded: true, files: [], errors: [] },
    caches: [
      {
        name: "region-asia",
        observedGeneration: "g",
        generation: "g",
        terminating: false,
        conditions: [{ type: "Ready", status: ready, reason: "r", message: "m", lastTransitionTime: "2026-11-26T00:00:00Z" }],
        node: { label: "dtr.cache=true", labelled: true },
        revisions: [],
        tasks: { running: ready === "True" ? 1 : 0, desired: 1 },
        dtr: { users: [] },
      },
    ],
  };
}

describe("controller metrics", () => {
  it("reports per-cache readiness from the current snapshot at scrape time", async () => {
    const registry = new Registry();
    let current = snapshotWith("False");
    registerControllerMetrics(registry, () => current);
    expect(await registry.metrics()).toContain('dtrcache_controller_cache_ready{cache="region-asia"} 0');
    current = snapshotWith("True");
    const text = await registry.metrics();
    expect(text).toContain('dtrcache_controller_cache_ready{cache="region-asia"} 1');
    expect(text).toContain('dtrcache_controller_cache_tasks{cache="region-asia",state="running"} 1');
    expect(text).toContain("dtrcache_controller_spec_loaded 1");
  });

  it("counts reconciles by outcome, errors by code, and keeps the queue depth", async () => {
    const registry = new Registry();
    const metrics = registerControllerMetrics(registry, () => snapshotWith("True"));
    metrics.observeReconcile("region-asia", "success", 0.02);
    metrics.observeReconcile("region-asia", "error", 0.5, "UNAVAILABLE");
    metrics.setQueueDepth(3);
    const text = await registry.metrics();
    expect(text).toContain('dtrcache_controller_reconciles_total{cache="region-asia",outcome="success"} 1');
    expect(text).toContain('dtrcache_controller_reconciles_total{cache="region-asia",outcome="error"} 1');
    expect(text).toContain('dtrcache_controller_reconcile_errors_total{code="UNAVAILABLE"} 1');
    expect(text).toContain('dtrcache_controller_reconcile_duration_seconds_count{cache="region-asia"} 2');
    expect(text).toContain("dtrcache_controller_queue_depth 3");
  });
});
