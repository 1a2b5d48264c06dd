// Small probes the multi-node end-to-end test reads the swarm and the cache with: whether a
// TCP port answers HTTP on one node's address, a counter from the cache's /metrics, the node
// labels and running tasks as the docker CLI reports them. Every address probed is a node of the
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

/** Sum of a Prometheus counter over the samples whose labels include every pair in `labels`. */
export function counterValue(exposition: string, name: string, labels: Readonly<Record<string, string>>): number {
  let sum = 0;
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const braces = /^[^{ ]+(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!braces) continue;
    const pairs = new Map([...(braces[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? "", m[2] ?? ""]));
    if (Object.entries(labels).every(([k, v]) => pairs.get(k) === v)) sum += Number(braces[2]);
  }
  return sum;
}

/** The cache's blob requests by result (hit, miss, ...) from its own /metrics. */
export async function cacheBlobCounts(cacheUrl: string): Promise<{ hit: number; miss: number }> {
  const res = await fetch(`${cacheUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (res.status !== 200) throw new Error(`${cacheUrl}/metrics answered ${res.status}`);
  const text = await res.text();
  return {
    hit: counterValue(text, "cache_requests_total", { kind: "blob", result: "hit" }),
    miss: counterValue(text, "cache_requests_total", { kind: "blob", result: "miss" }),
  };
}

export interface DockerOn {
  (...args: string[]): Promise<string>;
  /** Like the call form, with stdin (e.g. `login --password-stdin`). */
  withInput(input: string, ...args: string[]): Promise<string>;
}

/** The docker CLI aimed at one private engine, with its own config directory (logins stay there). */
export function dockerOn(docker: string, dockerHost: string, configDir: string): DockerOn {
  const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: configDir, DOCKER_CONFIG: configDir };
  const call = async (...args: string[]): Promise<string> => (await run(docker, ["-H", dockerHost, ...args], { env })).stdout.trim();
  return Object.assign(call, {
    withInput: async (input: string, ...args: string[]): Promise<string> => (await run(docker, ["-H", dockerHost, ...args], { env, input })).stdout.trim(),
  });
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
