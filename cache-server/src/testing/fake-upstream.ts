// An in-process registry upstream with switchable faults, for unit tests and fault tests of the
// cache (listening on 127.0.0.1:0). It is deliberately small: blobs and manifests per repository,
// optional bearer-token auth, and per-digest faults (corrupt, truncate, pause mid-body, slow),
// plus 429/503 with Retry-After, and DTR-style blob redirects with a signed query. Every request
// is recorded so tests count upstream fetches.
import { createHash } from "node:crypto";
import { digestOf } from "../names.js";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type BlobFault =
  | { kind: "corrupt" }
  | { kind: "truncate" }
  | { kind: "pause"; afterBytes: number; release: Promise<void> }
  | { kind: "slow"; bytesPerTick: number; tickMs: number };

/**
 * DTR's content-cache flow for one digest: an authorized blob request is answered with `status`
 * and a Location; a request carrying `?sig=<FakeUpstream.signature(digest)>` is served without
 * credentials (the signature is the credential), any other `sig` is refused with 403.
 */
export interface BlobRedirect {
  readonly status: 301 | 302 | 303 | 307 | 308;
  /** Origin the Location names (e.g. the cache's http.host); the blob path and `?sig=` follow. */
  readonly to?: string;
  /** A complete Location instead (e.g. object storage); used as given. */
  readonly location?: string;
  /** Methods redirected; default GET only (the emulated DTR never redirects HEAD). */
  readonly methods?: readonly string[];
  /** Redirect signed requests as well: the loop fault. */
  readonly always?: boolean;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly ifNoneMatch: string | undefined;
}

export { digestOf };

export class FakeUpstream {
  readonly requests: RecordedRequest[] = [];
  readonly blobs = new Map<string, Buffer>();
  private readonly repoBlobs = new Map<string, Set<string>>();
  private readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  private readonly tags = new Map<string, string>();
  readonly faults = new Map<string, BlobFault>();
  /** Per-digest redirect fault (see BlobRedirect). */
  readonly redirects = new Map<string, BlobRedirect>();
  /** Bodies served at exact paths (query ignored), no auth: object storage behind a redirect. */
  readonly objects = new Map<string, Buffer>();
  /** When set, requests need `Authorization: Bearer <token>` (per repository: see tokenRepos). */
  token: string | undefined;
  /** Repositories that require the token; empty = all. */
  readonly tokenRepos = new Set<string>();
  /** The next N requests are answered with this status and Retry-After. */
  busy: { status: 429 | 503; retryAfterSeconds: number; remaining: number } | undefined;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  addBlob(repo: string, bytes: Buffer): string {
    const digest = digestOf(bytes);
    this.blobs.set(digest, bytes);
    let set = this.repoBlobs.get(repo);
    if (!set) this.repoBlobs.set(repo, (set = new Set()));
    set.add(digest);
    return digest;
  }

  addManifest(repo: string, tag: string | undefined, bytes: Buffer, mediaType = "application/vnd.oci.image.manifest.v1+json"): string {
    const digest = digestOf(bytes);
    this.manifests.set(`${repo}@${digest}`, { bytes, mediaType });
    if (tag) this.tags.set(`${repo}:${tag}`, digest);
    return digest;
  }

  /** A minimal image: one config blob, the given layers, an OCI manifest tagged `tag`. */
  addImage(repo: string, tag: string, layers: Buffer[]): { manifestDigest: string; layerDigests: string[] } {
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const configDigest = this.addBlob(repo, config);
    const layerDigests = layers.map((l) => this.addBlob(repo, l));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
        layers: layers.map((l, i) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigests[i], size: l.length })),
      }),
    );
    return { manifestDigest: this.addManifest(repo, tag, manifest), layerDigests };
  }

  /** The signed query value a redirect for `digest` carries (fixed per digest, test-only). */
  signature(digest: string): string {
    return createHash("sha256").update(`fake-grant|${digest}`).digest("hex").slice(0, 32);
  }

  count(method: string, pathPart: string): number {
    return this.requests.filter((r) => r.method === method && r.path.includes(pathPart)).length;
  }

  async start(port = 0): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server?.listen(port || this.port, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.url;
  }

  /** Stops listening and cuts every connection (the "upstream down" fault). */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private authorized(req: IncomingMessage, repo: string | undefined): boolean {
    if (!this.token) return true;
    if (repo && this.tokenRepos.size > 0 && !this.tokenRepos.has(repo)) return true;
    return req.headers.authorization === `Bearer ${this.token}`;
  }

  private challenge(res: ServerResponse, repo: string | undefined): void {
    const scope = repo ? `,scope="repository:${repo}:pull"` : "";
    const body = JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] });
    res.writeHead(401, {
      "WWW-Authenticate": `Bearer realm="${this.url}/token",service="fake-upstream"${scope}`,
      "Content-Type": "application/json",
      "Content-Length": String(body.length),
    });
    res.end(body);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    this.requests.push({
      method: req.method ?? "GET",
      path: `${url.pathname}${url.search}`,
      authorization: req.headers.authorization,
      ifNoneMatch: req.headers["if-none-match"] as string | undefined,
    });
    if (this.busy && this.busy.remaining > 0) {
      this.busy.remaining--;
      res.writeHead(this.busy.status, { "Retry-After": String(this.busy.retryAfterSeconds) });
      res.end();
      return;
    }
    const object = this.objects.get(url.pathname);
    if (object) {
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(object.length) });
      res.end(req.method === "HEAD" ? undefined : object);
      return;
    }
    if (url.pathname === "/v2/") {
      if (!this.authorized(req, undefined) && this.tokenRepos.size === 0) return this.challenge(res, undefined);
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end("{}");
      return;
    }
    const m = /^\/v2\/(.+)\/(blobs|manifests)\/([^/]+)$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404);
      res.end();
      return;
    }
    const [, repo = "", kind, ref = ""] = m;
    const redirect = kind === "blobs" ? this.redirects.get(ref) : undefined;
    const sig = url.searchParams.get("sig");
    if (redirect && sig !== null) {
      if (sig !== this.signature(ref)) {
        res.writeHead(403, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "DENIED", message: "bad signature" }] }));
        return;
      }
      if (!redirect.always) return this.blob(req, res, repo, ref);
    } else if (!this.authorized(req, repo)) return this.challenge(res, repo);
    if (redirect && (redirect.methods ?? ["GET"]).includes(req.method ?? "GET")) {
      const location = redirect.location ?? `${redirect.to ?? this.url}${url.pathname}?sig=${this.signature(ref)}`;
      res.writeHead(redirect.status, { Location: location, "Content-Length": "0" });
      res.end();
      return;
    }
    if (kind === "blobs") return this.blob(req, res, repo, ref);
    return this.manifest(req, res, repo, ref);
  }

  private manifest(req: IncomingMessage, res: ServerResponse, repo: string, ref: string): void {
    const digest = ref.startsWith("sha256:") ? ref : this.tags.get(`${repo}:${ref}`);
    const m = digest ? this.manifests.get(`${repo}@${digest}`) : undefined;
    if (!m || !digest) {
      const body = JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] });
      res.writeHead(404, { "Content-Type": "application/json", "Content-Length": String(body.length) });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    const etag = `"${digest}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { ETag: etag, "Docker-Content-Digest": digest });
      res.end();
      return;
    }
    res.writeHead(200, { "Content-Type": m.mediaType, "Content-Length": String(m.bytes.length), "Docker-Content-Digest": digest, ETag: etag });
    res.end(req.method === "HEAD" ? undefined : m.bytes);
  }

  private blob(req: IncomingMessage, res: ServerResponse, repo: string, digest: string): void {
    const bytes = this.blobs.get(digest);
    if (!bytes || !this.repoBlobs.get(repo)?.has(digest)) {
      const body = JSON.stringify({ errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown" }] });
      res.writeHead(404, { "Content-Type": "application/json", "Content-Length": String(body.length) });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(bytes.length), "Docker-Content-Digest": digest });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const fault = this.faults.get(digest);
    if (!fault) {
      res.end(bytes);
      return;
    }
    switch (fault.kind) {
      case "corrupt": {
        const bad = Buffer.from(bytes);
        const i = Math.floor(bad.length / 2);
        bad[i] = (bad[i] ?? 0) ^ 0xff;
        res.end(bad);
        return;
      }
      case "truncate":
        res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => res.destroy());
        return;
      case "pause":
        res.write(bytes.subarray(0, fault.afterBytes));
        void fault.release.then(() => res.end(bytes.subarray(fault.afterBytes)));
        return;
      case "slow": {
        let pos = 0;
        const tick = (): void => {
          if (res.destroyed) return;
          const next = Math.min(bytes.length, pos + fault.bytesPerTick);
          const chunk = bytes.subarray(pos, next);
          pos = next;
          if (pos >= bytes.length) res.end(chunk);
          else {
            res.write(chunk);
            setTimeout(tick, fault.tickMs);
          }
        };
        tick();
        return;
      }
    }
  }
}
