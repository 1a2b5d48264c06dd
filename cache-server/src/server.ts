// The registry v2 read path's HTTP layer: parse the route, ask the service that decides it
// (blob-service.ts, manifest-service.ts, passthrough-service.ts), and write the outcome it
// returns: status, headers, body bytes or stream, errors in the registry's JSON format. One
// access log line per request, however the response ended. No cache decision is made here.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { AccessLog } from "./access-log.js";
import { AuthCache, ConnectionCredentials, type Credential } from "./auth.js";
import { BlobService } from "./blob-service.js";
import type { Clock } from "./clock.js";
import type { DownstreamOptions } from "./config.js";
import { OCI_ERRORS, ociErrorBody, type OciErrorCode, UpstreamError } from "./errors.js";
import { FillCoordinator } from "./fill-coordinator.js";
import { ManifestService } from "./manifest-service.js";
import type { CacheMetrics } from "./metrics.js";
import { parseRegistryPath } from "./names.js";
import type { Outcome, RequestInfo, XCache } from "./outcome.js";
import { PassthroughService } from "./passthrough-service.js";
import type { BlobStore } from "./store.js";
import { sendFile, sendFromFill } from "./stream.js";
import type { UpstreamClient } from "./upstream.js";
import { headerValue, isRedirectError, UpstreamAccess } from "./upstream-access.js";

export { parseRange } from "./blob-service.js";

const API_VERSION = "registry/2.0";
const MANIFEST_ACCEPT_DEFAULT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
].join(", ");

export interface RegistryHandlerDeps {
  readonly store: BlobStore;
  readonly upstream: UpstreamClient;
  readonly metrics: CacheMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly options: DownstreamOptions;
}

/** One response being written: what the access log line reports. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  xcache?: XCache;
  /** Body bytes handed to the socket. */
  bytes: number;
  readonly requestId: string;
}

export class RegistryHandler {
  readonly fills: FillCoordinator;
  private readonly blobs: BlobService;
  private readonly manifests: ManifestService;
  private readonly passthrough: PassthroughService;
  private readonly accessLog: AccessLog;
  private readonly credentials = new ConnectionCredentials();

  constructor(private readonly deps: RegistryHandlerDeps) {
    const { store, metrics, logger, clock, upstream } = deps;
    const { authTtlMs, outageAllowanceMs, notFoundTtlMs, serveStale } = deps.options;
    const auth = new AuthCache(clock, { ttlMs: authTtlMs, outageAllowanceMs: serveStale ? outageAllowanceMs : 0, notFoundTtlMs }, (source, result) =>
      source === "remembered" && result === "allow" ? metrics.hits.rememberedAllow.inc() : metrics.authDecisions.inc({ source, result }),
    );
    this.fills = new FillCoordinator(
      store,
      {
        onFetched: (n) => metrics.bytesFetched.inc(n),
        onDone: (fill) => {
          metrics.fillsInFlight.set(this.fills.inFlight - 1);
          logger.info({ digest: fill.digest, size: fill.size, passthrough: fill.passthrough }, "fill complete");
        },
        onFailed: (fill, err) => {
          metrics.fillsInFlight.set(Math.max(0, this.fills.inFlight - 1));
          const code = (err as { code?: string }).code ?? "error";
          if (code !== "FILL_UPSTREAM_STATUS") {
            metrics.fillFailures.inc({ reason: code });
            logger.warn({ digest: fill.digest, err: { code, message: err.message } }, "fill failed; nothing kept");
          }
        },
        onDiskFull: (fill, err) => {
          metrics.diskFull.inc();
          logger.warn(
            { digest: fill.digest, err: { code: (err as { code?: string }).code, message: err.message } },
            "disk full: streaming straight through without keeping the blob",
          );
        },
      },
      () => clock.now(),
    );
    const access = new UpstreamAccess(upstream, auth);
    this.blobs = new BlobService({ store, access, fills: this.fills, metrics });
    this.manifests = new ManifestService({ store, access, metrics, serveStale });
    this.passthrough = new PassthroughService(access);
    this.accessLog = new AccessLog(logger);
  }

  /** Writes the access lines still waiting for the end of this event-loop turn (shutdown). */
  flushLog(): void {
    this.accessLog.flush();
  }

  /** Entry point for every request; never throws. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const requestId = headerValue(req.headers["x-request-id"])?.slice(0, 64) ?? randomUUID();
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = q < 0 ? "" : rawUrl.slice(q + 1);
    const authorization = headerValue(req.headers.authorization);
    const info = new RequestContext(this.deps.logger, requestId, this.credentials.of(req.socket, authorization, query), authorization, query, acceptOf(req));
    const ex: Exchange = { req, res, bytes: 0, requestId };
    // One line per request however it ended, written once both the response closed and the
    // route returned (the route knows the body bytes written; a client gone mid-body closes the
    // response before the send loop notices).
    let pending = 2;
    const logLine = (): void => {
      if (--pending > 0) return;
      this.accessLog.write({
        requestId,
        method: req.method,
        path,
        status: res.statusCode,
        cache: ex.xcache,
        bytes: ex.bytes,
        outcome: outcomeOf(res),
        ms: Math.round(performance.now() - started),
      });
    };
    res.once("close", logLine);
    const failed = (err: unknown): void => {
      this.failed(ex, info, err);
      logLine();
    };
    // A decision that needs no I/O (a remembered grant and the manifest or small blob in memory)
    // is written in the same turn as the request arrived, like a static file server would: no
    // promise, no microtask between the parsed request and the response's one writev.
    try {
      const routed = this.route(ex, info, path);
      const written = routed instanceof Promise ? routed.then((outcome) => this.write(ex, outcome)) : this.write(ex, routed);
      if (written) written.then(logLine, failed);
      else logLine();
    } catch (err) {
      failed(err);
    }
  }

  /** A route or a write threw: a registry error if nothing was sent yet, else the response is cut. */
  private failed(ex: Exchange, info: RequestInfo, err: unknown): void {
    info.log.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, "request failed");
    if (ex.res.headersSent) ex.res.destroy(err instanceof Error ? err : new Error(String(err)));
    else if (isRedirectError(err)) this.writeError(ex, "UPSTREAM_ERROR", err.message);
    else this.writeError(ex, err instanceof UpstreamError ? "UPSTREAM_UNAVAILABLE" : "UPSTREAM_ERROR");
  }

  private route(ex: Exchange, info: RequestInfo, path: string): Outcome | Promise<Outcome> {
    const method = ex.req.method ?? "GET";
    const route = parseRegistryPath(path);
    if (route.kind === "invalid") return { kind: "error", code: route.code, detail: route.detail };
    if (method !== "GET" && method !== "HEAD") {
      return { kind: "error", code: "UNSUPPORTED", detail: "this cache is read-only; push to the upstream registry", headers: { Allow: "GET, HEAD" } };
    }
    if (route.kind === "unsupported") return { kind: "error", code: "UNSUPPORTED", detail: route.detail };
    if (route.kind === "base") return this.passthrough.base(info);
    if (route.kind === "tags") return this.passthrough.tagList(info, route.name);
    if (route.kind === "blob") return this.blobs.get(info, { name: route.name, digest: route.digest, head: method === "HEAD", range: ex.req.headers.range });
    if (route.byDigest) return this.manifests.byDigest(info, route.name, route.reference);
    return this.manifests.byTag(info, route.name, route.reference);
  }

  // --- writing outcomes ---
  /** Writes an outcome; a promise only for bodies streamed from a file or a fill. */
  private write(ex: Exchange, outcome: Outcome): Promise<void> | undefined {
    switch (outcome.kind) {
      case "error":
        this.writeError(ex, outcome.code, outcome.detail, outcome.headers);
        return undefined;
      case "relay":
        this.writeRelay(ex, outcome.status, outcome.headers, outcome.body, outcome.notFound);
        return undefined;
      case "json":
        this.writeJson(ex, outcome.status, outcome.body);
        return undefined;
      case "manifest":
        this.writeManifest(ex, outcome);
        return undefined;
      case "head":
        ex.xcache = outcome.xcache;
        this.writeHead(ex, outcome.status, { ...outcome.headers });
        ex.res.end();
        return undefined;
      case "buffer":
        ex.xcache = outcome.xcache;
        this.writeHead(ex, outcome.status, { ...outcome.headers });
        if (ex.req.method === "HEAD") ex.res.end();
        else {
          ex.res.end(outcome.body);
          this.counted(ex, outcome.body.length);
        }
        return undefined;
      case "file":
        return this.writeFile(ex, outcome);
      case "fill":
        return this.writeFill(ex, outcome);
    }
  }

  /**
   * The status line and every header in one writeHead: headers given to setHeader first would
   * make Node validate and store each one twice. `headers` is this response's own object.
   */
  private writeHead(ex: Exchange, status: number, headers: Record<string, string>): void {
    headers["Docker-Distribution-API-Version"] = API_VERSION;
    headers["X-Request-Id"] = ex.requestId;
    ex.res.writeHead(status, headers);
  }

  private async writeFill(ex: Exchange, outcome: Extract<Outcome, { kind: "fill" }>): Promise<void> {
    ex.xcache = "MISS";
    this.writeHead(ex, 200, { ...outcome.headers });
    const r = await sendFromFill(ex.res, outcome.reader, outcome.fallbackPath);
    this.counted(ex, r.sent);
  }

  private async writeFile(ex: Exchange, outcome: Extract<Outcome, { kind: "file" }>): Promise<void> {
    ex.xcache = outcome.xcache;
    try {
      this.writeHead(ex, outcome.status, { ...outcome.headers });
      if (!outcome.file) {
        ex.res.end();
        return;
      }
      const r = await sendFile(ex.res, outcome.file.fh, outcome.file.start, outcome.file.end);
      this.counted(ex, r.sent);
    } finally {
      outcome.done();
    }
  }

  private writeManifest(ex: Exchange, m: Extract<Outcome, { kind: "manifest" }>): void {
    ex.xcache = m.xcache;
    this.writeHead(ex, 200, {
      "Content-Type": m.mediaType,
      "Content-Length": String(m.bytes.length),
      "Docker-Content-Digest": m.digest,
      ETag: `"${m.digest}"`,
      "X-Cache": m.xcache,
    });
    const head = ex.req.method === "HEAD";
    ex.res.end(head ? undefined : m.bytes);
    if (!head) this.counted(ex, m.bytes.length);
  }

  private writeRelay(ex: Exchange, status: number, headers: Record<string, string>, body: Buffer, notFound?: OciErrorCode): void {
    if (status === 404 && notFound && body.length === 0) return this.writeError(ex, notFound);
    const out: Record<string, string> = { ...headers };
    let payload = body;
    if (payload.length === 0 && status >= 400 && ex.req.method !== "HEAD") {
      payload = Buffer.from(ociErrorBody(status === 401 ? "UNAUTHORIZED" : status === 403 ? "DENIED" : status === 429 ? "TOOMANYREQUESTS" : "UPSTREAM_ERROR"));
      out["content-type"] = "application/json";
    }
    out["content-length"] = String(payload.length);
    this.writeHead(ex, status, out);
    if (ex.req.method !== "HEAD") ex.bytes += payload.length;
    ex.res.end(ex.req.method === "HEAD" ? undefined : payload);
  }

  private writeJson(ex: Exchange, status: number, body: string, extra?: Record<string, string>): void {
    const length = Buffer.byteLength(body);
    this.writeHead(ex, status, { ...extra, "Content-Type": "application/json", "Content-Length": String(length) });
    if (ex.req.method !== "HEAD") ex.bytes += length;
    ex.res.end(ex.req.method === "HEAD" ? undefined : body);
  }

  private writeError(ex: Exchange, code: OciErrorCode, detail?: string, extra?: Record<string, string>): void {
    this.writeJson(ex, OCI_ERRORS[code].status, ociErrorBody(code, detail), extra);
  }

  /** Blob and manifest body bytes: the access log's count and the served-bytes metric. */
  private counted(ex: Exchange, n: number): void {
    ex.bytes += n;
    this.deps.metrics.hits.bytesServed.inc(n);
  }
}

/** RequestInfo with a child logger made only when a service logs (rare on hits). */
class RequestContext implements RequestInfo {
  private child: Logger | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly requestId: string,
    readonly cred: Credential,
    readonly authorization: string | undefined,
    readonly query: string,
    readonly accept: string,
  ) {}

  get log(): Logger {
    return (this.child ??= this.logger.child({ requestId: this.requestId }));
  }
}

function acceptOf(req: IncomingMessage): string {
  const a = req.headers.accept;
  const joined = Array.isArray(a) ? a.join(", ") : a;
  return joined && joined.trim() !== "" ? joined : MANIFEST_ACCEPT_DEFAULT;
}

/**
 * How a response ended: "complete" when its last byte went out, "destroyed" when this server
 * cut it (stall timeout, failed fill, an error mid-body), "aborted" when the client left first.
 */
function outcomeOf(res: ServerResponse): "complete" | "aborted" | "destroyed" {
  if (res.writableFinished) return "complete";
  return res.errored ? "destroyed" : "aborted";
}
