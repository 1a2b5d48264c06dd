// How the services talk to the upstream on a client's behalf: its credentials and query passed
// on, an authorization probe, and what an upstream status means for authorization. No HTTP
// response writing here (server.ts) and no cache decisions (blob-service.ts, manifest-service.ts).
import type { AuthCache, Decision } from "./auth.js";
import { ociErrorBody, type OciErrorCode, UpstreamError } from "./errors.js";
import type { Outcome, RequestInfo } from "./outcome.js";
import type { UpstreamClient, UpstreamResponse } from "./upstream.js";

export const MAX_MANIFEST = 4 * 1024 * 1024;
// Headers of an upstream refusal worth handing back so clients can log in through the cache.
const RELAY_HEADERS = ["www-authenticate", "content-type", "retry-after"];

export type Upstream = Pick<UpstreamClient, "request">;

export class UpstreamAccess {
  constructor(
    readonly upstream: Upstream,
    readonly auth: AuthCache,
  ) {}

  /** A request upstream with the client's credentials and query. */
  request(
    req: RequestInfo,
    method: "GET" | "HEAD",
    path: string,
    opts: { accept?: string; followRedirect?: boolean; extra?: Record<string, string> } = {},
  ): Promise<UpstreamResponse> {
    return this.upstream.request({
      method,
      path: withQuery(path, req.query),
      headers: { ...upHeaders(req, opts.accept), ...opts.extra },
      followRedirect: opts.followRedirect,
    });
  }

  /** Whether `req` may read `digest` in `name`: remembered, or asked upstream with a HEAD probe. */
  authorize(req: RequestInfo, name: string, digest: string, probePath: string, accept: string | undefined, followRedirect = false): Promise<Decision> {
    return this.auth.authorize(req.cred, name, digest, async () => {
      let up: UpstreamResponse;
      try {
        up = await this.request(req, "HEAD", probePath, { accept, followRedirect });
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
}

/** The answer for a decision other than "allow". */
export function refusal(d: Decision, notFound: OciErrorCode): Outcome {
  if (d.kind === "refuse") return { kind: "relay", status: d.status, headers: d.headers, body: d.body };
  if (d.kind === "notfound") return { kind: "error", code: notFound };
  if (d.kind === "failed") return { kind: "relay", status: d.status === 429 ? 429 : 502, headers: d.headers, body: Buffer.alloc(0) };
  return unavailable();
}

export function unavailable(): Outcome {
  return { kind: "error", code: "UPSTREAM_UNAVAILABLE", detail: "the upstream could not authorize this request" };
}

export function isRedirectError(err: unknown): err is UpstreamError {
  return err instanceof UpstreamError && err.code === "UPSTREAM_REDIRECT";
}

/**
 * What an upstream status says about one object for one credential. Only statuses that mean the
 * upstream itself is not serving (502/503/504, or 500) count as "unreachable" and so may unlock
 * the outage allowance; a refusal never does.
 */
export function decisionOf(status: number, headers: Record<string, string>, body: Buffer): Decision {
  if (status >= 200 && status < 300) return { kind: "allow" };
  if (status === 401 || status === 403) return { kind: "refuse", status, headers, body };
  if (status === 404) return { kind: "notfound" };
  if (status === 500 || status === 502 || status === 503 || status === 504) return { kind: "unreachable" };
  return { kind: "failed", status, headers };
}

export function pickHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of RELAY_HEADERS) {
    const v = h[k];
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function withQuery(path: string, query: string): string {
  return query ? `${path}?${query}` : path;
}

function upHeaders(req: RequestInfo, accept?: string): Record<string, string> {
  const h: Record<string, string> = { "user-agent": "dtr-cache-server" };
  if (req.authorization) h.authorization = req.authorization;
  if (accept) h.accept = accept;
  return h;
}

export async function readBody(up: UpstreamResponse, limit: number): Promise<Buffer> {
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
