// DTR's highly available cache topology, end to end on a 4-node swarm of its own (issue 12, item
// 3): the controller deploys, from a CacheSpec, one ContentCache with `replicas: 2` on the two
// nodes the operator labelled (2 and 3), both replicas on ONE shared directory (a host directory
// bound into every node) with one config (one http.secret). An L4 balancer in the test process
// (test/support/tcp-relay.ts, health checks on each replica's /healthz) is the cache's externalURL,
// so DTR redirects blob requests to it. The cache's upstream is a second relay in front of the DTR
// emulator, a slow link when the test wants a fill to take seconds.
//
// Shown: a client on node 1 pulls through replica 1, a client on node 4 through replica 2: one
// upstream GET per blob in total, same digests. Two clients at once, one per replica, while the
// fill is running: replica 2 follows replica 1's fill and fetches nothing. Then replica 1's node
// is killed hard while it is filling a 48 MiB layer for a client: the balancer sends the client's
// retry to replica 2, which takes the dead node's fill over from the shared store, and the pull
// completes with correct digests. The steps build on each other; each name says what it shows.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { conditionOf, startRuntime, type CacheStatus, type Runtime } from "@dtrcache/controller";
import { dockerCli, pushTestImage, readAccessLog, startSwarm, type PushedImage, type SwarmHandle, type SwarmNode } from "../harness/index.js";
import { blobTraffic, dockerAs, readCacheCounters, sampleBlobs, startDtrStack, type BlobRef, type DtrStack } from "../support/dtr-stack.js";
import { dockerOn, runningTasks, type DockerOn } from "../support/multinode-probes.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const cacheName = `ha-${suffix}`;
const PORT = 5000;
const DEBUG_PORT = 5001;
const LABEL = `dtr.ha-${suffix}=true`;
const BIG_LAYER = 48 * 1024 * 1024;
/** The slow link's rate during the kill: a 48 MiB fill takes ~8 s. */
const SLOW_LINK = 6 * 1024 * 1024;
/** The image two clients pull at once, one through each replica. */
const BOTH_LAYER = 16 * 1024 * 1024;
/** Node 2 is killed once replica 1 has sent this much of the big image to the client. */
const KILL_AFTER = 8 * 1024 * 1024;

const started = Date.now();
const timings: Record<string, number> = {};
const mark = (what: string, since: number): void => {
  timings[what] = Date.now() - since;
};

let swarm: SwarmHandle | undefined;
let stack: DtrStack | undefined;
let runtime: Runtime | undefined;
let balancer: TcpRelay | undefined;
let link: TcpRelay | undefined;
let manager: DockerOn;
let node: [SwarmNode, SwarmNode, SwarmNode, SwarmNode];
let workDir = "";
let sharedDir = "";
let docker = "";
let bigImage: PushedImage | undefined;
let sharedImage: PushedImage | undefined;

const debugUrl = (n: SwarmNode): string => `http://${n.ip}:${DEBUG_PORT}`;
const status = (): CacheStatus | undefined => runtime?.controller.status().caches.find((c) => c.name === cacheName);

/** The demo template filled by the stack, then turned into the HA shape (parsed, not text-edited). */
async function writeHaSpec(specPath: string): Promise<void> {
  if (!stack || !balancer || !link) throw new Error("setup failed");
  const written = await stack.writeSpec({
    cacheName,
    nodeHostname: "unused",
    port: PORT,
    debugPort: DEBUG_PORT,
    externalURL: balancer.url,
    users: [stack.users.alice.username],
    image: harness.images.cacheServer ?? "",
    path: specPath,
  });
  const docs = parseAllDocuments(await readFile(written, "utf8"));
  if (!Array.isArray(docs)) throw new Error("spec: expected several documents");
  const cache = docs.find((d) => d.get("kind") === "ContentCache");
  if (!cache) throw new Error("spec: no ContentCache");
  // The operator labels the nodes (existingLabel): the controller never moves that label.
  cache.setIn(["spec", "node"], cache.createNode({ existingLabel: LABEL }));
  cache.deleteIn(["spec", "nodeLabel"]);
  cache.setIn(["spec", "replicas"], 2);
  cache.setIn(["spec", "storage"], cache.createNode({ path: "/var/lib/registry", bind: sharedDir }));
  cache.setIn(["spec", "upstreams"], cache.createNode([link.url]));
  await writeFile(specPath, docs.map((d) => d.toString()).join(""));
}

/** GETs of each blob at the backend registry (the origin behind the DTR emulator). */
async function backendGets(blobs: readonly string[]): Promise<Record<string, number>> {
  if (!stack) throw new Error("setup failed");
  const counts: Record<string, number> = Object.fromEntries(blobs.map((d) => [d, 0]));
  for (const e of await readAccessLog(stack.backend.logFile)) {
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(e.path)?.[1];
    if (e.method === "GET" && digest && digest in counts) counts[digest] = (counts[digest] ?? 0) + 1;
  }
  return counts;
}

/** sha256 of a blob as the shared store holds it (the layout of docs/cache-server.md). */
async function storedDigest(digest: string): Promise<string> {
  const hex = digest.slice("sha256:".length);
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(join(sharedDir, "blobs", "sha256", hex.slice(0, 2), hex))) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

/** The cache task's container on one node, read through that node's own engine. */
async function cacheContainer(n: SwarmNode): Promise<{ on: DockerOn; id: string }> {
  const on = dockerOn(docker, n.dockerHost, join(workDir, `cli-${n.index}`));
  const id = (await on("ps", "-q", "--filter", `label=com.docker.swarm.service.name=${cacheName}`)).split("\n")[0] ?? "";
  if (!id) throw new Error(`no cache container on ${n.hostname}`);
  return { on, id };
}

async function layersOf(image: PushedImage): Promise<BlobRef[]> {
  if (!stack) throw new Error("setup failed");
  return sampleBlobs({ backend: stack.backend, sampleImage: { ...stack.sampleImage, repository: image.repository, tag: image.tag } });
}

beforeAll(async () => {
  const image = harness.images.cacheServer;
  if (!image) throw new Error("the cache-server image was not built by the global setup (is cache-server compiled? npx tsc -b cache-server)");
  docker = await dockerCli();
  let t = Date.now();
  swarm = await startSwarm({ nodes: 4 });
  mark("swarm up", t);
  const [n1, n2, n3, n4] = swarm.nodes;
  if (!n1 || !n2 || !n3 || !n4) throw new Error("expected 4 nodes");
  node = [n1, n2, n3, n4];
  workDir = join(swarm.workDir, "ha");
  await mkdir(workDir, { recursive: true });
  manager = dockerOn(docker, swarm.manager.dockerHost, join(workDir, "cli-manager"));
  // a dead node is Down in ~2 s instead of ~15 s; this swarm belongs to this file only
  await manager("swarm", "update", "--dispatcher-heartbeat", "1s");
  const [key, value] = LABEL.split("=");
  for (const n of [n2, n3]) await manager("node", "update", "--label-add", `${key}=${value}`, n.hostname);
  sharedDir = await swarm.sharedDirectory("cache-store");

  t = Date.now();
  await Promise.all([
    swarm.loadImage(image, harness.dockerHost).then(() => mark("cache image loaded into 4 nodes", t)),
    (async () => {
      stack = await startDtrStack({ workDir: join(workDir, "dtr"), hostIp: swarm?.hostIp ?? "", dockerHost: n1.dockerHost });
      bigImage = await pushTestImage({
        dockerHost: n1.dockerHost,
        registryHostPort: stack.backend.hostPort,
        workDir,
        repository: "hello/big",
        tag: "1",
        blobBytes: BIG_LAYER,
      });
      sharedImage = await pushTestImage({
        dockerHost: n1.dockerHost,
        registryHostPort: stack.backend.hostPort,
        workDir,
        repository: "hello/both",
        tag: "1",
        blobBytes: BOTH_LAYER,
      });
      mark("DTR stack up, big image pushed", t);
    })(),
  ]);
  if (!stack) throw new Error("no DTR stack");
  const emulatorUrl = new URL(stack.emulator.url);
  link = await startTcpRelay({ listenHost: swarm.hostIp, backends: [{ host: emulatorUrl.hostname, port: Number(emulatorUrl.port) }] });
  balancer = await startTcpRelay({
    listenHost: swarm.hostIp,
    backends: [n2, n3].map((n) => ({ host: n.ip, port: PORT, healthUrl: `${debugUrl(n)}/healthz` })),
    policy: { kind: "prefer", index: 0 },
  });
  const specPath = join(workDir, "cachespec.yaml");
  await writeHaSpec(specPath);

  t = Date.now();
  const logger = pino({ level: "info" }, pino.destination({ dest: join(workDir, "controller.log"), sync: true }));
  runtime = await startRuntime({
    specPath,
    dockerHost: swarm.manager.dockerHost,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...stack.env },
    logger,
    id: `ha-${suffix}`,
    controllerOptions: { resyncIntervalMs: 5_000, rolloutPollMs: 500 },
  });
  mark("controller started", t);
});

afterAll(async () => {
  // every step runs even if an earlier one throws: nothing may be left behind
  const steps: [string, (() => Promise<void>) | undefined][] = [
    ["controller", runtime ? () => runtime?.stop() ?? Promise.resolve() : undefined],
    ["balancer", balancer ? () => balancer?.stop() ?? Promise.resolve() : undefined],
    ["slow link", link ? () => link?.stop() ?? Promise.resolve() : undefined],
    ["DTR stack", stack ? () => stack?.stop() ?? Promise.resolve() : undefined],
    ["swarm", swarm ? () => swarm?.stop() ?? Promise.resolve() : undefined],
  ];
  const failures: string[] = [];
  for (const [name, step] of steps) {
    try {
      await step?.();
    } catch (error) {
      failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  timings["total wall time"] = Date.now() - started;
  process.stderr.write(`ha-cache timings (ms): ${JSON.stringify(timings)}\n`);
  if (failures.length > 0) throw new Error(`teardown failed: ${failures.join("; ")}`);
});

describe("a cache with two replicas on shared storage (DTR's HA topology)", () => {
  it("runs one task on each labelled node, both on the shared directory, with one config and so one http.secret", async () => {
    const t = Date.now();
    await expect.poll(() => conditionOf(status(), "Ready")?.status, { timeout: 120_000, interval: 250 }).toBe("True");
    mark("Ready with 2 replicas", t);
    const [, n2, n3] = node;
    expect(status()?.tasks).toEqual({ running: 2, desired: 2, nodes: [n2.hostname, n3.hostname].sort() });
    expect(await runningTasks(manager, cacheName)).toEqual([`${n2.hostname} Running`, `${n3.hostname} Running`].sort());
    const placement = JSON.parse(await manager("service", "inspect", cacheName, "--format", "{{json .Spec.TaskTemplate.Placement}}")) as {
      Constraints?: string[];
      MaxReplicas?: number;
    };
    expect(placement).toMatchObject({ Constraints: [`node.labels.${LABEL.replace("=", " == ")}`], MaxReplicas: 1 });

    // What each replica really runs with, read inside its container on its own node.
    const seen: { config: string; mounts: { Type: string; Source: string; Destination: string }[] }[] = [];
    for (const n of [n2, n3]) {
      const { on, id } = await cacheContainer(n);
      seen.push({
        config: await on("exec", id, "cat", "/config.yml"),
        mounts: JSON.parse(await on("inspect", id, "--format", "{{json .Mounts}}")) as { Type: string; Source: string; Destination: string }[],
      });
    }
    const secretOf = (config: string): string => /^\s+secret:\s*(\S+)\s*$/m.exec(config)?.[1] ?? "";
    const [one, two] = seen;
    // compared, never printed: it is a secret
    expect(secretOf(one?.config ?? "").length).toBeGreaterThanOrEqual(16);
    expect(secretOf(two?.config ?? "")).toBe(secretOf(one?.config ?? ""));
    expect(two?.config).toBe(one?.config);
    for (const s of seen) expect(s.mounts).toContainEqual(expect.objectContaining({ Type: "bind", Source: sharedDir, Destination: "/var/lib/registry" }));

    // DTR knows the cache by the balancer's address; the balancer sees both replicas healthy.
    if (!stack || !balancer) throw new Error("setup failed");
    expect(stack.emulator.contentCaches().map((c) => c.host)).toEqual([balancer.url]);
    await expect.poll(() => balancer?.stats().map((s) => s.healthy), { timeout: 20_000, interval: 250 }).toEqual([true, true]);
  });

  it("fetches each blob upstream once in total when one client pulls through replica 1 and another through replica 2", async () => {
    if (!stack || !balancer) throw new Error("setup failed");
    const [n1, n2, n3, n4] = node;
    const { sampleImage, users, emulator } = stack;
    const blobs = (await sampleBlobs(stack)).map((b) => b.digest);
    const expectedDigest = `${emulator.hostPort}/${sampleImage.repository}@${sampleImage.digest}`;
    const backendBefore = await backendGets(blobs);
    const before = await Promise.all([n2, n3].map((n) => readCacheCounters(debugUrl(n))));
    emulator.clearRequestLog();

    const client = (n: SwarmNode) =>
      dockerAs({ docker, dockerHost: n.dockerHost, configDir: join(workDir, `cli-${n.index}-alice`), registryHostPort: emulator.hostPort, user: users.alice });
    let t = Date.now();
    balancer.setPolicy({ kind: "prefer", index: 0 });
    const first = client(n1);
    await first.login();
    await first.pull(sampleImage.ref);
    mark("pull on node 1 through replica 1 (cold)", t);
    const afterFirst = balancer.stats();
    expect(afterFirst[0]?.connections).toBeGreaterThan(0);
    expect(afterFirst[1]?.connections).toBe(0);

    t = Date.now();
    balancer.setPolicy({ kind: "prefer", index: 1 });
    const second = client(n4);
    await second.login();
    await second.pull(sampleImage.ref);
    mark("pull on node 4 through replica 2 (blobs already in the shared store)", t);
    expect(balancer.stats()[1]?.connections).toBeGreaterThan(0);
    expect(balancer.stats()[0]?.connections).toBe(afterFirst[0]?.connections);

    // same image on both clients
    expect(await first.repoDigests(sampleImage.ref)).toContain(expectedDigest);
    expect(await second.repoDigests(sampleImage.ref)).toContain(expectedDigest);
    // every blob went through DTR's redirect to the balancer, none was served by DTR itself
    const traffic = blobTraffic(emulator.requestLog(), sampleImage.repository);
    expect(traffic.servedDirect).toEqual([]);
    for (const r of traffic.redirected) expect(r.location.startsWith(`${balancer.url}/`)).toBe(true);
    expect(traffic.redirected).toHaveLength(2 * blobs.length);

    // one upstream fetch per blob in total: at the origin, and as GETs the caches made to DTR
    const backendAfter = await backendGets(blobs);
    for (const d of blobs) expect((backendAfter[d] ?? 0) - (backendBefore[d] ?? 0)).toBe(1);
    const cacheGets = traffic.signed.filter((s) => s.method === "GET" && s.status === 200);
    expect(cacheGets.map((s) => s.digest).sort()).toEqual([...blobs].sort());
    const [r1, r2] = await Promise.all([n2, n3].map((n) => readCacheCounters(debugUrl(n))));
    expect((r1?.blobMisses ?? 0) - (before[0]?.blobMisses ?? 0)).toBe(blobs.length);
    expect((r2?.blobMisses ?? 0) - (before[1]?.blobMisses ?? 0)).toBe(0);
    expect((r2?.bytesFetched ?? 0) - (before[1]?.bytesFetched ?? 0)).toBe(0);
    expect((r2?.blobHits ?? 0) - (before[1]?.blobHits ?? 0)).toBe(blobs.length);
    for (const d of blobs) expect(await storedDigest(d)).toBe(d);
    process.stderr.write(
      `ha-cache: upstream GETs per blob ${JSON.stringify(Object.fromEntries(blobs.map((d) => [d.slice(7, 19), (backendAfter[d] ?? 0) - (backendBefore[d] ?? 0)])))}\n`,
    );
  });

  it("fills a blob once when two clients pull it at the same time through different replicas (replica 2 follows replica 1's fill)", async () => {
    if (!stack || !balancer || !link || !sharedImage) throw new Error("setup failed");
    const [n1, n2, n3, n4] = node;
    const { users, emulator } = stack;
    const blobs = await layersOf(sharedImage);
    const layer = blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const digests = blobs.map((b) => b.digest);
    const backendBefore = await backendGets(digests);
    const before = await Promise.all([n2, n3].map((n) => readCacheCounters(debugUrl(n))));
    const fromBackend = balancer.stats().map((s) => s.bytesFromBackend);
    const linkBefore = link.stats()[0]?.bytesFromBackend ?? 0;
    const ref = `${emulator.hostPort}/${sharedImage.repository}:${sharedImage.tag}`;
    const client = (n: SwarmNode) =>
      dockerAs({ docker, dockerHost: n.dockerHost, configDir: join(workDir, `cli-${n.index}-alice`), registryHostPort: emulator.hostPort, user: users.alice });
    // a 16 MiB fill takes ~4 s at this rate: long enough for the second client to arrive during it
    link.setRate(4 * 1024 * 1024);
    const t = Date.now();
    try {
      balancer.setPolicy({ kind: "prefer", index: 0 });
      const first = client(n1).pull(ref);
      await expect
        .poll(() => (balancer?.stats()[0]?.bytesFromBackend ?? 0) - (fromBackend[0] ?? 0), { timeout: 60_000, interval: 50 })
        .toBeGreaterThanOrEqual(1024 * 1024);
      const linkAtSecond = (link.stats()[0]?.bytesFromBackend ?? 0) - linkBefore;
      balancer.setPolicy({ kind: "prefer", index: 1 });
      const second = client(n4).pull(ref);
      await Promise.all([first, second]);
      mark("two concurrent pulls, one through each replica", t);
      process.stderr.write(`ha-cache: concurrent pulls: second client started with ${linkAtSecond} bytes through the link\n`);
      // the second client arrived while the fill was running, so replica 2 had to follow it
      expect(linkAtSecond).toBeLessThan(layer.size);
    } finally {
      link.setRate(undefined);
      balancer.setPolicy({ kind: "prefer", index: 0 });
    }
    const expected = `${emulator.hostPort}/${sharedImage.repository}@${sharedImage.digest}`;
    expect(await client(n1).repoDigests(ref)).toContain(expected);
    expect(await client(n4).repoDigests(ref)).toContain(expected);
    // replica 2 served the layer to its client too, yet the origin sent each blob once
    expect((balancer.stats()[1]?.bytesFromBackend ?? 0) - (fromBackend[1] ?? 0)).toBeGreaterThanOrEqual(layer.size);
    const backendAfter = await backendGets(digests);
    for (const d of digests) expect((backendAfter[d] ?? 0) - (backendBefore[d] ?? 0)).toBe(1);
    const [r1, r2] = await Promise.all([n2, n3].map((n) => readCacheCounters(debugUrl(n))));
    const fetched = [(r1?.bytesFetched ?? 0) - (before[0]?.bytesFetched ?? 0), (r2?.bytesFetched ?? 0) - (before[1]?.bytesFetched ?? 0)];
    process.stderr.write(`ha-cache: concurrent pulls: bytes fetched upstream by replica 1, 2: ${JSON.stringify(fetched)}\n`);
    expect(fetched[1]).toBe(0);
    for (const d of digests) expect(await storedDigest(d)).toBe(d);
  });

  it("completes a pull with correct digests through replica 2 when replica 1's node is killed in the middle of it", async () => {
    if (!stack || !balancer || !link || !swarm || !bigImage) throw new Error("setup failed");
    const [, n2, n3, n4] = node;
    const { users, emulator } = stack;
    const blobs = await layersOf(bigImage);
    const big = blobs.reduce((a, b) => (b.size > a.size ? b : a));
    expect(big.size).toBeGreaterThan(BIG_LAYER / 2);
    const digests = blobs.map((b) => b.digest);
    const backendBefore = await backendGets(digests);
    const ref = `${emulator.hostPort}/${bigImage.repository}:${bigImage.tag}`;
    const client = dockerAs({
      docker,
      dockerHost: n4.dockerHost,
      configDir: join(workDir, "cli-4-alice"),
      registryHostPort: emulator.hostPort,
      user: users.alice,
      timeoutMs: 170_000,
    });
    balancer.setPolicy({ kind: "prefer", index: 0 });
    link.setRate(SLOW_LINK);
    const fromReplica1 = balancer.stats()[0]?.bytesFromBackend ?? 0;
    const linkBefore = link.stats()[0]?.bytesFromBackend ?? 0;

    const t = Date.now();
    const pull = client.pull(ref).then(
      () => undefined,
      (error: unknown) => error,
    );
    // mid-pull AND mid-fill: replica 1 has streamed part of the big layer and its upstream GET is still running
    await expect.poll(() => (balancer?.stats()[0]?.bytesFromBackend ?? 0) - fromReplica1, { timeout: 60_000, interval: 50 }).toBeGreaterThanOrEqual(KILL_AFTER);
    const linkBytesAtKill = (link.stats()[0]?.bytesFromBackend ?? 0) - linkBefore;
    await swarm.stopNode(n2.index);
    mark("pull started -> node 2 killed", t);
    const failed = await pull;
    mark("pull started -> pull done", t);
    link.setRate(undefined);
    process.stderr.write(
      `ha-cache: killed node 2 after ${KILL_AFTER} bytes to the client, ${linkBytesAtKill} bytes through the slow link; docker pull ${failed ? `FAILED: ${String(failed)}` : "completed"}; balancer ${JSON.stringify(balancer.stats())}\n`,
    );
    expect(failed).toBeUndefined();
    // the fill was in progress when the node died: the link had not carried the big layer yet
    expect(linkBytesAtKill).toBeLessThan(big.size);

    expect(await client.repoDigests(ref)).toContain(`${emulator.hostPort}/${bigImage.repository}@${bigImage.digest}`);
    for (const d of digests) expect(await storedDigest(d)).toBe(d);
    const stats = balancer.stats();
    expect(stats[0]?.healthy).toBe(false);
    expect(stats[1]?.connections).toBeGreaterThan(0);
    // the killed fill plus replica 2's takeover: never more than two GETs of the big layer
    const backendAfter = await backendGets(digests);
    const bigGets = (backendAfter[big.digest] ?? 0) - (backendBefore[big.digest] ?? 0);
    process.stderr.write(`ha-cache: upstream GETs of the big layer: ${bigGets}\n`);
    expect(bigGets).toBeGreaterThanOrEqual(1);
    expect(bigGets).toBeLessThanOrEqual(2);

    // Swarm keeps the limit of one task per node: replica 1 is not restarted beside replica 2.
    await expect.poll(() => status()?.tasks.running, { timeout: 30_000, interval: 250 }).toBe(1);
    expect(conditionOf(status(), "Ready")?.status).toBe("False");
    await expect.poll(() => conditionOf(status(), "Degraded")?.status, { timeout: 30_000, interval: 250 }).toBe("True");
    const degraded = conditionOf(status(), "Degraded");
    process.stderr.write(`ha-cache: with node 2 down: Degraded ${degraded?.reason}: ${degraded?.message}\n`);
    expect((await runningTasks(manager, cacheName)).filter((s) => s.endsWith(" Running"))).toEqual([`${n3.hostname} Running`]);
  });
});
