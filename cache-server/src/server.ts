// The registry v2 read path. Wiring only: routing, authorization, and which of store / fill /
// revalidation answers; each of those lives in its own module.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { AuthCache, credentialOf, type Credential, type Decision } from "./auth.js";
import type { Clock } from "./clock.js";
import { Batcher } from "./coalesce.js";
import type { DownstreamOptions } from "./config.js";
import { OCI_ERRORS, ociErrorBody, type OciErrorCode, UpstreamError } from "./errors.js";
import { FillCoordinator, type FillSource } from "./fill.js";
import { manifestReferences } from "./manifest-refs.js";
import type { CacheMetrics } from "./metrics.js";
import { digestOf, parseRegistryPath } from "./names.js";
import type { BlobStore, StoredBlob } from "./store.js";
import { sendFile, sendFromFill } from "./stream.js";
import type { UpstreamClient, UpstreamResponse } from "./upstream.js";

const API_VERSION = "registry/2.0";
const MANIFEST_ACCEPT_DEFAULT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
].join(", ");
const MAX_MANIFEST = 4 * 1024 * 1024;
// Headers of an upstream refusal worth handing back so clients can log in through the cache.
const RELAY_HEADERS = ["www-authenticate", "content-type", "retry-after", "docker-distribution-api-version"];

export interface RegistryHandlerDeps {
  readonly store: BlobStore;
  readonly upstream: UpstreamClient;
  readonly metrics: CacheMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly options: DownstreamOptions;
}

interface Ctx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly log: Logger;
  readonly cred: Credential;
  readonly authorization: string | undefined;
  readonly query: string;
  xcache?: "HIT" | "MISS" | "STALE";
  /** Body bytes handed to the socket, for the access log. */
  bytes: number;
}

type TagOutcome =
  | { kind: "manifest"; bytes: Buffer; digest: string; mediaType: string; xcache: "HIT" | "MISS" | "STALE" }
  | { kind: "refused"; status: number; headers: Record<string, string>; body: Buffer }
  | { kind: "unreachable" };

export class RegistryHandler {
  readonly fills: FillCoordinator;
  private readonly auth: AuthCache;
  private readonly tagBatcher = new Batcher<TagOutcome>();

  constructor(private readonly deps: RegistryHandlerDeps) {
    const { store, metrics, logger, clock } = deps;
    const { authTtlMs, outageAllowanceMs, notFoundTtlMs, serveStale } = deps.options;
    this.auth = new AuthCache(clock, { ttlMs: authTtlMs, outageAllowanceMs: serveStale ? outageAllowanceMs : 0, notFoundTtlMs }, (source, result) =>
      metrics.authDecisions.inc({ source, result }),
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
          logger.warn({ digest: fill.digest, err: { code: (err as { code?: string }).code, message: err.message } }, "disk full: streaming straight through without keeping the blob");
        },
      },
      () => clock.now(),
    );
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
    const log = this.deps.logger.child({ requestId });
    const ctx: Ctx = { req, res, log, query, authorization, cred: credentialOf(authorization, query), bytes: 0 };
    res.setHeader("Docker-Distribution-API-Version", API_VERSION);
    res.setHeader("X-Request-Id", requestId);
    // One line per request however it ended, written once both the response closed and the
    // route returned (the route knows the body bytes written; a client gone mid-body closes the
    // response before the send loop notices).
    let pending = 2;
    const logLine = (): void => {
      if (--pending > 0) return;
      log.info({ method: req.method, path, status: res.statusCode, cache: ctx.xcache, bytes: ctx.bytes, outcome: outcomeOf(res), ms: Math.round(performance.now() - started) }, "request");
    };
    res.once("close", logLine);
    this.route(ctx, path)
      .catch((err: unknown) => {
        log.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, "request failed");
        if (res.headersSent) res.destroy(err instanceof Error ? err : new Error(String(err)));
        else if (isRedirectError(err)) this.sendError(ctx, "UPSTREAM_ERROR", err.message);
        else this.sendError(ctx, err instanceof UpstreamError ? "UPSTREAM_UNAVAILABLE" : "UPSTREAM_ERROR");
      })
      .finally(logLine);
  }

  private async route(ctx: Ctx, path: string): Promise<void> {
    const method = ctx.req.method ?? "GET";
    const route = parseRegistryPath(path);
    if (route.kind === "invalid") return this.sendError(ctx, route.code, route.detail);
    if (method !== "GET" && method !== "HEAD") {
      ctx.res.setHeader("Allow", "GET, HEAD");
      return this.sendError(ctx, "UNSUPPORTED", "this cache is read-only; push to the upstream registry");
    }
    if (route.kind === "unsupported") return this.sendError(ctx, "UNSUPPORTED", route.detail);
    if (route.kind === "base") return this.base(ctx);
    if (route.kind === "tags") return this.tagList(ctx, route.name);
    if (route.kind === "blob") return this.blob(ctx, route.name, route.digest, method === "HEAD");
    if (route.byDigest) return this.manifestByDigest(ctx, route.name, route.reference, method === "HEAD");
    return this.manifestByTag(ctx, route.name, route.reference, method === "HEAD");
  }

  // --- GET /v2/ : the client's login probe goes upstream so challenges come back unchanged ---
  private async base(ctx: Ctx): Promise<void> {
    let up: UpstreamResponse;
    try {
      up = await this.deps.upstream.request({ method: "GET", path: withQuery("/v2/", ctx.query), headers: this.upHeaders(ctx) });
    } catch {
      // No upstream: cached content may still be served, so the API itself is "up".
      return this.sendJson(ctx, 200, "{}");
    }
    const body = await readBody(up, 64 * 1024);
    if (up.status === 200) return this.sendJson(ctx, 200, "{}");
    return this.relay(ctx, up.status, pickHeaders(up.headers), body);
  }

  // --- tag listing: not cached (it changes with every push); passed through with its auth ---
  private async tagList(ctx: Ctx, name: string): Promise<void> {
    let up: UpstreamResponse;
    try {
      up = await this.deps.upstream.request({ method: "GET", path: withQuery(`/v2/${name}/tags/list`, ctx.query), headers: this.upHeaders(ctx, "application/json") });
    } catch (err) {
      if (err instanceof UpstreamError) return this.sendError(ctx, "UPSTREAM_UNAVAILABLE");
      throw err;
    }
    const body = await readBody(up, MAX_MANIFEST);
    const headers = pickHeaders(up.headers);
    const link = headerValue(up.headers.link);
    if (link) headers.link = link;
    return this.relay(ctx, up.status, headers, body, "NAME_UNKNOWN");
  }

  // --- blobs ---
  private async blob(ctx: Ctx, name: string, digest: string, head: boolean): Promise<void> {
    const { store, metrics } = this.deps;
    const range = ctx.req.headers.range;
    // A fresh refusal or 404 for this very (credential, repository, digest) answers without
    // asking the upstream again; a remembered "allow" is checked below, only for cached bytes.
    const known = this.auth.remembered(ctx.cred, name, digest);
    if (known && known.kind !== "allow") return this.refuse(ctx, known, "BLOB_UNKNOWN");
    for (let attempt = 0; attempt < 2; attempt++) {
      // An index miss looks at the directory: another process sharing the root may have
      // committed the blob since this one's last resync.
      const cached = store.getBlob(digest) ?? (await store.findBlob(digest));
      const filling = this.fills.get(digest);
      if (cached || (filling && !filling.passthrough && filling.state !== "failed")) {
        const d = await this.authorize(ctx, name, digest, `/v2/${name}/blobs/${digest}`, undefined, true);
        if (d.kind !== "allow") return this.refuse(ctx, d, "BLOB_UNKNOWN");
        const now = store.getBlob(digest);
        if (now) {
          ctx.xcache = "HIT";
          metrics.requests.inc({ kind: "blob", result: "hit" });
          if (await this.serveStoredBlob(ctx, now, head, range)) return;
          continue; // deleted by another process between index and open: a miss now
        }
        const fill = this.fills.get(digest);
        if (!fill || fill.passthrough || fill.state === "failed") continue;
        metrics.coalescedWaiters.inc({ kind: "blob" });
      } else if (head) {
        // HEAD on a miss: the upstream's own answer (and authorization) is passed on.
        const up = await this.deps.upstream.request({ method: "HEAD", path: withQuery(`/v2/${name}/blobs/${digest}`, ctx.query), headers: this.upHeaders(ctx), followRedirect: true });
        up.body.resume();
        this.auth.record(ctx.cred, name, digest, decisionOf(up.status, pickHeaders(up.headers), Buffer.alloc(0)));
        ctx.xcache = "MISS";
        metrics.requests.inc({ kind: "blob", result: "miss" });
        if (up.status !== 200) return this.relay(ctx, up.status, pickHeaders(up.headers), Buffer.alloc(0));
        ctx.res.writeHead(200, {
          "Content-Type": "application/octet-stream",
          "Docker-Content-Digest": digest,
          ...(up.headers["content-length"] ? { "Content-Length": String(up.headers["content-length"]) } : {}),
          "Accept-Ranges": "bytes",
          "X-Cache": "MISS",
        });
        ctx.res.end();
        return;
      }
      // Start (or join, when someone started one meanwhile) the fill. The starter's own GET is
      // its authorization: a refusal is relayed and nothing is fetched. One upstream redirect is
      // followed (DTR's 307 back to this cache with a signed query, see redirect.ts); bytes are
      // still kept and served only when the request finally answered 200.
      const source = async (): Promise<FillSource> => {
        const up = await this.deps.upstream.request({ method: "GET", path: withQuery(`/v2/${name}/blobs/${digest}`, ctx.query), headers: this.upHeaders(ctx), followRedirect: true });
        if (up.redirected) ctx.log.info({ digest, redirect: up.redirected, status: up.status }, "fill followed one upstream redirect");
        return up;
      };
      const { reader, started } = this.fills.join(digest, source);
      if (started) this.deps.metrics.fillsInFlight.set(this.fills.inFlight);
      const ready = await reader.fill.ready;
      if (!ready.ok) {
        reader.detach();
        if (started) {
          this.auth.record(ctx.cred, name, digest, decisionOf(ready.status, pickHeaders(ready.headers), ready.body));
          const failure = reader.fill.error;
          if (failure && (failure as { code?: string }).code === "FILL_UPSTREAM_FAILED") {
            if (isRedirectError(failure.cause)) return this.sendError(ctx, "UPSTREAM_ERROR", failure.cause.message);
            return this.staleOrUnavailable(ctx);
          }
          return this.relay(ctx, ready.status, pickHeaders(ready.headers), ready.body, "BLOB_UNKNOWN");
        }
        continue; // the starter was refused, not us: try once more with our own credentials
      }
      if (started && reader.fill.followed) {
        // Another process fetched it: our request's own GET never went upstream, so it is
        // authorized like a request joining a fill in this process.
        const d = await this.authorize(ctx, name, digest, `/v2/${name}/blobs/${digest}`, undefined, true);
        if (d.kind !== "allow") {
          reader.detach();
          return this.refuse(ctx, d, "BLOB_UNKNOWN");
        }
      } else if (started) this.auth.allow(ctx.cred, name, [digest]);
      ctx.xcache = "MISS";
      metrics.requests.inc({ kind: "blob", result: "miss" });
      if (range !== undefined || head) {
        // Partial reads of a blob still filling wait for the verified file.
        reader.detach();
        while (reader.fill.state !== "done" && reader.fill.state !== "failed") await reader.fill.changed();
        const blob = store.getBlob(digest);
        if (!blob) return this.sendError(ctx, "UPSTREAM_ERROR", "the upstream blob failed verification");
        if (await this.serveStoredBlob(ctx, blob, head, range)) return;
        return this.sendError(ctx, "UPSTREAM_ERROR", "the blob was removed while being served");
      }
      const headers: Record<string, string> = {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": digest,
        "Accept-Ranges": "bytes",
        ETag: `"${digest}"`,
        "X-Cache": "MISS",
      };
      if (ready.size !== undefined) headers["Content-Length"] = String(ready.size);
      ctx.res.writeHead(200, headers);
      const r = await sendFromFill(ctx.res, reader, store.blobPath(digest));
      ctx.bytes += r.sent;
      metrics.bytesServed.inc(r.sent);
      return;
    }
    return this.sendError(ctx, "UPSTREAM_ERROR", "could not start a fill for this blob");
  }

  /** Serves a stored blob; false (nothing sent) when its file was gone, deleted by another process. */
  private async serveStoredBlob(ctx: Ctx, blob: StoredBlob, head: boolean, rangeHeader: string | undefined): Promise<boolean> {
    const { store, metrics } = this.deps;
    store.touch(blob);
    let start = 0;
    let end = blob.size;
    let status = 200;
    const headers: Record<string, string> = {
      "Content-Type": "application/octet-stream",
      "Docker-Content-Digest": blob.digest,
      "Accept-Ranges": "bytes",
      ETag: `"${blob.digest}"`,
      "Cache-Control": "max-age=31536000",
      "X-Cache": ctx.xcache ?? "HIT",
    };
    if (rangeHeader !== undefined) {
      const r = parseRange(rangeHeader, blob.size);
      if (r === "invalid") {
        ctx.res.setHeader("Content-Range", `bytes */${blob.size}`);
        this.sendError(ctx, "RANGE_INVALID");
        return true;
      }
      if (r) {
        [start, end] = r;
        status = 206;
        headers["Content-Range"] = `bytes ${start}-${end - 1}/${blob.size}`;
      }
    }
    headers["Content-Length"] = String(end - start);
    // Counted as a reader before the first header goes out, so the sweeper cannot remove the
    // file between our answer and our read.
    blob.readers++;
    try {
      // The handle is opened before the status goes out: another process sharing the root may
      // have deleted the file, and then this request is still a miss, not a broken 200. Once
      // open, the descriptor outlives any later unlink.
      let handle: Awaited<ReturnType<typeof store.openBlob>> | undefined;
      if (!head && end !== start) {
        try {
          handle = await store.openBlob(blob.digest);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
          store.forgetMissing(blob.digest);
          return false;
        }
      }
      ctx.res.writeHead(status, headers);
      if (!handle) {
        ctx.res.end();
        return true;
      }
      try {
        const r = await sendFile(ctx.res, handle.fh, start, end);
        ctx.bytes += r.sent;
        metrics.bytesServed.inc(r.sent);
      } finally {
        handle.release();
      }
      return true;
    } finally {
      blob.readers--;
    }
  }

  // --- manifests ---
  private async manifestByDigest(ctx: Ctx, name: string, digest: string, head: boolean): Promise<void> {
    const { store, metrics } = this.deps;
    const known = this.auth.remembered(ctx.cred, name, digest);
    if (known && known.kind !== "allow") return this.refuse(ctx, known, "MANIFEST_UNKNOWN");
    const stored = await store.getManifest(digest);
    if (stored) {
      const d = await this.authorize(ctx, name, digest, `/v2/${name}/manifests/${digest}`, this.accept(ctx));
      if (d.kind !== "allow") return this.refuse(ctx, d, "MANIFEST_UNKNOWN");
      // Learn what the manifest makes readable only when the upstream was just asked (not on
      // every hit: parsing the manifest per request cost a third of the hit rate).
      if (!known && !d.stale) this.auth.allow(ctx.cred, name, manifestReferences(stored.bytes));
      metrics.requests.inc({ kind: "manifest_digest", result: "hit" });
      return this.sendManifest(ctx, stored.bytes, digest, stored.mediaType, "HIT", head);
    }
    let up: UpstreamResponse;
    try {
      up = await this.deps.upstream.request({ method: "GET", path: withQuery(`/v2/${name}/manifests/${digest}`, ctx.query), headers: this.upHeaders(ctx, this.accept(ctx)) });
    } catch (err) {
      if (err instanceof UpstreamError) return this.sendError(ctx, "UPSTREAM_UNAVAILABLE");
      throw err;
    }
    const body = await readBody(up, MAX_MANIFEST);
    if (up.status !== 200) {
      this.auth.record(ctx.cred, name, digest, decisionOf(up.status, pickHeaders(up.headers), body));
      return this.relay(ctx, up.status, pickHeaders(up.headers), body, "MANIFEST_UNKNOWN");
    }
    if (digestOf(body) !== digest) return this.sendError(ctx, "UPSTREAM_ERROR", "upstream manifest does not match its digest");
    const mediaType = headerValue(up.headers["content-type"]) ?? "application/vnd.docker.distribution.manifest.v2+json";
    await store.putManifest(digest, body, mediaType);
    this.auth.allow(ctx.cred, name, [digest, ...manifestReferences(body)]);
    metrics.requests.inc({ kind: "manifest_digest", result: "miss" });
    return this.sendManifest(ctx, body, digest, mediaType, "MISS", head);
  }

  private async manifestByTag(ctx: Ctx, name: string, tag: string, head: boolean): Promise<void> {
    const accept = this.accept(ctx);
    const key = `${ctx.cred.key}|${name}|${tag}|${accept}`;
    const outcome = await this.tagBatcher.run(key, () => this.revalidateTag(ctx, name, tag, accept), () => this.deps.metrics.coalescedWaiters.inc({ kind: "tag" }));
    if (outcome.kind === "refused") return this.relay(ctx, outcome.status, outcome.headers, outcome.body, "MANIFEST_UNKNOWN");
    if (outcome.kind === "unreachable") {
      this.deps.metrics.requests.inc({ kind: "manifest_tag", result: "error" });
      return this.sendError(ctx, "UPSTREAM_UNAVAILABLE");
    }
    this.deps.metrics.requests.inc({ kind: "manifest_tag", result: outcome.xcache.toLowerCase() });
    return this.sendManifest(ctx, outcome.bytes, outcome.digest, outcome.mediaType, outcome.xcache, head);
  }

  /** One conditional round trip upstream for a tag; shared by every request in the batch. */
  private async revalidateTag(ctx: Ctx, name: string, tag: string, accept: string): Promise<TagOutcome> {
    const { store } = this.deps;
    const known = store.getTag(name, tag);
    const knownManifest = known ? await store.getManifest(known.digest) : undefined;
    const headers = this.upHeaders(ctx, accept);
    if (known && knownManifest) headers["if-none-match"] = `"${known.digest}"`;
    let up: UpstreamResponse;
    try {
      up = await this.deps.upstream.request({ method: "GET", path: withQuery(`/v2/${name}/manifests/${tag}`, ctx.query), headers });
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      return this.staleTag(ctx, name, known, knownManifest);
    }
    const body = await readBody(up, MAX_MANIFEST);
    if (up.status === 304 && known && knownManifest) {
      this.auth.allow(ctx.cred, name, [known.digest, ...manifestReferences(knownManifest.bytes)]);
      return { kind: "manifest", bytes: knownManifest.bytes, digest: known.digest, mediaType: knownManifest.mediaType, xcache: "HIT" };
    }
    if (up.status === 200) {
      const digest = digestOf(body);
      const mediaType = headerValue(up.headers["content-type"]) ?? "application/vnd.docker.distribution.manifest.v2+json";
      await store.putManifest(digest, body, mediaType);
      await store.putTag(name, tag, { digest, mediaType });
      this.auth.allow(ctx.cred, name, [digest, ...manifestReferences(body)]);
      return { kind: "manifest", bytes: body, digest, mediaType, xcache: "MISS" };
    }
    if (up.status >= 500 || up.status === 429) return this.staleTag(ctx, name, known, knownManifest);
    const relayed = pickHeaders(up.headers);
    const d = decisionOf(up.status, relayed, body);
    if (d.kind === "refuse") this.auth.refuse(ctx.cred, name, d);
    return { kind: "refused", status: up.status, headers: relayed, body };
  }

  private async staleTag(ctx: Ctx, name: string, known: { digest: string } | undefined, manifest: { bytes: Buffer; mediaType: string } | undefined): Promise<TagOutcome> {
    if (!this.deps.options.serveStale || !known || !manifest) return { kind: "unreachable" };
    // Only a credential the upstream allowed this very manifest under this name, recently and
    // not refused since (the outage allowance in auth.ts).
    const d = await this.auth.authorize(ctx.cred, name, known.digest, async () => ({ kind: "unreachable" }));
    if (d.kind !== "allow") return { kind: "unreachable" };
    return { kind: "manifest", bytes: manifest.bytes, digest: known.digest, mediaType: manifest.mediaType, xcache: "STALE" };
  }

  private sendManifest(ctx: Ctx, bytes: Buffer, digest: string, mediaType: string, xcache: "HIT" | "MISS" | "STALE", head: boolean): void {
    ctx.xcache = xcache;
    ctx.res.writeHead(200, {
      "Content-Type": mediaType,
      "Content-Length": String(bytes.length),
      "Docker-Content-Digest": digest,
      ETag: `"${digest}"`,
      "X-Cache": xcache,
    });
    ctx.res.end(head ? undefined : bytes);
    if (!head) {
      ctx.bytes += bytes.length;
      this.deps.metrics.bytesServed.inc(bytes.length);
    }
  }

  // --- authorization ---
  private authorize(ctx: Ctx, name: string, digest: string, probePath: string, accept: string | undefined, followRedirect = false): Promise<Decision> {
    return this.auth.authorize(ctx.cred, name, digest, async () => {
      let up: UpstreamResponse;
      try {
        up = await this.deps.upstream.request({ method: "HEAD", path: withQuery(probePath, ctx.query), headers: this.upHeaders(ctx, accept), followRedirect });
      } catch (err) {
        // A redirect we would not follow is an answer, not an outage: it must not unlock the
        // stale "upstream down" allowance, so it fails this request (502) and is not cached.
        if (isRedirectError(err)) throw err;
        if (err instanceof UpstreamError) return { kind: "unreachable" };
        throw err;
      }
      up.body.resume();
      return decisionOf(up.status, pickHeaders(up.headers), Buffer.from(ociErrorBody(up.status === 401 ? "UNAUTHORIZED" : "DENIED")));
    });
  }

  private refuse(ctx: Ctx, d: Decision, notFound: OciErrorCode): void {
    if (d.kind === "refuse") return this.relay(ctx, d.status, d.headers, d.body);
    if (d.kind === "notfound") return this.sendError(ctx, notFound);
    if (d.kind === "failed") return this.relay(ctx, d.status === 429 ? 429 : 502, d.headers, Buffer.alloc(0));
    return this.staleOrUnavailable(ctx);
  }

  private staleOrUnavailable(ctx: Ctx): void {
    this.sendError(ctx, "UPSTREAM_UNAVAILABLE", "the upstream could not authorize this request");
  }

  // --- helpers ---
  private accept(ctx: Ctx): string {
    const a = ctx.req.headers.accept;
    const joined = Array.isArray(a) ? a.join(", ") : a;
    return joined && joined.trim() !== "" ? joined : MANIFEST_ACCEPT_DEFAULT;
  }

  private upHeaders(ctx: Ctx, accept?: string): Record<string, string> {
    const h: Record<string, string> = { "user-agent": "dtr-cache-server" };
    if (ctx.authorization) h.authorization = ctx.authorization;
    if (accept) h.accept = accept;
    return h;
  }

  private relay(ctx: Ctx, status: number, headers: Record<string, string>, body: Buffer, notFound?: OciErrorCode): void {
    if (status === 404 && notFound && body.length === 0) return this.sendError(ctx, notFound);
    const out: Record<string, string> = { ...headers };
    let payload = body;
    if (payload.length === 0 && status >= 400 && ctx.req.method !== "HEAD") {
      payload = Buffer.from(ociErrorBody(status === 401 ? "UNAUTHORIZED" : status === 403 ? "DENIED" : status === 429 ? "TOOMANYREQUESTS" : "UPSTREAM_ERROR"));
      out["content-type"] = "application/json";
    }
    out["content-length"] = String(payload.length);
    ctx.res.writeHead(status, out);
    if (ctx.req.method !== "HEAD") ctx.bytes += payload.length;
    ctx.res.end(ctx.req.method === "HEAD" ? undefined : payload);
  }

  private sendJson(ctx: Ctx, status: number, body: string): void {
    const length = Buffer.byteLength(body);
    ctx.res.writeHead(status, { "Content-Type": "application/json", "Content-Length": String(length) });
    if (ctx.req.method !== "HEAD") ctx.bytes += length;
    ctx.res.end(ctx.req.method === "HEAD" ? undefined : body);
  }

  private sendError(ctx: Ctx, code: OciErrorCode, detail?: string): void {
    const body = ociErrorBody(code, detail);
    const status = OCI_ERRORS[code].status;
    this.sendJson(ctx, status, body);
  }
}

/**
 * How a response ended: "complete" when its last byte went out, "destroyed" when this server
 * cut it (stall timeout, failed fill, an error mid-body), "aborted" when the client left first.
 */
function outcomeOf(res: ServerResponse): "complete" | "aborted" | "destroyed" {
  if (res.writableFinished) return "complete";
  return res.errored ? "destroyed" : "aborted";
}

function isRedirectError(err: unknown): err is UpstreamError {
  return err instanceof UpstreamError && err.code === "UPSTREAM_REDIRECT";
}

/**
 * What an upstream status says about one object for one credential. Only statuses that mean the
 * upstream itself is not serving (502/503/504, or 500) count as "unreachable" and so may unlock
 * the outage allowance; a refusal never does.
 */
function decisionOf(status: number, headers: Record<string, string>, body: Buffer): Decision {
  if (status >= 200 && status < 300) return { kind: "allow" };
  if (status === 401 || status === 403) return { kind: "refuse", status, headers, body };
  if (status === 404) return { kind: "notfound" };
  if (status === 500 || status === 502 || status === 503 || status === 504) return { kind: "unreachable" };
  return { kind: "failed", status, headers };
}

function pickHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of RELAY_HEADERS) {
    const v = h[k];
    if (v !== undefined && k !== "docker-distribution-api-version") out[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function withQuery(path: string, query: string): string {
  return query ? `${path}?${query}` : path;
}

async function readBody(up: UpstreamResponse, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of up.body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) {
      up.body.on("error", () => undefined).destroy();
      throw new UpstreamError("UPSTREAM_STATUS", "upstream body too large", false);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** Single byte range per RFC 9110; multi-range is answered with the whole body. */
export function parseRange(header: string, size: number): [number, number] | undefined | "invalid" {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return "invalid";
  if (a === "") {
    const n = Math.min(Number(b), size);
    if (n === 0) return "invalid";
    return [size - n, size];
  }
  const start = Number(a);
  const end = b === "" ? size : Math.min(Number(b) + 1, size);
  if (start >= size || end <= start) return "invalid";
  return [start, end];
}
