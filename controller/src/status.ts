// The status model: plain data, no secrets, ready to be served as JSON by the status endpoint and
// printed by the CLI. Conditions follow the Kubernetes shape: a condition's lastTransitionTime
// changes only when its status flips.
import type { SwarmNode, SwarmTask } from "./swarm/api.js";

export type ConditionType = "Ready" | "Progressing" | "Degraded" | "DtrSynced";

export interface Condition {
  readonly type: ConditionType;
  readonly status: "True" | "False" | "Unknown";
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
}

export interface RevisionStatus {
  readonly purpose: string;
  readonly name: string;
}

export interface CacheStatus {
  readonly name: string;
  /** Hash of the normalized spec the status was computed for; empty before the first reconcile. */
  readonly observedGeneration: string;
  /** Hash of the spec as loaded now; differs from observedGeneration while work is pending. */
  readonly generation: string;
  /** true while the cache is being removed because it left the spec. */
  readonly terminating: boolean;
  readonly conditions: readonly Condition[];
  readonly node: { readonly hostname?: string; readonly label: string; readonly labelled: boolean };
  /** Current config/secret revisions mounted by the service. */
  readonly revisions: readonly RevisionStatus[];
  /**
   * `nodes`: the hostname of each running task's node, sorted (a name twice if two tasks run on
   * one node): where the cache answers, for a load balancer's pool. Absent before the first
   * reconcile and from a controller that predates it.
   */
  readonly tasks: { readonly running: number; readonly desired: number; readonly nodes?: readonly string[] };
  readonly dtr: {
    readonly registrationId?: string;
    /**
     * Hash of the DTR resource (references only, dtr-reconcile/inputs.ts) the last DTR pass ran
     * with: `apply --wait` waits until it is the resource it stored. Absent before the first pass.
     */
    readonly resourceHash?: string;
    readonly users: readonly { readonly username: string; readonly state: string }[];
  };
  readonly lastReconcile?: { readonly at: string; readonly durationMs: number; readonly actions: number; readonly error?: string };
}

export interface SpecStatus {
  readonly path: string;
  readonly loaded: boolean;
  /** Files of the last good spec. */
  readonly files: readonly string[];
  readonly loadedAt?: string;
  /** Problems of the latest load attempt (the last good spec stays in force). */
  readonly errors: readonly string[];
}

export interface ControllerStatus {
  readonly controllerId: string;
  readonly engine: { readonly reachable: boolean; readonly manager: boolean; readonly message?: string };
  readonly spec: SpecStatus;
  readonly caches: readonly CacheStatus[];
}

/**
 * Hostnames of the nodes running the cache's tasks (running and meant to run, as `running` counts
 * them). A task on a node the listing does not know shows its node id, so it is never hidden.
 */
export function runningTaskNodes(tasks: readonly SwarmTask[], nodes: readonly SwarmNode[]): string[] {
  const hostname = new Map(nodes.map((n) => [n.id, n.hostname]));
  return tasks
    .filter((t) => t.desiredState === "running" && t.state === "running" && t.nodeId !== undefined)
    .map((t) => hostname.get(t.nodeId ?? "") ?? t.nodeId ?? "")
    .sort();
}

/** Sets a condition, keeping lastTransitionTime when the status did not change. */
export function setCondition(conditions: readonly Condition[], next: Omit<Condition, "lastTransitionTime">, now: Date): Condition[] {
  const previous = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString();
  const others = conditions.filter((c) => c.type !== next.type);
  const order: ConditionType[] = ["Ready", "Progressing", "Degraded", "DtrSynced"];
  return [...others, { ...next, lastTransitionTime }].sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
}

export function conditionOf(status: CacheStatus | undefined, type: ConditionType): Condition | undefined {
  return status?.conditions.find((c) => c.type === type);
}
