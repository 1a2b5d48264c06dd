// Teardown of a cache that left the spec: DTR first (from the DTR reconciler's own record), then
// the service, a bounded wait for its tasks to stop, its configs and secrets, node-label GC. Every
// step is derived from what is observed, so a crash or an abort at any point resumes where it
// stopped on the next pass.
import type { CacheSpec } from "@dtrcache/crds";
import type { DtrConditionFields, DtrReconciler } from "../dtr-reconcile/reconciler.js";
import { ControllerError } from "../errors.js";
import type { Logger } from "../logger.js";
import { applyPlan, type ApplyOutcome } from "../reconcile/apply.js";
import { observeCache } from "../reconcile/observe.js";
import { planTeardown, type Plan, type PlanContext } from "../reconcile/planner.js";
import type { SettleTracker } from "../reconcile/settle.js";
import { sleep, type Clock } from "../runner/clock.js";
import { setCondition } from "../status.js";
import type { SwarmApi } from "../swarm/api.js";
import { isSwarmError } from "../swarm/errors.js";
import type { CacheState, CacheStates } from "./cache-state.js";

export interface TeardownDeps {
  /** The run's SwarmApi (its calls end when the run is aborted). */
  readonly swarm: SwarmApi;
  readonly owner: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly states: CacheStates;
  readonly owned: Set<string>;
  readonly settle: SettleTracker;
  readonly dtr?: DtrReconciler;
  readonly planContext: PlanContext;
  readonly teardownWaitMs: number;
  readonly setDtrCondition: (state: CacheState, condition: DtrConditionFields) => void;
}

/** How often a removed service's tasks are listed while waiting for them to stop. */
const TASKS_GONE_POLL_MS = 200;

export async function teardownCache(d: TeardownDeps, name: string, snapshot: CacheSpec, signal: AbortSignal): Promise<ApplyOutcome[]> {
  const { swarm, owner, log, clock } = d;
  const [nodes, actual] = await Promise.all([swarm.listNodes(), observeCache(swarm, owner, name)]);
  const state = d.states.of(name, snapshot);
  const now = clock.now();
  state.status = {
    ...state.status,
    terminating: true,
    conditions: setCondition(
      setCondition(
        state.status.conditions,
        { type: "Progressing", status: "True", reason: "Terminating", message: "the cache left the spec; removing its objects" },
        now,
      ),
      { type: "Ready", status: "False", reason: "Terminating", message: "" },
      now,
    ),
  };
  const outcomes: ApplyOutcome[] = [];
  // DTR first (users reset, registration deleted) while the service still answers, from the
  // DTR reconciler's record: an empty spec names neither the cache nor its DTR (defect 4). A
  // failure does not stop the Swarm side; the record stays and the teardown is retried.
  const dtrTeardown = d.dtr ? await d.dtr.teardown(name, signal) : { done: true };
  if (dtrTeardown.condition) {
    d.setDtrCondition(state, dtrTeardown.condition);
    log.warn({ reason: dtrTeardown.condition.reason, err: dtrTeardown.condition.message }, "DTR removal failed; continuing with the Swarm side");
  }
  if (actual.service) {
    const serviceOnly: Plan = { ...planTeardown(actual, nodes, d.planContext), actions: [{ type: "remove-service", serviceId: actual.service.id, name }] };
    outcomes.push(...(await applyPlan(swarm, owner, serviceOnly, undefined, actual, log)));
    await waitTasksGone(swarm, clock, actual.service.id, d.teardownWaitMs, signal);
  }
  const after = await observeCache(swarm, owner, name);
  const rest = planTeardown(after, await swarm.listNodes(), d.planContext);
  outcomes.push(...(await applyPlan(swarm, owner, rest, undefined, after, log)));
  const left = await observeCache(swarm, owner, name);
  if (left.service || left.configs.length > 0 || left.secrets.length > 0) {
    throw new ControllerError("TEARDOWN_PENDING", `cache ${name}: ${left.configs.length + left.secrets.length} config(s)/secret(s) still in use; retrying`);
  }
  if (!dtrTeardown.done)
    throw new ControllerError("TEARDOWN_PENDING", `cache ${name}: the DTR side is not removed yet (${dtrTeardown.condition?.message ?? "pending"}); retrying`);
  d.states.delete(name);
  d.settle.forget(name);
  d.owned.delete(name);
  log.info({ actions: outcomes.length }, "cache removed");
  return outcomes;
}

/** Waits (bounded, on the clock, abortable) until none of the service's tasks runs any more. */
async function waitTasksGone(swarm: SwarmApi, clock: Clock, serviceId: string, boundMs: number, signal: AbortSignal): Promise<void> {
  // Bounded by a number of looks rather than a deadline: a test clock whose time stands still
  // still ends the wait.
  for (let looks = Math.ceil(boundMs / TASKS_GONE_POLL_MS); looks > 0; looks--) {
    let tasks;
    try {
      tasks = await swarm.listTasks(serviceId);
    } catch (error) {
      if (isSwarmError(error, "NOT_FOUND")) return;
      throw error;
    }
    if (tasks.every((t) => t.state !== "running" && t.state !== "starting" && t.state !== "preparing")) return;
    await sleep(clock, TASKS_GONE_POLL_MS, signal);
  }
}
