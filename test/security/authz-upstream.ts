// A small, independent registry upstream with real per-repository authorization, written for the
// cache's security tests so that they do not only check the cache against the project's own fake
// (cache-server/src/testing/fake-upstream.ts) or the DTR emulator. It shares no code with either.
//
// - Users authenticate with HTTP basic auth on every request; each repository names its readers,
//   or is public (anyone, anonymous too). No credential for a private repository → 401 with a
//   Basic challenge; a known user who may not read it → 403.
// - Objects are linked per repository, like distribution: a digest not linked to the requested
//   repository is 404 there, whatever other repository holds it.
// - Signed blob queries in the shape DTR hands to content caches: `expires` (unix seconds), `user`,
//   `signature` = HMAC-SHA256 over repository|digest|expires|user. Such a request needs no
//   Authorization; a signature for another path → 403, past `expires` → 401, and the signing user
//   must still be a reader.
// - Faults: every request answered 503, or every connection reset, to emulate an outage.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

interface Repository {
  public: boolean;
  readonly readers: Set<string>;
  readonly blobs: Map<string, Buffer>;
  readonly manifests: Map<string, { bytes: Buffer; mediaType: string }>;
  readonly tags: Map<string, string>;
}

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly signed: boolean;
  readonly user: string | undefined;
  readonly status: number;
}

export type Outage = "none" | "503" | "reset";

const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";
const ROUTE = /^\/v2\/(.+)\/(blobs|manifests)\/([^/]+)$/;

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export class AuthzUpstream {
  readonly log: LoggedRequest[] = [];
  outage: Outage = "none";
  /** Every answer waits this long (so that concurrent requests overlap in the cache). */
  delayMs = 0;
  private readonly users = new Map<string, string>();
  private readonly repos = new Map<string, Repository>();
  private readonly key = randomBytes(32);
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;

  /** `now` is epoch milliseconds, shared with the cache's clock in tests that move time. */
  constructor(private readonly now: () => number = Date.now) {}

  get url(): string {
    const address = this.server?.address() as AddressInfo | null;
    if (!address) throw new Error("upstream not started");
    return `http://127.0.0.1:${address.port}`;
  }

  addUser(name: string, password: string): string {
    this.users.set(name, password);
    return `Basic ${Buffer.from(`${name}:${password}`).toString("base64")}`;
  }

  repository(name: string, access: { public?: boolean; readers?: readonly string[] }): void {
    this.repos.set(name, { public: access.public ?? false, readers: new Set(access.readers ?? []), blobs: new Map(), manifests: new Map(), tags: new Map() });
  }

  /** Changes who may read a repository (a revocation, or a grant). */
  setReaders(name: string, readers: readonly string[]): void {
    const repo = this.repo(name);
    repo.readers.clear();
    for (const r of readers) repo.readers.add(r);
  }

  pushBlob(name: string, bytes: Buffer): string {
    const digest = sha256(bytes);
    this.repo(name).blobs.set(digest, bytes);
    return digest;
  }

  /** Pushes an image manifest listing `layers` (which must be pushed to the same repository). */
  pushImage(name: string, tag: string, layers: readonly string[]): string {
    const repo = this.repo(name);
    const config = this.pushBlob(name, Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", tag })));
    const describe = (digest: string): object => ({ mediaType: "application/octet-stream", digest, size: this.repo(name).blobs.get(digest)?.length ?? 0 });
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: describe(config), layers: layers.map(describe) }));
    const digest = sha256(bytes);
    repo.manifests.set(digest, { bytes, mediaType: MANIFEST_TYPE });
    repo.tags.set(tag, digest);
    return digest;
  }

  /** The query DTR would append when redirecting `user` to a cache for this blob. */
  signedQuery(name: string, digest: string, user: string, ttlSeconds: number): string {
    const expires = Math.floor(this.now() / 1000) + ttlSeconds;
    return new URLSearchParams({ expires: String(expires), user, signature: this.sign(name, digest, expires, user) }).toString();
  }

  count(method: string, pathPart: string): number {
    return this.log.filter((r) => r.method === method && r.path.includes(pathPart)).length;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      if (this.delayMs > 0) setTimeout(() => this.handle(req, res), this.delayMs);
      else this.handle(req, res);
    });
    server.on("connection", (s: Socket) => {
      if (this.outage === "reset") {
        s.destroy();
        return;
      }
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.server = server;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private repo(name: string): Repository {
    const repo = this.repos.get(name);
    if (!repo) throw new Error(`no repository ${name}`);
    return repo;
  }

  private sign(name: string, digest: string, expires: number, user: string): string {
    return createHmac("sha256", this.key).update(`${name}|${digest}|${expires}|${user}`).digest("base64url");
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://upstream");
    const method = req.method ?? "GET";
    const entry = { method, path: url.pathname, signed: url.searchParams.has("signature"), user: undefined as string | undefined };
    const send = (status: number, headers: Record<string, string>, body?: Buffer): void => {
      this.log.push({ ...entry, status });
      res.writeHead(status, { "Docker-Distribution-API-Version": "registry/2.0", "Content-Length": String(body?.length ?? 0), ...headers });
      res.end(method === "HEAD" ? undefined : body);
    };
    const error = (status: number, code: string, extra: Record<string, string> = {}): void => {
      const body = Buffer.from(JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }));
      send(status, { "Content-Type": "application/json", ...extra }, body);
    };
    // A kept-alive connection from before the outage is cut on its next request.
    if (this.outage === "reset") return void req.socket.destroy();
    if (this.outage === "503") return error(503, "UNAVAILABLE", { "Retry-After": "30" });
    if (method !== "GET" && method !== "HEAD") return error(405, "UNSUPPORTED");

    // Who is asking: a basic credential (checked) or nobody.
    let user: string | undefined;
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header);
      const [name = "", password = ""] = m?.[1] ? Buffer.from(m[1], "base64").toString().split(":") : [];
      if (this.users.get(name) !== password || name === "") return error(401, "UNAUTHORIZED", { "WWW-Authenticate": 'Basic realm="authz-upstream"' });
      user = name;
    }
    entry.user = user;
    if (url.pathname === "/v2/")
      return user || header === undefined ? send(200, { "Content-Type": "application/json" }, Buffer.from("{}")) : error(401, "UNAUTHORIZED");

    const route = ROUTE.exec(url.pathname);
    const repo = route?.[1] !== undefined ? this.repos.get(route[1]) : undefined;
    if (!route || route[1] === undefined || route[3] === undefined) return error(404, "NAME_UNKNOWN");
    const [, name, kind, reference] = route;

    if (kind === "blobs" && url.searchParams.has("signature")) {
      const expires = Number(url.searchParams.get("expires") ?? "NaN");
      const signer = url.searchParams.get("user") ?? "";
      const expected = Buffer.from(this.sign(name, reference, expires, signer));
      const given = Buffer.from(url.searchParams.get("signature") ?? "");
      if (!Number.isInteger(expires) || expected.length !== given.length || !timingSafeEqual(expected, given)) return error(403, "DENIED");
      if (expires * 1000 <= this.now()) return error(401, "UNAUTHORIZED");
      user = signer;
      entry.user = signer;
    }
    if (!repo) return user === undefined ? error(401, "UNAUTHORIZED", { "WWW-Authenticate": 'Basic realm="authz-upstream"' }) : error(404, "NAME_UNKNOWN");
    if (!repo.public) {
      if (user === undefined) return error(401, "UNAUTHORIZED", { "WWW-Authenticate": 'Basic realm="authz-upstream"' });
      if (!repo.readers.has(user)) return error(403, "DENIED");
    }

    if (kind === "blobs") {
      const bytes = repo.blobs.get(reference);
      if (!bytes) return error(404, "BLOB_UNKNOWN");
      return send(200, { "Content-Type": "application/octet-stream", "Docker-Content-Digest": reference }, bytes);
    }
    const digest = reference.startsWith("sha256:") ? reference : repo.tags.get(reference);
    const manifest = digest === undefined ? undefined : repo.manifests.get(digest);
    if (!manifest || digest === undefined) return error(404, "MANIFEST_UNKNOWN");
    if (req.headers["if-none-match"] === `"${digest}"`) return send(304, { "Docker-Content-Digest": digest });
    return send(200, { "Content-Type": manifest.mediaType, "Docker-Content-Digest": digest }, manifest.bytes);
  }
}
