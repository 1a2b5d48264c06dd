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

describe("per-cache series while the spec is rejected (issue 13, item 3)", () => {
  const rejected = (caches: RuntimeSnapshot["caches"]): RuntimeSnapshot => ({
    ...snapshotWith("True"),
    spec: { path: "/spec.yaml", loaded: false, files: [], errors: ["spec.yaml:3:1 kind: unknown"] },
    caches,
  });

  it("keeps cache_ready present at 0 for a cache the snapshot stops listing while the spec is rejected; forgets it once a valid spec drops it", async () => {
    const registry = new Registry();
    let current = snapshotWith("True");
    registerControllerMetrics(registry, () => current);
    expect(await registry.metrics()).toContain('dtrcache_controller_cache_ready{cache="region-asia"} 1');
    current = rejected([]);
    const text = await registry.metrics();
    expect(text).toContain('dtrcache_controller_cache_ready{cache="region-asia"} 0');
    expect(text).toContain('dtrcache_controller_cache_condition{cache="region-asia",condition="Ready",status="Unknown"} 1');
    expect(text).toContain("dtrcache_controller_spec_loaded 0");
    current = { ...snapshotWith("True"), caches: [] };
    expect(await registry.metrics()).not.toContain('cache="region-asia"');
  });

  it("reports an owned cache found at start at 0 when the first spec load is rejected", async () => {
    const registry = new Registry();
    const metrics = registerControllerMetrics(registry, () => rejected([]));
    expect(await registry.metrics()).not.toContain("dtrcache_controller_cache_ready{");
    metrics.rememberCaches(["region-europe"]);
    expect(await registry.metrics()).toContain('dtrcache_controller_cache_ready{cache="region-europe"} 0');
  });

  it("counts Swarm writes and refused writes per cache", async () => {
    const registry = new Registry();
    const metrics = registerControllerMetrics(registry, () => snapshotWith("True"));
    metrics.observeSwarmWrite("region-asia", false);
    metrics.observeSwarmWrite("region-asia", false);
    metrics.observeSwarmWrite("region-asia", true);
    const text = await registry.metrics();
    expect(text).toContain('dtrcache_controller_swarm_writes_total{cache="region-asia"} 2');
    expect(text).toContain('dtrcache_controller_swarm_writes_refused_total{cache="region-asia"} 1');
  });
});
