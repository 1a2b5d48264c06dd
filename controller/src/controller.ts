// The controller: wires the spec source, the work queue, Docker events, the periodic resync and
// the per-cache reconcile (observe → materials → desired → plan → apply → status). Everything it
// touches comes in through createController's options, so tests run it against a fake or a
// recording wrapper and the CLI wires the real engine.
import { randomUUID } from "node:crypto";
import { CONTAINER_PATHS, formatIssue, generateHttpSecret, renderCacheConfig, type CacheSpec, type LoadResult, type ResolvedCache } from "@dtrcache/crds";
import type { DtrSync } from "./dtr/sync.js";
import { DtrReconciler, legacyDtrLabels, type DtrConditionFields } from "./dtr-reconcile/reconciler.js";
import { ControllerError } from "./errors.js";
import { silentLogger, type Logger } from "./logger.js";
import { WorkQueue, type ErrorClass, type WorkResult } from "./queue.js";
import { applyPlan, type ApplyOutcome } from "./reconcile/apply.js";
import { computeConditions, runningTasks } from "./reconcile/conditions.js";
import { buildDesired, placementOf, specGeneration, type ContainerOptions, type ContainerPaths } from "./reconcile/desired.js";
import { gatherMaterials, type DtrCaProvider } from "./reconcile/materials.js";
import { observeCache, observeOwnedCaches } from "./reconcile/observe.js";
import { labelUseKey, planCache, planTeardown, type Plan, type PlanContext } from "./reconcile/planner.js";
import { SettleTracker, type SettleState } from "./reconcile/settle.js";
import type { SpecSource } from "./source.js";
import { conditionOf, setCondition, type CacheStatus, type ControllerStatus, type SpecStatus } from "./status.js";
import type { EventSubscription, SwarmApi, SwarmEvent } from "./swarm/api.js";
import { isSwarmError, SwarmError } from "./swarm/errors.js";

export interface Clock {
  now(): Date;
}

export interface ControllerOptions {
  readonly docker: SwarmApi;
  readonly specSource: SpecSource;
  /** The DTR side; undefined until it is wired (DtrSynced stays Unknown). */
  readonly dtrSync?: DtrSync;
  /** DTR CA for `trust.fetchCA` (the DTR side fetches it). */
  readonly dtrCa?: DtrCaProvider;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Value of the owner label; two controllers with different ids never touch each other's objects. */
  readonly id?: string;
  /** Accept a spec without caches even though caches exist (tears them all down). */
  readonly allowEmpty?: boolean;
  readonly resyncIntervalMs?: number;
  /** Revisions of each config/secret kept after a rollout, current included. */
  readonly keepRevisions?: number;
  /** How the cache container is started; per cache, since images differ. */
  readonly container?: ContainerOptions | ((cache: ResolvedCache) => ContainerOptions);
  readonly concurrency?: number;
  /** How often an unfinished rollout is looked at again. */
  readonly rolloutPollMs?: number;
  /**
   * How long a new task must stay running (seen by this controller, on `clock`) before the cache is
   * Ready (default 10 s): a cache that exits at start is running for an instant only.
   */
  readonly settleMs?: number;
  /** Bound on waiting for a removed service's tasks to disappear during teardown. */
  readonly teardownWaitMs?: number;
  /** How often a cache already in sync with DTR is verified again (default 60 s). */
  readonly dtrResyncMs?: number;
  /** Called after every reconcile of one cache (metrics); must not throw. */
  readonly onReconcile?: (event: ReconcileEvent) => void;
}

export interface ReconcileEvent {
  readonly cache: string;
  readonly mode: "apply" | "teardown";
  readonly outcome: "success" | "error";
  readonly durationMs: number;
  /** The stable code of the error, when the reconcile failed. */
  readonly errorCode?: string;
  /** Cache names waiting in the queue after this reconcile. */
  readonly queueDepth: number;
}

export interface ReconcileReport {
  readonly cache: string;
  readonly mode: "apply" | "teardown" | "skipped";
  readonly actions: readonly ApplyOutcome[];
  readonly error?: string;
}

export interface Controller {
  /** Checks the engine is a manager, loads the spec, starts watching, events, resync and the queue. */
  start(): Promise<void>;
  /** Stops taking work, finishes the reconcile in hand, closes watchers and the event stream. */
  stop(): Promise<void>;
  /** One full pass over every cache (spec ∪ owned), in this call, without the queue's retries. */
  reconcileOnce(): Promise<ReconcileReport[]>;
  /** Dry run: the plan for every cache, computed by the same planner, nothing written. */
  plan(): Promise<Plan[]>;
  status(): ControllerStatus;
  /** The last good spec, the one being applied (undefined until one has loaded). */
  spec(): CacheSpec | undefined;
  /** Resolves once the queue has nothing ready or running. */
  idle(): Promise<void>;
}

interface CacheState {
  status: CacheStatus;
  terminalGeneration?: string;
  pushedGeneration?: string;
  rolledBackGeneration?: string;
}

const SERVICE_TERMINAL_CODES = new Set(["INVALID", "NAME_TAKEN"]);
const BLOB_NAME = /^(.+)-(config|cert|key|ca)-[0-9a-f]{8}$/;

export function classifyError(error: unknown): ErrorClass {
  if (error instanceof SwarmError) {
    if (error.code === "CONFLICT") return "immediate";
    if (error.code === "INVALID" || error.code === "NAME_TAKEN" || error.code === "NOT_MANAGER") return "terminal";
    return "backoff";
  }
  if (error instanceof ControllerError) return error.retryable ? "backoff" : "terminal";
  return "backoff";
}

/** Freezes a loaded spec all the way down (plain data from the loader: objects and arrays). */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value) && !ArrayBuffer.isView(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function createController(options: ControllerOptions): Controller {
  const swarm = options.docker;
  const owner = options.id ?? "dtrcache";
  const logger = options.logger ?? silentLogger;
  const clock: Clock = options.clock ?? { now: () => new Date() };
  const keepRevisions = options.keepRevisions ?? 2;
  const rolloutPollMs = options.rolloutPollMs ?? 1000;
  const dtrResyncMs = options.dtrResyncMs ?? 60_000;
  const paths: ContainerPaths = CONTAINER_PATHS;
  const settle = new SettleTracker(options.settleMs ?? 10_000);
  const httpSecrets = new Map<string, string>();
  const caches = new Map<string, CacheState>();
  const knownOwned = new Set<string>();
  const locks = new Map<string, Promise<unknown>>();
  const dtrReconciler = options.dtrSync ? new DtrReconciler({ swarm, owner, dtrSync: options.dtrSync, logger, now: () => clock.now().getTime(), verifyEveryMs: dtrResyncMs }) : undefined;

  let spec: CacheSpec | undefined;
  let specStatus: SpecStatus = { path: options.specSource.description, loaded: false, files: [], errors: [] };
  let engine: ControllerStatus["engine"] = { reachable: false, manager: false };
  let started = false;
  let stopping = false;
  let stopWatching: (() => Promise<void>) | undefined;
  let events: EventSubscription | undefined;
  let eventRetry: NodeJS.Timeout | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;

  const containerFor = (cache: ResolvedCache): ContainerOptions => (typeof options.container === "function" ? options.container(cache) : (options.container ?? {}));

  function nodeStatusOf(cache: ResolvedCache | undefined, labelled: boolean): CacheStatus["node"] {
    const placement = cache ? placementOf(cache) : undefined;
    return placement ? { ...(placement.kind === "hostname" ? { hostname: placement.hostname } : {}), label: `${placement.key}=${placement.value}`, labelled } : { label: "", labelled: false };
  }

  function stateOf(name: string, snapshot: CacheSpec | undefined = spec): CacheState {
    let s = caches.get(name);
    if (!s) {
      const cache = snapshot?.caches.find((c) => c.name === name);
      s = {
        status: {
          name,
          observedGeneration: "",
          generation: cache ? specGeneration(cache) : "",
          terminating: !cache,
          conditions: [],
          node: nodeStatusOf(cache, false),
          revisions: [],
          tasks: { running: 0, desired: cache?.spec.replicas ?? 0 },
          dtr: { users: [] },
        },
      };
      caches.set(name, s);
    }
    return s;
  }

  function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(name) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    locks.set(name, settled);
    void settled.then(() => {
      if (locks.get(name) === settled) locks.delete(name);
    });
    return next;
  }

  function planContext(snapshot: CacheSpec, name: string, generation?: string): PlanContext {
    const labelsInUse = new Set<string>();
    for (const c of snapshot.caches) {
      const p = placementOf(c);
      if (p.kind === "hostname") labelsInUse.add(labelUseKey(p.hostname, p.key));
    }
    const s = caches.get(name);
    const hold = generation !== undefined && s?.rolledBackGeneration === generation;
    return { owner, labelsInUse, keepRevisions, holdServiceUpdate: hold };
  }

  function markEngine(error?: unknown): void {
    if (error === undefined) engine = { reachable: true, manager: true };
    else if (isSwarmError(error, "UNAVAILABLE")) engine = { reachable: false, manager: engine.manager, message: errorMessage(error) };
  }

  /**
   * One cache, from one spec snapshot: `snapshot` is the spec as it was when this reconcile began
   * (frozen at load), and nothing below reads the controller's current spec, which an edit may
   * replace while this reconcile awaits the engine (issue 10, defect 7).
   */
  async function reconcileApply(snapshot: CacheSpec, cache: ResolvedCache, signal: AbortSignal): Promise<{ result: WorkResult; outcomes: ApplyOutcome[] }> {
    const name = cache.name;
    const generation = specGeneration(cache);
    const state = stateOf(name, snapshot);
    const log = logger.child({ reconcileId: randomUUID().slice(0, 8), cache: name });
    if (state.terminalGeneration === generation) {
      log.debug({ generation }, "skipped: the engine rejected this spec; waiting for a change");
      return { result: {}, outcomes: [] };
    }
    const startedAt = Date.now();
    // Until the DTR side has had its pass for this generation, its condition says nothing true.
    if (dtrReconciler && !dtrReconciler.passed(name, generation)) setDtrCondition(state, { status: "Unknown", reason: "Syncing", message: "the DTR side of this spec has not been applied yet" });
    const [nodes, actual] = await Promise.all([swarm.listNodes(), observeCache(swarm, owner, name)]);
    const settled = settle.observe(name, actual.tasks, clock.now().getTime());
    const updateState = actual.service?.updateStatus?.state;
    if ((updateState === "rollback_completed" || updateState === "rollback_paused") && state.pushedGeneration === generation) state.rolledBackGeneration = generation;
    const materials = await gatherMaterials({ swarm, owner, render: renderCacheConfig, generateHttpSecret, now: () => clock.now(), httpSecrets, ...(options.dtrCa ? { dtrCa: options.dtrCa } : {}) }, cache, snapshot, actual, signal);
    const desired = buildDesired(owner, cache, materials, paths, containerFor(cache));
    const plan = planCache(desired, actual, nodes, planContext(snapshot, name, generation));
    if (plan.held) log.debug({ generation, fields: plan.held.diffs.map((d) => d.path) }, "Swarm rolled this spec back; not pushing it again until the spec changes");
    let outcomes: ApplyOutcome[] = [];
    let problem: { reason: string; message: string } | undefined = plan.blocked;
    try {
      outcomes = await applyPlan(swarm, owner, plan, desired, actual, log);
    } catch (error) {
      if (error instanceof SwarmError && SERVICE_TERMINAL_CODES.has(error.code)) {
        state.terminalGeneration = generation;
        problem = { reason: error.code === "INVALID" ? "InvalidSpec" : "NameTaken", message: error.message };
        finishStatus(state, { cache, generation, plan, actual, settled, outcomes, problem, startedAt, error });
        log.error({ err: error.message, code: error.code }, "the engine rejected the cache; no retry until the spec changes");
      } else {
        // The write budget's refusal has its own reason: the cache is contended, not broken.
        const reason = error instanceof ControllerError && error.code === "CONTENDED" ? "Contended" : "ReconcileError";
        finishStatus(state, { cache, generation, plan, actual, settled, outcomes, problem: { reason, message: errorMessage(error) }, startedAt, error });
      }
      throw error;
    }
    const wroteService = outcomes.some((o) => o.result === "done" && (o.action.type === "create-service" || o.action.type === "update-service"));
    if (wroteService) {
      state.pushedGeneration = generation;
      delete state.rolledBackGeneration;
    }
    knownOwned.add(name);
    finishStatus(state, { cache, generation, plan, actual, settled, outcomes, problem, startedAt, desiredRevisions: desired.blobs.map((b) => ({ purpose: b.purpose, name: b.name })), nodeLabelled: plan.blocked === undefined });

    // The DTR side runs after the Swarm objects are in place; its failure never blocks Swarm. It
    // has its own record, back-off per user and periodic verification (dtr-reconcile/).
    // Make-before-break (defect 8): a new generation (a new cache, a host or port change) reaches
    // DTR only once the Swarm side is Ready — converged and its tasks settled — so DTR never
    // redirects pulls to a port with nothing behind it. Once DTR has had this generation, its
    // verification and per-user retries go on whatever the tasks do.
    let dtrRetryMs: number | undefined;
    const ready = conditionOf(state.status, "Ready")?.status === "True";
    if (dtrReconciler && plan.rollout !== "rolled-back" && !ready && !dtrReconciler.passed(name, generation)) {
      setDtrCondition(state, { status: "Unknown", reason: "WaitingForCache", message: "DTR is pointed at this spec's cache once its tasks run and have settled" });
    } else if (dtrReconciler && plan.rollout !== "rolled-back") {
      const dtr = await dtrReconciler.reconcile(cache, generation, legacyDtrLabels(actual.service?.labels), signal);
      setDtrCondition(state, dtr.condition, dtr.status);
      dtrRetryMs = dtr.requeueAfterMs;
    } else if (!dtrReconciler) {
      setDtrCondition(state, { status: "Unknown", reason: "NotConfigured", message: "no DTR client is wired" });
    }

    const wrote = outcomes.some((o) => o.result === "done");
    // Tasks still inside their settle time are looked at again like a rollout in progress.
    const unsettled = wrote || plan.rollout !== "converged" || settled.waitMs > 0;
    // A rolled-back or paused update waits for a spec change (or the resync), not for polling.
    const hopeless = plan.rollout === "rolled-back" || plan.rollout === "paused";
    const swarmRequeue = unsettled && !hopeless ? rolloutPollMs : plan.blocked ? 10_000 : undefined;
    const requeueAfterMs = swarmRequeue === undefined ? dtrRetryMs : dtrRetryMs === undefined ? swarmRequeue : Math.min(swarmRequeue, dtrRetryMs);
    return { result: requeueAfterMs === undefined ? {} : { requeueAfterMs }, outcomes };
  }

  function setDtrCondition(state: CacheState, c: DtrConditionFields, dtr?: CacheStatus["dtr"]): void {
    state.status = { ...state.status, conditions: setCondition(state.status.conditions, { type: "DtrSynced", ...c }, clock.now()), dtr: dtr ?? state.status.dtr };
  }

  function finishStatus(
    state: CacheState,
    input: {
      /** The cache as in the reconcile's snapshot: replicas and node come from it, not from the current spec. */
      cache: ResolvedCache;
      generation: string;
      plan: Plan;
      actual: Awaited<ReturnType<typeof observeCache>>;
      settled: SettleState;
      outcomes: readonly ApplyOutcome[];
      problem: { reason: string; message: string } | undefined;
      startedAt: number;
      error?: unknown;
      desiredRevisions?: { purpose: string; name: string }[];
      nodeLabelled?: boolean;
    },
  ): void {
    const replicas = input.cache.spec.replicas;
    const wroteService = input.outcomes.some((o) => o.result === "done" && (o.action.type === "create-service" || o.action.type === "update-service"));
    const conditions = computeConditions(state.status.conditions, { rollout: input.plan.rollout, ...(input.actual.service ? { service: input.actual.service } : {}), tasks: input.actual.tasks, replicas, wroteService, settle: input.settled, ...(input.problem ? { problem: input.problem } : {}) }, clock.now());
    const mounted = input.actual.service?.spec.TaskTemplate.ContainerSpec;
    const revisions = input.desiredRevisions ?? [...(mounted?.Configs ?? []).map((c) => ({ purpose: "config", name: c.ConfigName })), ...(mounted?.Secrets ?? []).map((s) => ({ purpose: "secret", name: s.SecretName }))];
    state.status = {
      ...state.status,
      observedGeneration: input.generation,
      generation: input.generation,
      terminating: false,
      conditions,
      node: nodeStatusOf(input.cache, input.nodeLabelled ?? state.status.node.labelled),
      revisions,
      tasks: { running: runningTasks(input.actual.tasks), desired: replicas },
      lastReconcile: { at: clock.now().toISOString(), durationMs: Date.now() - input.startedAt, actions: input.outcomes.filter((o) => o.result === "done").length, ...(input.error ? { error: errorMessage(input.error) } : {}) },
    };
  }

  async function reconcileTeardown(snapshot: CacheSpec, name: string, signal: AbortSignal): Promise<{ result: WorkResult; outcomes: ApplyOutcome[] }> {
    const log = logger.child({ reconcileId: randomUUID().slice(0, 8), cache: name, teardown: true });
    const [nodes, actual] = await Promise.all([swarm.listNodes(), observeCache(swarm, owner, name)]);
    const ctx = planContext(snapshot, name);
    const state = stateOf(name, snapshot);
    state.status = { ...state.status, terminating: true, conditions: setCondition(setCondition(state.status.conditions, { type: "Progressing", status: "True", reason: "Terminating", message: "the cache left the spec; removing its objects" }, clock.now()), { type: "Ready", status: "False", reason: "Terminating", message: "" }, clock.now()) };
    const outcomes: ApplyOutcome[] = [];
    // DTR first (users reset, registration deleted) while the service still answers, from the
    // DTR reconciler's record: an empty spec names neither the cache nor its DTR (defect 4). A
    // failure does not stop the Swarm side; the record stays and the teardown is retried.
    const dtrTeardown = dtrReconciler ? await dtrReconciler.teardown(name, signal) : { done: true };
    if (dtrTeardown.condition) {
      setDtrCondition(state, dtrTeardown.condition);
      log.warn({ reason: dtrTeardown.condition.reason, err: dtrTeardown.condition.message }, "DTR removal failed; continuing with the Swarm side");
    }
    if (actual.service) {
      const serviceOnly: Plan = { ...planTeardown(actual, nodes, ctx), actions: [{ type: "remove-service", serviceId: actual.service.id, name }] };
      outcomes.push(...(await applyPlan(swarm, owner, serviceOnly, undefined, actual, log)));
      await waitTasksGone(actual.service.id, options.teardownWaitMs ?? 30_000);
    }
    const after = await observeCache(swarm, owner, name);
    const rest = planTeardown(after, await swarm.listNodes(), ctx);
    outcomes.push(...(await applyPlan(swarm, owner, rest, undefined, after, log)));
    const left = await observeCache(swarm, owner, name);
    if (left.service || left.configs.length > 0 || left.secrets.length > 0) {
      throw new ControllerError("TEARDOWN_PENDING", `cache ${name}: ${left.configs.length + left.secrets.length} config(s)/secret(s) still in use; retrying`);
    }
    if (!dtrTeardown.done) throw new ControllerError("TEARDOWN_PENDING", `cache ${name}: the DTR side is not removed yet (${dtrTeardown.condition?.message ?? "pending"}); retrying`);
    caches.delete(name);
    settle.forget(name);
    knownOwned.delete(name);
    log.info({ actions: outcomes.length }, "cache removed");
    return { result: {}, outcomes };
  }

  async function waitTasksGone(serviceId: string, boundMs: number): Promise<void> {
    const deadline = Date.now() + boundMs;
    while (Date.now() < deadline) {
      let tasks;
      try {
        tasks = await swarm.listTasks(serviceId);
      } catch (error) {
        if (isSwarmError(error, "NOT_FOUND")) return;
        throw error;
      }
      if (tasks.every((t) => t.state !== "running" && t.state !== "starting" && t.state !== "preparing")) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async function reconcileKey(name: string, signal: AbortSignal): Promise<{ result: WorkResult; outcomes: ApplyOutcome[]; mode: "apply" | "teardown" | "skipped" }> {
    if (spec === undefined) {
      // No spec has loaded yet (a broken or refused file at start-up): "not in the spec" means
      // nothing then, so owned caches are left exactly as they are.
      logger.warn({ cache: name }, "no valid spec loaded; leaving the cache as it is");
      return { result: {}, outcomes: [], mode: "skipped" };
    }
    return withLock(name, async () => {
      // The snapshot is taken when the run begins (not while it waited for the lock), and this run
      // reads nothing else; a later load re-queues the cache.
      const loaded = spec;
      if (loaded === undefined) throw new ControllerError("SPEC_INVALID", "no spec loaded"); // a loaded spec is never unloaded
      const startedAt = Date.now();
      const cache = loaded.caches.find((c) => c.name === name);
      const mode = cache ? ("apply" as const) : ("teardown" as const);
      const report = (outcome: "success" | "error", error?: unknown): void => {
        const code = (error as { code?: unknown } | undefined)?.code;
        const errorCode = outcome === "error" ? (typeof code === "string" ? code : "UNKNOWN") : undefined;
        options.onReconcile?.({ cache: name, mode, outcome, durationMs: Date.now() - startedAt, queueDepth: queue.length, ...(errorCode !== undefined ? { errorCode } : {}) });
      };
      try {
        const out = cache ? { ...(await reconcileApply(loaded, cache, signal)), mode } : { ...(await reconcileTeardown(loaded, name, signal)), mode };
        markEngine();
        report("success");
        return out;
      } catch (error) {
        markEngine(error);
        report("error", error);
        throw error;
      }
    });
  }

  const queue = new WorkQueue({
    worker: async (key, signal) => (await reconcileKey(key, signal)).result,
    classify: classifyError,
    concurrency: options.concurrency ?? 2,
    onError: (key, error, klass, retryIn) => {
      const level = klass === "immediate" ? "debug" : "warn";
      logger[level]({ cache: key, err: errorMessage(error), code: (error as { code?: unknown }).code, retry: klass, retryInMs: retryIn }, "reconcile failed");
    },
  });

  /** Loads the spec; a bad or accidentally empty spec keeps the last good one. Returns changed names. */
  async function loadSpec(): Promise<boolean> {
    let result: LoadResult;
    try {
      result = await options.specSource.load();
    } catch (error) {
      result = { ok: false, issues: [{ code: "FILE_UNREADABLE", file: options.specSource.description, path: "", message: errorMessage(error) }] };
    }
    const now = clock.now().toISOString();
    if (!result.ok) {
      const errors = result.issues.map(formatIssue);
      specStatus = { ...specStatus, errors };
      logger.error({ errors, kept: specStatus.loaded ? "last good spec" : "nothing" }, "spec rejected; nothing changes");
      return false;
    }
    const next = result.spec;
    const existing = new Set([...(spec?.caches.map((c) => c.name) ?? []), ...knownOwned]);
    if (next.caches.length === 0 && existing.size > 0 && !options.allowEmpty) {
      const message = `${options.specSource.description}: the spec has no ContentCache but ${existing.size} cache(s) exist (${[...existing].sort().join(", ")}); refusing to remove them all — pass --allow-empty (dtrcache run/reconcile/plan) to do that on purpose`;
      specStatus = { ...specStatus, errors: [message] };
      logger.error({ caches: [...existing] }, "empty spec refused");
      return false;
    }
    const previous = new Map((spec?.caches ?? []).map((c) => [c.name, specGeneration(c)]));
    // Frozen: a reconcile holds this object as its snapshot while the next load replaces `spec`.
    spec = deepFreeze(next);
    specStatus = { path: options.specSource.description, loaded: true, files: next.files, loadedAt: now, errors: [] };
    const names = new Set<string>([...previous.keys(), ...next.caches.map((c) => c.name), ...knownOwned]);
    for (const c of next.caches) {
      const generation = specGeneration(c);
      const state = caches.get(c.name);
      if (state) state.status = { ...state.status, generation, terminating: false };
      if (previous.get(c.name) !== generation) {
        queue.forget(c.name);
        if (state) delete state.terminalGeneration;
      }
    }
    logger.info({ caches: next.caches.length, files: next.files.length }, "spec loaded");
    if (started) for (const n of names) queue.add(n);
    return true;
  }

  function onEvent(event: SwarmEvent): void {
    let name: string | undefined;
    if (event.type === "node") {
      for (const c of spec?.caches ?? []) queue.add(c.name);
      return;
    }
    if (event.type === "service") name = event.name;
    else name = event.name ? BLOB_NAME.exec(event.name)?.[1] : undefined;
    if (name && (spec?.caches.some((c) => c.name === name) || knownOwned.has(name))) queue.add(name);
  }

  async function subscribe(attempt = 0): Promise<void> {
    if (stopping) return;
    try {
      events = await swarm.subscribeEvents({
        onEvent,
        onEnd: (error) => {
          events = undefined;
          if (stopping) return;
          logger.warn({ err: error ? errorMessage(error) : "stream ended" }, "event stream lost; reconnecting");
          engine = { reachable: false, manager: engine.manager, message: "event stream lost" };
          scheduleSubscribe(0);
        },
      });
      if (attempt > 0 || !engine.reachable) logger.info({}, "event stream connected");
      engine = { reachable: true, manager: true };
      // Events may have been missed while disconnected: look at everything once.
      void resync();
    } catch (error) {
      engine = { reachable: false, manager: engine.manager, message: errorMessage(error) };
      scheduleSubscribe(attempt + 1);
    }
  }

  function scheduleSubscribe(attempt: number): void {
    if (stopping) return;
    const delay = Math.min(10_000, 250 * 2 ** attempt);
    eventRetry = setTimeout(() => void subscribe(attempt), delay);
  }

  async function resync(): Promise<void> {
    try {
      for (const n of await observeOwnedCaches(swarm, owner)) knownOwned.add(n);
    } catch (error) {
      markEngine(error);
    }
    for (const n of new Set([...(spec?.caches.map((c) => c.name) ?? []), ...knownOwned])) queue.add(n);
  }

  async function checkManager(): Promise<void> {
    const info = await swarm.info();
    if (!info.isManager) {
      engine = { reachable: true, manager: false, message: `engine ${info.name} is not a Swarm manager` };
      throw new ControllerError("NOT_MANAGER", `the engine ${info.name} (${info.serverVersion}) is not a Swarm manager (swarm state: ${info.swarmState || "inactive"}); point DOCKER_HOST at a manager node`);
    }
    engine = { reachable: true, manager: true };
  }

  return {
    async start() {
      if (started) return;
      stopping = false;
      await checkManager();
      for (const n of await observeOwnedCaches(swarm, owner)) knownOwned.add(n);
      await loadSpec();
      started = true;
      stopWatching = await options.specSource.watch(() => void loadSpec());
      await subscribe();
      const interval = options.resyncIntervalMs ?? 30_000;
      resyncTimer = setInterval(() => void resync(), interval);
      resyncTimer.unref?.();
      logger.info({ owner, spec: options.specSource.description }, "controller started");
    },

    async stop() {
      stopping = true;
      started = false;
      if (resyncTimer) clearInterval(resyncTimer);
      if (eventRetry) clearTimeout(eventRetry);
      events?.close();
      events = undefined;
      if (stopWatching) await stopWatching();
      stopWatching = undefined;
      await queue.shutdown();
      logger.info({}, "controller stopped");
    },

    async reconcileOnce() {
      if (!engine.manager) await checkManager();
      // One-shot: look at the spec as it is now (a watcher may not be running). Owned caches are
      // observed first so the empty-spec guard knows what an empty spec would remove.
      for (const n of await observeOwnedCaches(swarm, owner)) knownOwned.add(n);
      await loadSpec();
      const names = [...new Set([...(spec?.caches.map((c) => c.name) ?? []), ...knownOwned])].sort();
      const reports: ReconcileReport[] = [];
      const signal = new AbortController().signal;
      for (const name of names) {
        try {
          const out = await reconcileKey(name, signal);
          reports.push({ cache: name, mode: out.mode, actions: out.outcomes });
        } catch (error) {
          reports.push({ cache: name, mode: spec?.caches.some((c) => c.name === name) ? "apply" : "teardown", actions: [], error: errorMessage(error) });
        }
      }
      return reports;
    },

    async plan() {
      for (const n of await observeOwnedCaches(swarm, owner)) knownOwned.add(n);
      await loadSpec();
      if (spec === undefined) throw new ControllerError("SPEC_INVALID", `no valid spec loaded from ${options.specSource.description}: ${specStatus.errors.join("; ")}`);
      const owned = await observeOwnedCaches(swarm, owner);
      const nodes = await swarm.listNodes();
      const plans: Plan[] = [];
      const signal = new AbortController().signal;
      const snapshot = spec;
      for (const cache of snapshot.caches) {
        const actual = await observeCache(swarm, owner, cache.name);
        const materials = await gatherMaterials({ swarm, owner, render: renderCacheConfig, generateHttpSecret, now: () => clock.now(), httpSecrets, ...(options.dtrCa ? { dtrCa: options.dtrCa } : {}) }, cache, snapshot, actual, signal);
        plans.push(planCache(buildDesired(owner, cache, materials, paths, containerFor(cache)), actual, nodes, planContext(snapshot, cache.name, specGeneration(cache))));
      }
      for (const name of [...owned].filter((n) => !snapshot.caches.some((c) => c.name === n)).sort()) {
        plans.push(planTeardown(await observeCache(swarm, owner, name), nodes, planContext(snapshot, name)));
      }
      return plans;
    },

    spec: () => spec,

    status() {
      const names = new Set([...(spec?.caches.map((c) => c.name) ?? []), ...caches.keys()]);
      return { controllerId: owner, engine, spec: specStatus, caches: [...names].sort().map((n) => stateOf(n).status) };
    },

    idle: () => queue.idle(),
  };
}

