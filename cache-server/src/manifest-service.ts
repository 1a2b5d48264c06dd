// Manifest decisions: by digest (immutable: a stored copy is served once the upstream allowed
// this credential), by tag (one conditional round trip upstream per batch of identical requests,
// the stored copy when it is unchanged, a stale copy only within the outage allowance).
// Returns outcomes; never sees the HTTP request or response.
import { Batcher } from "./coalesce.js";
import { UpstreamError } from "./errors.js";
import { manifestReferences } from "./manifest-refs.js";
import type { CacheMetrics } from "./metrics.js";
import { digestOf } from "./names.js";
import type { Outcome, RequestInfo } from "./outcome.js";
import type { Decision } from "./auth.js";
import type { BlobStore } from "./store.js";
import type { UpstreamResponse } from "./upstream.js";
import { decisionOf, headerValue, MAX_MANIFEST, pickHeaders, readBody, refusal, type UpstreamAccess } from "./upstream-access.js";

const DEFAULT_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json";

type TagOutcome = Extract<Outcome, { kind: "manifest" } | { kind: "relay" }> | { readonly kind: "unreachable" };

export interface ManifestServiceDeps {
  readonly store: BlobStore;
  readonly access: UpstreamAccess;
  readonly metrics: Pick<CacheMetrics, "requests" | "coalescedWaiters" | "hits">;
  readonly serveStale: boolean;
}

export class ManifestService {
  private readonly tagBatcher = new Batcher<TagOutcome>();

  constructor(private readonly deps: ManifestServiceDeps) {}

  /**
   * The common hit (allowed before, manifest in memory) is decided synchronously and returned as
   * a plain outcome, so the HTTP layer can answer in the same turn; anything else is a promise.
   */
  byDigest(req: RequestInfo, name: string, digest: string): Outcome | Promise<Outcome> {
    const { store, access, metrics } = this.deps;
    const known = access.auth.remembered(req.cred, name, digest);
    if (known && known.kind !== "allow") return refusal(known, "MANIFEST_UNKNOWN");
    const hot = known ? store.hotManifest(digest) : undefined;
    if (known && hot) {
      access.auth.rememberedUsed(known);
      metrics.hits.manifestDigest.inc();
      return { kind: "manifest", bytes: hot.bytes, digest, mediaType: hot.mediaType, xcache: "HIT" };
    }
    return this.byDigestFromStore(req, name, digest, known);
  }

  private async byDigestFromStore(req: RequestInfo, name: string, digest: string, known: Decision | undefined): Promise<Outcome> {
    const { store, access, metrics } = this.deps;
    const stored = await store.getManifest(digest);
    if (stored) {
      const d = known ? access.auth.rememberedUsed(known) : await access.authorize(req, name, digest, `/v2/${name}/manifests/${digest}`, req.accept);
      if (d.kind !== "allow") return refusal(d, "MANIFEST_UNKNOWN");
      // Learn what the manifest makes readable only when the upstream was just asked (not on
      // every hit: parsing the manifest per request cost a third of the hit rate).
      if (!known && !d.stale) access.auth.allow(req.cred, name, manifestReferences(stored.bytes));
      metrics.requests.inc({ kind: "manifest_digest", result: "hit" });
      return { kind: "manifest", bytes: stored.bytes, digest, mediaType: stored.mediaType, xcache: "HIT" };
    }
    let up: UpstreamResponse;
    try {
      up = await access.request(req, "GET", `/v2/${name}/manifests/${digest}`, { accept: req.accept });
    } catch (err) {
      if (err instanceof UpstreamError) return { kind: "error", code: "UPSTREAM_UNAVAILABLE" };
      throw err;
    }
    const body = await readBody(up, MAX_MANIFEST);
    if (up.status !== 200) {
      access.auth.record(req.cred, name, digest, decisionOf(up.status, pickHeaders(up.headers), body));
      return { kind: "relay", status: up.status, headers: pickHeaders(up.headers), body, notFound: "MANIFEST_UNKNOWN" };
    }
    if (digestOf(body) !== digest) return { kind: "error", code: "UPSTREAM_ERROR", detail: "upstream manifest does not match its digest" };
    const mediaType = headerValue(up.headers["content-type"]) ?? DEFAULT_MEDIA_TYPE;
    await store.putManifest(digest, body, mediaType);
    access.auth.allow(req.cred, name, [digest, ...manifestReferences(body)]);
    metrics.requests.inc({ kind: "manifest_digest", result: "miss" });
    return { kind: "manifest", bytes: body, digest, mediaType, xcache: "MISS" };
  }

  async byTag(req: RequestInfo, name: string, tag: string): Promise<Outcome> {
    const { metrics } = this.deps;
    const key = `${req.cred.key}|${name}|${tag}|${req.accept}`;
    const outcome = await this.tagBatcher.run(
      key,
      () => this.revalidateTag(req, name, tag),
      () => metrics.coalescedWaiters.inc({ kind: "tag" }),
    );
    if (outcome.kind === "unreachable") {
      metrics.requests.inc({ kind: "manifest_tag", result: "error" });
      return { kind: "error", code: "UPSTREAM_UNAVAILABLE" };
    }
    if (outcome.kind === "manifest") metrics.requests.inc({ kind: "manifest_tag", result: outcome.xcache.toLowerCase() });
    return outcome;
  }

  /** One conditional round trip upstream for a tag; shared by every request in the batch. */
  private async revalidateTag(req: RequestInfo, name: string, tag: string): Promise<TagOutcome> {
    const { store, access } = this.deps;
    const known = store.getTag(name, tag);
    const knownManifest = known ? await store.getManifest(known.digest) : undefined;
    const extra: Record<string, string> = {};
    if (known && knownManifest) extra["if-none-match"] = `"${known.digest}"`;
    let up: UpstreamResponse;
    try {
      up = await access.request(req, "GET", `/v2/${name}/manifests/${tag}`, { accept: req.accept, extra });
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      return this.staleTag(req, name, known, knownManifest);
    }
    const body = await readBody(up, MAX_MANIFEST);
    if (up.status === 304 && known && knownManifest) {
      access.auth.allow(req.cred, name, [known.digest, ...manifestReferences(knownManifest.bytes)]);
      return { kind: "manifest", bytes: knownManifest.bytes, digest: known.digest, mediaType: knownManifest.mediaType, xcache: "HIT" };
    }
    if (up.status === 200) {
      const digest = digestOf(body);
      const mediaType = headerValue(up.headers["content-type"]) ?? DEFAULT_MEDIA_TYPE;
      await store.putManifest(digest, body, mediaType);
      await store.putTag(name, tag, { digest, mediaType });
      access.auth.allow(req.cred, name, [digest, ...manifestReferences(body)]);
      return { kind: "manifest", bytes: body, digest, mediaType, xcache: "MISS" };
    }
    if (up.status >= 500 || up.status === 429) return this.staleTag(req, name, known, knownManifest);
    const relayed = pickHeaders(up.headers);
    const d = decisionOf(up.status, relayed, body);
    if (d.kind === "refuse") access.auth.refuse(req.cred, name, d);
    return { kind: "relay", status: up.status, headers: relayed, body, notFound: "MANIFEST_UNKNOWN" };
  }

  private async staleTag(
    req: RequestInfo,
    name: string,
    known: { digest: string } | undefined,
    manifest: { bytes: Buffer; mediaType: string } | undefined,
  ): Promise<TagOutcome> {
    if (!this.deps.serveStale || !known || !manifest) return { kind: "unreachable" };
    // Only a credential the upstream allowed this very manifest under this name, recently and
    // not refused since (the outage allowance in auth.ts).
    const d = await this.deps.access.auth.authorize(req.cred, name, known.digest, async () => ({ kind: "unreachable" }));
    if (d.kind !== "allow") return { kind: "unreachable" };
    return { kind: "manifest", bytes: manifest.bytes, digest: known.digest, mediaType: manifest.mediaType, xcache: "STALE" };
  }
}
