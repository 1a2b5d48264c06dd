// The dashboard and the alert rules may name only metrics the components really export: a metric
// renamed in the code must fail here, not silently blank a panel or disarm an alert.
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createMetrics } from "@dtrcache/cache-server";
import { registerControllerMetrics } from "@dtrcache/controller";
import { alertExpressions, dashboardExpressions, projectMetricsIn } from "./assets.js";

/** Every series name a registry can expose (histograms add _bucket, _sum and _count). */
async function exported(registry: Registry): Promise<Set<string>> {
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    // prom-client types `type` as a numeric enum, but at run time it is the text ("histogram").
    if (String(m.type) === "histogram" || String(m.type) === "summary") for (const s of ["_bucket", "_sum", "_count"]) names.add(`${m.name}${s}`);
  }
  return names;
}

/** A histogram's series name back to its metric's name. */
function baseName(series: string): string {
  return series.replace(/_(bucket|sum|count)$/, "");
}

async function allExported(): Promise<Set<string>> {
  const controller = new Registry();
  registerControllerMetrics(controller, () => ({ caches: [], spec: { loaded: true, errors: [] } }) as never);
  return new Set([...(await exported(controller)), ...(await exported(createMetrics(true).registry))]);
}

describe("deploy/monitoring", () => {
  it("alert rules name only exported metrics, and every rule uses at least one of ours or `up`", async () => {
    const names = await allExported();
    const alerts = alertExpressions();
    expect(alerts.size).toBeGreaterThanOrEqual(10);
    for (const [alert, expr] of alerts) {
      const used = projectMetricsIn(expr);
      expect(used.length > 0 || /\bup\{/.test(expr), `${alert} uses no metric of ours`).toBe(true);
      for (const name of used) expect(names.has(name), `${alert}: ${name} is not exported`).toBe(true);
    }
  });

  it("dashboard panels name only exported metrics", async () => {
    const names = await allExported();
    const exprs = dashboardExpressions();
    expect(exprs.size).toBeGreaterThanOrEqual(15);
    for (const [panel, expr] of exprs) {
      const used = projectMetricsIn(expr);
      expect(used.length, `${panel} uses no metric of ours`).toBeGreaterThan(0);
      for (const name of used) expect(names.has(name), `${panel}: ${name} is not exported`).toBe(true);
    }
  });

  it("every metric the controller exports has a dashboard panel (a new metric without one fails here)", async () => {
    const controller = new Registry();
    registerControllerMetrics(controller, () => ({ caches: [], spec: { loaded: true, errors: [] } }) as never);
    const onDashboard = new Set([...dashboardExpressions().values()].flatMap((expr) => projectMetricsIn(expr)).map(baseName));
    const missing = (await controller.getMetricsAsJSON()).map((m) => m.name).filter((name) => !onDashboard.has(name));
    expect(missing).toEqual([]);
  });

  it("the DTR, sync-age and write-budget metrics have alerts", () => {
    const used = new Set([...alertExpressions().values()].flatMap((expr) => projectMetricsIn(expr)));
    for (const name of [
      "dtrcache_controller_dtr_last_sync_timestamp_seconds",
      "dtrcache_controller_dtr_request_errors_total",
      "dtrcache_controller_swarm_writes_refused_total",
      "dtrcache_controller_cache_ready",
    ])
      expect(used.has(name), name).toBe(true);
  });

  it("the name check itself catches a metric that does not exist", async () => {
    const names = await allExported();
    expect(projectMetricsIn("rate(cache_requests_totl[5m])").every((n) => names.has(n))).toBe(false);
  });
});
