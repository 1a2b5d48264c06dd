// The Reconciler, in controller-runtime's shape: one cache name and one frozen spec snapshot in, a
// result (when to look again) out, the cache's status written to CacheStates. It knows nothing of
// the queue, the watches or the resync: the Runner (runner/runner.ts) decides when it runs and
// guarantees one run per cache at a time.
//
// A cache in the snapshot is applied (observe → materials → desired → plan → apply → status → DTR);
// a cache owned in the Swarm but absent from it is torn down (teardown.ts).
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { CONTAINER_PATHS, generateHttpSecret, renderCacheConfig, type CacheSpec, type ResolvedCache } from "@dtrcache/crds";
import { legacyDtrLabels, type DtrConditionFields, type DtrReconciler } from "../dtr-reconcile/reconciler.js";
import { ControllerError } from "../errors.js";
import type { Logger } from "../logger.js";
import { applyPlan, type ApplyOutcome } from "../reconcile/apply.js";
import { computeConditions, runningTasks } from "../reconcile/conditions.js";
import { buildDesired, placementOf, specGeneration, type ContainerOptions } from "../reconcile/desired.js";
import { gatherMaterials, type DtrCaProvider } from "../reconcile/materials.js";
import { observeCache } from "../reconcile/observe.js";
import { labelUseKey, planCache, planTeardown, type ActualCache, type Plan, type PlanContext } from "../reconcile/planner.js";
import type { SettleState, SettleTracker } from "../reconcile/settle.js";
import { cancellableSwarm } from "../runner/cancellable-swarm.js";
import type { Clock } from "../runner/clock.js";
import { conditionOf, runningTaskNodes, setCondition, type CacheStatus } from "../status.js";
import type { SwarmApi, SwarmNode } from "../swarm/api.js";
import { SwarmError } from "../swarm/errors.js";
import { nodeStatusOf, type CacheState, type CacheStates } from "./cache-state.js";
import { teardownCache } from "./teardown.js";

export interface ReconcileRequest {
  readonly name: string;
  /** The spec as it was when this run began; nothing else is read for the cache's spec. */
  readonly snapshot: CacheSpec;
}

export interface ReconcileResult {
  /** Look at the cache again after this long (a rollout, settling tasks, a DTR retry due). */
  readonly requeueAfterMs?: number;
  readonly mode: "apply" | "teardown";
  readonly outcomes: readonly ApplyOutcome[];
}

export interface Reconciler {
  reconcile(request: ReconcileRequest, signal: AbortSignal): Promise<ReconcileResult>;
}

export interface CacheReconcilerOptions {
  readonly swarm: SwarmApi;
  readonly owner: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly states: CacheStates;
  /** Caches owned in the Swarm, shared with the runner and the spec tracker's empty-spec guard. */
  readonly owned: Set<string>;
  readonly settle: SettleTracker;
  readonly dtr?: DtrReconciler;
  readonly dtrCa?: DtrCaProvider;
  readonly container: (cache: ResolvedCache) => ContainerOptions;
  readonly keepRevisions: number;
  readonly rolloutPollMs: number;
  readonly teardownWaitMs: number;
}

/** Engine answers that no retry of the same spec can change. */
const SERVICE_TERMINAL_CODES = new Set(["INVALID", "NAME_TAKEN"]);
/** How long a plan blocked on something outside the controller (a missing node) waits for a look. */
const BLOCKED_REQUEUE_MS = 10_000;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The status problem for a failed apply: the engine's refusal, the write budget's, or any other error. */
function applyFailure(error: unknown): { reason: string; message: string } {
  if (error instanceof SwarmError && SERVICE_TERMINAL_CODES.has(error.code))
    return { reason: error.code === "INVALID" ? "InvalidSpec" : "NameTaken", message: error.message };
  // The write budget's refusal has its own reason: the cache is contended, not broken.
  const reason = error instanceof ControllerError && error.code === "CONTENDED" ? "Contended" : "ReconcileError";
  return { reason, message: errorMessage(error) };
}

interface StatusInput {
  /** The cache as in the reconcile's snapshot: replicas and node come from it, not from the current spec. */
  readonly cache: ResolvedCache;
  readonly generation: string;
  readonly plan: Plan;
  readonly actual: ActualCache;
  readonly settled: SettleState;
  readonly outcomes: readonly ApplyOutcome[];
  readonly problem: { reason: string; message: string } | undefined;
  readonly startedAt: number;
  readonly error?: unknown;
  readonly desiredRevisions?: { purpose: string; name: string }[];
  readonly nodeLabelled?: boolean;
  /** The swarm's nodes as this pass listed them: names the nodes the running tasks are on. */
  readonly nodes?: readonly SwarmNode[];
}

export class CacheReconciler implements Reconciler {
  /** http.secret of each config already read back, by config name (no inspect on no-op passes). */
  private readonly httpSecrets = new Map<string, string>();

  constructor(private readonly o: CacheReconcilerOptions) {}

  async reconcile(request: ReconcileRequest, signal: AbortSignal): Promise<ReconcileResult> {
    const swarm = cancellableSwarm(this.o.swarm, signal);
    const cache = request.snapshot.caches.find((c) => c.name === request.name);
    if (cache) return { ...(await this.apply(swarm, request.snapshot, cache, signal)), mode: "apply" };
    const log = this.o.logger.child({ reconcileId: randomUUID().slice(0, 8), cache: request.name, teardown: true });
    const outcomes = await teardownCache(
      { ...this.o, swarm, log, planContext: this.planContext(request.snapshot, request.name), setDtrCondition: (s, c) => this.setDtrCondition(s, c) },
      request.name,
      request.snapshot,
      signal,
    );
    return { mode: "teardown", outcomes };
  }

  /** Dry run of one cache: the same planner, nothing written. */
  async plan(snapshot: CacheSpec, name: string, signal: AbortSignal): Promise<Plan> {
    const swarm = this.o.swarm;
    const actual = await observeCache(swarm, this.o.owner, name);
    const nodes = await swarm.listNodes();
    const cache = snapshot.caches.find((c) => c.name === name);
    if (!cache) return planTeardown(actual, nodes, this.planContext(snapshot, name));
    const materials = await gatherMaterials(this.materialDeps(swarm), cache, snapshot, actual, signal);
    return planCache(
      buildDesired(this.o.owner, cache, materials, CONTAINER_PATHS, this.o.container(cache)),
      actual,
      nodes,
      this.planContext(snapshot, name, specGeneration(cache)),
    );
  }

  private materialDeps(swarm: SwarmApi) {
    return {
      swarm,
      owner: this.o.owner,
      render: renderCacheConfig,
      generateHttpSecret,
      now: () => this.o.clock.now(),
      httpSecrets: this.httpSecrets,
      ...(this.o.dtrCa ? { dtrCa: this.o.dtrCa } : {}),
    };
  }

  private planContext(snapshot: CacheSpec, name: string, generation?: string): PlanContext {
    const labelsInUse = new Set<string>();
    for (const c of snapshot.caches) {
      const p = placementOf(c);
      if (p.kind === "hostname") labelsInUse.add(labelUseKey(p.hostname, p.key));
    }
    const hold = generation !== undefined && this.o.states.peek(name)?.rolledBackGeneration === generation;
    return { owner: this.o.owner, labelsInUse, keepRevisions: this.o.keepRevisions, holdServiceUpdate: hold };
  }

  private async apply(
    swarm: SwarmApi,
    snapshot: CacheSpec,
    cache: ResolvedCache,
    signal: AbortSignal,
  ): Promise<{ requeueAfterMs?: number; outcomes: ApplyOutcome[] }> {
    const { owner, clock, dtr } = this.o;
    const name = cache.name;
    const generation = specGeneration(cache);
    const state = this.o.states.of(name, snapshot);
    const log = this.o.logger.child({ reconcileId: randomUUID().slice(0, 8), cache: name });
    if (state.terminalGeneration === generation) {
      log.debug({ generation }, "skipped: the engine rejected this spec; waiting for a change");
      return { outcomes: [] };
    }
    const startedAt = performance.now();
    // Until the DTR side has had its pass for this generation, its condition says nothing true.
    if (dtr && !dtr.passed(name, generation))
      this.setDtrCondition(state, { status: "Unknown", reason: "Syncing", message: "the DTR side of this spec has not been applied yet" });
    const [nodes, actual] = await Promise.all([swarm.listNodes(), observeCache(swarm, owner, name)]);
    const settled = this.o.settle.observe(name, actual.tasks, clock.now().getTime());
    const updateState = actual.service?.updateStatus?.state;
    if ((updateState === "rollback_completed" || updateState === "rollback_paused") && state.pushedGeneration === generation)
      state.rolledBackGeneration = generation;
    const materials = await gatherMaterials(this.materialDeps(swarm), cache, snapshot, actual, signal);
    const desired = buildDesired(owner, cache, materials, CONTAINER_PATHS, this.o.container(cache));
    const plan = planCache(desired, actual, nodes, this.planContext(snapshot, name, generation));
    if (plan.held)
      log.debug({ generation, fields: plan.held.diffs.map((d) => d.path) }, "Swarm rolled this spec back; not pushing it again until the spec changes");
    let outcomes: ApplyOutcome[] = [];
    const problem: { reason: string; message: string } | undefined = plan.blocked;
    try {
      outcomes = await applyPlan(swarm, owner, plan, desired, actual, log);
    } catch (error) {
      const terminal = error instanceof SwarmError && SERVICE_TERMINAL_CODES.has(error.code);
      if (terminal) state.terminalGeneration = generation;
      this.finishStatus(state, { cache, generation, plan, actual, nodes, settled, outcomes, problem: applyFailure(error), startedAt, error });
      if (terminal) log.error({ err: error.message, code: error.code }, "the engine rejected the cache; no retry until the spec changes");
      throw error;
    }
    const wroteService = outcomes.some((o) => o.result === "done" && (o.action.type === "create-service" || o.action.type === "update-service"));
    if (wroteService) {
      state.pushedGeneration = generation;
      delete state.rolledBackGeneration;
    }
    this.o.owned.add(name);
    this.finishStatus(state, {
      cache,
      generation,
      plan,
      actual,
      nodes,
      settled,
      outcomes,
      problem,
      startedAt,
      desiredRevisions: desired.blobs.map((b) => ({ purpose: b.purpose, name: b.name })),
      nodeLabelled: plan.blocked === undefined,
    });

    // The DTR side runs after the Swarm objects are in place; its failure never blocks Swarm. It
    // has its own record, back-off per user and periodic verification (dtr-reconcile/).
    // Make-before-break (defect 8): a new generation (a new cache, a host or port change) reaches
    // DTR only once the Swarm side is Ready — converged and its tasks settled — so DTR never
    // redirects pulls to a port with nothing behind it. Once DTR has had this generation, its
    // verification and per-user retries go on whatever the tasks do.
    let dtrRetryMs: number | undefined;
    const ready = conditionOf(state.status, "Ready")?.status === "True";
    if (dtr && plan.rollout !== "rolled-back" && !ready && !dtr.passed(name, generation)) {
      this.setDtrCondition(state, {
        status: "Unknown",
        reason: "WaitingForCache",
        message: "DTR is pointed at this spec's cache once its tasks run and have settled",
      });
    } else if (dtr && plan.rollout !== "rolled-back") {
      const outcome = await dtr.reconcile(cache, generation, legacyDtrLabels(actual.service?.labels), signal);
      this.setDtrCondition(state, outcome.condition, outcome.status);
      dtrRetryMs = outcome.requeueAfterMs;
    } else if (!dtr) {
      this.setDtrCondition(state, { status: "Unknown", reason: "NotConfigured", message: "no DTR client is wired" });
    }

    const wrote = outcomes.some((o) => o.result === "done");
    // Tasks still inside their settle time are looked at again like a rollout in progress.
    const unsettled = wrote || plan.rollout !== "converged" || settled.waitMs > 0;
    // A rolled-back or paused update waits for a spec change (or the resync), not for polling.
    const hopeless = plan.rollout === "rolled-back" || plan.rollout === "paused";
    const swarmRequeue = unsettled && !hopeless ? this.o.rolloutPollMs : plan.blocked ? BLOCKED_REQUEUE_MS : undefined;
    const requeueAfterMs = swarmRequeue === undefined ? dtrRetryMs : dtrRetryMs === undefined ? swarmRequeue : Math.min(swarmRequeue, dtrRetryMs);
    return { ...(requeueAfterMs === undefined ? {} : { requeueAfterMs }), outcomes };
  }

  private setDtrCondition(state: CacheState, c: DtrConditionFields, dtr?: CacheStatus["dtr"]): void {
    state.status = {
      ...state.status,
      conditions: setCondition(state.status.conditions, { type: "DtrSynced", ...c }, this.o.clock.now()),
      dtr: dtr ?? state.status.dtr,
    };
  }

  private finishStatus(state: CacheState, input: StatusInput): void {
    const now = this.o.clock.now();
    const replicas = input.cache.spec.replicas;
    const wroteService = input.outcomes.some((o) => o.result === "done" && (o.action.type === "create-service" || o.action.type === "update-service"));
    const conditions = computeConditions(
      state.status.conditions,
      {
        rollout: input.plan.rollout,
        ...(input.actual.service ? { service: input.actual.service } : {}),
        tasks: input.actual.tasks,
        replicas,
        wroteService,
        settle: input.settled,
        ...(input.problem ? { problem: input.problem } : {}),
      },
      now,
    );
    const mounted = input.actual.service?.spec.TaskTemplate.ContainerSpec;
    const revisions = input.desiredRevisions ?? [
      ...(mounted?.Configs ?? []).map((c) => ({ purpose: "config", name: c.ConfigName })),
      ...(mounted?.Secrets ?? []).map((s) => ({ purpose: "secret", name: s.SecretName })),
    ];
    state.status = {
      ...state.status,
      observedGeneration: input.generation,
      generation: input.generation,
      terminating: false,
      conditions,
      node: nodeStatusOf(input.cache, input.nodeLabelled ?? state.status.node.labelled),
      revisions,
      tasks: {
        running: runningTasks(input.actual.tasks),
        desired: replicas,
        ...(input.nodes ? { nodes: runningTaskNodes(input.actual.tasks, input.nodes) } : {}),
      },
      lastReconcile: {
        at: now.toISOString(),
        durationMs: Math.round(performance.now() - input.startedAt),
        actions: input.outcomes.filter((o) => o.result === "done").length,
        ...(input.error ? { error: errorMessage(input.error) } : {}),
      },
    };
  }
}
