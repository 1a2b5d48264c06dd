// What deploy/monitoring ships, read for the tests: the PromQL expressions of the alert rules and
// of the Grafana dashboard, and the metric names they use.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

// Tests run from the TypeScript sources (test/monitoring), two levels below the repository root.
export const MONITORING_DIR = fileURLToPath(new URL("../../deploy/monitoring/", import.meta.url));

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[];
}
interface Dashboard {
  panels: { title: string; targets?: { expr: string }[] }[];
}

export function alertExpressions(): Map<string, string> {
  const rules = parse(readFileSync(`${MONITORING_DIR}alerts.yml`, "utf8")) as RuleFile;
  return new Map(rules.groups.flatMap((g) => g.rules.map((r) => [r.alert ?? r.record ?? "?", r.expr] as const)));
}

export function dashboardExpressions(): Map<string, string> {
  const dash = JSON.parse(readFileSync(`${MONITORING_DIR}dashboard.json`, "utf8")) as Dashboard;
  return new Map(dash.panels.flatMap((p) => (p.targets ?? []).map((t, i) => [`${p.title} #${i + 1}`, t.expr] as const)));
}

/** Metric names of the project (dtrcache_*, cache_*) an expression refers to. */
export function projectMetricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b((?:dtrcache|cache)_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1] ?? "");
}
