// Every core: the primary forks `workers` processes (node:cluster) that share the registry port
// (the primary accepts and hands connections round-robin) and the store (one root directory,
// safe for several processes: claim.ts, sessions.ts). The primary serves no registry request; it
// restarts a worker that died, runs the debug listener (/metrics aggregated over all workers
// through prom-client's AggregatorRegistry, /healthz with the worker pids), and on SIGTERM stops
// every worker gracefully (each lets its fills commit) before exiting.
import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import type { Logger } from "pino";
import { AggregatorRegistry, type Registry } from "prom-client";
import type { CacheConfig } from "./config.js";
import { startDebugServer, type DebugServer } from "./debug-server.js";

/** The configured worker count, else one per core this process may use (follows a container's CPU limit). */
export function workerCount(config: CacheConfig): number {
  return config.downstream.workers ?? availableParallelism();
}

/** A worker that dies sooner than this after its start is restarted after RESTART_DELAY_MS (no crash loop at full speed). */
const QUICK_DEATH_MS = 5_000;
const RESTART_DELAY_MS = 1_000;
/** A worker that has not exited this long after SIGTERM is killed (its fills restart elsewhere). */
const STOP_GRACE_MS = 30_000;

export interface Primary {
  /** Live worker pids. */
  pids(): number[];
  readonly debugUrl: string | undefined;
  /** SIGTERM to every worker, wait for their exits; resolves true when all exited 0. */
  close(): Promise<boolean>;
}

export async function startPrimary(config: CacheConfig, logger: Logger, count: number): Promise<Primary> {
  const aggregator = new AggregatorRegistry();
  const started = new Map<Worker, number>();
  let stopping = false;

  const fork = (): Worker => {
    const w = cluster.fork();
    started.set(w, Date.now());
    return w;
  };
  cluster.on("exit", (w, code, signal) => {
    const since = started.get(w) ?? 0;
    started.delete(w);
    if (stopping) return;
    logger.warn({ pid: w.process.pid, code, signal }, "cache worker died; starting a new one");
    setTimeout(() => void fork(), Date.now() - since < QUICK_DEATH_MS ? RESTART_DELAY_MS : 0).unref();
  });

  // The debug listener starts once a worker listens, so a healthy /healthz means the registry is up.
  const firstListening = new Promise<void>((resolve) => cluster.once("listening", () => resolve()));
  for (let i = 0; i < count; i++) fork();
  await firstListening;

  const pids = (): number[] => [...started.keys()].flatMap((w) => (w.process.pid !== undefined && !w.isDead() ? [w.process.pid] : []));
  let debug: DebugServer | undefined;
  try {
    debug = await startDebugServer(config.debug.host, config.debug.port, {
      healthz: () => ({ ok: pids().length > 0, workers: pids() }),
      metrics: async () => {
        try {
          return { contentType: aggregator.contentType, text: await aggregator.clusterMetrics() };
        } catch (err) {
          logger.warn({ err: { message: (err as Error).message } }, "could not aggregate the workers' metrics");
          throw err;
        }
      },
    });
  } catch (err) {
    if (config.debug.explicit) throw err;
    logger.warn({ err: { message: (err as Error).message } }, "debug listener not started (/metrics and /healthz unavailable)");
  }
  logger.info({ workers: count, debugUrl: debug?.url }, "cache workers started");

  return {
    pids,
    debugUrl: debug?.url,
    async close() {
      stopping = true;
      const workers = [...started.keys()].filter((w) => !w.isDead());
      const exits = workers.map(
        (w) =>
          new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => w.process.kill("SIGKILL"), STOP_GRACE_MS);
            w.once("exit", (code) => {
              clearTimeout(timer);
              resolve(code === 0);
            });
          }),
      );
      for (const w of workers) w.process.kill("SIGTERM");
      const ok = (await Promise.all(exits)).every(Boolean);
      await debug?.close();
      return ok;
    },
  };
}

/** In a worker: expose this worker's registry to the primary's AggregatorRegistry. */
export function shareMetricsWithPrimary(registry: Registry): void {
  // prom-client adds the worker's answering listener only when an AggregatorRegistry is built.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
}
