// Hot-path tallies reach Prometheus: counted as plain numbers, added to their counters when the
// registry is read, never twice, and merged with the same series' ordinary increments.
import { describe, expect, it } from "vitest";
import { createMetrics } from "./metrics.js";

function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("hit tallies", () => {
  it("are folded into their counters on every scrape, once", async () => {
    const m = createMetrics(false);
    m.hits.manifestDigest.inc();
    m.hits.manifestDigest.inc();
    m.hits.blob.inc();
    m.hits.rememberedAllow.inc();
    m.hits.bytesServed.inc(1000);
    m.requests.inc({ kind: "blob", result: "hit" }); // the slow path's own increment of the same series
    m.bytesServed.inc(24);
    let text = await m.registry.metrics();
    expect(value(text, 'cache_requests_total{kind="manifest_digest",result="hit"}')).toBe(2);
    expect(value(text, 'cache_requests_total{kind="blob",result="hit"}')).toBe(2);
    expect(value(text, 'cache_auth_decisions_total{source="remembered",result="allow"}')).toBe(1);
    expect(value(text, "cache_bytes_served_total")).toBe(1024);
    text = await m.registry.metrics();
    expect(value(text, 'cache_requests_total{kind="manifest_digest",result="hit"}')).toBe(2);
    expect(value(text, "cache_bytes_served_total")).toBe(1024);
    m.hits.manifestDigest.inc(3);
    text = await m.registry.metrics();
    expect(value(text, 'cache_requests_total{kind="manifest_digest",result="hit"}')).toBe(5);
  });

  it("reach a cluster primary through the worker's JSON export too", async () => {
    const m = createMetrics(false);
    m.hits.blob.inc(7);
    const json = await m.registry.getMetricsAsJSON();
    const requests = json.find((x) => x.name === "cache_requests_total") as unknown as { values: { value: number; labels: Record<string, string> }[] };
    expect(requests.values.find((v) => v.labels.kind === "blob" && v.labels.result === "hit")?.value).toBe(7);
  });
});
