import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCacheSpecFromText, type CacheSpec } from "@dtrcache/crds";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

  it("does not say the upstream verifies when the upstream is plain HTTP", async () => {
    const m = monitor();
    await m.checkSpec(spec("https://dtr-cache.example.com"));
    const condition = buildSnapshot(status, m.findings()).caches[0]?.conditions.find((c) => c.type === "TlsTrusted");
    expect(condition?.message).not.toContain("verifies");
    expect(condition?.message).toContain("plain HTTP (http://127.0.0.1:9)");
    const plainCache = spec("http://dtr-cache.example.com:5000", "tls:\n    disabled: true");
    await m.checkSpec(plainCache);
    const plain = buildSnapshot(status, m.findings()).caches[0]?.conditions.find((c) => c.type === "TlsTrusted");
    expect(plain?.message).not.toMatch(/upstreams? verif/);
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

  it("checks the controller's current spec at start and again when a new spec is loaded", async () => {
    const m = monitor();
    let current: CacheSpec | undefined;
    m.start({ spec: () => current });
    expect(m.findings().size).toBe(0);
    current = spec("https://dtr-cache.example.com");
    await expect
      .poll(
        () =>
          m
            .findings()
            .get("region-asia")
            ?.findings.map((f) => f.reason),
        { timeout: 5_000 },
      )
      .toEqual([]);
    current = spec("https://cache.asia.example.com");
    await expect
      .poll(
        () =>
          m
            .findings()
            .get("region-asia")
            ?.findings.map((f) => f.reason),
        { timeout: 5_000 },
      )
      .toEqual(["HostnameMismatch"]);
    m.stop();
  });

  it("adds no TLS condition for a cache it has not checked", () => {
    const cache = buildSnapshot(status, new Map()).caches[0];
    expect(cache?.conditions.map((c) => c.type)).toEqual(["Ready"]);
  });
});

describe("TLS monitor on a chain", () => {
  // A parent cache "served" by an https server on loopback with a self-signed certificate for
  // 127.0.0.1, as the controller would generate; the edge must trust it through its bundle.
  let dir = "";
  let server: Server;
  let parentURL = "";
  let parentCert = "";
  let otherCert = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tls-chain-"));
    const selfSigned = (name: string): void => {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-keyout",
          `${name}.key`,
          "-out",
          `${name}.pem`,
          "-days",
          "1",
          "-subj",
          `/CN=${name}`,
          "-addext",
          "subjectAltName=IP:127.0.0.1",
        ],
        { cwd: dir, stdio: "ignore" },
      );
    };
    selfSigned("parent");
    selfSigned("other");
    parentCert = readFileSync(join(dir, "parent.pem"), "utf8");
    otherCert = readFileSync(join(dir, "other.pem"), "utf8");
    server = createServer({ cert: parentCert, key: readFileSync(join(dir, "parent.key")) }, (_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    parentURL = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  function chain(): CacheSpec {
    const text = [
      "apiVersion: cache.dtr.io/v1alpha1\nkind: DTR\nmetadata: {name: dtr}\nspec:\n  url: http://127.0.0.1:9\n  admin: {username: admin, password: {env: PW}}",
      `apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata: {name: parent}\nspec:\n  node: {hostname: n1}\n  externalURL: ${parentURL}\n  tls: {generate: true}`,
      "apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata: {name: edge}\nspec:\n  node: {hostname: n2}\n  nodeLabel: dtr.edge=true\n  externalURL: https://127.0.0.2:5443\n  tls: {generate: true}\n  upstreams: [{cache: parent}]",
    ].join("\n---\n");
    const loaded = loadCacheSpecFromText(text, "chain.yaml", dir);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
    return loaded.spec;
  }

  it("trusts the parent through its generated certificate, as the controller bundles it for the edge", async () => {
    const m = createTlsMonitor({
      dtrCa: async () => undefined,
      generatedCertificate: async (c) => (c.name === "parent" ? parentCert : undefined),
      logger: pino({ level: "silent" }),
    });
    await m.checkSpec(chain());
    expect(
      m
        .findings()
        .get("edge")
        ?.findings.map((f) => f.reason),
    ).toEqual(["CertificateSelfSigned"]);
  });

  it("reports UpstreamUntrusted when the parent presents another certificate than the one bundled", async () => {
    const m = createTlsMonitor({ dtrCa: async () => undefined, generatedCertificate: async () => otherCert, logger: pino({ level: "silent" }) });
    await m.checkSpec(chain());
    expect(
      m
        .findings()
        .get("edge")
        ?.findings.map((f) => f.reason),
    ).toEqual(["CertificateSelfSigned", "UpstreamUntrusted"]);
  });
});
