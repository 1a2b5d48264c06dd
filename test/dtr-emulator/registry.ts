// The registry side of the emulated DTR: token auth as a distribution registry does it
// (401 challenge -> /auth/token -> Bearer), manifests and blobs proxied from a real backend
// registry, and the content-cache flow: blob GETs of a user whose setting names a cache answer
// 307 to that cache with a signed, expiring query; a request carrying a valid signature for that
// repository and digest is served without credentials (a cache's delegated authorization).
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { request } from "undici";
import { parseBasic, parseBearer, sendJson, sendRegistryError, type RequestNotes } from "./http-util.js";
import { signBlobGrant, signToken, verifyBlobGrant, verifyToken, type TokenAccess } from "./signing.js";
import type { EmulatorState } from "./state.js";

export interface RegistryContext {
  readonly state: EmulatorState;
  readonly secret: Buffer;
  /** Public base URL of the emulator (realm of the challenge). */
  readonly baseUrl: () => string;
  readonly service: string;
  readonly backendRegistryUrl: string;
  /** Repositories anonymous clients may pull; every other repository is private. */
  readonly publicRepositories: ReadonlySet<string>;
  readonly nowSeconds: () => number;
  readonly tokenTtlSeconds: number;
  readonly redirectTtlSeconds: number;
  /** Redirect HEAD as well as GET, as distribution's redirect code (and so DTR) does. */
  readonly redirectHead: boolean;
  /** `/v2` accepts bearer tokens only, as real DTR does (basic auth is for /auth/token and the API). */
  readonly bearerOnly: boolean;
}

const REPO_PATH = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/;
const REGISTRY_HEADERS = { "Docker-Distribution-API-Version": "registry/2.0" };

/** GET /auth/token?service=...&scope=repository:NAME:pull (basic auth optional). */
export function handleToken(ctx: RegistryContext, req: IncomingMessage, res: ServerResponse, url: URL, notes: RequestNotes): void {
  let subject = "";
  if (req.headers.authorization !== undefined) {
    const credentials = parseBasic(req.headers.authorization);
    const user = credentials === undefined ? undefined : ctx.state.authenticate(credentials.username, credentials.secret);
    // Wrong credentials fail outright (this is what makes `docker login` report a bad password)
    // instead of silently degrading to an anonymous token.
    if (user === undefined) return sendRegistryError(res, 401, "UNAUTHORIZED", "authentication failed");
    subject = user.username;
    notes.user = subject;
  }
  const access: TokenAccess[] = [];
  for (const scope of url.searchParams.getAll("scope").flatMap((value) => value.split(" "))) {
    const parts = /^repository:([^:]+):(.+)$/.exec(scope);
    if (parts?.[1] === undefined || parts[2] === undefined) continue;
    const name = parts[1];
    const wantsPull = parts[2].split(",").includes("pull");
    // The emulator is read-only (images are pushed to the backend directly), so only pull is ever
    // granted. UNCONFIRMED how real DTR maps repository permissions: here every active user may
    // pull every repository not restricted to named readers, anonymous clients only the public ones.
    const allowed = wantsPull && (ctx.publicRepositories.has(name) || (subject !== "" && ctx.state.mayPull(subject, name)));
    if (allowed) access.push({ type: "repository", name, actions: ["pull"] });
  }
  const issuedAt = ctx.nowSeconds();
  const token = signToken(ctx.secret, {
    sub: subject,
    aud: url.searchParams.get("service") ?? ctx.service,
    access,
    iat: issuedAt,
    exp: issuedAt + ctx.tokenTtlSeconds,
  });
  sendJson(res, 200, { token, access_token: token, expires_in: ctx.tokenTtlSeconds, issued_at: new Date(issuedAt * 1000).toISOString() });
}

/** Handles /v2/ and /v2/<name>/(manifests|blobs|tags)/... */
export async function handleRegistry(ctx: RegistryContext, req: IncomingMessage, res: ServerResponse, url: URL, notes: RequestNotes): Promise<void> {
  const method = req.method ?? "GET";
  const path = url.pathname;
  if (path === "/v2/" || path === "/v2") {
    const who = identify(ctx, req);
    if (who === undefined) return challenge(ctx, res);
    notes.user = who.user || undefined;
    return sendJson(res, 200, {}, REGISTRY_HEADERS);
  }
  const match = REPO_PATH.exec(path);
  if (match?.[1] === undefined || match[2] === undefined || match[3] === undefined)
    return sendRegistryError(res, 404, "NAME_UNKNOWN", "unknown registry route");
  const [, repository, kind, reference] = match;
  if (kind === "tags" && reference !== "list") return sendRegistryError(res, 404, "NAME_UNKNOWN", "unknown registry route");
  if (method !== "GET" && method !== "HEAD") return sendRegistryError(res, 405, "UNSUPPORTED", "the emulator is read-only; push to the backend registry");

  if (kind === "blobs" && (url.searchParams.has("signature") || url.searchParams.has("expires"))) {
    const check = verifyBlobGrant(ctx.secret, url.searchParams, repository, reference, ctx.nowSeconds());
    if (!check.ok) {
      // Expired means "authenticate again" (401); anything else is a forgery or a signature for
      // another blob and is refused outright (403).
      if (check.reason === "expired") return sendRegistryError(res, 401, "UNAUTHORIZED", "signed blob URL has expired");
      return sendRegistryError(res, 403, "DENIED", `signed blob URL refused (${check.reason})`);
    }
    notes.signed = true;
    notes.user = check.grant.user || undefined;
    return proxy(ctx, req, res, path);
  }

  const who = identify(ctx, req);
  if (who === undefined || !who.canPull(repository)) return challenge(ctx, res, repository, who !== undefined);
  notes.user = who.user || undefined;

  if (kind === "blobs" && (method === "GET" || (method === "HEAD" && ctx.redirectHead)) && who.user !== "") {
    const cacheId = ctx.state.contentCacheOf(who.user) ?? "";
    const cache = cacheId === "" ? undefined : ctx.state.getCache(cacheId);
    if (cache !== undefined) {
      // Like the registry's redirect middleware, only redirect for a blob that exists.
      const head = await backend(ctx, "HEAD", path, {});
      await head.body.dump();
      if (head.statusCode !== 200)
        return sendRegistryError(res, head.statusCode === 404 ? 404 : 502, head.statusCode === 404 ? "BLOB_UNKNOWN" : "UNAVAILABLE", "blob lookup failed");
      const expires = ctx.nowSeconds() + ctx.redirectTtlSeconds;
      const location = `${cache.host.replace(/\/+$/, "")}${path}?${signBlobGrant(ctx.secret, { repository, digest: reference, expires, user: who.user })}`;
      notes.redirected = true;
      notes.location = location;
      res.writeHead(307, { ...REGISTRY_HEADERS, Location: location, "Content-Length": 0 });
      res.end();
      return;
    }
  }
  return proxy(ctx, req, res, path + url.search);
}

interface Identity {
  /** "" for an anonymous token. */
  readonly user: string;
  canPull(repository: string): boolean;
}

/**
 * Who is asking: a Bearer token this emulator issued, or basic auth (accepted on /v2 as well,
 * UNCONFIRMED for real DTR, so a cache may forward either kind of credential upstream).
 */
function identify(ctx: RegistryContext, req: IncomingMessage): Identity | undefined {
  const header = req.headers.authorization;
  const bearer = parseBearer(header);
  if (bearer !== undefined) {
    const claims = verifyToken(ctx.secret, bearer, ctx.nowSeconds());
    if (claims === undefined || (claims.sub !== "" && !ctx.state.users.has(claims.sub))) return undefined;
    // A named user's token is also checked against the repository's readers now, so that taking a
    // user off a repository shows at once (UNCONFIRMED whether real DTR re-checks; a cache must
    // honour the upstream's refusal either way).
    const granted = (repository: string): boolean => claims.access.some((entry) => entry.name === repository && entry.actions.includes("pull"));
    return { user: claims.sub, canPull: (repository) => granted(repository) && (claims.sub === "" || ctx.state.mayPull(claims.sub, repository)) };
  }
  const credentials = parseBasic(header);
  if (credentials === undefined || ctx.bearerOnly) return undefined;
  const user = ctx.state.authenticate(credentials.username, credentials.secret);
  if (user === undefined) return undefined;
  return { user: user.username, canPull: (repository) => ctx.state.mayPull(user.username, repository) };
}

function challenge(ctx: RegistryContext, res: ServerResponse, repository?: string, insufficient = false): void {
  let header = `Bearer realm="${ctx.baseUrl()}/auth/token",service="${ctx.service}"`;
  if (repository !== undefined) header += `,scope="repository:${repository}:pull"`;
  if (insufficient) header += `,error="insufficient_scope"`;
  sendRegistryError(res, 401, "UNAUTHORIZED", "authentication required", { "WWW-Authenticate": header });
}

async function backend(ctx: RegistryContext, method: "GET" | "HEAD", pathAndQuery: string, headers: Record<string, string>) {
  return request(new URL(pathAndQuery, ctx.backendRegistryUrl), { method, headers, headersTimeout: 30_000, bodyTimeout: 60_000 });
}

const PASSED_BACK = ["content-type", "content-length", "docker-content-digest", "etag", "content-range", "accept-ranges", "last-modified"];

/** Streams the backend's answer to the client, passing through the headers a registry client reads. */
async function proxy(ctx: RegistryContext, req: IncomingMessage, res: ServerResponse, pathAndQuery: string): Promise<void> {
  const headers: Record<string, string> = {};
  const accept = req.headers.accept;
  if (accept !== undefined) headers.accept = accept;
  if (typeof req.headers.range === "string") headers.range = req.headers.range;
  const method = req.method === "HEAD" ? "HEAD" : "GET";
  let answer;
  try {
    answer = await backend(ctx, method, pathAndQuery.replace(/[?&](expires|user|signature)=[^&]*/g, ""), headers);
  } catch {
    return sendRegistryError(res, 503, "UNAVAILABLE", "backend registry unreachable");
  }
  const out: Record<string, string> = { ...REGISTRY_HEADERS };
  for (const name of PASSED_BACK) {
    const value = answer.headers[name];
    if (typeof value === "string") out[name] = value;
  }
  res.writeHead(answer.statusCode, out);
  if (method === "HEAD") {
    await answer.body.dump();
    res.end();
    return;
  }
  await pipeline(answer.body, res);
}
