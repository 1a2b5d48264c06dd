// Blob decisions: a stored blob is served once this credential may read it (remembered or asked
// upstream with a HEAD); a miss starts or joins the one fill for its digest, whose GET is the
// starter's authorization; a HEAD miss is the upstream's own answer. Returns outcomes (a stored
// file already open, or a fill reader to stream from); never sees the HTTP request or response.
import type { FillCoordinator } from "./fill-coordinator.js";
import type { FillSource } from "./fill.js";
import type { CacheMetrics } from "./metrics.js";
import type { Outcome, RequestInfo, XCache } from "./outcome.js";
import type { Decision } from "./auth.js";
import type { BlobStore, StoredBlob } from "./store.js";
import { decisionOf, headerValue, isRedirectError, pickHeaders, refusal, unavailable, type UpstreamAccess } from "./upstream-access.js";

export interface BlobServiceDeps {
  readonly store: BlobStore;
  readonly access: UpstreamAccess;
  readonly fills: FillCoordinator;
  readonly metrics: Pick<CacheMetrics, "requests" | "coalescedWaiters" | "fillsInFlight" | "hits">;
}

export interface BlobRequest {
  readonly name: string;
  readonly digest: string;
  readonly head: boolean;
  /** The client's Range header, if any. */
  readonly range: string | undefined;
}

export class BlobService {
  constructor(private readonly deps: BlobServiceDeps) {}

  /**
   * The common hit (this credential allowed before, the blob small enough to be in memory) is
   * decided synchronously, so the HTTP layer answers in the same turn; anything else is a promise.
   */
  get(req: RequestInfo, blob: BlobRequest): Outcome | Promise<Outcome> {
    const { store, metrics, access } = this.deps;
    // A fresh refusal or 404 for this very (credential, repository, digest) answers without
    // asking the upstream again; a remembered "allow" is checked below, only for cached bytes.
    const known = access.auth.remembered(req.cred, blob.name, blob.digest);
    if (known && known.kind !== "allow") return refusal(known, "BLOB_UNKNOWN");
    const stored = known ? store.getBlob(blob.digest) : undefined;
    const bytes = stored ? store.hotBlob(blob.digest) : undefined;
    if (known && stored && bytes) {
      access.auth.rememberedUsed(known);
      metrics.hits.blob.inc();
      store.touch(stored);
      return fromMemory(stored, bytes, blob, "HIT");
    }
    return this.getSlow(req, blob, known);
  }

  /** `known`: the remembered decision get() looked up (an "allow" or nothing), used once instead of a second lookup. */
  private async getSlow(req: RequestInfo, blob: BlobRequest, known: Decision | undefined): Promise<Outcome> {
    const { store, metrics, access, fills } = this.deps;
    const { name, digest, head, range } = blob;
    const path = `/v2/${name}/blobs/${digest}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      // An index miss looks at the directory: another process sharing the root may have
      // committed the blob since this one's last resync.
      const cached = store.getBlob(digest) ?? (await store.findBlob(digest));
      const filling = fills.get(digest);
      if (cached || (filling && !filling.passthrough && filling.state !== "failed")) {
        const d = attempt === 0 && known ? access.auth.rememberedUsed(known) : await access.authorize(req, name, digest, path, undefined, true);
        if (d.kind !== "allow") return refusal(d, "BLOB_UNKNOWN");
        const now = store.getBlob(digest);
        if (now) {
          metrics.hits.blob.inc();
          const out = await this.stored(now, head, range, "HIT");
          if (out) return out;
          continue; // deleted by another process between index and open: a miss now
        }
        const fill = fills.get(digest);
        if (!fill || fill.passthrough || fill.state === "failed") continue;
        metrics.coalescedWaiters.inc({ kind: "blob" });
      } else if (head) {
        // HEAD on a miss: the upstream's own answer (and authorization) is passed on.
        const up = await access.request(req, "HEAD", path, { followRedirect: true });
        up.body.resume();
        access.auth.record(req.cred, name, digest, decisionOf(up.status, pickHeaders(up.headers), Buffer.alloc(0)));
        metrics.requests.inc({ kind: "blob", result: "miss" });
        if (up.status !== 200) return { kind: "relay", status: up.status, headers: pickHeaders(up.headers), body: Buffer.alloc(0) };
        const length = headerValue(up.headers["content-length"]);
        const headers: Record<string, string> = { "Content-Type": "application/octet-stream", "Docker-Content-Digest": digest };
        if (length) headers["Content-Length"] = length;
        headers["Accept-Ranges"] = "bytes";
        headers["X-Cache"] = "MISS";
        return { kind: "head", status: 200, headers, xcache: "MISS" };
      }
      // Start (or join, when someone started one meanwhile) the fill. The starter's own GET is
      // its authorization: a refusal is relayed and nothing is fetched. One upstream redirect is
      // followed (DTR's 307 back to this cache with a signed query, see redirect.ts); bytes are
      // still kept and served only when the request finally answered 200.
      const source = async (): Promise<FillSource> => {
        const up = await access.request(req, "GET", path, { followRedirect: true });
        if (up.redirected) req.log.info({ digest, redirect: up.redirected, status: up.status }, "fill followed one upstream redirect");
        return up;
      };
      const { reader, started } = fills.join(digest, source);
      if (started) metrics.fillsInFlight.set(fills.inFlight);
      const ready = await reader.fill.ready;
      if (!ready.ok) {
        reader.detach();
        if (started) {
          access.auth.record(req.cred, name, digest, decisionOf(ready.status, pickHeaders(ready.headers), ready.body));
          const failure = reader.fill.error;
          if (failure && (failure as { code?: string }).code === "FILL_UPSTREAM_FAILED") {
            if (isRedirectError(failure.cause)) return { kind: "error", code: "UPSTREAM_ERROR", detail: failure.cause.message };
            return unavailable();
          }
          return { kind: "relay", status: ready.status, headers: pickHeaders(ready.headers), body: ready.body, notFound: "BLOB_UNKNOWN" };
        }
        continue; // the starter was refused, not us: try once more with our own credentials
      }
      if (started && reader.fill.followed) {
        // Another process fetched it: our request's own GET never went upstream, so it is
        // authorized like a request joining a fill in this process.
        const d = await access.authorize(req, name, digest, path, undefined, true);
        if (d.kind !== "allow") {
          reader.detach();
          return refusal(d, "BLOB_UNKNOWN");
        }
      } else if (started) access.auth.allow(req.cred, name, [digest]);
      metrics.requests.inc({ kind: "blob", result: "miss" });
      if (range !== undefined || head) {
        // Partial reads of a blob still filling wait for the verified file.
        reader.detach();
        while (reader.fill.state !== "done" && reader.fill.state !== "failed") await reader.fill.changed();
        const done = store.getBlob(digest);
        if (!done) return { kind: "error", code: "UPSTREAM_ERROR", detail: "the upstream blob failed verification" };
        return (await this.stored(done, head, range, "MISS")) ?? { kind: "error", code: "UPSTREAM_ERROR", detail: "the blob was removed while being served" };
      }
      const headers: Record<string, string> = {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": digest,
        "Accept-Ranges": "bytes",
        ETag: `"${digest}"`,
        "X-Cache": "MISS",
      };
      if (ready.size !== undefined) headers["Content-Length"] = String(ready.size);
      return { kind: "fill", headers, reader, fallbackPath: store.blobPath(digest) };
    }
    return { kind: "error", code: "UPSTREAM_ERROR", detail: "could not start a fill for this blob" };
  }

  /**
   * A stored blob ready to send: from memory when small (read whole on its first hit and kept),
   * else its file open (not for HEAD or an empty range) and counted as read, so the sweeper
   * cannot remove it before the response ends. Undefined when its file was gone, deleted by
   * another process sharing the root.
   */
  private async stored(blob: StoredBlob, head: boolean, rangeHeader: string | undefined, xcache: XCache): Promise<Outcome | undefined> {
    const { store } = this.deps;
    store.touch(blob);
    const shape = responseShape(blob, rangeHeader, xcache);
    if (shape.kind === "error") return shape;
    const { status, headers, start, end } = shape;
    const hot = head ? undefined : store.hotBlob(blob.digest);
    if (hot) return fromBuffer(shape, hot, false, xcache);
    // Counted as a reader before the first header goes out, so the sweeper cannot remove the
    // file between our answer and our read.
    blob.readers++;
    let handle: Awaited<ReturnType<typeof store.openBlob>> | undefined;
    try {
      // The handle is opened before the status goes out: another process sharing the root may
      // have deleted the file, and then this request is still a miss, not a broken 200. Once
      // open, the descriptor outlives any later unlink.
      if (!head && end !== start) handle = await store.openBlob(blob.digest);
      const loaded = handle ? await store.loadHotBlob(blob, handle.fh) : undefined;
      if (loaded) {
        handle?.release();
        blob.readers--;
        return fromBuffer(shape, loaded, false, xcache);
      }
    } catch (err) {
      handle?.release();
      blob.readers--;
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      store.forgetMissing(blob.digest);
      return undefined;
    }
    let released = false;
    const done = (): void => {
      if (released) return;
      released = true;
      handle?.release();
      blob.readers--;
    };
    return { kind: "file", status, headers, xcache, file: handle ? { fh: handle.fh, start, end } : undefined, done };
  }
}

/** A small blob served from its in-memory copy (GET, HEAD or a range of it). */
function fromMemory(blob: StoredBlob, bytes: Buffer, req: BlobRequest, xcache: XCache): Outcome {
  const shape = responseShape(blob, req.range, xcache);
  return shape.kind === "error" ? shape : fromBuffer(shape, bytes, req.head, xcache);
}

/** The answer of `shape` with its span of `bytes` as the body (none for HEAD). */
function fromBuffer(shape: ResponseShape, bytes: Buffer, head: boolean, xcache: XCache): Outcome {
  const { status, headers, start, end } = shape;
  return { kind: "buffer", status, headers, xcache, body: head ? Buffer.alloc(0) : bytes.subarray(start, end) };
}

interface ResponseShape {
  readonly kind: "ok";
  readonly status: 200 | 206;
  readonly headers: Record<string, string>;
  readonly start: number;
  readonly end: number;
}

/** Status, headers and byte span of a stored blob's answer, or the error for an unsatisfiable range. */
function responseShape(blob: StoredBlob, rangeHeader: string | undefined, xcache: XCache): ResponseShape | Extract<Outcome, { kind: "error" }> {
  let start = 0;
  let end = blob.size;
  let status: 200 | 206 = 200;
  const headers: Record<string, string> = {
    "Content-Type": "application/octet-stream",
    "Docker-Content-Digest": blob.digest,
    "Accept-Ranges": "bytes",
    ETag: `"${blob.digest}"`,
    "Cache-Control": "max-age=31536000",
    "X-Cache": xcache,
  };
  if (rangeHeader !== undefined) {
    const r = parseRange(rangeHeader, blob.size);
    if (r === "invalid") return { kind: "error", code: "RANGE_INVALID", headers: { "Content-Range": `bytes */${blob.size}` } };
    if (r) {
      [start, end] = r;
      status = 206;
      headers["Content-Range"] = `bytes ${start}-${end - 1}/${blob.size}`;
    }
  }
  headers["Content-Length"] = String(end - start);
  return { kind: "ok", status, headers, start, end };
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
