// From an observation to the Ready / Progressing / Degraded conditions. Pure. Swarm's own words
// (update status message, task error such as "no suitable node ...") are surfaced as messages.
import type { SwarmTask, SwarmService } from "../swarm/api.js";
import { setCondition, type Condition } from "../status.js";
import { ROLLOUT_HASH } from "./labels.js";
import type { RolloutState } from "./planner.js";
import type { SettleState } from "./settle.js";

export interface ConditionInput {
  readonly rollout: RolloutState;
  readonly service?: SwarmService;
  readonly tasks: readonly SwarmTask[];
  readonly replicas: number;
  /** The reconcile just created or updated the service. */
  readonly wroteService: boolean;
  readonly problem?: { readonly reason: string; readonly message: string };
  /** How many running tasks have stayed running past the settle time (settle.ts). */
  readonly settle: SettleState;
}

const WAITING = new Set(["new", "pending", "assigned", "accepted", "preparing", "ready", "starting"]);

export function runningTasks(tasks: readonly SwarmTask[]): number {
  return tasks.filter((t) => t.desiredState === "running" && t.state === "running").length;
}

/** A reason to call the service stuck, in Swarm's words, or undefined. */
export function taskTrouble(tasks: readonly SwarmTask[], replicas: number): { reason: string; message: string } | undefined {
  if (runningTasks(tasks) >= replicas) return undefined;
  const pending = tasks.find(
    (t) => t.desiredState === "running" && WAITING.has(t.state) && /no suitable node|insufficient resources/i.test(`${t.error ?? ""} ${t.message}`),
  );
  if (pending) return { reason: "NoSuitableNode", message: pending.error || pending.message };
  const failed = [...tasks]
    .filter((t) => (t.state === "failed" || t.state === "rejected") && (t.error || t.message))
    .sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1))[0];
  if (failed) return { reason: "TaskFailed", message: failed.error || failed.message };
  return undefined;
}

/** The newest failure of a task made from the service's current spec, e.g. a cache exiting at start. */
function lastFailureOfSpec(service: SwarmService | undefined, tasks: readonly SwarmTask[]): string | undefined {
  const hash = service?.spec.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH];
  if (hash === undefined) return undefined;
  const failed = tasks
    .filter((t) => t.state === "failed" && t.containerLabels?.[ROLLOUT_HASH] === hash)
    .sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1))[0];
  return failed ? failed.error || failed.message : undefined;
}

/** What a rollout is doing, in words: "Rolling out: 1/1 tasks running, waiting 10s to settle". */
function rolloutMessage(input: ConditionInput, running: number): string {
  const base = `Rolling out: ${running}/${input.replicas} tasks running`;
  const failure = lastFailureOfSpec(input.service, input.tasks);
  const failed = failure ? ` (a task of this spec failed: ${failure})` : "";
  if (input.rollout === "updating") return `${base}, Swarm's update in progress${failed}`;
  if (input.rollout === "converged" && running >= input.replicas && input.settle.settled < input.replicas)
    return `${base}, waiting ${Math.ceil(input.settle.waitMs / 1000)}s to settle${failed}`;
  return `${base}${failed}`;
}

export function computeConditions(previous: readonly Condition[], input: ConditionInput, now: Date): Condition[] {
  let conditions = [...previous];
  const running = runningTasks(input.tasks);
  const trouble = taskTrouble(input.tasks, input.replicas);
  const updateMessage = input.service?.updateStatus?.message ?? "";

  let degraded: { reason: string; message: string } | undefined = input.problem;
  if (!degraded && input.rollout === "rolled-back") degraded = { reason: "RolledBack", message: updateMessage || "Swarm rolled the update back" };
  if (!degraded && input.rollout === "rolling-back") degraded = { reason: "RollingBack", message: updateMessage || "Swarm is rolling the update back" };
  if (!degraded && input.rollout === "paused") degraded = { reason: "UpdatePaused", message: updateMessage || "the update is paused" };
  if (!degraded && trouble) degraded = trouble;

  // Converged in Swarm's eyes is not enough: the new tasks must also have stayed running past the
  // settle time, or a cache that exits at start would be Ready for the instant it runs (defect 11).
  const settling = !input.wroteService && input.rollout === "converged" && running >= input.replicas && input.settle.settled < input.replicas;
  const progressing = input.wroteService || input.rollout === "updating" || input.rollout === "starting" || input.rollout === "absent" || settling;
  const ready = !input.wroteService && input.rollout === "converged" && running >= input.replicas && !settling;
  const progressReason = input.wroteService ? "RolloutStarted" : settling ? "Settling" : "RolloutInProgress";
  const notReady = degraded
    ? { reason: degraded.reason, message: `${running}/${input.replicas} tasks running` }
    : progressing
      ? { reason: "RollingOut", message: rolloutMessage(input, running) }
      : { reason: "NotReady", message: `${running}/${input.replicas} tasks running` };

  conditions = setCondition(
    conditions,
    degraded ? { type: "Degraded", status: "True", ...degraded } : { type: "Degraded", status: "False", reason: "AsExpected", message: "" },
    now,
  );
  conditions = setCondition(
    conditions,
    progressing
      ? { type: "Progressing", status: "True", reason: progressReason, message: rolloutMessage(input, running) }
      : { type: "Progressing", status: "False", reason: "RolloutComplete", message: "" },
    now,
  );
  conditions = setCondition(
    conditions,
    ready
      ? { type: "Ready", status: "True", reason: "TasksRunning", message: `${running}/${input.replicas} tasks running` }
      : { type: "Ready", status: "False", ...notReady },
    now,
  );
  return conditions;
}
