// Builds a running cache server from a validated config. Used by the entry file and by tests
// (which pass their own clock, logger and port 0).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { type Clock, systemClock } from "./clock.js";
import type { CacheConfig } from "./config.js";
import { startDebugServer, type DebugServer } from "./debug-server.js";
import { applyLimits, serverOptions, StallGuard, type LimitEvents } from "./limits.js";
import { shareMetricsWithPrimary } from "./cluster.js";
import { createMetrics, type CacheMetrics } from "./metrics.js";
import { parseRegistryPath } from "./names.js";
import { opsMetrics } from "./ops-metrics.js";
import { RegistryHandler } from "./server.js";
import { BlobStore } from "./store.js";
import { sweep } from "./sweeper.js";
import { UpstreamClient } from "./upstream.js";

export interface CacheServerOptions {
  readonly config: CacheConfig;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly metrics?: CacheMetrics;
  /** Overrides http.addr (tests listen on port 0). */
  readonly listen?: { host: string; port: number };
  /**
   * Runs as one node:cluster worker (cluster.ts): the primary owns the debug listener and
   * aggregates this worker's metrics, so no debug listener is started here.
   */
  readonly clusterWorker?: boolean;
}

export interface RunningCache {
  readonly url: string;
  readonly port: number;
  /** The debug listener (/metrics, /healthz); undefined when its default address was taken. */
  readonly debugUrl: string | undefined;
  readonly store: BlobStore;
  readonly handler: RegistryHandler;
  readonly metrics: CacheMetrics;
  readonly upstream: UpstreamClient;
  /** Runs one expiry/eviction pass now (the timer runs it every sweepinterval). */
  sweepNow(): ReturnType<typeof sweep>;
  /** Resolves when the background verification after an unclean stop is over (at once after a clean one). */
  readonly verified: Promise<void>;
  /** Graceful close: stops listening, lets fills commit, marks the store as cleanly stopped. */
  close(): Promise<void>;
}

export async function startCacheServer(opts: CacheServerOptions): Promise<RunningCache> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const metrics = opts.metrics ?? createMetrics();
  const ops = opsMetrics(metrics.registry);
  const store = new BlobStore(config.rootDirectory, clock, {
    onVerified: (digest, result, size) => {
      ops.blobsVerified.inc({ result });
      ops.blobsUnverified.set(store.unverifiedCount);
      if (result !== "ok") logger.warn({ digest, size, result }, "stored blob failed verification after an unclean stop; deleted (refetched on next request)");
    },
  });
  await store.open();
  metrics.diskBytes.set(store.totalBytes);
  metrics.diskBlobs.set(store.blobCount);
  ops.blobsUnverified.set(store.unverifiedCount);
  logger.info({ blobs: store.blobCount, bytes: store.totalBytes, root: config.rootDirectory, cleanStart: store.startedClean }, "store index rebuilt");
  if (store.unverifiedCount > 0) logger.warn({ blobs: store.unverifiedCount }, "no clean-shutdown marker: every blob is hashed before it is served again");
  const d = config.downstream;
  const upstream = new UpstreamClient({
    urls: d.upstreams.map((u) => u.url),
    caFiles: d.cas,
    concurrency: d.upstreamConcurrency,
    clock,
    metrics,
    selfUrl: config.publicHost,
  });
  const handler = new RegistryHandler({ store, upstream, metrics, logger, clock, options: d });

  const limitEvents: LimitEvents = {
    onRefused: () => ops.connectionsRefused.inc(),
    onStalled: () => ops.stalledResponses.inc(),
  };
  const stallGuard = new StallGuard(config.limits.stallTimeoutMs, limitEvents);
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    stallGuard.track(res);
    // After an unclean stop a blob is hashed before its first answer (a torn one is deleted and
    // the handler then fills it again). After a clean start this is one integer comparison.
    if (store.unverifiedCount > 0) {
      const digest = blobDigest(req.url);
      if (digest && store.isUnverified(digest)) {
        store.verifyBlob(digest).then(
          () => handler.handle(req, res),
          () => handler.handle(req, res),
        );
        return;
      }
    }
    handler.handle(req, res);
  };

  const limits = serverOptions(config.limits);
  let server: Server;
  if (config.tls) {
    const [cert, key] = await Promise.all([readFile(config.tls.certificate), readFile(config.tls.key)]);
    server = createHttpsServer({ cert, key, ...limits }, onRequest);
  } else {
    server = createHttpServer(limits, onRequest);
  }
  applyLimits(server, config.limits, limitEvents);
  const host = opts.listen?.host ?? config.listenHost;
  const port = opts.listen?.port ?? config.listenPort;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const url = `${config.tls ? "https" : "http"}://${shownHost}:${addr.port}`;

  // Started once the registry port answers, so a healthy /healthz means the registry is up.
  let debug: DebugServer | undefined;
  if (opts.clusterWorker) shareMetricsWithPrimary(metrics.registry);
  else
    try {
      debug = await startDebugServer(config.debug.host, config.debug.port, {
        healthz: () => ({ ok: true, upstreams: upstream.health(), blobs: store.blobCount, bytes: store.totalBytes, unverified: store.unverifiedCount }),
        metrics: async () => {
          metrics.diskBytes.set(store.totalBytes);
          metrics.diskBlobs.set(store.blobCount);
          metrics.fillsInFlight.set(handler.fills.inFlight);
          return { contentType: metrics.registry.contentType, text: await metrics.registry.metrics() };
        },
      });
    } catch (err) {
      // An address the operator chose must work; the default one is best effort (another cache
      // process on the same host may hold it).
      if (config.debug.explicit) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await upstream.close();
        throw err;
      }
      logger.warn({ err: { message: (err as Error).message } }, "debug listener not started (/metrics and /healthz unavailable)");
    }
  logger.info({ url, debugUrl: debug?.url, upstreams: upstream.upstreamUrls, limits: config.limits }, "listening");

  const verification = new AbortController();
  const verified =
    store.unverifiedCount === 0
      ? Promise.resolve()
      : (async () => {
          const started = performance.now();
          const r = await store.verifyAll(verification.signal);
          logger.info(
            { ...r, ms: Math.round(performance.now() - started), remaining: store.unverifiedCount },
            "store verification after an unclean stop finished",
          );
        })().catch((err: unknown) => logger.warn({ err: { message: (err as Error).message } }, "store verification stopped"));

  const sweepOpts = {
    blobTtlMs: d.blobTtlMs,
    deleteEnabled: config.deleteEnabled,
    maxSizeBytes: d.maxSizeBytes,
    highWatermark: d.highWatermark,
    lowWatermark: d.lowWatermark,
  };
  let sweeping = false;
  let closed = false;
  const sweepNow = async (): ReturnType<typeof sweep> => {
    const r = await sweep(store, clock, sweepOpts, metrics);
    if (r.expired + r.evicted > 0) logger.info(r, "sweep removed blobs");
    return r;
  };
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    sweepNow()
      .catch((err: unknown) => logger.warn({ err: { message: (err as Error).message } }, "sweep failed"))
      .finally(() => (sweeping = false));
  }, d.sweepIntervalMs);
  timer.unref();

  return {
    url,
    port: addr.port,
    debugUrl: debug?.url,
    store,
    handler,
    metrics,
    upstream,
    sweepNow,
    verified,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      verification.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      stallGuard.stop();
      handler.flushLog();
      await upstream.close();
      // Fills may still be committing: let them land, then say the store is clean.
      await handler.fills.settled();
      await verified;
      const marked = await store.markClean().catch((err: unknown) => {
        logger.warn({ err: { message: (err as Error).message } }, "could not write the clean-shutdown marker; the next start verifies every blob");
        return false;
      });
      if (!marked && store.unverifiedCount > 0)
        logger.info({ unverified: store.unverifiedCount }, "stopped before every blob was verified; the next start verifies again");
      store.closeHandles();
      await debug?.close();
    },
  };
}

/** The digest of a blob request, or undefined for any other path. */
function blobDigest(rawUrl: string | undefined): string | undefined {
  const url = rawUrl ?? "/";
  const q = url.indexOf("?");
  const route = parseRegistryPath(q < 0 ? url : url.slice(0, q));
  return route.kind === "blob" ? route.digest : undefined;
}
