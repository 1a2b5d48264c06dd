// Human output for the CLI: the status table (kubectl-style columns) and the plan listing.
import type { Action, Plan } from "../reconcile/planner.js";
import type { CacheSnapshot, RuntimeSnapshot, SnapshotCondition } from "./snapshot.js";
import { age, table } from "./store-io.js";

function condition(cache: CacheSnapshot, type: SnapshotCondition["type"]): SnapshotCondition | undefined {
  return cache.conditions.find((c) => c.type === type);
}

function shortId(id: string | undefined): string {
  return id ? (id.length > 12 ? `${id.slice(0, 8)}…` : id) : "-";
}

/**
 * GENERATION: observed/stored. In store mode the store's revision numbers (what `dtrcache get`
 * shows), "-" before the first reconcile; in file mode the spec's content hash (7 characters),
 * "acted-on/loaded" while a change is being applied.
 */
function generationCell(cache: CacheSnapshot): string {
  const stored = cache.spec?.storedGeneration;
  if (stored !== undefined) return `${cache.spec?.observedStoreGeneration ?? "-"}/${stored}`;
  const short = (hash: string): string => hash.slice(0, 7);
  if (cache.observedGeneration === "") return `-/${short(cache.generation) || "-"}`;
  return cache.observedGeneration === cache.generation ? short(cache.generation) : `${short(cache.observedGeneration)}/${short(cache.generation)}`;
}

/** A rollout in words, from the Progressing condition: "Rolling out (1/2 tasks running, ...)". */
function rolloutLine(cache: CacheSnapshot): string | undefined {
  const progressing = condition(cache, "Progressing");
  if (progressing?.status !== "True" || condition(cache, "Degraded")?.status === "True") return undefined;
  const detail = progressing.message.replace(/^Rolling out:\s*/, "");
  const counted = cache.rollout ? `${cache.rollout.updated}/${cache.rollout.desired} tasks updated` : "";
  const words = [counted, detail].filter((w) => w !== "").join("; ");
  return `Rolling out${words ? ` (${words})` : ""}`;
}

/**
 * NODE: where the cache's tasks run — the hostname of each running task's node (what a load
 * balancer's pool needs), else where the spec places it (hostname or label) while none runs.
 */
function nodeCell(cache: CacheSnapshot): string {
  const unlabelled = cache.node.hostname && !cache.node.labelled ? " (unlabelled)" : "";
  const running = cache.tasks.nodes ?? [];
  if (running.length > 0) return `${running.join(",")}${unlabelled}`;
  return cache.node.hostname ? `${cache.node.hostname}${unlabelled}` : cache.node.label || "-";
}

/**
 * The cache's tasks for `describe`: "Tasks: 2/2 running on node-2, node-3". Without node names (a
 * controller that predates them) the counts alone.
 */
export function formatTasksLine(cache: Pick<CacheSnapshot, "tasks">): string {
  const { running, desired, nodes } = cache.tasks;
  const where = nodes && nodes.length > 0 ? ` on ${nodes.join(", ")}` : "";
  return `Tasks:        ${running}/${desired} running${where}`;
}

/** One line per cache; then, for any cache that is not Ready, why. */
export function formatStatusTable(status: RuntimeSnapshot, now = Date.now()): string {
  const header = ["NAME", "READY", "TASKS", "NODE", "DTR ID", "USERS", "DTR", "TLS", "GENERATION", "SPEC", "AGE"];
  const rejected = status.spec.errors.length > 0;
  const rows = status.caches.map((cache) => {
    const ready = condition(cache, "Ready");
    const users = cache.dtr.users;
    const assigned = users.filter((u) => u.state === "assigned").length;
    return [
      cache.terminating ? `${cache.name} (removing)` : cache.name,
      ready?.status ?? "Unknown",
      `${cache.tasks.running}/${cache.tasks.desired}`,
      nodeCell(cache),
      shortId(cache.dtr.registrationId),
      users.length === 0 ? "-" : `${assigned}/${users.length}`,
      condition(cache, "DtrSynced")?.status ?? "Unknown",
      condition(cache, "TlsTrusted")?.status ?? "-",
      generationCell(cache),
      cache.spec?.state ?? (cache.terminating ? "Removed" : rejected ? "Rejected" : "Valid"),
      cache.spec?.since !== undefined ? age(cache.spec.since, now) : "-",
    ];
  });
  const lines = [status.caches.length === 0 ? "no caches" : table([header, ...rows])];
  if (status.lease && status.lease.role !== "leader") lines.unshift(`controller ${status.lease.identity}: ${status.lease.message ?? status.lease.role}`);
  for (const cache of status.caches) {
    // During a rollout, one line says so; Ready=False and Progressing=True would say it twice,
    // and Ready=False alone reads like a failure.
    const rollout = rolloutLine(cache);
    if (rollout !== undefined) lines.push(`  ${cache.name}: ${rollout}`);
    const problems = cache.conditions.filter((c) =>
      rollout !== undefined && (c.type === "Ready" || c.type === "Progressing")
        ? false
        : c.type === "Degraded" || c.type === "Progressing"
          ? c.status === "True"
          : c.status !== "True",
    );
    for (const c of problems) lines.push(`  ${cache.name}: ${c.type}=${c.status} ${c.reason}: ${c.message}`);
    for (const u of cache.dtr.users.filter((x) => x.state !== "assigned")) lines.push(`  ${cache.name}: user ${u.username}: ${u.state}`);
  }
  if (!status.engine.reachable) lines.push(`engine: unreachable${status.engine.message ? `: ${status.engine.message}` : ""}`);
  for (const error of status.spec.errors) lines.push(`spec: ${error}`);
  return lines.join("\n");
}

function describeAction(action: Action): string {
  switch (action.type) {
    case "label-node":
      return `label node ${action.hostname}: ${action.key}=${action.value}${action.from !== undefined ? ` (was ${action.from})` : ""}`;
    case "unlabel-node":
      return `remove label ${action.key} from node ${action.hostname}`;
    case "create-blob":
      return `create ${action.blob.kind} ${action.blob.name}`;
    case "create-service":
      return `create service ${action.name}`;
    case "update-service":
      return [`update service ${action.serviceId.slice(0, 12)}:`, ...action.diffs.map((d) => `    ${d.path}: ${d.from ?? "(unset)"} -> ${d.to}`)].join("\n");
    case "remove-service":
      return `remove service ${action.name}`;
    case "remove-blob":
      return `remove ${action.kind} ${action.name}`;
  }
}

export function formatPlans(plans: readonly Plan[]): string {
  if (plans.length === 0) return "no caches in the spec and none owned: nothing to do";
  return plans
    .map((plan) => {
      const head = `${plan.cache} (${plan.mode}${plan.rollout !== "converged" && plan.rollout !== "absent" ? `, rollout ${plan.rollout}` : ""})`;
      const body =
        plan.actions.length === 0
          ? ["  no changes"]
          : plan.actions.map(
              (a) =>
                `  ${a.type === "create-blob" || a.type === "create-service" || a.type === "label-node" ? "+" : a.type.startsWith("remove") || a.type === "unlabel-node" ? "-" : "~"} ${describeAction(a)}`,
            );
      if (plan.blocked) body.push(`  ! blocked: ${plan.blocked.reason}: ${plan.blocked.message}`);
      return [head, ...body].join("\n");
    })
    .join("\n");
}
