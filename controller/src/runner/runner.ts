// The Runner, controller-runtime's Controller: it owns the work queue, the watches (spec source,
// Docker events), the periodic resync and the engine's reachability, and decides when the
// Reconciler runs. Every run of a cache — the loop's, and the one-shot converge of
// `reconcile --once` — goes through the queue, so one cache is never reconciled twice at once
// and the queue is the one place a cache is released.
import { performance } from "node:perf_hooks";
import { ControllerError } from "../errors.js";
import type { Logger } from "../logger.js";
import { WorkQueue, type ErrorClass, type WorkResult } from "../queue.js";
import type { ApplyOutcome } from "../reconcile/apply.js";
import { observeOwnedCaches } from "../reconcile/observe.js";
import type { CacheStates } from "../reconciler/cache-state.js";
import type { Reconciler } from "../reconciler/reconciler.js";
import type { SpecSource } from "../source.js";
import type { ControllerStatus } from "../status.js";
import type { EventSubscription, SwarmApi, SwarmEvent } from "../swarm/api.js";
import { withCallSignal } from "../swarm/call-signal.js";
import { isSwarmError, SwarmError } from "../swarm/errors.js";
import { AbortedError } from "../abort.js";
import type { Clock, Timer } from "./clock.js";
import type { SpecTracker } from "./spec-tracker.js";

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

export type EngineStatus = ControllerStatus["engine"];

export interface RunnerOptions {
  readonly swarm: SwarmApi;
  readonly owner: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly source: SpecSource;
  readonly tracker: SpecTracker;
  readonly reconciler: Reconciler;
  readonly states: CacheStates;
  /** Caches owned in the Swarm, shared with the reconciler and the spec tracker. */
  readonly owned: Set<string>;
  readonly concurrency: number;
  readonly resyncIntervalMs: number;
  /** How long stop() lets the runs in hand finish before aborting them. */
  readonly stopGraceMs: number;
  readonly onReconcile?: (event: ReconcileEvent) => void;
}

interface RunValue extends WorkResult {
  readonly mode: ReconcileReport["mode"];
  readonly outcomes: readonly ApplyOutcome[];
}

/** The `<cache>-<purpose>-<sha8>` name of a config or secret of ours. */
const BLOB_NAME = /^(.+)-(config|cert|key|ca)-[0-9a-f]{8}$/;
/** Reconnect back-off of a lost event stream: 250 ms doubling to 10 s. */
const EVENTS_RETRY_BASE_MS = 250;
const EVENTS_RETRY_MAX_MS = 10_000;

export function classifyError(error: unknown): ErrorClass {
  if (error instanceof SwarmError) {
    if (error.code === "CONFLICT") return "immediate";
    if (error.code === "INVALID" || error.code === "NAME_TAKEN" || error.code === "NOT_MANAGER") return "terminal";
    return "backoff";
  }
  if (error instanceof ControllerError) return error.retryable ? "backoff" : "terminal";
  // A run aborted by stop(): nothing to retry in a controller that is going away.
  if (error instanceof AbortedError) return "terminal";
  return "backoff";
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class Runner {
  private readonly queue: WorkQueue<RunValue>;
  private engineState: EngineStatus = { reachable: false, manager: false };
  private started = false;
  private stopping = false;
  private stopWatching: (() => Promise<void>) | undefined;
  private events: EventSubscription | undefined;
  private eventRetry: Timer | undefined;
  private resyncTimer: Timer | undefined;
  /** Aborted by a stop without grace: every run's signal follows it, so the runs in hand end at once. */
  private readonly halt = new AbortController();

  constructor(private readonly o: RunnerOptions) {
    this.queue = new WorkQueue<RunValue>({
      worker: (key, signal) => this.work(key, signal),
      classify: classifyError,
      concurrency: o.concurrency,
      clock: o.clock,
      onError: (key, error, klass, retryIn) => {
        if (error instanceof AbortedError) {
          o.logger.info({ cache: key }, "reconcile aborted: the controller is stopping");
          return;
        }
        const level = klass === "immediate" ? "debug" : "warn";
        o.logger[level](
          { cache: key, err: errorMessage(error), code: (error as { code?: unknown }).code, retry: klass, retryInMs: retryIn },
          "reconcile failed",
        );
      },
    });
    // Requeues and retries belong to the loop; until start(), a one-shot run schedules none.
    this.queue.followUps = false;
  }

  engine(): EngineStatus {
    return this.engineState;
  }

  /** Checks the engine is a manager, then loads the spec, watches it and the engine, resyncs. */
  async start(): Promise<void> {
    if (this.started) return;
    this.stopping = false;
    await this.checkManager();
    await this.discoverOwned();
    await this.loadSpec();
    this.started = true;
    this.queue.followUps = true;
    this.stopWatching = await this.o.source.watch(() => void this.loadSpec());
    await this.subscribe();
    this.scheduleResync();
    this.o.logger.info({ owner: this.o.owner, spec: this.o.source.description }, "controller started");
  }

  /**
   * Stops taking work and closes the watches; the reconciles in hand get the grace period to
   * finish, then their waits and calls are aborted. Resolves once they have returned. A grace of
   * 0 aborts them now, before anything else (a lost lease: not one more call may go out).
   */
  async stop(graceMs: number = this.o.stopGraceMs): Promise<void> {
    if (graceMs <= 0) this.halt.abort(new ControllerError("STOPPED", "the controller stopped writing: runs in hand aborted at once"));
    this.stopping = true;
    this.started = false;
    this.resyncTimer?.cancel();
    this.eventRetry?.cancel();
    this.events?.close();
    this.events = undefined;
    if (this.stopWatching) await this.stopWatching();
    this.stopWatching = undefined;
    await this.queue.shutdown(graceMs);
    this.o.logger.info({}, "controller stopped");
  }

  /** One pass over every cache (spec ∪ owned) through the queue, in name order; reports each run. */
  async reconcileOnce(): Promise<ReconcileReport[]> {
    if (!this.engineState.manager) await this.checkManager();
    // Look at the spec as it is now (a watcher may not be running). Owned caches are observed
    // first so the empty-spec guard knows what an empty spec would remove.
    await this.discoverOwned();
    await this.loadSpec();
    const reports: ReconcileReport[] = [];
    for (const name of this.allNames().sort()) {
      // One at a time, as a person running the pass would: an upstream cache's certificate
      // exists before the chained cache that needs it is looked at.
      const outcome = await this.queue.runOnce(name);
      if (outcome.ok) reports.push({ cache: name, mode: outcome.value.mode, actions: outcome.value.outcomes });
      else
        reports.push({
          cache: name,
          mode: this.o.tracker.generation(name) !== undefined ? "apply" : "teardown",
          actions: [],
          error: errorMessage(outcome.error),
        });
    }
    return reports;
  }

  /** Loads the spec (source, guard) and queues what changed; false when it was refused. */
  async loadSpec(): Promise<boolean> {
    const outcome = await this.o.tracker.load();
    if (!outcome.loaded) return false;
    for (const c of this.o.tracker.snapshot()?.caches ?? []) {
      const generation = outcome.changed.get(c.name);
      if (generation !== undefined) this.queue.forget(c.name);
      this.o.states.specLoaded(c.name, generation ?? this.o.tracker.generation(c.name) ?? "", generation !== undefined);
    }
    if (this.started) for (const n of outcome.names) this.queue.add(n);
    return true;
  }

  /** Queues a cache from outside the watches (the DTR drift check); ignored until start(). */
  enqueue(name: string): void {
    if (this.started) this.queue.add(name);
  }

  /** Resolves once the queue has nothing ready or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Adds every owned cache found in the Swarm to `owned`. */
  async discoverOwned(): Promise<void> {
    for (const n of await observeOwnedCaches(this.o.swarm, this.o.owner)) this.o.owned.add(n);
  }

  private allNames(): string[] {
    return [...new Set([...(this.o.tracker.snapshot()?.caches.map((c) => c.name) ?? []), ...this.o.owned])];
  }

  private async work(name: string, signal: AbortSignal): Promise<RunValue> {
    // The snapshot is taken when the run begins, and the run reads nothing else; a later load
    // queues the cache again.
    const snapshot = this.o.tracker.snapshot();
    if (snapshot === undefined) {
      // No spec has loaded yet (a broken or refused file at start-up): "not in the spec" means
      // nothing then, so owned caches are left exactly as they are.
      this.o.logger.warn({ cache: name }, "no valid spec loaded; leaving the cache as it is");
      return { mode: "skipped", outcomes: [] };
    }
    const startedAt = performance.now();
    const mode = snapshot.caches.some((c) => c.name === name) ? ("apply" as const) : ("teardown" as const);
    const report = (outcome: "success" | "error", error?: unknown): void => {
      const code = (error as { code?: unknown } | undefined)?.code;
      const errorCode = outcome === "error" ? (typeof code === "string" ? code : "UNKNOWN") : undefined;
      this.o.onReconcile?.({
        cache: name,
        mode,
        outcome,
        durationMs: Math.round(performance.now() - startedAt),
        queueDepth: this.queue.length,
        ...(errorCode !== undefined ? { errorCode } : {}),
      });
    };
    // The queue's signal (stop after the grace) or the halt (stop at once), whichever comes
    // first; every Engine API call of the run carries it, whichever SwarmApi it goes through.
    const runSignal = AbortSignal.any([signal, this.halt.signal]);
    // A run the queue starts after the halt (a key re-added as an aborted run let go of it) does
    // nothing at all, not even the status bookkeeping of a reconcile that cannot finish.
    if (runSignal.aborted) throw new AbortedError(runSignal.reason);
    try {
      const result = await withCallSignal(runSignal, () => this.o.reconciler.reconcile({ name, snapshot }, runSignal));
      this.markEngine();
      report("success");
      return result;
    } catch (error) {
      this.markEngine(error);
      report("error", error);
      throw error;
    }
  }

  private markEngine(error?: unknown): void {
    if (error === undefined) this.engineState = { reachable: true, manager: true };
    else if (isSwarmError(error, "UNAVAILABLE")) this.engineState = { reachable: false, manager: this.engineState.manager, message: errorMessage(error) };
  }

  private async checkManager(): Promise<void> {
    const info = await this.o.swarm.info();
    if (!info.isManager) {
      this.engineState = { reachable: true, manager: false, message: `engine ${info.name} is not a Swarm manager` };
      throw new ControllerError(
        "NOT_MANAGER",
        `the engine ${info.name} (${info.serverVersion}) is not a Swarm manager (swarm state: ${info.swarmState || "inactive"}); point DOCKER_HOST at a manager node`,
      );
    }
    this.engineState = { reachable: true, manager: true };
  }

  private onEvent(event: SwarmEvent): void {
    const caches = this.o.tracker.snapshot()?.caches ?? [];
    if (event.type === "node") {
      for (const c of caches) this.queue.add(c.name);
      return;
    }
    const name = event.type === "service" ? event.name : event.name ? BLOB_NAME.exec(event.name)?.[1] : undefined;
    if (name && (caches.some((c) => c.name === name) || this.o.owned.has(name))) this.queue.add(name);
  }

  private async subscribe(attempt = 0): Promise<void> {
    if (this.stopping) return;
    try {
      this.events = await this.o.swarm.subscribeEvents({
        onEvent: (event) => this.onEvent(event),
        onEnd: (error) => {
          this.events = undefined;
          if (this.stopping) return;
          this.o.logger.warn({ err: error ? errorMessage(error) : "stream ended" }, "event stream lost; reconnecting");
          this.engineState = { reachable: false, manager: this.engineState.manager, message: "event stream lost" };
          this.scheduleSubscribe(0);
        },
      });
      if (attempt > 0 || !this.engineState.reachable) this.o.logger.info({}, "event stream connected");
      this.engineState = { reachable: true, manager: true };
      // Events may have been missed while disconnected: look at everything once. Awaited, so
      // start() returns with every cache queued and idle() after it means "first pass done".
      await this.resync();
    } catch (error) {
      this.engineState = { reachable: false, manager: this.engineState.manager, message: errorMessage(error) };
      this.scheduleSubscribe(attempt + 1);
    }
  }

  private scheduleSubscribe(attempt: number): void {
    if (this.stopping) return;
    const delay = Math.min(EVENTS_RETRY_MAX_MS, EVENTS_RETRY_BASE_MS * 2 ** attempt);
    this.eventRetry = this.o.clock.setTimer(() => void this.subscribe(attempt), delay);
  }

  private scheduleResync(): void {
    if (this.stopping) return;
    this.resyncTimer = this.o.clock.setTimer(() => {
      void this.resync();
      this.scheduleResync();
    }, this.o.resyncIntervalMs);
  }

  private async resync(): Promise<void> {
    try {
      await this.discoverOwned();
    } catch (error) {
      this.markEngine(error);
    }
    for (const n of this.allNames()) this.queue.add(n);
  }
}
