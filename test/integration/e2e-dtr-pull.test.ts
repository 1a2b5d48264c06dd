// End to end on the harness swarm: the DTR emulator in front of a real docker-registry, the
// controller runtime (the same assembly `dtrcache run` uses) deploying the cache-server image, and
// the docker CLI pulling through it. What happened is asserted from each party's own records: the
// emulator's request log (redirects, signed fills) and the cache's /metrics (hits, misses, bytes).
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  conditionOf,
  createDockerClient,
  DockerodeSwarmApi,
  formatStatusTable,
  resolveDockerConnection,
  startRuntime,
  type CacheStatus,
  type Runtime,
} from "@dtrcache/controller";
import { removeOwned } from "../bench/controller/support.js";
import { dockerCli } from "../harness/index.js";
import {
  blobTraffic,
  dockerAs,
  readCacheCounters,
  sampleBlobs,
  startDtrStack,
  type BlobRef,
  type DockerAs,
  type DtrStack,
  type WriteSpecOptions,
} from "../support/dtr-stack.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `e2e-${suffix}`;
const cacheName = `e2e-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
// host-mode publishing on the node's own address: pick a port unlikely to be taken by other files
const port = 30_000 + Math.floor(Math.random() * 5_000);
const cacheUrl = `http://${node.ip}:${port}`;
// The cache's debug listener (/metrics), published beside the registry port.
const debugPort = port + 1;
const debugUrl = `http://${node.ip}:${debugPort}`;

let workDir = "";
let stack: DtrStack;
let runtime: Runtime | undefined;
let specPath = "";
let specOptions: WriteSpecOptions;
let logFile = "";
let blobs: BlobRef[] = [];
let alice: DockerAs;
let bob: DockerAs;

const cacheStatus = (): CacheStatus | undefined => runtime?.controller.status().caches.find((c) => c.name === cacheName);
const statusTable = (): string => {
  if (!runtime) throw new Error("the runtime is not running");
  return formatStatusTable(runtime.snapshot());
};
/** The registry API version header of the cache's /v2/ (any status: without credentials it is 401). */
const cacheApiVersion = async (): Promise<string | null | undefined> =>
  (await fetch(`${cacheUrl}/v2/`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.headers.get("docker-distribution-api-version");
const conditionState = (type: "Ready" | "DtrSynced"): string => conditionOf(cacheStatus(), type)?.status ?? "Unknown";

beforeAll(async () => {
  const image = harness.images.cacheServer;
  if (!image) throw new Error("the cache-server image was not built by the harness (run `npx tsc -b cache-server` first)");
  workDir = await mkdtemp(join(harness.workDir, "e2e-dtr-"));
  stack = await startDtrStack({ workDir: join(workDir, "stack"), hostIp: harness.hostIp, dockerHost: harness.dockerHost, repository: `e2e/web-${suffix}` });
  blobs = await sampleBlobs(stack);
  specOptions = {
    cacheName,
    nodeHostname: node.hostname,
    port,
    debugPort,
    externalURL: cacheUrl,
    users: ["alice"],
    image,
    nodeLabel: `dtr.cache.e2e${suffix}=true`,
  };
  specPath = await stack.writeSpec(specOptions);
  logFile = join(workDir, "controller.log");
  runtime = await startRuntime({
    specPath,
    dockerHost: harness.dockerHost,
    env: { ...stack.env },
    logger: pino({ level: "debug" }, pino.destination({ dest: logFile, sync: true })),
    listen: { host: "127.0.0.1", port: 0 },
    id: owner,
    controllerOptions: { resyncIntervalMs: 2_000, rolloutPollMs: 250 },
  });
  const docker = await dockerCli();
  const client = (user: "alice" | "bob"): DockerAs =>
    dockerAs({
      docker,
      dockerHost: harness.dockerHost,
      configDir: join(workDir, `docker-${user}`),
      registryHostPort: stack.emulator.hostPort,
      user: stack.users[user],
    });
  alice = client("alice");
  bob = client("bob");
});

afterAll(async () => {
  await runtime?.stop();
  if (alice) await alice.removeImage(stack.sampleImage.ref);
  await removeOwned(new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost))), owner);
  await stack?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("a DTR content cache end to end", () => {
  it("deploys the cache, registers it with DTR (201, body {name, host}) and points alice, not bob, at the new id", async () => {
    await expect.poll(() => conditionState("Ready"), { timeout: 120_000, interval: 250 }).toBe("True");
    await expect.poll(() => conditionState("DtrSynced"), { timeout: 30_000, interval: 250 }).toBe("True");

    const creates = stack.emulator.requestLog().filter((e) => e.method === "POST" && e.path === "/api/v0/content_caches");
    expect(creates.map((e) => [e.status, e.body])).toEqual([[201, { name: cacheName, host: cacheUrl }]]);
    const registered = stack.emulator.contentCaches();
    expect(registered).toEqual([{ id: expect.any(String), name: cacheName, host: cacheUrl }]);
    const id = registered[0]?.id;
    expect(stack.emulator.settings()).toEqual({ admin: "", alice: id, bob: "" });
    expect(cacheStatus()?.dtr.registrationId).toBe(id);
    expect(cacheStatus()?.dtr.users).toEqual([{ username: "alice", state: "assigned" }]);
    // the cache itself answers on the node's address
    await expect.poll(cacheApiVersion, { timeout: 30_000, interval: 250 }).toBe("registry/2.0");

    console.log(`dtrcache status (Ready cache):\n${statusTable()}`);
  });

  it("alice's docker pull gets every blob redirected to the cache, which fetches each once and serves the bytes; digests equal the backend's", async () => {
    stack.emulator.clearRequestLog();
    const before = await readCacheCounters(debugUrl);
    await alice.login();
    await alice.pull(stack.sampleImage.ref);
    expect(await alice.repoDigests(stack.sampleImage.ref)).toContain(`${stack.emulator.hostPort}/${stack.sampleImage.repository}@${stack.sampleImage.digest}`);

    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    const digests = blobs.map((b) => b.digest).sort();
    // The emulator's record: every blob GET of alice answered 307 to the cache; none served directly.
    expect([...new Set(traffic.redirected.map((r) => r.digest))].sort()).toEqual(digests);
    for (const r of traffic.redirected) {
      expect(r.user).toBe("alice");
      expect(r.location.startsWith(`${cacheUrl}/v2/${stack.sampleImage.repository}/blobs/`)).toBe(true);
    }
    expect(traffic.servedDirect).toEqual([]);
    // The cache filled each blob from DTR once, authorized by the signed redirect (delegated authorization).
    const fills = traffic.signed
      .filter((s) => s.method === "GET" && s.status === 200)
      .map((s) => s.digest)
      .sort();
    expect(fills).toEqual(digests);

    // The cache's record: misses for every blob, and it sent at least the blobs' bytes to the client.
    const after = await readCacheCounters(debugUrl);
    const total = blobs.reduce((sum, b) => sum + b.size, 0);
    expect(after.blobMisses - before.blobMisses).toBeGreaterThanOrEqual(blobs.length);
    expect(after.bytesServed - before.bytesServed).toBeGreaterThanOrEqual(total);
    expect(after.bytesFetched - before.bytesFetched).toBe(total);
  });

  it("a second pull by alice is served from the cache's store: hits, and no blob fetched from DTR again", async () => {
    await alice.removeImage(stack.sampleImage.ref);
    expect(await alice.repoDigests(stack.sampleImage.ref)).toEqual([]);
    stack.emulator.clearRequestLog();
    const before = await readCacheCounters(debugUrl);
    await alice.pull(stack.sampleImage.ref);
    expect(await alice.repoDigests(stack.sampleImage.ref)).toContain(`${stack.emulator.hostPort}/${stack.sampleImage.repository}@${stack.sampleImage.digest}`);

    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    expect(traffic.redirected.length).toBeGreaterThanOrEqual(blobs.length);
    expect(traffic.signed.filter((s) => s.method === "GET")).toEqual([]);
    const after = await readCacheCounters(debugUrl);
    expect(after.blobHits - before.blobHits).toBeGreaterThanOrEqual(blobs.length);
    expect(after.bytesFetched).toBe(before.bytesFetched);
    expect(after.bytesServed - before.bytesServed).toBeGreaterThanOrEqual(blobs.reduce((sum, b) => sum + b.size, 0));
  });

  it("bob, whose setting names no cache, pulls straight from DTR: no redirect, the emulator serves the bytes, the cache sees nothing", async () => {
    await alice.removeImage(stack.sampleImage.ref);
    stack.emulator.clearRequestLog();
    const before = await readCacheCounters(debugUrl);
    await bob.login();
    await bob.pull(stack.sampleImage.ref);
    expect(await bob.repoDigests(stack.sampleImage.ref)).toContain(`${stack.emulator.hostPort}/${stack.sampleImage.repository}@${stack.sampleImage.digest}`);

    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    expect(traffic.redirected).toEqual([]);
    expect(traffic.signed).toEqual([]);
    expect([...new Set(traffic.servedDirect.map((s) => s.digest))].sort()).toEqual(blobs.map((b) => b.digest).sort());
    expect(traffic.servedDirect.every((s) => s.user === "bob")).toBe(true);
    const after = await readCacheCounters(debugUrl);
    expect([after.blobHits, after.blobMisses, after.bytesServed]).toEqual([before.blobHits, before.blobMisses, before.bytesServed]);
  });

  it("with DTR down, a spec edit still converges on Swarm (Ready) while DtrSynced is False with the reason; DTR back -> synced, bob assigned", async () => {
    const id = stack.emulator.contentCaches()[0]?.id;
    stack.emulator.setFaults({ down: true });
    try {
      // an edit the controller must carry to DTR: bob joins the cache's users
      specOptions = { ...specOptions, users: ["alice", "bob"] };
      await stack.writeSpec(specOptions);
      await expect.poll(() => conditionState("DtrSynced"), { timeout: 60_000, interval: 250 }).toBe("False");
      const dtrCondition = conditionOf(cacheStatus(), "DtrSynced");
      expect(dtrCondition?.reason).toBe("DTR_UNAVAILABLE"); // the error's stable code (issue 10: describeDtrFailure)
      expect(dtrCondition?.message).toMatch(/503|unavailable/i);
      // the Swarm side converged on the edited spec all the same
      await expect
        .poll(() => conditionState("Ready") === "True" && cacheStatus()?.observedGeneration === cacheStatus()?.generation, { timeout: 60_000, interval: 250 })
        .toBe(true);
      expect(conditionOf(cacheStatus(), "Degraded")?.status).toBe("False");
      expect(cacheStatus()?.tasks).toMatchObject({ running: 1, desired: 1, nodes: [expect.any(String)] });
      expect(stack.emulator.settings().bob).toBe("");
      console.log(`dtrcache status (DTR down):\n${statusTable()}`);
    } finally {
      stack.emulator.setFaults({ down: false });
    }
    await expect.poll(() => conditionState("DtrSynced"), { timeout: 60_000, interval: 250 }).toBe("True");
    expect(stack.emulator.settings()).toEqual({ admin: "", alice: id, bob: id });
    expect(stack.emulator.contentCaches().map((c) => c.id)).toEqual([id]);
  });

  it("with DTR's process gone (connection refused), a blobTTL edit still rolls out; DTR back without its data -> registration re-created, users re-pointed, alice redirected again", async () => {
    const oldId = stack.emulator.contentCaches()[0]?.id;
    await stack.stopEmulator();
    let restarted = false;
    try {
      const configBefore = cacheStatus()?.revisions.find((r) => r.purpose === "config")?.name;
      specOptions = { ...specOptions, blobTTL: "12h" };
      await stack.writeSpec(specOptions);
      await expect
        .poll(() => conditionOf(cacheStatus(), "DtrSynced")?.message ?? "", { timeout: 60_000, interval: 250 })
        .toMatch(/ECONNREFUSED|refused|unreachable|connect/i);
      expect(conditionState("DtrSynced")).toBe("False");
      await expect
        .poll(() => conditionState("Ready") === "True" && cacheStatus()?.observedGeneration === cacheStatus()?.generation, { timeout: 90_000, interval: 250 })
        .toBe(true);
      expect(cacheStatus()?.tasks).toMatchObject({ running: 1, desired: 1, nodes: [expect.any(String)] });
      // the edit really reached Swarm: a new config revision is mounted
      expect(cacheStatus()?.revisions.find((r) => r.purpose === "config")?.name).not.toBe(configBefore);
      console.log(`dtrcache status (DTR process gone):\n${statusTable()}`);
      await stack.startEmulator();
      restarted = true;
    } finally {
      if (!restarted) await stack.startEmulator();
    }
    await expect.poll(() => conditionState("DtrSynced"), { timeout: 60_000, interval: 250 }).toBe("True");
    const registered = stack.emulator.contentCaches();
    expect(registered.map((c) => [c.name, c.host])).toEqual([[cacheName, cacheUrl]]);
    const newId = registered[0]?.id;
    expect(newId).not.toBe(oldId);
    expect(stack.emulator.settings()).toEqual({ admin: "", alice: newId, bob: newId });
    expect(cacheStatus()?.dtr.registrationId).toBe(newId);

    await alice.removeImage(stack.sampleImage.ref);
    await bob.removeImage(stack.sampleImage.ref);
    await expect.poll(cacheApiVersion, { timeout: 30_000, interval: 250 }).toBe("registry/2.0");
    await alice.pull(stack.sampleImage.ref);
    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    expect([...new Set(traffic.redirected.map((r) => r.digest))].sort()).toEqual(blobs.map((b) => b.digest).sort());
    expect(traffic.servedDirect).toEqual([]);
  });

  it("never writes the admin password into the controller's log or status", async () => {
    const password = stack.users.admin.password;
    const log = await readFile(logFile, "utf8");
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain(password);
    expect(JSON.stringify(runtime?.snapshot())).not.toContain(password);
    const status = await fetch(`${runtime?.statusUrl ?? ""}/status`);
    expect(status.status).toBe(200);
    expect(await status.text()).not.toContain(password);
  });
});
