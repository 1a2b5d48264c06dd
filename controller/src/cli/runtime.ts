// Wires a running controller: the engine connection, the spec source, the DTR side, TLS checks,
// metrics and the status endpoint. Used by `dtrcache run` / `apply`, the demo and end-to-end
// tests, so that all of them run exactly the same assembly.
import type { Logger as PinoLogger } from "pino";
import { Registry } from "prom-client";
import { createController, type Controller, type ControllerOptions } from "../controller.js";
import { createDtrSync, type DtrSyncService } from "../dtr/index.js";
import type { DtrMetrics } from "../dtr/metrics.js";
import { EventRecorder } from "../events/recorder.js";
import { recordDtrEvents } from "../events/dtr-events.js";
import { reconcileEventObserver } from "../events/reconcile-events.js";
import { recordSwarmEvents } from "../events/swarm-events.js";
import { startStatusServer, type StatusServer } from "../http/status-server.js";
import { generatedCertificateOf } from "../reconcile/materials.js";
import { PemSources } from "../reconcile/pem-sources.js";
import { observeOwnedCaches } from "../reconcile/observe.js";
import { LeaderElector } from "../lease/elector.js";
import { followLease } from "../lease/leadership.js";
import { fileSpecSource, type SpecSource } from "../source.js";
import { storeSpecSource } from "../store/source.js";
import { EventJournal } from "../store/events-journal.js";
import { SpecStore } from "../store/store.js";
import { createDockerClient, resolveDockerConnection, type DockerEnv } from "../swarm/connection.js";
import { DockerodeSwarmApi } from "../swarm/dockerode.js";
import { budgetSwarmWrites } from "../swarm/write-budget.js";
import type { SwarmApi } from "../swarm/api.js";
import { registerControllerMetrics, type ControllerMetrics } from "./metrics.js";
import { createTlsMonitor, type TlsMonitor } from "./tls-monitor.js";
import { buildSnapshot, type RuntimeSnapshot } from "./snapshot.js";
import { SpecViewTracker, trackedSpecSource } from "./spec-view.js";
import { RolloutProgress } from "./rollout-progress.js";

export interface RuntimeOptions {
  /** File or directory mode; ignored when `store` is set. */
  readonly specPath?: string;
  /**
   * In-cluster mode: read the spec from the swarm store (and follow its changes). Deleting a
   * resource there is explicit, so an emptied store tears caches down (allowEmpty is implied).
   */
  readonly store?: boolean;
  /** Take the owner id's lease before writing; without it the controller waits as standby. */
  readonly lease?: {
    readonly onLost: (reason: string) => void;
    readonly identity?: string;
    readonly durationMs?: number;
    readonly renewMs?: number;
  };
  /** DOCKER_HOST; falls back to env.DOCKER_HOST. */
  readonly dockerHost?: string;
  /** Environment for DOCKER_* and for {env: NAME} secret references. */
  readonly env?: DockerEnv & NodeJS.ProcessEnv;
  readonly logger: PinoLogger;
  /** Serve the status endpoint here (port 0 = any free port). */
  readonly listen?: { readonly host: string; readonly port: number };
  readonly statusToken?: string;
  readonly allowEmpty?: boolean;
  /** Owner id on every object; two controllers with different ids never touch each other's objects. */
  readonly id?: string;
  /** Keep the events in the swarm across restarts and failovers (default: when running with a lease). */
  readonly persistEvents?: boolean;
  /** Bounds and flush interval of the event journal (store/events-journal.ts). */
  readonly eventJournal?: { readonly perCache?: number; readonly maxBytes?: number; readonly intervalMs?: number };
  /** Test seam: a wrapped Swarm API (recording, fault-injecting). */
  readonly wrapSwarm?: (api: SwarmApi) => SwarmApi;
  readonly controllerOptions?: Partial<Omit<ControllerOptions, "docker" | "specSource" | "dtrSync" | "logger">>;
}

export interface Runtime {
  readonly controller: Controller;
  readonly metrics: ControllerMetrics;
  /** What the controller did and why, per cache (served at /events, shown by `describe`). */
  readonly events: EventRecorder;
  readonly statusUrl?: string;
  snapshot(): RuntimeSnapshot;
  stop(): Promise<void>;
}

function specSourceOf(options: RuntimeOptions, raw: SwarmApi, tracker?: SpecViewTracker): SpecSource {
  if (options.store) {
    const store = new SpecStore({ swarm: raw, owner: options.id ?? "dtrcache" });
    const source = storeSpecSource(store, raw);
    return tracker ? trackedSpecSource(source, tracker, store) : source;
  }
  if (options.specPath === undefined) throw new Error("a spec file (specPath) or the store is required");
  const source = fileSpecSource(options.specPath);
  return tracker ? trackedSpecSource(source, tracker) : source;
}

/** What a running controller adds around the bare assembly (`plan` uses none of it). */
export interface AssemblyHooks {
  readonly onReconcile?: ControllerOptions["onReconcile"];
  /** Records the controller's Swarm writes and DTR passes (the store and the lease are not recorded). */
  readonly events?: EventRecorder;
  readonly onSwarmWrite?: (cache: string, refused: boolean) => void;
  readonly dtrMetrics?: DtrMetrics;
  /** Learns which store revision each loaded spec came from (the status's GENERATION and AGE). */
  readonly tracker?: SpecViewTracker;
}

/**
 * Builds the controller without starting it (`plan` uses this: nothing is watched or written).
 * With `events`, the controller's Swarm writes and DTR passes are recorded there; the store and
 * the lease use the unrecorded engine (their writes are not the controller's actions on a cache).
 */
export function assembleController(
  options: RuntimeOptions,
  hooks: AssemblyHooks = {},
): { controller: Controller; dtrSync: DtrSyncService; swarm: SwarmApi; raw: SwarmApi } {
  const { onReconcile, events, onSwarmWrite, dtrMetrics, tracker } = hooks;
  const env = options.env ?? process.env;
  const connection = resolveDockerConnection(options.dockerHost ?? env["DOCKER_HOST"], env);
  const raw: SwarmApi = new DockerodeSwarmApi(createDockerClient(connection));
  // The write budget sits under the event recorder, so a refused write is an event too.
  const budgeted = budgetSwarmWrites(raw, onSwarmWrite ? { onWrite: onSwarmWrite } : {});
  const recorded = events ? recordSwarmEvents(budgeted, events) : budgeted;
  const swarm = options.wrapSwarm ? options.wrapSwarm(recorded) : recorded;
  // trust.caFile {config: NAME}: read through the engine (a CA is public; configs are readable).
  const pemSources = new PemSources(raw);
  const readConfig = async (name: string): Promise<string> => {
    const read = await pemSources.read({ config: name }, "trust.caFile");
    return read.readable ? read.pem : "";
  };
  const dtrSync = createDtrSync({
    logger: options.logger.child({ part: "dtr" }),
    env,
    readConfig,
    ...(dtrMetrics ? { observer: dtrMetrics.observeRequest } : {}),
  });
  const measured = dtrMetrics ? dtrMetrics.instrument(dtrSync) : dtrSync;
  const controller = createController({
    ...options.controllerOptions,
    docker: swarm,
    specSource: specSourceOf(options, raw, tracker),
    dtrSync: events ? recordDtrEvents(measured, events) : measured,
    // The drift check's list call goes to the bare service: the wrappers above record passes only.
    dtrLister: dtrSync,
    dtrCa: (dtr) => dtrSync.caPem(dtr),
    logger: options.logger,
    allowEmpty: options.store === true || (options.allowEmpty ?? false),
    ...(onReconcile ? { onReconcile } : {}),
    ...(options.id !== undefined ? { id: options.id } : {}),
  });
  return { controller, dtrSync, swarm, raw };
}

export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const registry = new Registry();
  // The metrics read the snapshot lazily, so they can be registered before the controller exists.
  let snapshot: () => RuntimeSnapshot = () => ({
    controllerId: "",
    engine: { reachable: false, manager: false },
    spec: { path: options.specPath ?? "store", loaded: false, files: [], errors: [] },
    caches: [],
  });
  const metrics = registerControllerMetrics(registry, () => snapshot());
  const events = new EventRecorder();
  // Called only after a reconcile, so `controller` is assigned by then.
  const observeEvents = reconcileEventObserver(events, () => controller.status());
  const tracker = new SpecViewTracker();
  const { controller, dtrSync, swarm, raw } = assembleController(options, {
    onReconcile: (event) => {
      metrics.observeReconcile(event.cache, event.outcome, event.durationMs / 1000, event.errorCode);
      metrics.setQueueDepth(event.queueDepth);
      observeEvents(event);
    },
    events,
    onSwarmWrite: (cache, refused) => metrics.observeSwarmWrite(cache, refused),
    dtrMetrics: metrics.dtr,
    tracker,
  });
  const owner = options.id ?? "dtrcache";
  const tls: TlsMonitor = createTlsMonitor({
    dtrCa: (dtr) => dtrSync.caPem(dtr),
    generatedCertificate: (cache) => generatedCertificateOf(swarm, owner, cache),
    // Reads (configs), so the unrecorded engine: a TLS check is not a controller action.
    pemSources: new PemSources(raw),
    logger: options.logger.child({ part: "tls" }),
  });
  // The lease uses the unwrapped engine: its renewals are not the controller's writes.
  const elector = options.lease ? new LeaderElector({ swarm: raw, owner, logger: options.logger.child({ part: "lease" }), ...pick(options.lease) }) : undefined;
  // Counts updated tasks of caches that are rolling out, for status's "Rolling out (1/2 tasks updated)".
  const progress = new RolloutProgress(raw, () => buildSnapshot(controller.status(), new Map()));
  snapshot = () => {
    const built = progress.decorate(tracker.decorate(buildSnapshot(controller.status(), tls.findings())));
    return elector ? { ...built, lease: elector.status() } : built;
  };
  let server: StatusServer | undefined;
  let controllerStarted = false;
  const leading = new AbortController();
  // Events outlive the process when it runs as the in-cluster leader (store/events-journal.ts):
  // the journal is read before the controller starts, so restored events come first.
  const journal =
    elector && options.persistEvents !== false
      ? new EventJournal({
          swarm: raw,
          owner,
          ...(options.eventJournal ?? {}),
          onError: (error) =>
            options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, "event journal not written; kept in memory, retried"),
        })
      : undefined;
  let journalAttached = false;
  let leaseLost = false;
  const lead = async (): Promise<void> => {
    if (journal) {
      const restored = await journal.attach(events);
      journalAttached = true;
      if (restored > 0) options.logger.info({ events: restored }, "events of the previous controller restored");
    }
    await controller.start();
    controllerStarted = true;
    progress.start();
    // Owned caches keep their per-cache series even when the spec is rejected from the start
    // (metrics.ts). Only the leader: a standby says nothing about caches.
    void observeOwnedCaches(raw, owner).then(
      (names) => metrics.rememberCaches(names),
      () => undefined,
    );
    tls.start(controller);
  };
  try {
    if (!elector) await lead();
    if (options.listen) {
      server = await startStatusServer(
        {
          provider: {
            snapshot: () => snapshot(),
            readiness: async () => {
              const status = controller.status();
              let engineCheck: { ok: boolean; message?: string };
              try {
                const info = await swarm.info();
                engineCheck = info.isManager ? { ok: true } : { ok: false, message: "the engine is not a swarm manager" };
              } catch (error) {
                engineCheck = { ok: false, message: error instanceof Error ? error.message : String(error) };
              }
              return {
                specLoaded: status.spec.loaded ? { ok: true } : { ok: false, message: status.spec.errors.join("; ") || "no spec loaded yet" },
                engineReachable: engineCheck,
              };
            },
          },
          metrics: registry,
          events: (cache, limit) => events.list(cache, limit),
          ...(options.statusToken !== undefined ? { bearerToken: options.statusToken } : {}),
        },
        options.listen.host,
        options.listen.port,
      );
    }
  } catch (error) {
    tls.stop();
    await controller.stop().catch(() => undefined);
    await dtrSync.close().catch(() => undefined);
    throw error;
  }
  if (elector && options.lease) {
    // Standby until the lease is ours (the status endpoint already says so), then lead. On a loss
    // the controller stops writing at once (lease/leadership.ts); the process owner (the CLI)
    // exits so Swarm restarts it as a standby. The journal lets go first: the new leader owns it
    // now, a last flush of ours would undo its writes.
    followLease({
      elector,
      controller,
      lead,
      onLosing: () => {
        leaseLost = true;
        journal?.abandon();
      },
      onLost: options.lease.onLost,
      signal: leading.signal,
    });
  }
  return {
    controller,
    metrics,
    events,
    ...(server ? { statusUrl: server.url } : {}),
    snapshot: () => snapshot(),
    async stop() {
      leading.abort();
      tls.stop();
      progress.stop();
      await server?.close();
      if (controllerStarted || !elector) await controller.stop();
      if (journal && journalAttached && !leaseLost) await journal.close(events);
      await elector?.release();
      await dtrSync.close();
    },
  };
}

function pick(lease: NonNullable<RuntimeOptions["lease"]>): { identity?: string; durationMs?: number; renewMs?: number } {
  return {
    ...(lease.identity !== undefined ? { identity: lease.identity } : {}),
    ...(lease.durationMs !== undefined ? { durationMs: lease.durationMs } : {}),
    ...(lease.renewMs !== undefined ? { renewMs: lease.renewMs } : {}),
  };
}
