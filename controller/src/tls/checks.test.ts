import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkCertificates } from "@dtrcache/crds";
import { checkCacheCertificate, probeUpstreamTrust } from "./checks.js";

// Real certificates made with openssl: a CA, a leaf for 127.0.0.1 + cache.example signed by it,
// and an unrelated self-signed certificate.
let dir: string;
let ca: string;
let leaf: string;
let leafKey: string;
let selfSigned: string;
let server: Server;
let port: number;

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tlscheck-"));
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=test ca",
  );
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=cache.example");
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=DNS:cache.example,IP:127.0.0.1\n");
  openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "1", "-extfile", "ext.cnf");
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "self.key",
    "-out",
    "self.pem",
    "-days",
    "1",
    "-subj",
    "/CN=cache.example",
    "-addext",
    "subjectAltName=DNS:cache.example",
  );
  ca = readFileSync(join(dir, "ca.pem"), "utf8");
  leaf = readFileSync(join(dir, "leaf.pem"), "utf8");
  leafKey = readFileSync(join(dir, "leaf.key"), "utf8");
  selfSigned = readFileSync(join(dir, "self.pem"), "utf8");
  server = createServer({ cert: leaf + ca, key: leafKey }, (_req, res) => res.end("ok"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe("cache certificate checks", () => {
  it("finds nothing wrong with a CA-signed certificate that names the external host", () => {
    expect(checkCacheCertificate(leaf + ca, "https://cache.example:443", new Date())).toEqual([]);
    expect(checkCacheCertificate(leaf, "https://127.0.0.1:5443", new Date())).toEqual([]);
  });

  it("names both hosts when the registered host is not in the certificate", () => {
    const findings = checkCacheCertificate(leaf, "https://other.example", new Date());
    expect(findings.map((f) => f.reason)).toEqual(["HostnameMismatch"]);
    expect(findings[0]?.message).toContain('"other.example"');
    expect(findings[0]?.message).toContain("cache.example");
  });

  it("advises that clients must trust a self-signed certificate, without calling it broken", () => {
    const [finding] = checkCacheCertificate(selfSigned, "https://cache.example", new Date());
    expect(finding).toMatchObject({ reason: "CertificateSelfSigned", blocking: false });
    expect(finding?.message).toContain("/etc/docker/certs.d/cache.example/ca.crt");
  });

  it("reports an expired certificate", () => {
    const later = new Date(Date.now() + 10 * 86_400_000);
    expect(checkCacheCertificate(leaf, "https://cache.example", later).map((f) => f.reason)).toEqual(["CertificateExpired"]);
  });

  it("splits a bundle leaf first", () => {
    const parsed = checkCertificates(leaf + ca);
    expect(parsed.ok && parsed.certificates.map((c) => c.subject)).toEqual(["CN=cache.example", "CN=test ca"]);
  });
});

describe("upstream trust probe", () => {
  it("accepts an upstream whose certificate verifies against the CA bundle", async () => {
    await expect(probeUpstreamTrust(`https://127.0.0.1:${port}`, ca, 2000)).resolves.toBeUndefined();
  });

  it("reports UpstreamUntrusted when the bundle lacks the upstream's CA", async () => {
    const finding = await probeUpstreamTrust(`https://127.0.0.1:${port}`, selfSigned, 2000);
    expect(finding).toMatchObject({ reason: "UpstreamUntrusted", blocking: true });
  });

  it("reports an unreachable upstream as not blocking (the cache may still start later)", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const freePort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const finding = await probeUpstreamTrust(`https://127.0.0.1:${freePort}`, ca, 2000);
    expect(finding).toMatchObject({ reason: "UpstreamUnreachable", blocking: false });
  });

  it("needs no trust for a plain http upstream", async () => {
    await expect(probeUpstreamTrust("http://127.0.0.1:1", undefined, 100)).resolves.toBeUndefined();
  });
});
