import { readFileSync } from "node:fs";
import { loadCacheSpecFromText, type CacheSpec } from "@dtrcache/crds";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { ControllerStatus } from "../status.js";
import { buildSnapshot } from "./snapshot.js";
import { createTlsMonitor } from "./tls-monitor.js";

const examples = new URL("../../../crds/examples/", import.meta.url).pathname;

/** The runbook example with DTR on plain http at a loopback port nobody probes, and a chosen externalURL. */
function spec(externalURL: string, tls = "tls:\n    certFile: certs/cache.cert.pem\n    keyFile: certs/cache.key.pem"): CacheSpec {
  const text = readFileSync(`${examples}runbook.yaml`, "utf8")
    .replace("url: https://dtr.example.com:443", "url: http://127.0.0.1:9")
    .replace(/ {2}trust:\n {4}caFile: certs\/dtr.cert.pem\n/, "")
    .replace("externalURL: https://dtr-cache.example.com", `externalURL: ${externalURL}`)
    .replace(/tls:\n {4}certFile: certs\/cache.cert.pem\n {4}keyFile: certs\/cache.key.pem/, tls);
  const loaded = loadCacheSpecFromText(text, "spec.yaml", examples);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  return loaded.spec;
}

const status: ControllerStatus = {
  controllerId: "t",
  engine: { reachable: true, manager: true },
  spec: { path: "spec.yaml", loaded: true, files: [], errors: [] },
  caches: [
    {
      name: "region-asia",
      observedGeneration: "g",
      generation: "g",
      terminating: false,
      conditions: [{ type: "Ready", status: "True", reason: "TasksRunning", message: "1/1", lastTransitionTime: "2026-11-26T00:00:00Z" }],
      node: { label: "dtr.cache=true", labelled: true },
      revisions: [],
      tasks: { running: 1, desired: 1 },
      dtr: { users: [] },
    },
  ],
};

const monitor = () => createTlsMonitor({ dtrCa: async () => undefined, logger: pino({ level: "silent" }) });

describe("TLS monitor", () => {
  it("reports TlsTrusted=True when the cache certificate names the registered host", async () => {
    const m = monitor();
    await m.checkSpec(spec("https://dtr-cache.example.com"));
    const cache = buildSnapshot(status, m.findings()).caches[0];
    expect(cache?.conditions.find((c) => c.type === "TlsTrusted")).toMatchObject({ status: "True" });
    expect(cache?.conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "True" });
  });

  it("names a host mismatch as TlsTrusted=False HostnameMismatch with both names", async () => {
    const m = monitor();
    await m.checkSpec(spec("https://cache.asia.example.com"));
    const condition = buildSnapshot(status, m.findings()).caches[0]?.conditions.find((c) => c.type === "TlsTrusted");
    expect(condition).toMatchObject({ status: "False", reason: "HostnameMismatch" });
    expect(condition?.message).toContain("cache.asia.example.com");
    expect(condition?.message).toContain("dtr-cache.example.com");
  });

  it("advises that clients must trust a generated certificate without failing the condition", async () => {
    const m = monitor();
    await m.checkSpec(spec("https://dtr-cache.example.com", "tls:\n    generate: true"));
    const condition = buildSnapshot(status, m.findings()).caches[0]?.conditions.find((c) => c.type === "TlsTrusted");
    expect(condition).toMatchObject({ status: "True", reason: "CertificateSelfSigned" });
    expect(condition?.message).toContain("/etc/docker/certs.d/dtr-cache.example.com/ca.crt");
  });

  it("says a plain-HTTP cache has no certificate to check", async () => {
    const m = monitor();
    await m.checkSpec(spec("http://dtr-cache.example.com:5000", "tls:\n    disabled: true"));
    const condition = buildSnapshot(status, m.findings()).caches[0]?.conditions.find((c) => c.type === "TlsTrusted");
    expect(condition).toMatchObject({ status: "True", reason: "TlsDisabled" });
  });

  it("adds no TLS condition for a cache it has not checked", () => {
    const cache = buildSnapshot(status, new Map()).caches[0];
    expect(cache?.conditions.map((c) => c.type)).toEqual(["Ready"]);
  });
});
