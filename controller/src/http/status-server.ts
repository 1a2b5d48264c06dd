// The controller's read-only HTTP endpoint: /status, /status/{name}, /events, /events/{name},
// /healthz, /readyz, /metrics.
// It serves whatever the status provider reports; the provider's model never holds secrets, and
// this layer adds none. An optional bearer token guards every path except /healthz (liveness
// probes carry no credentials).
import { timingSafeEqual, createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface NamedStatus {
  readonly name: string;
}

export interface StatusSnapshot<C extends NamedStatus = NamedStatus> {
  readonly caches: readonly C[];
}

export interface ReadinessCheck {
  readonly ok: boolean;
  readonly message?: string;
}

export interface StatusProvider<C extends NamedStatus = NamedStatus> {
  snapshot(): StatusSnapshot<C>;
  /** Named checks (e.g. specLoaded, engineReachable); ready when all are ok. */
  readiness(): Promise<Record<string, ReadinessCheck>>;
}

export interface StatusServerOptions<C extends NamedStatus> {
  readonly provider: StatusProvider<C>;
  readonly metrics: Registry;
  /** The last `limit` events (oldest first) of one cache, or of all when `cache` is undefined. */
  readonly events?: (cache: string | undefined, limit: number) => readonly unknown[];
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  readonly bearerToken?: string;
}

export interface StatusServer {
  readonly url: string;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + "\n";
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Compares hashes so neither the token's length nor its prefix leaks through timing. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const presented = header?.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
  return timingSafeEqual(digest(presented), digest(token));
}

export function createStatusHandler<C extends NamedStatus>(options: StatusServerOptions<C>): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? "/", "http://status.invalid").pathname.replace(/\/+$/, "") || "/";
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return sendJson(res, 405, { error: "the status endpoint is read-only" });
    }
    if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (options.bearerToken !== undefined && !tokenMatches(req.headers.authorization, options.bearerToken)) {
      res.setHeader("www-authenticate", 'Bearer realm="dtrcache-status"');
      return sendJson(res, 401, { error: "a bearer token is required" });
    }
    if (path === "/readyz") {
      const checks = await options.provider.readiness();
      const ready = Object.values(checks).every((check) => check.ok);
      return sendJson(res, ready ? 200 : 503, { ready, checks });
    }
    if (path === "/metrics") {
      const text = await options.metrics.metrics();
      res.writeHead(200, { "content-type": options.metrics.contentType });
      res.end(text);
      return;
    }
    if (path === "/status") return sendJson(res, 200, options.provider.snapshot());
    const events = /^\/events(?:\/([a-z0-9-]+))?$/.exec(path);
    if (events && options.events) {
      const limit = Number(new URL(req.url ?? "/", "http://status.invalid").searchParams.get("limit") ?? "50");
      return sendJson(res, 200, { events: options.events(events[1], Number.isInteger(limit) && limit > 0 ? Math.min(limit, 1000) : 50) });
    }
    const named = /^\/status\/([a-z0-9-]+)$/.exec(path);
    if (named) {
      const cache = options.provider.snapshot().caches.find((c) => c.name === named[1]);
      return cache ? sendJson(res, 200, cache) : sendJson(res, 404, { error: `no cache named "${named[1]}" in the spec` });
    }
    return sendJson(res, 404, { error: "not found; try /status, /status/{name}, /events, /events/{name}, /healthz, /readyz or /metrics" });
  };
  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: error instanceof Error ? error.message : "internal error" });
      else res.destroy();
    });
  };
}

/** Listens on host:port (port 0 picks a free one) and resolves once listening. */
export async function startStatusServer<C extends NamedStatus>(options: StatusServerOptions<C>, host: string, port: number): Promise<StatusServer> {
  const server: Server = createServer(createStatusHandler(options));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
