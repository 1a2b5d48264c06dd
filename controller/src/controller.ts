// The controller: wiring. createController builds the parts controller-runtime would have and
// hands each its dependencies:
//   SpecTracker (runner/spec-tracker.ts)  the spec in force: frozen snapshots, generations, load errors
//   CacheReconciler (reconciler/)         one cache from one snapshot → result + status; no queue
//   Runner (runner/runner.ts)             the queue, the watches, the resync, start/stop with a grace period
// Everything it touches comes in through ControllerOptions, so tests run it against a fake Swarm
// and a fake clock, and the CLI wires the real engine.
import type { CacheSpec, ResolvedCache } from "@dtrcache/crds";
import type { DtrRegistrationLister, DtrSync } from "./dtr/sync.js";
import { DEFAULT_DTR_CHECK_MS, DtrDriftCheck } from "./dtr-reconcile/drift.js";
import { DtrReconciler } from "./dtr-reconcile/reconciler.js";
import { ControllerError } from "./errors.js";
import { silentLogger, type Logger } from "./logger.js";
import type { ContainerOptions } from "./reconcile/desired.js";
import type { DtrCaProvider } from "./reconcile/materials.js";
import { observeOwnedCaches } from "./reconcile/observe.js";
import type { Plan } from "./reconcile/planner.js";
import { SettleTracker } from "./reconcile/settle.js";
import { CacheStates } from "./reconciler/cache-state.js";
import { CacheReconciler } from "./reconciler/reconciler.js";
import { withTimers, type ClockLike } from "./runner/clock.js";
import { Runner, type ReconcileEvent, type ReconcileReport } from "./runner/runner.js";
import { SpecTracker } from "./runner/spec-tracker.js";
import { fencedDtrSync, fencedSwarm, WriteFence } from "./runner/write-fence.js";
import type { SpecSource } from "./source.js";
import type { ControllerStatus } from "./status.js";
import type { SwarmApi } from "./swarm/api.js";

export { classifyError, type ReconcileEvent, type ReconcileReport } from "./runner/runner.js";
export type { Clock, ClockLike } from "./runner/clock.js";

export interface ControllerOptions {
  readonly docker: SwarmApi;
  readonly specSource: SpecSource;
  /** The DTR side; undefined until it is wired (DtrSynced stays Unknown). */
  readonly dtrSync?: DtrSync;
  /** DTR CA for `trust.fetchCA` (the DTR side fetches it). */
  readonly dtrCa?: DtrCaProvider;
  readonly logger?: Logger;
  /** Time and timers; a clock with only `now` schedules on the process's timers. */
  readonly clock?: ClockLike;
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
  /**
   * How often DTR's registration list is compared with what DTR confirmed (default 10 s; 0 turns
   * the check off): drift or an outage's end triggers a full verification (dtr-reconcile/drift.ts).
   */
  readonly dtrCheckMs?: number;
  /** The list call of that check; default: `dtrSync` when it has one (createDtrSync's does). */
  readonly dtrLister?: DtrRegistrationLister;
  /**
   * How long stop() lets the reconciles in hand finish before aborting their waits and calls
   * (default 10 s; deploy/stack/controller.stack.yml's stop_grace_period leaves room for it).
   */
  readonly stopGraceMs?: number;
  /** Called after every reconcile of one cache (metrics); must not throw. */
  readonly onReconcile?: (event: ReconcileEvent) => void;
}

export interface Controller {
  /** Checks the engine is a manager, loads the spec, starts watching, events, resync and the queue. */
  start(): Promise<void>;
  /**
   * Stops taking work and closes watchers and the event stream; aborts reconciles still running
   * after the grace period (`stopGraceMs` unless given). With `graceMs: 0` (a lost lease) the
   * runs in hand are aborted and every Swarm write and DTR pass refused at the moment of the call.
   */
  stop(options?: StopOptions): Promise<void>;
  /** One full pass over every cache (spec ∪ owned), through the queue, without its retries unless the loop runs. */
  reconcileOnce(): Promise<ReconcileReport[]>;
  /** Dry run: the plan for every cache, computed by the same planner, nothing written. */
  plan(): Promise<Plan[]>;
  status(): ControllerStatus;
  /** The last good spec, the one being applied (undefined until one has loaded). */
  spec(): CacheSpec | undefined;
  /** Resolves once no DTR drift check is in flight and the queue has nothing ready or running. */
  idle(): Promise<void>;
}

export interface StopOptions {
  /** How long the runs in hand may finish; 0 stops them, and every write, at once. */
  readonly graceMs?: number;
}

export const DEFAULT_STOP_GRACE_MS = 10_000;

export function createController(options: ControllerOptions): Controller {
  // Every Swarm write and DTR pass of the controller passes the fence; stop() closes it (at once
  // without grace, so a controller that lost its lease writes nothing more).
  const fence = new WriteFence();
  const swarm = fencedSwarm(options.docker, fence);
  const dtrSync = options.dtrSync ? fencedDtrSync(options.dtrSync, fence) : undefined;
  const owner = options.id ?? "dtrcache";
  const logger = options.logger ?? silentLogger;
  const clock = withTimers(options.clock);
  const states = new CacheStates();
  const owned = new Set<string>();
  const tracker = new SpecTracker({ source: options.specSource, clock, logger, allowEmpty: options.allowEmpty ?? false, owned: () => owned });
  const dtr = dtrSync
    ? new DtrReconciler({
        swarm,
        owner,
        dtrSync,
        logger,
        now: () => clock.now().getTime(),
        verifyEveryMs: options.dtrResyncMs ?? 60_000,
        requeue: (name) => runner.enqueue(name),
      })
    : undefined;
  const lister =
    options.dtrLister ?? (options.dtrSync && "listRegistrations" in options.dtrSync ? (options.dtrSync as DtrSync & DtrRegistrationLister) : undefined);
  const checkMs = options.dtrCheckMs ?? DEFAULT_DTR_CHECK_MS;
  const drift = dtr && lister && checkMs > 0 ? new DtrDriftCheck({ reconciler: dtr, lister, clock, intervalMs: checkMs, logger }) : undefined;
  const container = options.container;
  const reconciler = new CacheReconciler({
    swarm,
    owner,
    logger,
    clock,
    states,
    owned,
    settle: new SettleTracker(options.settleMs ?? 10_000),
    ...(dtr ? { dtr } : {}),
    ...(options.dtrCa ? { dtrCa: options.dtrCa } : {}),
    container: (cache) => (typeof container === "function" ? container(cache) : (container ?? {})),
    keepRevisions: options.keepRevisions ?? 2,
    rolloutPollMs: options.rolloutPollMs ?? 1000,
    teardownWaitMs: options.teardownWaitMs ?? 30_000,
  });
  const runner = new Runner({
    swarm,
    owner,
    logger,
    clock,
    source: options.specSource,
    tracker,
    reconciler,
    states,
    owned,
    concurrency: options.concurrency ?? 2,
    resyncIntervalMs: options.resyncIntervalMs ?? 30_000,
    stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    ...(options.onReconcile ? { onReconcile: options.onReconcile } : {}),
  });

  return {
    async start() {
      await runner.start();
      drift?.start();
    },
    async stop(stopOptions) {
      const graceMs = stopOptions?.graceMs ?? options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
      if (graceMs <= 0) fence.close(new ControllerError("STOPPED", "the controller stopped writing at once (stopped without grace)"));
      // Both at once: the drift check's list call must not delay aborting the runs in hand.
      await Promise.all([drift?.stop(), runner.stop(graceMs)]);
      // Stopped: nothing this controller still holds (a late callback, a call begun in a race) writes.
      fence.close(new ControllerError("STOPPED", "the controller is stopped"));
    },
    reconcileOnce: () => runner.reconcileOnce(),

    async plan() {
      await runner.discoverOwned();
      await runner.loadSpec();
      const snapshot = tracker.snapshot();
      if (snapshot === undefined)
        throw new ControllerError("SPEC_INVALID", `no valid spec loaded from ${options.specSource.description}: ${tracker.status().errors.join("; ")}`);
      const inSpec = snapshot.caches.map((c) => c.name);
      const leaving = [...(await observeOwnedCaches(swarm, owner))].filter((n) => !inSpec.includes(n)).sort();
      const signal = new AbortController().signal;
      const plans: Plan[] = [];
      for (const name of [...inSpec, ...leaving]) plans.push(await reconciler.plan(snapshot, name, signal));
      return plans;
    },

    spec: () => tracker.snapshot(),

    status() {
      const snapshot = tracker.snapshot();
      const names = new Set([...(snapshot?.caches.map((c) => c.name) ?? []), ...states.names()]);
      return { controllerId: owner, engine: runner.engine(), spec: tracker.status(), caches: [...names].sort().map((n) => states.of(n, snapshot).status) };
    },

    async idle() {
      // A drift check in flight may still queue caches: wait for it, then for the queue.
      await drift?.settled();
      await runner.idle();
    },
  };
}
