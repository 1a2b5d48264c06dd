// The planner: a pure function from (desired, actual) to an ordered list of actions with
// field-level diffs. The loop applies the plan; `plan()` (dry run) prints it. Nothing here does
// I/O, so every decision — what to create, when an old revision may go, which node label is ours
// to remove — is unit-tested without an engine.
import type { ObjectVersion, SwarmConfig, SwarmNode, SwarmSecret, SwarmService, SwarmTask } from "../swarm/api.js";
import type { DesiredBlob, DesiredCache } from "./desired.js";
import { NODE_LABEL_MARKER_PREFIX, PURPOSE, ROLLOUT_HASH, nodeLabelMarker } from "./labels.js";
import { diffService, type FieldDiff } from "./normalize.js";
import { rolledBackTo } from "./rollback.js";

export interface ActualCache {
  readonly name: string;
  readonly service?: SwarmService;
  readonly configs: readonly SwarmConfig[];
  readonly secrets: readonly SwarmSecret[];
  readonly tasks: readonly SwarmTask[];
}

export type Action =
  | { readonly type: "label-node"; readonly nodeId: string; readonly hostname: string; readonly key: string; readonly value: string; readonly from?: string }
  | { readonly type: "unlabel-node"; readonly nodeId: string; readonly hostname: string; readonly key: string }
  | { readonly type: "create-blob"; readonly blob: DesiredBlob }
  | { readonly type: "create-service"; readonly name: string }
  | { readonly type: "update-service"; readonly serviceId: string; readonly version: ObjectVersion; readonly diffs: readonly FieldDiff[] }
  | { readonly type: "remove-service"; readonly serviceId: string; readonly name: string }
  | { readonly type: "remove-blob"; readonly kind: "config" | "secret"; readonly id: string; readonly name: string };

export type RolloutState = "absent" | "updating" | "rolling-back" | "rolled-back" | "paused" | "converged" | "starting";

export interface Plan {
  readonly cache: string;
  /** "apply" for a cache in the spec, "teardown" for one that left it. */
  readonly mode: "apply" | "teardown";
  readonly actions: readonly Action[];
  readonly rollout: RolloutState;
  /** Why the plan cannot make progress on its own (e.g. the target node does not exist). */
  readonly blocked?: { readonly reason: string; readonly message: string };
  /** The service differs from the desired spec but is left alone: Swarm rolled that spec back. */
  readonly held?: { readonly reason: "RolledBack"; readonly diffs: readonly FieldDiff[] };
}

export interface PlanContext {
  readonly owner: string;
  /** `hostname\u0000key` of every node label some cache in the spec needs. */
  readonly labelsInUse: ReadonlySet<string>;
  /** Revisions of each config/secret purpose kept after a rollout (current included). */
  readonly keepRevisions: number;
  /**
   * This controller saw the engine roll this generation back: do not push it again until the spec
   * changes. Without it (e.g. after a restart) the planner still holds when the engine's own record
   * shows the desired spec was rolled back (rollback.ts).
   */
  readonly holdServiceUpdate?: boolean;
}

export function labelUseKey(hostname: string, key: string): string {
  return `${hostname}\u0000${key}`;
}

/** Node labels we added (marker present) that no cache in the spec needs any more. */
export function planNodeLabelGc(nodes: readonly SwarmNode[], ctx: PlanContext): Action[] {
  const actions: Action[] = [];
  for (const node of nodes) {
    for (const [marker, owner] of Object.entries(node.spec.Labels ?? {})) {
      if (!marker.startsWith(NODE_LABEL_MARKER_PREFIX) || owner !== ctx.owner) continue;
      const key = marker.slice(NODE_LABEL_MARKER_PREFIX.length);
      if (!ctx.labelsInUse.has(labelUseKey(node.hostname, key))) actions.push({ type: "unlabel-node", nodeId: node.id, hostname: node.hostname, key });
    }
  }
  return actions;
}

export function rolloutOf(service: SwarmService | undefined, tasks: readonly SwarmTask[], replicas: number): RolloutState {
  if (!service) return "absent";
  switch (service.updateStatus?.state) {
    case "updating":
      return "updating";
    case "rollback_started":
      return "rolling-back";
    case "rollback_completed":
      return "rolled-back";
    case "paused":
    case "rollback_paused":
      return "paused";
    default: {
      const running = tasks.filter((t) => t.desiredState === "running" && t.state === "running").length;
      const leaving = tasks.filter((t) => t.desiredState !== "running" && t.state === "running").length;
      return running >= replicas && leaving === 0 ? "converged" : "starting";
    }
  }
}

function referencedByTasks(tasks: readonly SwarmTask[]): Set<string> {
  const names = new Set<string>();
  for (const task of tasks) {
    // A task that is still on its node may hold the file open; Swarm refuses the removal anyway.
    if (task.desiredState === "running" || task.state === "running" || task.state === "starting") {
      for (const n of [...task.configNames, ...task.secretNames]) names.add(n);
    }
  }
  return names;
}

/** Old revisions to remove: not desired, not used by a live task, beyond the newest keep-1 per purpose. */
function planPrune(desired: DesiredCache, actual: ActualCache, keep: number): Action[] {
  const wanted = new Set(desired.blobs.map((b) => b.name));
  const live = referencedByTasks(actual.tasks);
  const actions: Action[] = [];
  const groups = new Map<string, { kind: "config" | "secret"; id: string; name: string; createdAt: string }[]>();
  const add = (kind: "config" | "secret", o: SwarmConfig | SwarmSecret): void => {
    if (wanted.has(o.name)) return;
    const key = `${kind}:${o.labels[PURPOSE] ?? "?"}`;
    const list = groups.get(key) ?? [];
    list.push({ kind, id: o.id, name: o.name, createdAt: o.createdAt });
    groups.set(key, list);
  };
  actual.configs.forEach((c) => add("config", c));
  actual.secrets.forEach((s) => add("secret", s));
  for (const list of groups.values()) {
    list.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    for (const old of list.slice(Math.max(0, keep - 1))) {
      if (!live.has(old.name)) actions.push({ type: "remove-blob", kind: old.kind, id: old.id, name: old.name });
    }
  }
  return actions;
}

export function planCache(desired: DesiredCache, actual: ActualCache, nodes: readonly SwarmNode[], ctx: PlanContext): Plan {
  const actions: Action[] = [];
  let blocked: Plan["blocked"];

  const placement = desired.placement;
  if (placement.kind === "hostname") {
    const node = nodes.find((n) => n.hostname === placement.hostname);
    if (!node) {
      blocked = { reason: "NodeNotFound", message: `no Swarm node has hostname "${placement.hostname}" (docker node ls)` };
    } else {
      const labels = node.spec.Labels ?? {};
      const current = labels[placement.key];
      if (current !== placement.value) {
        actions.push(
          current === undefined
            ? { type: "label-node", nodeId: node.id, hostname: node.hostname, key: placement.key, value: placement.value }
            : { type: "label-node", nodeId: node.id, hostname: node.hostname, key: placement.key, value: placement.value, from: current },
        );
      }
    }
  }

  const have = new Set([...actual.configs.map((c) => c.name), ...actual.secrets.map((s) => s.name)]);
  for (const blob of desired.blobs) if (!have.has(blob.name)) actions.push({ type: "create-blob", blob });

  const service = actual.service;
  let held: Plan["held"];
  if (!service) actions.push({ type: "create-service", name: desired.name });
  else {
    const diffs = diffService(desired.service, service.spec);
    const wanted = desired.service.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH] ?? "";
    const hold = ctx.holdServiceUpdate === true || rolledBackTo(service, actual.tasks, wanted);
    if (diffs.length > 0 && hold) held = { reason: "RolledBack", diffs };
    else if (diffs.length > 0) actions.push({ type: "update-service", serviceId: service.id, version: service.version, diffs });
  }

  const pendingWrite = actions.some((a) => a.type === "create-service" || a.type === "update-service");
  const rollout = rolloutOf(service, actual.tasks, desired.service.Mode?.Replicated?.Replicas ?? 1);
  // Old revisions go only once the new set runs everywhere, so a rollback still finds them.
  if (!pendingWrite && rollout === "converged") actions.push(...planPrune(desired, actual, ctx.keepRevisions));

  actions.push(...planNodeLabelGc(nodes, ctx));
  return { cache: desired.name, mode: "apply", actions, rollout, ...(blocked ? { blocked } : {}), ...(held ? { held } : {}) };
}

/** A cache that left the spec: service first, then its configs and secrets, then node labels. */
export function planTeardown(actual: ActualCache, nodes: readonly SwarmNode[], ctx: PlanContext): Plan {
  const actions: Action[] = [];
  if (actual.service) actions.push({ type: "remove-service", serviceId: actual.service.id, name: actual.service.name });
  for (const c of actual.configs) actions.push({ type: "remove-blob", kind: "config", id: c.id, name: c.name });
  for (const s of actual.secrets) actions.push({ type: "remove-blob", kind: "secret", id: s.id, name: s.name });
  actions.push(...planNodeLabelGc(nodes, ctx));
  return { cache: actual.name, mode: "teardown", actions, rollout: actual.service ? "updating" : "absent" };
}

export { nodeLabelMarker };
