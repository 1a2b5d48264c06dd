// Two chained caches over TLS, end to end on the harness swarm: the controller runtime deploys an
// "edge" cache whose upstream is a "parent" cache ({cache: parent}); both serve HTTPS with
// certificates the controller generated, and the edge trusts the parent only because the
// controller put the parent's certificate into the edge's CA bundle. skopeo pulls through the
// edge, trusting nothing but the edge's generated certificate. What happened is read from each
// party's own records: the caches' /metrics (their debug listeners, spec.debugPort, plain HTTP)
// and the DTR emulator's request log.
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connect, type PeerCertificate } from "node:tls";
import { pino } from "pino";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments, type Document } from "yaml";
import {
  conditionOf,
  createDockerClient,
  DockerodeSwarmApi,
  formatStatusTable,
  labels,
  resolveDockerConnection,
  startRuntime,
  type CacheStatus,
  type Runtime,
} from "@dtrcache/controller";
import { removeOwned } from "../bench/controller/support.js";
import { sha256 } from "../support/oci.js";
import { run } from "../harness/proc.js";
import {
  blobTraffic,
  demoSpecTemplatePath,
  metricValue,
  renderSpec,
  sampleBlobs,
  startDtrStack,
  type BlobRef,
  type CacheCounters,
  type DtrStack,
} from "../support/dtr-stack.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `chain-${suffix}`;
const node = ((): NonNullable<(typeof harness.nodes)[number]> => {
  const first = harness.nodes[0];
  if (!first) throw new Error("the harness has no node");
  return first;
})();

interface ChainCache {
  readonly name: string;
  readonly port: number;
  /** spec.debugPort: /metrics is published there, never on the registry port. */
  readonly debugPort: number;
  readonly url: string;
  readonly nodeLabel: string;
}
// Host-mode publishing on the node's own address; two distinct ports picked away from other files' range.
const basePort = 35_000 + Math.floor(Math.random() * 4_000);
const chainCache = (role: "parent" | "edge", port: number, debugPort: number): ChainCache => ({
  name: `chain-${role}-${suffix}`,
  port,
  debugPort,
  url: `https://${node.ip}:${port}`,
  // Each cache its own label key: two caches sharing a key=value would both be placed by it.
  nodeLabel: `dtr.cache.chain${role}${suffix}=true`,
});
const parent = chainCache("parent", basePort, basePort + 2);
const edge = chainCache("edge", basePort + 1, basePort + 3);

let workDir = "";
let stack: DtrStack;
let runtime: Runtime | undefined;
let runtimeStartedAt = 0;
let cacheImage = "";
let blobs: BlobRef[] = [];
/** PEM of each cache's generated certificate, read back from the controller's secret label. */
const certs = new Map<string, string>();
const agents = new Map<string, Agent>();

/**
 * The spec: the demo template's DTR document and cache, rendered for the parent, then a copy of
 * the cache document edited into the edge. Both generate their certificates. At first no user is
 * pointed at either cache: a client talking to the edge directly has its blob GETs forwarded to
 * DTR with its own credentials, which DTR must serve rather than redirect back to a cache.
 * Written atomically, so a running controller never reads half of an edit.
 */
async function writeChainedSpec(image: string, edgeUsers: readonly string[] = []): Promise<string> {
  const text = renderSpec(
    await readFile(demoSpecTemplatePath(), "utf8"),
    stack.emulator.url,
    { env: stack.passwordEnvName },
    {
      cacheName: parent.name,
      nodeHostname: node.hostname,
      port: parent.port,
      externalURL: parent.url,
      users: [],
      image,
      nodeLabel: parent.nodeLabel,
    },
  );
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error("rendered spec: expected a multi-document YAML stream");
  const parentDoc: Document | undefined = docs.find((d) => d.get("kind") === "ContentCache");
  if (!parentDoc) throw new Error("rendered spec: no ContentCache document");
  parentDoc.setIn(["spec", "tls"], parentDoc.createNode({ generate: true }));
  parentDoc.setIn(["spec", "debugPort"], parent.debugPort);
  const edgeDoc = parentDoc.clone();
  edgeDoc.setIn(["metadata", "name"], edge.name);
  edgeDoc.setIn(["spec", "port"], edge.port);
  edgeDoc.setIn(["spec", "debugPort"], edge.debugPort);
  edgeDoc.setIn(["spec", "externalURL"], edge.url);
  edgeDoc.setIn(["spec", "nodeLabel"], edge.nodeLabel);
  edgeDoc.setIn(["spec", "upstreams"], edgeDoc.createNode([{ cache: parent.name }]));
  edgeDoc.setIn(["spec", "users"], edgeDoc.createNode([...edgeUsers]));
  const path = join(workDir, "chained.yaml");
  await writeFile(`${path}.tmp`, [...docs, edgeDoc].map((d) => d.toString()).join(""));
  await rename(`${path}.tmp`, path);
  return path;
}

const cacheStatus = (name: string): CacheStatus | undefined => runtime?.controller.status().caches.find((c) => c.name === name);
const conditionState = (name: string, type: "Ready" | "DtrSynced"): string => conditionOf(cacheStatus(name), type)?.status ?? "Unknown";
const tlsTrusted = (name: string): { status: string; reason: string } | undefined => {
  const c = runtime
    ?.snapshot()
    .caches.find((x) => x.name === name)
    ?.conditions.find((x) => x.type === "TlsTrusted");
  return c ? { status: c.status, reason: c.reason } : undefined;
};

/** The public certificate of a cache's generated pair, from the cert secret's label (secrets cannot be read back). */
async function generatedCert(api: DockerodeSwarmApi, cache: string): Promise<string[]> {
  const secrets = await api.listSecrets(labels.ownerFilter(owner, cache));
  return secrets
    .filter((s) => s.labels[labels.PURPOSE] === "cert" && s.labels[labels.PUBLIC_CERT])
    .map((s) => Buffer.from(s.labels[labels.PUBLIC_CERT] ?? "", "base64").toString("utf8"));
}

/** An undici Agent trusting exactly one cache's generated certificate (no system roots). */
function trusting(cache: ChainCache): Agent {
  const known = agents.get(cache.name);
  if (known) return known;
  const ca = certs.get(cache.name);
  if (!ca) throw new Error(`no certificate read for ${cache.name}`);
  const agent = new Agent({ connect: { ca, timeout: 5_000 } });
  agents.set(cache.name, agent);
  return agent;
}

/** The cache-server's own counters, from its debug listener (plain HTTP, like distribution's). */
async function counters(cache: ChainCache): Promise<CacheCounters> {
  const response = await request(`http://${node.ip}:${cache.debugPort}/metrics`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${cache.name} metrics: HTTP ${response.statusCode}`);
  return {
    blobHits: metricValue(text, "cache_requests_total", { kind: "blob", result: "hit" }),
    blobMisses: metricValue(text, "cache_requests_total", { kind: "blob", result: "miss" }),
    bytesServed: metricValue(text, "cache_bytes_served_total"),
    bytesFetched: metricValue(text, "cache_bytes_fetched_total"),
  };
}

/** The certificate the cache presents in its TLS handshake (not verified here: compared by the caller). */
async function presentedCert(cache: ChainCache): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: node.ip, port: cache.port, rejectUnauthorized: false, timeout: 5_000 });
    socket.once("secureConnect", () => {
      const peer: PeerCertificate = socket.getPeerCertificate();
      socket.destroy();
      resolve(new X509Certificate(peer.raw).fingerprint256);
    });
    socket.once("timeout", () => socket.destroy(new Error("TLS handshake timed out")));
    socket.once("error", reject);
  });
}

/**
 * skopeo with its own HOME (no ambient credentials) and a cert dir holding only `ca.crt`. `via:
 * "dtr"` pulls from the emulator (plain HTTP, hence no TLS verification at all for that source)
 * and follows DTR's redirects.
 */
async function skopeoCopy(target: string, auth: "alice" | "anonymous", via: "edge" | "dtr" = "edge"): Promise<{ code: number; stderr: string }> {
  const home = join(workDir, `skopeo-home-${auth}-${via}`);
  const registry = via === "edge" ? `${node.ip}:${edge.port}` : stack.emulator.hostPort;
  const certDir = join(workDir, "edge-certs");
  await mkdir(home, { recursive: true });
  const creds: string[] = [];
  if (auth === "alice") {
    // An auth file instead of --src-creds: the password never appears on a command line.
    const authFile = join(home, "auth.json");
    const token = Buffer.from(`${stack.users.alice.username}:${stack.users.alice.password}`).toString("base64");
    await writeFile(authFile, JSON.stringify({ auths: { [registry]: { auth: token } } }), { mode: 0o600 });
    creds.push("--authfile", authFile);
  } else {
    creds.push("--src-no-creds");
  }
  const source = `docker://${registry}/${stack.sampleImage.repository}:${stack.sampleImage.tag}`;
  const tls = via === "edge" ? ["--src-cert-dir", certDir] : ["--src-tls-verify=false"];
  const result = await run("skopeo", ["copy", "--retry-times", "0", ...tls, ...creds, source, `dir:${target}`], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_RUNTIME_DIR: home },
    timeoutMs: 120_000,
    allowFailure: true,
  });
  return { code: result.code, stderr: result.stderr };
}

/** Checks a `dir:` copy: the manifest's digest is the backend's and every blob file hashes to its name. */
async function expectCopyMatchesBackend(dir: string): Promise<void> {
  expect(sha256(await readFile(join(dir, "manifest.json")))).toBe(stack.sampleImage.digest);
  const files = (await readdir(dir)).filter((f) => /^[0-9a-f]{64}$/.test(f));
  expect(files.map((f) => `sha256:${f}`).sort()).toEqual(blobs.map((b) => b.digest).sort());
  for (const f of files) expect(sha256(await readFile(join(dir, f)))).toBe(`sha256:${f}`);
}

const perDigest = (digests: readonly string[]): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const d of digests) counts[d] = (counts[d] ?? 0) + 1;
  return counts;
};
/** Blob GETs the backend registry answered 200 since `from` (its own access log), by digest. */
async function backendBlobGets(from: number): Promise<Record<string, number>> {
  const prefix = `/v2/${stack.sampleImage.repository}/blobs/`;
  const entries = (await stack.backend.accessLog()).slice(from).filter((e) => e.method === "GET" && e.status === 200 && e.path.startsWith(prefix));
  return perDigest(entries.map((e) => e.path.slice(prefix.length).split("?")[0] ?? ""));
}
const oncePerBlob = (): Record<string, number> => Object.fromEntries(blobs.map((b) => [b.digest, 1]));
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

beforeAll(async () => {
  const image = harness.images.cacheServer;
  if (!image) throw new Error("the cache-server image was not built by the harness (run `npx tsc -b cache-server` first)");
  workDir = await mkdtemp(join(harness.workDir, "e2e-chain-"));
  stack = await startDtrStack({ workDir: join(workDir, "stack"), hostIp: harness.hostIp, dockerHost: harness.dockerHost, repository: `chain/web-${suffix}` });
  blobs = await sampleBlobs(stack);
  cacheImage = image;
  const specPath = await writeChainedSpec(image);
  runtimeStartedAt = Date.now();
  runtime = await startRuntime({
    specPath,
    dockerHost: harness.dockerHost,
    env: { ...stack.env },
    logger: pino({ level: "debug" }, pino.destination({ dest: join(workDir, "controller.log"), sync: true })),
    id: owner,
    controllerOptions: { resyncIntervalMs: 2_000, rolloutPollMs: 250 },
  });
});

afterAll(async () => {
  await runtime?.stop();
  await Promise.allSettled([...agents.values()].map((a) => a.close()));
  await removeOwned(new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost))), owner);
  await stack?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("two chained caches over TLS with generated certificates", () => {
  it("deploys both caches Ready with self-signed certificates the controller generated, each served on its own port", async () => {
    for (const cache of [parent, edge]) await expect.poll(() => conditionState(cache.name, "Ready"), { timeout: 150_000, interval: 250 }).toBe("True");
    const readyMs = Date.now() - runtimeStartedAt;
    for (const cache of [parent, edge]) await expect.poll(() => conditionState(cache.name, "DtrSynced"), { timeout: 30_000, interval: 250 }).toBe("True");
    expect(
      stack.emulator
        .contentCaches()
        .map((c) => [c.name, c.host])
        .sort(),
    ).toEqual(
      [
        [edge.name, edge.url],
        [parent.name, parent.url],
      ].sort(),
    );

    const api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
    for (const cache of [parent, edge]) {
      const pems = await generatedCert(api, cache.name);
      expect(pems).toHaveLength(1);
      const pem = pems[0] ?? "";
      const x509 = new X509Certificate(pem);
      // made for the externalURL's host, self-signed
      expect(x509.checkIP(node.ip)).toBe(node.ip);
      expect(x509.verify(x509.publicKey)).toBe(true);
      certs.set(cache.name, pem);
      // the cache presents exactly that certificate
      await expect.poll(() => presentedCert(cache).catch(() => ""), { timeout: 30_000, interval: 250 }).toBe(x509.fingerprint256);
    }
    expect(certs.get(parent.name)).not.toBe(certs.get(edge.name));
    // skopeo's cert dir: the edge's certificate and nothing else (the parent's is not needed by clients)
    await mkdir(join(workDir, "edge-certs"), { recursive: true });
    await writeFile(join(workDir, "edge-certs", "ca.crt"), certs.get(edge.name) ?? "");

    for (const cache of [parent, edge]) {
      await expect.poll(() => tlsTrusted(cache.name), { timeout: 30_000, interval: 250 }).toEqual({ status: "True", reason: "CertificateSelfSigned" });
    }
    if (runtime) console.log(`dtrcache status (chained, both Ready ${seconds(readyMs)} after the runtime started):\n${formatStatusTable(runtime.snapshot())}`);
  });

  it("refuses a client that trusts only the parent's certificate at the edge (each cache has its own pair)", async () => {
    const wrong = new Agent({ connect: { ca: certs.get(parent.name) ?? "", timeout: 5_000 } });
    try {
      await expect(request(`${edge.url}/v2/`, { dispatcher: wrong })).rejects.toThrow(/self[- ]signed|certificate/i);
    } finally {
      await wrong.close();
    }
  });

  it("alice's skopeo copy through the edge over TLS: digests equal the backend's, edge and parent each miss once per blob, DTR serves each blob once", async () => {
    stack.emulator.clearRequestLog();
    const backendFrom = (await stack.backend.accessLog()).length;
    const [edgeBefore, parentBefore] = await Promise.all([counters(edge), counters(parent)]);
    const started = Date.now();
    const target = join(workDir, "copy-1");
    const copy = await skopeoCopy(target, "alice");
    const coldMs = Date.now() - started;
    expect(copy.code, copy.stderr).toBe(0);
    await expectCopyMatchesBackend(target);

    const total = blobs.reduce((sum, b) => sum + b.size, 0);
    const [edgeAfter, parentAfter] = await Promise.all([counters(edge), counters(parent)]);
    // The edge: every blob a miss, filled from the parent once, all bytes sent on to skopeo.
    expect(edgeAfter.blobMisses - edgeBefore.blobMisses).toBe(blobs.length);
    expect(edgeAfter.blobHits - edgeBefore.blobHits).toBe(0);
    expect(edgeAfter.bytesFetched - edgeBefore.bytesFetched).toBe(total);
    expect(edgeAfter.bytesServed - edgeBefore.bytesServed).toBeGreaterThanOrEqual(total);
    // The parent: every blob a miss too (the edge's fills), filled from DTR once.
    expect(parentAfter.blobMisses - parentBefore.blobMisses).toBe(blobs.length);
    expect(parentAfter.bytesFetched - parentBefore.bytesFetched).toBe(total);
    expect(parentAfter.bytesServed - parentBefore.bytesServed).toBeGreaterThanOrEqual(total);

    // DTR's record: each blob left it exactly once, to alice's forwarded credentials; no redirects.
    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    expect(perDigest(traffic.servedDirect.map((s) => s.digest))).toEqual(oncePerBlob());
    expect(traffic.servedDirect.every((s) => s.user === "alice")).toBe(true);
    expect(traffic.redirected).toEqual([]);
    expect(traffic.signed).toEqual([]);
    // ... and the backend registry behind DTR agrees (its access log may lag its answer briefly).
    await expect.poll(() => backendBlobGets(backendFrom), { timeout: 5_000, interval: 100 }).toEqual(oncePerBlob());
    console.log(`chained TLS cold copy: ${seconds(coldMs)} for ${blobs.length} blobs, ${total} bytes`);
  });

  it("a second skopeo copy is served by the edge alone: all hits, nothing new fetched by either cache, no blob from DTR", async () => {
    stack.emulator.clearRequestLog();
    const backendFrom = (await stack.backend.accessLog()).length;
    const [edgeBefore, parentBefore] = await Promise.all([counters(edge), counters(parent)]);
    const started = Date.now();
    const target = join(workDir, "copy-2");
    const copy = await skopeoCopy(target, "alice");
    const warmMs = Date.now() - started;
    expect(copy.code, copy.stderr).toBe(0);
    await expectCopyMatchesBackend(target);

    const [edgeAfter, parentAfter] = await Promise.all([counters(edge), counters(parent)]);
    expect(edgeAfter.blobHits - edgeBefore.blobHits).toBe(blobs.length);
    expect(edgeAfter.blobMisses).toBe(edgeBefore.blobMisses);
    expect(edgeAfter.bytesFetched).toBe(edgeBefore.bytesFetched);
    expect(parentAfter.blobMisses).toBe(parentBefore.blobMisses);
    expect(parentAfter.bytesFetched).toBe(parentBefore.bytesFetched);
    // The parent sent no blob bytes, only the manifest once for the edge's tag revalidation (the
    // parent revalidates with DTR itself and answers the edge in full) and HEADs for authorization probes.
    const manifestSize = (await readFile(join(target, "manifest.json"))).length;
    expect(parentAfter.bytesServed - parentBefore.bytesServed).toBe(manifestSize);
    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    expect(traffic.servedDirect).toEqual([]);
    expect(traffic.signed).toEqual([]);
    expect(await backendBlobGets(backendFrom)).toEqual({});
    console.log(`chained TLS warm copy: ${seconds(warmMs)}`);
  });

  it("a client without credentials gets 401 through the chain (DTR decides) and never any blob bytes, although both caches hold the blobs", async () => {
    stack.emulator.clearRequestLog();
    const [edgeBefore, parentBefore] = await Promise.all([counters(edge), counters(parent)]);

    const copy = await skopeoCopy(join(workDir, "copy-anonymous"), "anonymous");
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(/401|unauthorized|authentication required/i);

    // A raw blob GET straight at the edge for a blob it has stored.
    const layer = [...blobs].sort((a, b) => b.size - a.size)[0];
    if (!layer) throw new Error("the sample image has no blobs");
    const response = await request(`${edge.url}/v2/${stack.sampleImage.repository}/blobs/${layer.digest}`, { dispatcher: trusting(edge) });
    const body = Buffer.from(await response.body.arrayBuffer());
    expect(response.statusCode).toBe(401);
    // DTR's own challenge, relayed hop by hop
    expect(String(response.headers["www-authenticate"])).toContain(`realm="${stack.emulator.url}/auth/token"`);
    expect(body.length).toBeLessThan(layer.size);
    expect(sha256(body)).not.toBe(layer.digest);

    const [edgeAfter, parentAfter] = await Promise.all([counters(edge), counters(parent)]);
    expect(edgeAfter.bytesServed).toBe(edgeBefore.bytesServed);
    expect(parentAfter.bytesServed).toBe(parentBefore.bytesServed);
    expect([edgeAfter.blobHits, parentAfter.blobHits]).toEqual([edgeBefore.blobHits, parentBefore.blobHits]);
    // The refusal came from DTR: it saw the anonymous blob request forwarded by the parent and answered 401.
    const prefix = `/v2/${stack.sampleImage.repository}/blobs/${layer.digest}`;
    const atDtr = stack.emulator.requestLog().filter((e) => e.path === prefix);
    expect(atDtr.length).toBeGreaterThan(0);
    expect(atDtr.every((e) => e.status === 401 && e.user === undefined)).toBe(true);
    expect(blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository).servedDirect).toEqual([]);
  });

  it("once alice is an edge user, DTR redirects her blob GETs to the edge and the signed URL travels through the parent to DTR, which authorizes every blob", async () => {
    await writeChainedSpec(cacheImage, ["alice"]);
    await expect
      .poll(() => stack.emulator.settings().alice, { timeout: 60_000, interval: 250 })
      .toBe(cacheStatus(edge.name)?.dtr.registrationId ?? "(edge registered)");
    stack.emulator.clearRequestLog();
    const [edgeBefore, parentBefore] = await Promise.all([counters(edge), counters(parent)]);

    const target = join(workDir, "copy-redirected");
    const copy = await skopeoCopy(target, "alice", "dtr");
    expect(copy.code, copy.stderr).toBe(0);
    await expectCopyMatchesBackend(target);

    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    const digests = blobs.map((b) => b.digest).sort();
    expect([...new Set(traffic.redirected.map((r) => r.digest))].sort()).toEqual(digests);
    expect(traffic.redirected.every((r) => r.user === "alice" && r.location.startsWith(`${edge.url}/v2/`))).toBe(true);
    expect(traffic.servedDirect).toEqual([]);
    // Both caches hold the blobs, so DTR sees only the signed authorization probes the parent
    // forwards (HEAD), each accepted, and no signed GET: no blob bytes left DTR.
    expect([...new Set(traffic.signed.map((s) => s.digest))].sort()).toEqual(digests);
    expect(traffic.signed.every((s) => s.method === "HEAD" && s.status === 200)).toBe(true);
    const [edgeAfter, parentAfter] = await Promise.all([counters(edge), counters(parent)]);
    expect(edgeAfter.blobHits - edgeBefore.blobHits).toBe(blobs.length);
    expect([edgeAfter.bytesFetched, parentAfter.bytesFetched]).toEqual([edgeBefore.bytesFetched, parentBefore.bytesFetched]);
  });
});
