// Issue 11: "The controller stack supports 2 replicas on two managers (active + standby)". On a
// 4-node swarm of its own: nodes 1-3 are managers (node 1 made by startSwarm, nodes 2 and 3
// promoted), node 4 a worker that runs the cache and the docker client. Three managers, because
// the test kills a manager NODE: Raft needs a majority, and with two managers the survivor alone
// could not write anything (no lease renewal, no service update). Node 1 is drained: it is the
// Raft leader (it initialised the swarm) and the CLI's DOCKER_HOST; the two controller replicas
// therefore land on nodes 2 and 3, and killing the leading one kills a manager that is not the
// Raft leader (a Raft leader's death adds Swarm's own election to the takeover; the second test
// measures that election's effect on the lease with no controller on the Raft leader's node).
//
// deploy/stack/controller.stack.yml is deployed unchanged with its default 2 replicas (placement:
// managers, max one per node); the CacheSpec is stored with `dtrcache apply`. Shown: exactly one
// replica leads and the other says standby in its log and at /status; over 40 s at most 3 updates
// of the cache service; the leading replica's node is killed (stopNode: SIGKILL of its dockerd,
// containerd and containers) and the standby leads within 15 s (measured and printed); a later
// `dtrcache apply` edit is rolled out by the new leader; alice on node 4 pulls through the cache
// before the kill, during the takeover and after the edit.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { dockerCli, repoRoot, startSwarm, type SwarmHandle, type SwarmNode } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { blobTraffic, dockerAs, startDtrStack, type DockerAs, type DtrStack } from "../support/dtr-stack.js";
import { nodeAt, nodeLocalSocket, promoteToManagers, raftLeader, setAvailability } from "../support/swarm-managers.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `cha-${suffix}`;
const cacheName = `cha-${suffix}`;
const stackName = "dtrcache";
const controllerService = `${stackName}_controller`;
const PORT = 5000;
const STATUS_PORT = 9090;
const cli = join(repoRoot(), "controller", "dist", "cli", "main.js");
const statusToken = randomBytes(16).toString("hex");

let swarm: SwarmHandle | undefined;
let stack: DtrStack | undefined;
let docker = "";
let workDir = "";
let client: DockerAs | undefined;
/** Where the CLI and the checks talk to the swarm: node 1, a manager that is never killed. */
let cliNode: SwarmNode;
const timings: Record<string, number | string> = {};
/** Left by the first test for the second: the manager node it killed and the one now leading. */
const after = { killed: 0, leading: 0 };
const dockerSocket = (): string => join(workDir, "docker.sock");

interface LeaseView {
  role: string;
  identity: string;
  holder: string;
  message?: string;
}
interface CacheView {
  name: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  tasks: { running: number; desired: number; nodes?: string[] };
  spec?: { storedGeneration?: number; observedStoreGeneration?: number };
}
interface StatusView {
  lease?: LeaseView;
  caches: CacheView[];
}

const managerEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: workDir,
  DOCKER_CONFIG: join(workDir, "docker-config"),
  DOCKER_HOST: cliNode.dockerHost,
  DTRCACHE_CONTROLLER_IMAGE: harness.images.controller ?? "",
  DTRCACHE_OWNER_ID: owner,
  // one path, each node's own engine inside that node's mount namespace (nodeLocalSocket)
  DOCKER_SOCKET: dockerSocket(),
});
const dockerOn = (node: SwarmNode, args: string[]) => run(docker, ["-H", node.dockerHost, ...args], { env: managerEnv(), allowFailure: true });
const dtrcache = (...args: string[]) =>
  run(process.execPath, [cli, ...args, "--id", owner], { env: { PATH: process.env.PATH ?? "", DOCKER_HOST: cliNode.dockerHost }, allowFailure: true });

async function statusOf(node: SwarmNode): Promise<StatusView | undefined> {
  try {
    const response = await fetch(`http://${node.ip}:${STATUS_PORT}/status`, {
      headers: { authorization: `Bearer ${statusToken}` },
      signal: AbortSignal.timeout(2_000),
    });
    return response.ok ? ((await response.json()) as StatusView) : undefined;
  } catch {
    return undefined;
  }
}
const cacheOn = async (node: SwarmNode): Promise<CacheView | undefined> => (await statusOf(node))?.caches.find((c) => c.name === cacheName);
const conditionOn = async (node: SwarmNode, type: string): Promise<string | undefined> =>
  (await cacheOn(node))?.conditions.find((c) => c.type === type)?.status;

/** The controller replicas' roles, by the manager node whose published status port answered. */
async function roles(managers: readonly SwarmNode[]): Promise<Map<number, LeaseView>> {
  const found = new Map<number, LeaseView>();
  await Promise.all(
    managers.map(async (n) => {
      const lease = (await statusOf(n))?.lease;
      if (lease) found.set(n.index, lease);
    }),
  );
  return found;
}

/** The controller container's log on a node (the stack logs JSON lines). */
async function controllerLog(node: SwarmNode): Promise<string> {
  const ids = (await dockerOn(node, ["ps", "-q", "--filter", `label=com.docker.swarm.service.name=${controllerService}`])).stdout
    .trim()
    .split("\n")
    .filter(Boolean);
  const logs = await Promise.all(
    ids.map(async (id) => {
      const r = await dockerOn(node, ["logs", id]);
      return r.stdout + r.stderr;
    }),
  );
  return logs.join("\n");
}

const cacheServiceVersion = async (): Promise<number> =>
  Number((await dockerOn(cliNode, ["service", "inspect", cacheName, "--format", "{{.Version.Index}}"])).stdout.trim() || "0");

/** The spec for the store: the demo spec on node 4, the admin password as a Swarm secret. */
async function specFile(blobTTL: string, name: string): Promise<string> {
  if (!stack || !swarm) throw new Error("setup failed");
  const n4 = nodeAt(swarm, 4);
  const written = await stack.writeSpec({
    cacheName,
    nodeHostname: n4.hostname,
    port: PORT,
    externalURL: `http://${n4.ip}:${PORT}`,
    users: [stack.users.alice.username],
    image: harness.images.cacheServer ?? "",
    blobTTL,
    path: join(workDir, `written-${name}.yaml`),
  });
  const docs = parseAllDocuments(await readFile(written, "utf8"));
  if (!Array.isArray(docs)) throw new Error("expected a multi-document spec");
  for (const doc of docs) if (doc.get("kind") === "DTR") doc.setIn(["spec", "admin", "password"], doc.createNode({ secret: "dtr-admin-password" }));
  const path = join(workDir, `${name}.yaml`);
  await writeFile(path, docs.map((d) => d.toString()).join(""));
  return path;
}

/** alice on node 4 pulls the sample image through DTR; every blob is redirected to the cache. */
async function pullThroughCache(): Promise<number> {
  if (!stack || !swarm || !client) throw new Error("setup failed");
  const n4 = nodeAt(swarm, 4);
  await client.removeImage(stack.sampleImage.ref);
  stack.emulator.clearRequestLog();
  const started = performance.now();
  await client.pull(stack.sampleImage.ref);
  const ms = Math.round(performance.now() - started);
  expect(await client.repoDigests(stack.sampleImage.ref)).toContain(`${stack.emulator.hostPort}/${stack.sampleImage.repository}@${stack.sampleImage.digest}`);
  const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
  expect(traffic.redirected.length).toBeGreaterThanOrEqual(2);
  for (const r of traffic.redirected) expect(r.location.startsWith(`http://${n4.ip}:${PORT}/`)).toBe(true);
  expect(traffic.servedDirect).toEqual([]);
  return ms;
}

beforeAll(async () => {
  const cacheImage = harness.images.cacheServer;
  const controllerImage = harness.images.controller;
  if (!cacheImage || !controllerImage) throw new Error("the global setup did not build the cache-server and controller images");
  docker = await dockerCli();
  const t0 = performance.now();
  swarm = await startSwarm({ nodes: 4 });
  cliNode = nodeAt(swarm, 1);
  workDir = join(swarm.workDir, "controller-ha");
  await mkdir(workDir, { recursive: true });
  await promoteToManagers(swarm, [2, 3], { docker });
  await setAvailability(swarm, 1, "drain", { docker });
  timings["swarm up, 3 managers"] = Math.round(performance.now() - t0);
  // The stack mounts one socket path on every node: make it each node's own engine socket.
  await nodeLocalSocket(swarm, dockerSocket());
  const t1 = performance.now();
  await Promise.all([
    (async () => {
      await swarm.loadImage(cacheImage, harness.dockerHost);
      await swarm.loadImage(controllerImage, harness.dockerHost);
    })(),
    (async () => {
      stack = await startDtrStack({ workDir: join(workDir, "dtr"), hostIp: swarm.hostIp, dockerHost: cliNode.dockerHost });
    })(),
  ]);
  timings["images into 4 engines ‖ DTR stack"] = Math.round(performance.now() - t1);
  if (!stack) throw new Error("DTR stack did not start");
  const secret = (name: string, value: string) => run(docker, ["secret", "create", name, "-"], { env: managerEnv(), input: value });
  await secret("dtr-admin-password", stack.users.admin.password);
  await secret("dtrcache-status-token", statusToken);
  const n4 = nodeAt(swarm, 4);
  client = dockerAs({
    docker,
    dockerHost: n4.dockerHost,
    configDir: join(workDir, "cli-node4-alice"),
    registryHostPort: stack.emulator.hostPort,
    user: stack.users.alice,
  });
  await client.login();
});

afterAll(async () => {
  console.log(`controller-ha timings ${JSON.stringify(timings)}`);
  await stack?.stop().catch(() => undefined);
  await swarm?.stop();
});

describe("the controller stack with 2 replicas on two managers (active + standby)", () => {
  it("one leads, one stands by; ≤ 3 cache service updates in 40 s; the leader's node dies and the standby leads within 15 s; an edit is rolled out by the new leader; pulls work throughout", async () => {
    if (!stack || !swarm) throw new Error("setup failed");
    const managers = [1, 2, 3].map((i) => nodeAt(swarm!, i));
    const deployed = await run(
      docker,
      ["stack", "deploy", "--resolve-image", "never", "-c", join(repoRoot(), "deploy", "stack", "controller.stack.yml"), stackName],
      { env: managerEnv(), allowFailure: true },
    );
    expect(deployed.code, deployed.stderr).toBe(0);

    const t0 = performance.now();
    const applied = await dtrcache("apply", "-f", await specFile("24h", "spec-1"));
    expect(applied.code, applied.stderr).toBe(0);

    // Exactly one leader and one standby, on two different managers (node 1 is drained).
    let current = new Map<number, LeaseView>();
    await expect
      .poll(
        async () => {
          current = await roles(managers);
          return [...current.values()]
            .map((l) => l.role)
            .sort()
            .join(",");
        },
        { timeout: 90_000, interval: 500 },
      )
      .toBe("leader,standby");
    const leaderIndex = [...current].find(([, l]) => l.role === "leader")?.[0] ?? 0;
    const standbyIndex = [...current].find(([, l]) => l.role === "standby")?.[0] ?? 0;
    expect(new Set([leaderIndex, standbyIndex])).toEqual(new Set([2, 3]));
    const leaderNode = nodeAt(swarm, leaderIndex);
    const standbyNode = nodeAt(swarm, standbyIndex);
    // A standby that lost the race to create the lease config reports the holder only after its
    // next read of the lease (one renewal interval): "lease being taken by another candidate".
    const leaderIdentity = current.get(leaderIndex)?.identity;
    expect(leaderIdentity).toMatch(/\S/);
    await expect
      .poll(async () => (await roles([nodeAt(swarm!, standbyIndex)])).get(standbyIndex)?.holder, { timeout: 10_000, interval: 500 })
      .toBe(leaderIdentity);
    await expect.poll(() => controllerLog(standbyNode), { timeout: 20_000, interval: 500 }).toMatch(/standby/);
    expect(await controllerLog(standbyNode)).not.toMatch(/lease acquired/);

    await expect.poll(() => conditionOn(leaderNode, "Ready"), { timeout: 120_000, interval: 500 }).toBe("True");
    timings["apply → Ready"] = Math.round(performance.now() - t0);
    const placed = await dockerOn(cliNode, ["service", "ps", cacheName, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"]);
    expect(placed.stdout.trim()).toMatch(new RegExp(`^${nodeAt(swarm, 4).hostname} Running`));
    // The status names the node each running task is on (what a load balancer is given).
    await expect.poll(async () => (await cacheOn(leaderNode))?.tasks.nodes, { timeout: 40_000, interval: 500 }).toEqual([nodeAt(swarm, 4).hostname]);
    timings["pull before the kill ms"] = await pullThroughCache();

    // 40 s with two replicas of one owner id: the standby does not write.
    const v0 = await cacheServiceVersion();
    await new Promise((r) => setTimeout(r, 40_000));
    const updates = (await cacheServiceVersion()) - v0;
    timings["cache service updates in 40 s"] = updates;
    expect(updates).toBeLessThanOrEqual(3);
    expect((await roles(managers)).get(standbyIndex)?.role).toBe("standby");

    // Kill the leader's manager node (not the Raft leader: node 1 is, see the header).
    expect(await raftLeader(swarm, cliNode, { docker })).toBe(cliNode.hostname);
    const killedAt = performance.now();
    await swarm.stopNode(leaderIndex);
    timings["killed"] = `node ${leaderIndex} (leader); standby on node ${standbyIndex}`;
    after.killed = leaderIndex;
    after.leading = standbyIndex;
    // The cache is not in the controller's path: a pull during the takeover works.
    timings["pull during the takeover ms"] = await pullThroughCache();
    await expect.poll(async () => (await statusOf(standbyNode))?.lease?.role, { timeout: 15_000, interval: 200 }).toBe("leader");
    const tookOver = Math.round(performance.now() - killedAt);
    timings["leader node killed → standby leads ms"] = tookOver;
    console.log(`controller-ha: standby on node ${standbyIndex} led ${tookOver} ms after node ${leaderIndex} (the leader's) was killed`);
    expect(tookOver).toBeLessThanOrEqual(15_000);
    expect(await controllerLog(standbyNode)).toMatch(/lease acquired/);
    await expect.poll(() => conditionOn(standbyNode, "Ready"), { timeout: 30_000, interval: 500 }).toBe("True");

    // An edit after the takeover: stored with apply, rolled out by the new leader.
    const vBefore = await cacheServiceVersion();
    const edited = performance.now();
    const reapplied = await dtrcache("apply", "-f", await specFile("7h", "spec-2"));
    expect(reapplied.code, reapplied.stderr).toBe(0);
    expect(reapplied.stdout).toMatch(/configured/);
    await expect
      .poll(
        async () => {
          const cache = await cacheOn(standbyNode);
          const ready = cache?.conditions.find((c) => c.type === "Ready")?.status;
          return `${cache?.spec?.observedStoreGeneration}/${cache?.spec?.storedGeneration} ${ready}`;
        },
        { timeout: 90_000, interval: 500 },
      )
      .toBe("2/2 True");
    timings["edit → rolled out by the new leader ms"] = Math.round(performance.now() - edited);
    expect(await cacheServiceVersion()).toBeGreaterThan(vBefore);
    const n4 = nodeAt(swarm, 4);
    const task = (await dockerOn(n4, ["ps", "-q", "--filter", `label=com.docker.swarm.service.name=${cacheName}`])).stdout.trim().split("\n")[0] ?? "";
    expect((await dockerOn(n4, ["exec", task, "cat", "/config.yml"])).stdout).toMatch(/blobttl: 7h\b/);
    timings["pull after the edit ms"] = await pullThroughCache();

    // What an operator gives the load balancer: `status` and `describe` name the task's node.
    const tokenFile = join(workDir, "status-token");
    await writeFile(tokenFile, statusToken, { mode: 0o600 });
    const url = `http://${standbyNode.ip}:${STATUS_PORT}`;
    const shown = await run(process.execPath, [cli, "status", "--url", url, "--token-file", tokenFile], {
      env: { PATH: process.env.PATH ?? "" },
      allowFailure: true,
    });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^${cacheName}\\s+True\\s+1/1\\s+${n4.hostname}\\s`, "m"));
    const described = await dtrcache("describe", cacheName, "--url", url, "--token-file", tokenFile);
    expect(described.code, described.stderr).toBe(0);
    expect(described.stdout).toContain(`Tasks:        1/1 running on ${n4.hostname}`);
  });
  // Not asked by the issue, measured because the first test avoids it on purpose: the Raft
  // leader's node dies while neither controller runs there. Swarm accepts no write until it has
  // elected a new Raft leader, so the leading controller cannot renew its lease meanwhile.
  it("the Raft leader's node dies (no controller on it): one controller leads afterwards and an edit is reconciled", { timeout: 300_000 }, async () => {
    if (!stack || !swarm || after.killed === 0) throw new Error("the first test did not get to its kill");
    const sw = swarm;
    const managers = [1, 2, 3].map((i) => nodeAt(sw, i));
    // The killed manager comes back; its controller replica is scheduled there again (standby).
    const restarted = performance.now();
    await sw.startNode(after.killed);
    await nodeLocalSocket(sw, dockerSocket(), [after.killed]);
    await expect
      .poll(
        async () => {
          const found = await roles(managers);
          return `${found.get(after.leading)?.role},${found.get(after.killed)?.role}`;
        },
        { timeout: 120_000, interval: 1_000 },
      )
      .toBe("leader,standby");
    timings["killed node restarted → its replica standby ms"] = Math.round(performance.now() - restarted);

    // Node 1 is the Raft leader (drained: no controller). The CLI moves to the leading node.
    expect(await raftLeader(sw, cliNode, { docker })).toBe(nodeAt(sw, 1).hostname);
    cliNode = nodeAt(sw, after.leading);
    const killedAt = performance.now();
    await sw.stopNode(1);
    const history: string[] = [];
    let newRaftLeaderMs: number | undefined;
    let settledMs: number | undefined;
    let stable = false;
    const deadline = killedAt + 90_000;
    let last = "";
    while (performance.now() < deadline) {
      const found = await roles([nodeAt(sw, 2), nodeAt(sw, 3)]);
      const seen = [2, 3].map((i) => `node${i}=${found.get(i)?.role ?? "-"}`).join(" ");
      const at = Math.round(performance.now() - killedAt);
      if (seen !== last) history.push(`${at} ms ${seen}`);
      last = seen;
      if (newRaftLeaderMs === undefined) {
        const raft = await raftLeader(sw, cliNode, { docker });
        if (raft !== undefined && raft !== nodeAt(sw, 1).hostname) newRaftLeaderMs = Math.round(performance.now() - killedAt);
      }
      const rolesNow = [...found.values()]
        .map((l) => l.role)
        .sort()
        .join(",");
      if (newRaftLeaderMs !== undefined && rolesNow === "leader,standby") {
        settledMs ??= at;
        // stable for 15 s (longer than the lease): nobody is about to take over
        if (at - settledMs >= 15_000) {
          stable = true;
          break;
        }
      } else {
        settledMs = undefined;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    timings["Raft leader killed → new Raft leader ms"] = newRaftLeaderMs ?? "none in 90 s";
    timings["Raft leader killed → controller roles seen"] = history.join("; ");
    console.log(`controller-ha: Raft leader (node 1) killed; new Raft leader after ${newRaftLeaderMs} ms; controller roles: ${history.join("; ")}`);
    expect(newRaftLeaderMs).toBeDefined();
    expect(stable).toBe(true);
    const found = await roles([nodeAt(sw, 2), nodeAt(sw, 3)]);
    const leading = [...found].find(([, l]) => l.role === "leader")?.[0] ?? 0;
    expect(leading).toBeGreaterThan(0);
    cliNode = nodeAt(sw, leading);

    // An edit after both failures is reconciled by whichever controller leads now.
    const reapplied = await dtrcache("apply", "-f", await specFile("9h", "spec-3"));
    expect(reapplied.code, reapplied.stderr).toBe(0);
    await expect
      .poll(
        async () => {
          const cache = await cacheOn(nodeAt(sw, leading));
          const ready = cache?.conditions.find((c) => c.type === "Ready")?.status;
          return `${cache?.spec?.observedStoreGeneration}/${cache?.spec?.storedGeneration} ${ready}`;
        },
        { timeout: 90_000, interval: 500 },
      )
      .toBe("3/3 True");
    timings["pull after the Raft leader's death ms"] = await pullThroughCache();
  });
});
