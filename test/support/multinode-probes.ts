// Small probes the multi-node end-to-end test reads the swarm with: whether a port answers HTTP
// on one node's address, and the node labels and running tasks as the docker CLI reports them
// (the DTR side's clients and the cache's counters are in dtr-stack.ts). Every address probed is a node of the
// test's own swarm.
import { run } from "../harness/proc.js";

export type PortState = "answers" | "refused" | "other";

/**
 * "answers" when an HTTP server replied (any status), "refused" when the connection was refused
 * (nothing listens there), "other" for anything else (timeouts, resets), which a test should
 * not mistake for either.
 */
export async function portState(url: string, timeoutMs = 2_000): Promise<PortState> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return "answers";
  } catch (error) {
    const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
    return cause?.code === "ECONNREFUSED" ? "refused" : "other";
  }
}

export type DockerOn = (...args: string[]) => Promise<string>;

/** The docker CLI aimed at one private engine (the swarm's manager), with its own config directory. */
export function dockerOn(docker: string, dockerHost: string, configDir: string): DockerOn {
  const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: configDir, DOCKER_CONFIG: configDir };
  return async (...args) => (await run(docker, ["-H", dockerHost, ...args], { env })).stdout.trim();
}

/** Hostnames of the nodes that carry label `key=value`. */
export async function nodesLabelled(manager: DockerOn, hostnames: readonly string[], key: string, value: string): Promise<string[]> {
  const labelled: string[] = [];
  for (const hostname of hostnames) {
    const labels = JSON.parse(await manager("node", "inspect", hostname, "--format", "{{json .Spec.Labels}}")) as Record<string, string> | null;
    if (labels?.[key] === value) labelled.push(hostname);
  }
  return labelled;
}

/** "<node> <state>" for each task of the service that Swarm wants running, sorted. */
export async function runningTasks(manager: DockerOn, service: string): Promise<string[]> {
  const out = await manager("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}");
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => line.replace(/^(\S+) (\S+).*$/, "$1 $2"))
    .sort();
}
