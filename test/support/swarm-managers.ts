// Extra managers for a harness swarm. startSwarm() makes node 1 the only manager and joins the
// others as workers; a test of the controller's own high availability needs more managers than
// that. Promotion (what an operator does with `docker node promote`) leaves startSwarm's callers
// untouched. Raft needs a majority: with 2 managers the loss of either one stops every write to
// the swarm, so a test that kills a manager node needs 3.
import { readFile, writeFile } from "node:fs/promises";
import type { SwarmHandle, SwarmNode } from "../harness/index.js";
import { run, waitFor } from "../harness/proc.js";

export interface ManagerOptions {
  readonly docker: string;
  /** Default 60 s. */
  readonly timeoutMs?: number;
}

const cliEnv = (swarm: SwarmHandle): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: swarm.workDir,
  DOCKER_CONFIG: `${swarm.workDir}/cli-managers`,
});

/** Node `index` as SwarmNode, or a clear error. */
export function nodeAt(swarm: SwarmHandle, index: number): SwarmNode {
  const node = swarm.nodes[index - 1];
  if (!node) throw new Error(`the swarm has no node ${index} (it has ${swarm.nodes.length})`);
  return node;
}

/**
 * Promotes the given nodes to managers (through node 1, the first manager) and waits until each
 * is a Reachable manager, so that Raft counts it before the test relies on a majority.
 */
export async function promoteToManagers(swarm: SwarmHandle, indexes: readonly number[], options: ManagerOptions): Promise<void> {
  const hostnames = indexes.map((i) => nodeAt(swarm, i).hostname);
  const d = (...args: string[]) => run(options.docker, ["-H", swarm.manager.dockerHost, ...args], { env: cliEnv(swarm) });
  await d("node", "promote", ...hostnames);
  await waitFor(
    `${hostnames.join(", ")} Reachable as managers`,
    async () => {
      const listed = (await d("node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")).stdout.split("\n");
      const reachable = (h: string) => listed.some((line) => line === `${h} Reachable` || line === `${h} Leader`);
      return hostnames.every(reachable) ? true : undefined;
    },
    options.timeoutMs ?? 60_000,
    200,
  );
}

/** Sets a node's availability (drain: Swarm runs no task there, it stays a manager). */
export async function setAvailability(swarm: SwarmHandle, index: number, availability: "active" | "drain" | "pause", options: ManagerOptions): Promise<void> {
  await run(options.docker, ["-H", swarm.manager.dockerHost, "node", "update", "--availability", availability, nodeAt(swarm, index).hostname], {
    env: cliEnv(swarm),
  });
}

/** Hostname of the current Raft leader among the managers, as `docker node ls` reports it through `via`. */
export async function raftLeader(swarm: SwarmHandle, via: SwarmNode, options: ManagerOptions): Promise<string | undefined> {
  const listed = await run(options.docker, ["-H", via.dockerHost, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"], {
    env: cliEnv(swarm),
    allowFailure: true,
  });
  return listed.stdout
    .split("\n")
    .find((line) => line.endsWith(" Leader"))
    ?.split(" ")[0];
}

/**
 * Makes `path` (a file under the swarm's workDir) each node's own engine socket, as
 * /var/run/docker.sock is on a real machine. A stack file bind-mounts one socket path on every
 * node (the controller stack's DOCKER_SOCKET), but the harness's engines listen on per-node paths
 * of one shared filesystem; so inside each node's mount namespace (dockerd's, where the bind
 * source of a task is resolved) `path` is bind-mounted over with that node's socket. The
 * namespaces were made with slave propagation: nothing of this reaches the host's mount table.
 * A node restarted with startNode() gets a fresh namespace; call this again for it.
 */
export async function nodeLocalSocket(swarm: SwarmHandle, path: string, indexes: readonly number[] = swarm.nodes.map((n) => n.index)): Promise<void> {
  if (!path.startsWith(`${swarm.workDir}/`)) throw new Error(`nodeLocalSocket: ${path} is not under the swarm's workDir`);
  await writeFile(path, "", { flag: "a" });
  for (const index of indexes) {
    const socket = nodeAt(swarm, index).dockerHost.replace(/^unix:\/\//, "");
    // startSwarm writes dockerd's pidfile next to its socket (n<i>.sock, n<i>.pid)
    const pid = (await readFile(socket.replace(/\.sock$/, ".pid"), "utf8")).trim();
    if (!/^\d+$/.test(pid)) throw new Error(`nodeLocalSocket: no dockerd pid for node ${index}`);
    await run("nsenter", ["--mount", "-t", pid, "--", "mount", "--bind", socket, path]);
  }
}
