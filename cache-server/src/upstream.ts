// The upstream client: keep-alive pools (one undici Agent), round-robin over healthy upstreams
// with failover on connection errors, a cap on concurrent upstream requests, and Retry-After on
// 429/503. Requests are idempotent reads only, so trying the next upstream is always safe.
import { rootCertificates } from "node:tls";
import { readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { Agent, request as undiciRequest, type Dispatcher } from "undici";
import type { Clock } from "./clock.js";
import { UpstreamError } from "./errors.js";
import type { CacheMetrics } from "./metrics.js";
import { originOf, planRedirect, REDIRECT_STATUSES, type RedirectPlan } from "./redirect.js";

export interface UpstreamRequest {
  readonly method: "GET" | "HEAD";
  /** Path plus query string, e.g. /v2/library/alpine/blobs/sha256:...?sig=... */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly signal?: AbortSignal;
  /**
   * Follow one upstream redirect (blob GETs and blob authorization HEADs): see redirect.ts for
   * which hop is taken and when Authorization is dropped. A redirect answer to the followed
   * request throws UpstreamError(UPSTREAM_REDIRECT). Off: 3xx answers are returned as they are.
   */
  readonly followRedirect?: boolean;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable;
  readonly upstream: string;
  /** How the answer was reached when a redirect was followed (never the URL: it may be signed). */
  readonly redirected?: RedirectPlan["kind"];
}

interface UpstreamState {
  readonly url: string;
  failures: number;
  /** Not chosen before this time unless every upstream is down. */
  downUntil: number;
}

export interface UpstreamClientOptions {
  readonly urls: readonly string[];
  readonly caFiles?: readonly string[];
  readonly concurrency: number;
  readonly clock: Clock;
  readonly metrics?: CacheMetrics;
  /** Longest Retry-After we sleep on before answering the client with the upstream's 429/503. */
  readonly maxRetryAfterMs?: number;
  readonly headersTimeoutMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** The cache's own external URL (config `http.host`): redirects there are re-issued upstream. */
  readonly selfUrl?: string;
}

/** A counting semaphore; waiters are served in order. */
class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiters.push(resolve));
    else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    };
  }
}

export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class UpstreamClient {
  private readonly states: UpstreamState[];
  private readonly agent: Dispatcher;
  private readonly gate: Semaphore;
  private next = 0;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly selfOrigin: string | undefined;

  constructor(private readonly opts: UpstreamClientOptions) {
    if (opts.urls.length === 0) throw new Error("at least one upstream is required");
    this.states = opts.urls.map((url) => ({ url, failures: 0, downUntil: 0 }));
    const ca = opts.caFiles && opts.caFiles.length > 0 ? [...rootCertificates, ...opts.caFiles.map((f) => readFileSync(f, "utf8"))] : undefined;
    this.agent = new Agent({
      connections: 64,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      bodyTimeout: 60_000,
      connect: ca ? { ca } : {},
    });
    this.gate = new Semaphore(opts.concurrency);
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref()));
    this.selfOrigin = originOf(opts.selfUrl);
  }

  get upstreamUrls(): string[] {
    return this.states.map((s) => s.url);
  }

  /** Health as seen by the client: up unless marked down after failures. */
  health(): { url: string; up: boolean; failures: number }[] {
    const now = this.opts.clock.now();
    return this.states.map((s) => ({ url: s.url, up: s.downUntil <= now, failures: s.failures }));
  }

  /** Round-robin order starting at the next healthy upstream; down ones last. */
  private order(): UpstreamState[] {
    const now = this.opts.clock.now();
    const n = this.states.length;
    const start = this.next++ % n;
    const rotated = [...this.states.slice(start), ...this.states.slice(0, start)];
    const up = rotated.filter((s) => s.downUntil <= now);
    const down = rotated.filter((s) => s.downUntil > now).sort((a, b) => a.downUntil - b.downUntil);
    return [...up, ...down];
  }

  private markDown(s: UpstreamState, forMs?: number): void {
    s.failures++;
    const backoff = forMs ?? Math.min(30_000, 1000 * 2 ** Math.min(5, s.failures - 1));
    s.downUntil = this.opts.clock.now() + backoff;
  }

  /**
   * Sends one request, failing over to the next upstream on connection errors and on 429/503.
   * The concurrency slot is held until the response body is consumed or destroyed.
   * Throws UpstreamError(UPSTREAM_UNREACHABLE) when no upstream answered at all.
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const release = await this.gate.acquire();
    let handedOver = false;
    try {
      let lastError: unknown;
      let busy: { res: UpstreamResponse; waitMs: number } | undefined;
      for (const state of this.order()) {
        const started = performance.now();
        let response: UpstreamResponse;
        try {
          response = await this.attempt(state, req);
        } catch (err) {
          // Our own verdicts (a redirect we will not follow, a redirect target that failed) are
          // about this request, not about the upstream's health: no failover, no mark-down.
          if (req.signal?.aborted || err instanceof UpstreamError) {
            if (busy) discard(busy.res.body);
            throw err;
          }
          lastError = err;
          this.markDown(state);
          this.opts.metrics?.upstreamErrors.inc({ upstream: state.url, reason: (err as { code?: string }).code ?? "error" });
          continue;
        }
        this.opts.metrics?.upstreamLatency.observe({ upstream: state.url, method: req.method }, (performance.now() - started) / 1000);
        // A busy answer from a foreign redirect target (object storage) is not this upstream's.
        if ((response.status === 429 || response.status === 503) && response.redirected !== "foreign") {
          const waitMs = parseRetryAfter(response.headers["retry-after"], this.opts.clock.now()) ?? 1000;
          this.markDown(state, waitMs);
          this.opts.metrics?.upstreamErrors.inc({ upstream: state.url, reason: String(response.status) });
          if (busy) discard(busy.res.body);
          busy = { res: response, waitMs };
          continue;
        }
        state.failures = 0;
        state.downUntil = 0;
        if (busy) discard(busy.res.body);
        handedOver = true;
        return this.holdSlot(response, release);
      }
      if (busy) {
        // Every upstream asked us to back off. Honour a short Retry-After once; pass a long one on.
        const max = this.opts.maxRetryAfterMs ?? 5000;
        if (busy.waitMs <= max) {
          discard(busy.res.body);
          await this.sleep(busy.waitMs);
          const retried = await this.retryOnce(req);
          if (retried) {
            handedOver = true;
            return this.holdSlot(retried, release);
          }
          throw new UpstreamError("UPSTREAM_BUSY", "every upstream is busy", true);
        }
        handedOver = true;
        return this.holdSlot(busy.res, release);
      }
      throw new UpstreamError("UPSTREAM_UNREACHABLE", `no upstream reachable (${describe(lastError)})`, true, { cause: lastError });
    } finally {
      if (!handedOver) release();
    }
  }

  private async retryOnce(req: UpstreamRequest): Promise<UpstreamResponse | undefined> {
    for (const state of this.order()) {
      try {
        const res = await this.attempt(state, req);
        if (res.status === 429 || res.status === 503) {
          discard(res.body);
          continue;
        }
        return res;
      } catch (err) {
        if (req.signal?.aborted || err instanceof UpstreamError) throw err;
        this.markDown(state);
      }
    }
    return undefined;
  }

  /**
   * One request to one upstream, plus at most one redirect hop when the request asks for it.
   * Connection errors to the upstream itself are thrown as they are (the caller fails over);
   * everything about the redirect hop is thrown as UpstreamError.
   */
  private async attempt(state: UpstreamState, req: UpstreamRequest): Promise<UpstreamResponse> {
    const send = (url: string, headers: Record<string, string>): Promise<Dispatcher.ResponseData> =>
      undiciRequest(url, { dispatcher: this.agent, method: req.method, headers, signal: req.signal });
    const res = await send(`${state.url}${req.path}`, req.headers);
    const first: UpstreamResponse = { status: res.statusCode, headers: res.headers, body: res.body, upstream: state.url };
    if (!req.followRedirect || !REDIRECT_STATUSES.has(res.statusCode)) return first;
    const plan = planRedirect(state.url, req.path, headerOne(res.headers.location), this.selfOrigin);
    await drain(res);
    this.opts.metrics?.upstreamRedirects.inc({ kind: plan.kind });
    if (plan.kind === "invalid") throw new UpstreamError("UPSTREAM_REDIRECT", `upstream answered ${res.statusCode}: ${plan.reason}`, false);
    const withoutAuth = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.toLowerCase() !== "authorization"));
    let second: Dispatcher.ResponseData;
    if (plan.kind === "foreign") {
      try {
        second = await send(plan.url, withoutAuth);
      } catch (err) {
        if (req.signal?.aborted) throw err;
        // The target is not one of our upstreams: its failure says nothing about their health.
        throw new UpstreamError("UPSTREAM_UNREACHABLE", `redirect target ${plan.origin} unreachable (${describe(err)})`, true, { cause: err });
      }
    } else {
      // Same upstream: a connection error here is the upstream's, and the caller fails over.
      second = await send(`${state.url}${plan.pathAndQuery}`, plan.kind === "self" ? withoutAuth : req.headers);
    }
    if (REDIRECT_STATUSES.has(second.statusCode)) {
      await drain(second);
      throw new UpstreamError(
        "UPSTREAM_REDIRECT",
        `upstream redirected again (${second.statusCode}) after one followed redirect; not following further`,
        false,
      );
    }
    return { status: second.statusCode, headers: second.headers, body: second.body, upstream: state.url, redirected: plan.kind };
  }

  private holdSlot(res: UpstreamResponse, release: () => void): UpstreamResponse {
    res.body.once("close", release);
    res.body.once("end", release);
    res.body.once("error", release);
    return res;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Reads away the (small) body of an answer we do not use, keeping the connection reusable. */
async function drain(res: Dispatcher.ResponseData): Promise<void> {
  await res.body.dump().catch(() => undefined);
}

function headerOne(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Drops a body we will not read; its abort error is expected, not a crash. */
function discard(body: Readable): void {
  body.on("error", () => undefined);
  body.destroy();
}

function describe(err: unknown): string {
  if (err && typeof err === "object") {
    const e = err as { code?: string; message?: string; cause?: { code?: string } };
    return e.code ?? e.cause?.code ?? e.message ?? "error";
  }
  return String(err);
}
