// Builds a running cache server from a validated config. Used by the entry file and by tests
// (which pass their own clock, logger and port 0).
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { type Clock, systemClock } from "./clock.js";
import type { CacheConfig } from "./config.js";
import { createMetrics, type CacheMetrics } from "./metrics.js";
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
}

export interface RunningCache {
  readonly url: string;
  readonly port: number;
  readonly store: BlobStore;
  readonly handler: RegistryHandler;
  readonly metrics: CacheMetrics;
  readonly upstream: UpstreamClient;
  /** Runs one expiry/eviction pass now (the timer runs it every sweepinterval). */
  sweepNow(): ReturnType<typeof sweep>;
  close(): Promise<void>;
}

export async function startCacheServer(opts: CacheServerOptions): Promise<RunningCache> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const metrics = opts.metrics ?? createMetrics();
  const store = new BlobStore(config.rootDirectory, clock);
  await store.open();
  metrics.diskBytes.set(store.totalBytes);
  metrics.diskBlobs.set(store.blobCount);
  logger.info({ blobs: store.blobCount, bytes: store.totalBytes, root: config.rootDirectory }, "store index rebuilt");
  const d = config.downstream;
  const upstream = new UpstreamClient({ urls: d.upstreams.map((u) => u.url), caFiles: d.cas, concurrency: d.upstreamConcurrency, clock, metrics, selfUrl: config.publicHost });
  const handler = new RegistryHandler({ store, upstream, metrics, logger, clock, options: d });

  const onRequest = (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): void => {
    const path = req.url ?? "/";
    if (path === "/healthz") {
      const body = JSON.stringify({ ok: true, upstreams: upstream.health(), blobs: store.blobCount, bytes: store.totalBytes });
      res.writeHead(200, { "Content-Type": "application/json", "Docker-Distribution-API-Version": "registry/2.0" });
      res.end(body);
      return;
    }
    if (path === "/metrics") {
      metrics.diskBytes.set(store.totalBytes);
      metrics.diskBlobs.set(store.blobCount);
      metrics.fillsInFlight.set(handler.fills.inFlight);
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "Content-Type": metrics.registry.contentType, "Docker-Distribution-API-Version": "registry/2.0" });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    handler.handle(req, res);
  };

  let server: Server;
  if (config.tls) {
    const [cert, key] = await Promise.all([readFile(config.tls.certificate), readFile(config.tls.key)]);
    server = createHttpsServer({ cert, key }, onRequest);
  } else {
    server = createHttpServer(onRequest);
  }
  server.keepAliveTimeout = 65_000;
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
  logger.info({ url, upstreams: upstream.upstreamUrls }, "listening");

  const sweepOpts = { blobTtlMs: d.blobTtlMs, deleteEnabled: config.deleteEnabled, maxSizeBytes: d.maxSizeBytes, highWatermark: d.highWatermark, lowWatermark: d.lowWatermark };
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
    store,
    handler,
    metrics,
    upstream,
    sweepNow,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await upstream.close();
      store.closeHandles();
    },
  };
}
