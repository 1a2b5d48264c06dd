import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { chown, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ping } from "./engine.js";
import { HarnessError } from "./errors.js";
import {
  CGROUP_ROOT,
  NAME_PREFIX,
  destroyInstance,
  isOwnerAlive,
  killAll,
  listRecords,
  mountsUnder,
  pidsOf,
  trackingCgroup,
  writeRecord,
  type InstanceRecord,
} from "./instance.js";
import { dockerCli, ENGINE_PACKAGES, ensurePackages } from "./packages.js";
import { runRoot, stateRoot } from "./paths.js";
import { run, tail, waitFor } from "./proc.js";
import { removeShimSockets } from "./shims.js";
import { addressIn, claimSubnet, INNER_POOLS } from "./subnet.js";
import { currentOwner, reapOrphanedProcesses } from "./tracked.js";

export interface SwarmNode {
  index: number;
  hostname: string;
  ip: string;
  /** unix:///... socket of this node's private engine (never the default engine). */
  dockerHost: string;
}

export interface SwarmHandle {
  id: string;
  nodes: SwarmNode[];
  manager: SwarmNode;
  /** The host side's address in the test subnet: servers on the host listen here so tasks reach them. */
  hostIp: string;
  subnet: string;
  /** Per-instance directory for data, logs and whatever a test wants to put next to them; removed by stop(). */
  workDir: string;
  /**
   * A host directory for storage that every node shares (the HA topology's shared store): the nodes
   * are namespaces on this one machine, so a bind mount of this path in a task on any node is the
   * same directory (one kernel: O_EXCL, rename, mtimes behave as on local disk, unlike NFS).
   * Created under workDir (removed by stop()), owned by `owner` (default uid/gid 1000, the
   * production images' `node` user), mode 0750.
   */
  sharedDirectory(name: string, owner?: { uid: number; gid: number }): Promise<string>;
  /** Copies an image from one engine to every other node. */
  loadImage(tag: string, fromDockerHost: string): Promise<void>;
  /** Kills that node's engine, its containerd and containers: the node is down as after a crash. */
  stopNode(index: number): Promise<void>;
  /** Starts that node's engine again on its old data; it rejoins the swarm by itself. */
  startNode(index: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StartSwarmOptions {
  nodes: number;
  /** Where data-roots and logs go; default a fresh directory under /var/tmp/dtrcache-h. */
  workDir?: string;
  /** Default 60 s. */
  timeoutMs?: number;
}

const nodeNs = (id: string, i: number): string => `${NAME_PREFIX}-${id}-n${i}`;
const hubNs = (id: string): string => `${NAME_PREFIX}-${id}-hub`;

async function ip(...args: string[]): Promise<void> {
  await run("ip", args);
}

async function buildNetwork(record: InstanceRecord): Promise<void> {
  const { id, subnet } = record;
  const hub = hubNs(id);
  const bridge = `${NAME_PREFIX}${id}br`;
  // The bridge sits in its own namespace: the host's br_netfilter and any default engine's
  // FORWARD policy never see bridged test traffic, and nothing needs host iptables rules.
  await ip("netns", "add", hub);
  await ip("-n", hub, "link", "set", "lo", "up");
  await ip("-n", hub, "link", "add", bridge, "type", "bridge");
  await ip("-n", hub, "link", "set", bridge, "up");
  for (let i = 1; i <= record.nodes; i++) {
    const ns = nodeNs(id, i);
    const port = `${NAME_PREFIX}${id}n${i}`;
    await ip("netns", "add", ns);
    // both ends are created inside their namespaces, so they never appear in the host namespace
    await ip("link", "add", port, "netns", hub, "type", "veth", "peer", "name", "eth0", "netns", ns);
    await ip("-n", hub, "link", "set", port, "master", bridge, "up");
    // no default route: nothing from a node can leave the test subnet
    await ip("-n", ns, "addr", "add", `${addressIn(subnet, 10 + i)}/24`, "dev", "eth0");
    await ip("-n", ns, "link", "set", "lo", "up");
    await ip("-n", ns, "link", "set", "eth0", "up");
  }
  await ip("link", "add", record.hostLink, "type", "veth", "peer", "name", `${record.hostLink}h`, "netns", hub);
  await writeFile(`/proc/sys/net/ipv6/conf/${record.hostLink}/disable_ipv6`, "1").catch(() => undefined);
  await ip("addr", "add", `${addressIn(subnet, 1)}/24`, "dev", record.hostLink);
  await ip("link", "set", record.hostLink, "up");
  await ip("-n", hub, "link", "set", `${record.hostLink}h`, "master", bridge, "up");
}

// Runs as the engine's first process inside the node's network namespace, in a fresh UTS and
// mount namespace: names the host, drops this namespace's copies of other network-namespace
// mounts (they would otherwise keep those namespaces alive), joins the instance's cgroup, then
// becomes dockerd.
const WRAPPER = [
  'echo "$DH_HOSTNAME" > /proc/sys/kernel/hostname',
  'findmnt -rn -t nsfs -o TARGET | while read -r m; do umount -l "$m" 2>/dev/null; done',
  'echo $$ > "$DH_CGROUP_PROCS"',
  "unset DH_HOSTNAME DH_CGROUP_PROCS",
  'exec "$@"',
].join("\n");

interface NodePaths {
  socket: string;
  execRoot: string;
  pidfile: string;
  dataRoot: string;
  log: string;
  cgroup: string;
}

function nodePaths(record: InstanceRecord, i: number): NodePaths {
  return {
    socket: join(record.runDir, `n${i}.sock`),
    execRoot: join(record.runDir, `n${i}`),
    pidfile: join(record.runDir, `n${i}.pid`),
    dataRoot: join(record.stateDir, `n${i}`, "data"),
    log: join(record.stateDir, `n${i}`, "dockerd.log"),
    cgroup: `${record.cgroup}/n${i}`,
  };
}

async function startEngine(record: InstanceRecord, i: number, hostname: string): Promise<void> {
  const p = nodePaths(record, i);
  await mkdir(p.dataRoot, { recursive: true });
  const engineCgroup = join(trackingCgroup(p.cgroup), "engine");
  await mkdir(engineCgroup, { recursive: true });
  const args = [
    `--net=/run/netns/${nodeNs(record.id, i)}`,
    "--",
    "unshare",
    "--uts",
    "--mount",
    "--propagation",
    "slave",
    "--",
    "/bin/sh",
    "-c",
    WRAPPER,
    "sh",
    "dockerd",
    // an explicit empty file: /etc/docker/daemon.json is never read
    "--config-file",
    join(record.runDir, "daemon.json"),
    "--data-root",
    p.dataRoot,
    "--exec-root",
    p.execRoot,
    "--pidfile",
    p.pidfile,
    "-H",
    `unix://${p.socket}`,
    "--containerd-namespace",
    `${NAME_PREFIX}${record.id}n${i}`,
    "--containerd-plugins-namespace",
    `${NAME_PREFIX}${record.id}n${i}p`,
    // a docker0 per node: without a bridge a task has only lo and its host-mode port is not published
    "--bip",
    INNER_POOLS.bridge(i),
    "--default-address-pool",
    `base=${INNER_POOLS.local},size=24`,
    "--cgroup-parent",
    `/${p.cgroup}`,
    "--insecure-registry",
    record.subnet,
    "--shutdown-timeout",
    "2",
    "--log-level",
    "warn",
  ];
  const log = openSync(p.log, "a");
  const child = spawn("nsenter", args, {
    stdio: ["ignore", log, log],
    detached: true,
    env: {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      // no registry here: workers use the image they have instead of trying to pull it per task
      DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: "1",
      DH_HOSTNAME: hostname,
      DH_CGROUP_PROCS: join(engineCgroup, "cgroup.procs"),
    },
  });
  closeSync(log);
  child.unref();
}

/**
 * Clears what a reboot would clear for a node whose processes are all dead: its exec-root (the
 * tmpfs /run of a real machine: containerd's pidfile, socket and task state, runc state, netns
 * bind mounts, libnetwork and swarm sockets), dockerd's pidfile and socket, its shims' sockets in
 * /run/containerd/s/ and any mount under its exec-root or data-root. The data-root itself (images,
 * containers, swarm state) is kept, as a disk would be.
 *
 * Without this a restarted dockerd finds `containerd/containerd.pid` naming the killed
 * containerd. That process is reparented to pid 1 and stays a zombie until pid 1 reaps it; a
 * zombie still answers kill(pid, 0), so dockerd takes it for its running containerd, never starts
 * a new one and gives up after waiting for its socket ("timeout waiting for containerd to start").
 */
async function clearRuntimeState(record: InstanceRecord, i: number): Promise<void> {
  const p = nodePaths(record, i);
  await removeShimSockets(p.execRoot);
  for (const mount of await mountsUnder([p.execRoot, p.dataRoot])) {
    await run("umount", ["-l", mount], { allowFailure: true });
  }
  await rm(p.execRoot, { recursive: true, force: true });
  await rm(p.pidfile, { force: true });
  await rm(p.socket, { force: true });
}

async function waitEngine(record: InstanceRecord, node: SwarmNode, timeoutMs: number): Promise<void> {
  const p = nodePaths(record, node.index);
  try {
    await waitFor(`engine ${node.hostname}`, async () => ((await ping(node.dockerHost)) ? true : undefined), timeoutMs, 100);
  } catch (error) {
    throw new HarnessError("TIMEOUT", `${node.hostname}'s dockerd did not answer on ${node.dockerHost}; last log lines:\n${await tail(p.log)}`, {
      cause: error,
    });
  }
}

/** Brings up an N-node swarm, each node a private dockerd in its own network namespace. */
export async function startSwarm(options: StartSwarmOptions): Promise<SwarmHandle> {
  if (process.getuid?.() !== 0) throw new HarnessError("NOT_ROOT", "a private swarm needs root (network namespaces, dockerd)");
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 9) {
    throw new HarnessError("BAD_ARGUMENT", `nodes: ${options.nodes} is not a node count from 1 to 9`);
  }
  await ensurePackages(ENGINE_PACKAGES);
  const docker = await dockerCli();
  const timeoutMs = options.timeoutMs ?? 60_000;
  const id = randomBytes(3).toString("hex");
  const owner = await currentOwner();
  const runDir = join(runRoot(), id);
  const stateDir = options.workDir ?? join(stateRoot(), id);
  const record: InstanceRecord = {
    id,
    ownerPid: owner.pid,
    ownerStart: owner.start,
    nodes: options.nodes,
    subnet: "",
    runDir,
    stateDir,
    netns: [hubNs(id), ...Array.from({ length: options.nodes }, (_, k) => nodeNs(id, k + 1))],
    hostLink: `${NAME_PREFIX}${id}`,
    cgroup: `${CGROUP_ROOT}/${id}`,
  };
  await writeRecord(record);
  try {
    record.subnet = await claimSubnet(id);
    await writeRecord(record);
    await mkdir(runDir, { recursive: true });
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(runDir, "daemon.json"), "{}\n");
    await buildNetwork(record);
    const nodes: SwarmNode[] = Array.from({ length: options.nodes }, (_, k) => ({
      index: k + 1,
      hostname: `node${k + 1}-${id}`,
      ip: addressIn(record.subnet, 11 + k),
      dockerHost: `unix://${nodePaths(record, k + 1).socket}`,
    }));
    const manager = nodes[0] as SwarmNode;
    const cliEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: runDir, DOCKER_CONFIG: join(runDir, "cli") };
    const d = async (node: SwarmNode, ...args: string[]): Promise<string> =>
      (await run(docker, ["-H", node.dockerHost, ...args], { env: cliEnv })).stdout.trim();

    await Promise.all(nodes.map((n) => startEngine(record, n.index, n.hostname)));
    await Promise.all(nodes.map((n) => waitEngine(record, n, timeoutMs)));
    await d(
      manager,
      "swarm",
      "init",
      "--advertise-addr",
      manager.ip,
      "--listen-addr",
      `${manager.ip}:2377`,
      "--default-addr-pool",
      INNER_POOLS.swarm,
      "--default-addr-pool-mask-length",
      "24",
    );
    if (nodes.length > 1) {
      const token = await d(manager, "swarm", "join-token", "-q", "worker");
      await Promise.all(
        nodes.slice(1).map((n) => d(n, "swarm", "join", "--token", token, "--advertise-addr", n.ip, "--listen-addr", `${n.ip}:2377`, `${manager.ip}:2377`)),
      );
    }
    await waitFor(
      `${nodes.length} swarm nodes Ready`,
      async () => {
        const states = (await d(manager, "node", "ls", "--format", "{{.Status}}")).split("\n").filter(Boolean);
        return states.length === nodes.length && states.every((s) => s === "Ready") ? true : undefined;
      },
      timeoutMs,
      200,
    );

    let stopped = false;
    const handle: SwarmHandle = {
      id,
      nodes,
      manager,
      hostIp: addressIn(record.subnet, 1),
      subnet: record.subnet,
      workDir: stateDir,
      async sharedDirectory(name, owner = { uid: 1000, gid: 1000 }) {
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
          throw new HarnessError("BAD_ARGUMENT", `sharedDirectory: ${JSON.stringify(name)} is not a plain directory name`);
        const dir = join(stateDir, "shared", name);
        await mkdir(dir, { recursive: true, mode: 0o750 });
        await chown(dir, owner.uid, owner.gid);
        return dir;
      },
      async loadImage(tag, fromDockerHost) {
        const targets = nodes.filter((n) => n.dockerHost !== fromDockerHost);
        if (targets.length === 0) return;
        const archive = join(runDir, `image-${randomBytes(4).toString("hex")}.tar`);
        try {
          await run(docker, ["-H", fromDockerHost, "save", "-o", archive, tag], { env: cliEnv });
          await Promise.all(targets.map((n) => d(n, "load", "-q", "-i", archive)));
        } finally {
          await rm(archive, { force: true });
        }
      },
      async stopNode(index) {
        const node = nodes[index - 1];
        if (!node) throw new HarnessError("BAD_ARGUMENT", `stopNode: no node ${index}`);
        // the node's cgroup holds dockerd, containerd, shims and containers; its network namespace
        // holds docker-proxy. Killing all of it is what a crashed machine looks like to the swarm.
        await killAll([nodePaths(record, index).cgroup], [nodeNs(id, index)]);
      },
      async startNode(index) {
        const node = nodes[index - 1];
        if (!node) throw new HarnessError("BAD_ARGUMENT", `startNode: no node ${index}`);
        // clearing a live node's state would wreck it: only a stopped node can boot
        if ((await pidsOf([nodePaths(record, index).cgroup], [])).length > 0) {
          throw new HarnessError("BAD_ARGUMENT", `startNode: node ${index} is still running; stopNode(${index}) first`);
        }
        await clearRuntimeState(record, index);
        await startEngine(record, index, node.hostname);
        await waitEngine(record, node, timeoutMs);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await destroyInstance(record);
      },
    };
    return handle;
  } catch (error) {
    await destroyInstance(record);
    throw error;
  }
}

/**
 * Removes what crashed runs left behind: instances and recorded processes (registries) whose owner
 * process is dead, and harness network namespaces that no instance record claims any more.
 */
export async function cleanupStale(): Promise<{ instances: number; processes: number; netns: number }> {
  let instances = 0;
  const live = new Set<string>();
  for (const record of await listRecords()) {
    if (await isOwnerAlive(record)) {
      live.add(record.id);
      continue;
    }
    await destroyInstance(record);
    instances++;
  }
  const processes = await reapOrphanedProcesses();
  let netns = 0;
  const { stdout } = await run("ip", ["netns", "list"], { allowFailure: true });
  for (const line of stdout.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const match = new RegExp(`^${NAME_PREFIX}-([0-9a-f]{6})-(hub|n\\d+)$`).exec(name);
    if (!match?.[1] || live.has(match[1])) continue;
    await killAll([], [name]);
    await run("ip", ["netns", "del", name], { allowFailure: true });
    netns++;
  }
  return { instances, processes, netns };
}
