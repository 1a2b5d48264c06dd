// DTR's /api/v0 calls the controller makes, over undici with basic auth. Every call has its own
// timeout (AbortSignal.timeout) and idempotent calls are retried with p-retry on transient
// failures; everything else becomes a typed DtrError. The password never leaves the
// Authorization header: it is not logged, not put in errors, and scrubbed from any text DTR
// might echo back.
import pRetry, { AbortError } from "p-retry";
import { request, type Dispatcher } from "undici";
import {
  DtrBadRequestError,
  DtrError,
  DtrForbiddenError,
  DtrNotFoundError,
  DtrProtocolError,
  DtrTimeoutError,
  DtrTrustError,
  DtrUnauthenticatedError,
  DtrUnavailableError,
} from "./errors.js";
import { silentLogger, type Logger } from "../logger.js";
import { requestErrorCode, type DtrRequestObserver, type DtrRoute } from "./metrics-observer.js";

export interface ContentCacheRecord {
  readonly id: string;
  readonly name: string;
  readonly host: string;
}

export interface RetryPolicy {
  /** Further attempts after the first. */
  readonly retries: number;
  readonly minTimeoutMs: number;
  readonly maxTimeoutMs: number;
}

export interface DtrClientOptions {
  /** DTR's origin, e.g. https://dtr.example.com:443. */
  readonly url: string;
  readonly username: string;
  /** Password or access token. */
  readonly password: string;
  readonly dispatcher?: Dispatcher;
  /** Per-request timeout. Default 10 s. */
  readonly timeoutMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly logger?: Logger;
  /** Told about every HTTP request (each attempt), by route template: the controller's metrics. */
  readonly observer?: DtrRequestObserver;
}

const DEFAULT_RETRY: RetryPolicy = { retries: 4, minTimeoutMs: 250, maxTimeoutMs: 5_000 };

interface CallOptions {
  /** The path's template, for metrics: the real path carries ids and user names. */
  readonly route: DtrRoute;
  readonly body?: unknown;
  /** Statuses that count as success. */
  readonly ok: readonly number[];
  /** Only idempotent calls are retried by the client itself. */
  readonly idempotent: boolean;
}

interface Answer {
  readonly status: number;
  readonly json: unknown;
}

export class DtrClient {
  private readonly origin: string;
  private readonly authorization: string;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly logger: Logger;

  constructor(private readonly options: DtrClientOptions) {
    this.origin = new URL(options.url).origin;
    this.authorization = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString("base64")}`;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.logger = options.logger ?? silentLogger;
  }

  async listContentCaches(signal: AbortSignal): Promise<ContentCacheRecord[]> {
    const answer = await this.call("GET", "/api/v0/content_caches", { route: "/api/v0/content_caches", ok: [200], idempotent: true }, signal);
    if (!Array.isArray(answer.json) || !answer.json.every(isCacheRecord))
      throw new DtrProtocolError("GET /api/v0/content_caches: expected a JSON array of {id, name, host}", answer.status);
    return answer.json.map(({ id, name, host }) => ({ id, name, host }));
  }

  /**
   * Registers a cache. Not retried here: a POST that timed out may still have created the
   * registration, so the caller lists again and adopts it instead of creating a duplicate.
   */
  async createContentCache(name: string, host: string, signal: AbortSignal): Promise<ContentCacheRecord> {
    // The body is exactly {name, host}: DTR refuses any other field.
    const answer = await this.call(
      "POST",
      "/api/v0/content_caches",
      { route: "/api/v0/content_caches", body: { name, host }, ok: [201], idempotent: false },
      signal,
    );
    if (!isCacheRecord(answer.json)) throw new DtrProtocolError("POST /api/v0/content_caches: expected {id, name, host}", answer.status);
    return { id: answer.json.id, name: answer.json.name, host: answer.json.host };
  }

  /** 204 also when absent, so deleting twice is fine. */
  async deleteContentCache(id: string, signal: AbortSignal): Promise<void> {
    await this.call(
      "DELETE",
      `/api/v0/content_caches/${encodeURIComponent(id)}`,
      { route: "/api/v0/content_caches/{id}", ok: [204, 404], idempotent: true },
      signal,
    );
  }

  /** The user's ContentCacheUUID ("" when unset). NO_SUCH_USER surfaces as DtrNotFoundError. */
  async getUserContentCache(username: string, signal: AbortSignal): Promise<string> {
    const answer = await this.call("GET", settingsPath(username), { route: SETTINGS_ROUTE, ok: [200], idempotent: true }, signal);
    if (typeof answer.json !== "object" || answer.json === null)
      throw new DtrProtocolError(`GET ${settingsPath(username)}: expected a JSON object`, answer.status);
    // DTR answers with a capital C; read the key case-insensitively, as DTR itself decodes.
    const entry = Object.entries(answer.json).find(([key]) => key.toLowerCase() === "contentcacheuuid");
    const value: unknown = entry?.[1] ?? "";
    if (typeof value !== "string") throw new DtrProtocolError(`GET ${settingsPath(username)}: ContentCacheUUID is not a string`, answer.status);
    return value;
  }

  /** Points the user at a cache id, or clears the setting with "". */
  async setUserContentCache(username: string, contentCacheId: string, signal: AbortSignal): Promise<void> {
    // Lower-case c in the request, as DTR's API documents it.
    await this.call(
      "PATCH",
      settingsPath(username),
      { route: SETTINGS_ROUTE, body: { contentCacheUUID: contentCacheId }, ok: [200, 204], idempotent: true },
      signal,
    );
  }

  private async call(method: string, path: string, call: CallOptions, signal: AbortSignal): Promise<Answer> {
    const attempt = async (): Promise<Answer> => {
      try {
        return await this.once(method, path, call, signal);
      } catch (error) {
        // An abort from the caller stops retrying at once.
        if (signal.aborted) throw new AbortError(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
        throw error;
      }
    };
    if (!call.idempotent) return attempt();
    return pRetry(attempt, {
      retries: this.retry.retries,
      minTimeout: this.retry.minTimeoutMs,
      maxTimeout: this.retry.maxTimeoutMs,
      randomize: true,
      signal,
      shouldRetry: ({ error }) => error instanceof DtrError && error.retryable,
      onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
        const code = error instanceof DtrError ? error.code : "UNKNOWN";
        this.logger.debug({ dtr: this.origin, method, path, attempt: attemptNumber, retriesLeft, code }, "DTR call failed");
      },
    });
  }

  /** One HTTP request, reported to the observer whatever its outcome. */
  private async once(method: string, path: string, call: CallOptions, signal: AbortSignal): Promise<Answer> {
    const started = performance.now();
    let status: number | undefined;
    try {
      const answer = await this.request(method, path, call, signal, (code) => (status = code));
      this.options.observer?.({ method, route: call.route, status: answer.status, durationSeconds: (performance.now() - started) / 1000 });
      return answer;
    } catch (error) {
      this.options.observer?.({
        method,
        route: call.route,
        ...(status !== undefined ? { status } : {}),
        errorCode: requestErrorCode(error),
        durationSeconds: (performance.now() - started) / 1000,
      });
      throw error;
    }
  }

  private async request(method: string, path: string, call: CallOptions, signal: AbortSignal, answered: (status: number) => void): Promise<Answer> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const what = `DTR ${method} ${path}`;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(`${this.origin}${path}`, {
        method: method as Dispatcher.HttpMethod,
        headers: { authorization: this.authorization, accept: "application/json", ...(call.body === undefined ? {} : { "content-type": "application/json" }) },
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        dispatcher: this.options.dispatcher,
        signal: AbortSignal.any([signal, timeout]),
      });
    } catch (error) {
      if (timeout.aborted && !signal.aborted) throw new DtrTimeoutError(`${what}: no answer within ${this.timeoutMs} ms`);
      const code = errorCode(error);
      // A certificate DTR's trust settings do not accept stays unaccepted: not worth retrying.
      if (code !== undefined && TLS_VERIFY_CODES.test(code))
        throw new DtrTrustError(`${what}: DTR's TLS certificate is not trusted (${code}); set trust.caFile or trust.fetchCA`, false, { cause: error });
      throw new DtrUnavailableError(`${what}: ${this.scrub(code === undefined ? networkReason(error) : `network error ${code}`)}`, undefined, undefined, {
        cause: error,
      });
    }
    answered(response.statusCode);
    let text: string;
    try {
      text = await response.body.text();
    } catch (error) {
      if (timeout.aborted && !signal.aborted) throw new DtrTimeoutError(`${what}: body not complete within ${this.timeoutMs} ms`);
      throw new DtrUnavailableError(`${what}: connection lost while reading the answer`, response.statusCode, undefined, { cause: error });
    }
    const json = parseJson(text);
    const status = response.statusCode;
    if (call.ok.includes(status)) return { status, json };
    throw this.errorFor(what, status, json);
  }

  private errorFor(what: string, status: number, json: unknown): DtrError {
    const first = firstDtrError(json);
    const detail = first === undefined ? "" : ` ${first.code}: ${this.scrub(first.message)}`;
    const message = `${what}: ${status}${detail}`;
    if (status === 401) return new DtrUnauthenticatedError(`${message} (check the DTR admin username and password/token)`, first?.code);
    if (status === 403) return new DtrForbiddenError(`${message} (the DTR account must be an admin)`, first?.code);
    if (status === 404) return new DtrNotFoundError(message, first?.code);
    if (status === 400) return new DtrBadRequestError(message, first?.code);
    if (status === 408 || status === 429 || status >= 500) return new DtrUnavailableError(message, status, first?.code);
    return new DtrProtocolError(message, status);
  }

  /** Removes the password from text that came from elsewhere (DTR's messages, network errors). */
  private scrub(text: string): string {
    return this.options.password === "" ? text : text.split(this.options.password).join("[REDACTED]");
  }
}

const SETTINGS_ROUTE: DtrRoute = "/api/v0/accounts/{user}/settings";

function settingsPath(username: string): string {
  return `/api/v0/accounts/${encodeURIComponent(username)}/settings`;
}

function isCacheRecord(value: unknown): value is ContentCacheRecord {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.id === "string" && typeof record.name === "string" && typeof record.host === "string";
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function firstDtrError(json: unknown): { code: string; message: string } | undefined {
  if (typeof json !== "object" || json === null || !("errors" in json) || !Array.isArray(json.errors)) return undefined;
  const first: unknown = json.errors[0];
  if (typeof first !== "object" || first === null) return undefined;
  const record = first as Record<string, unknown>;
  return { code: typeof record.code === "string" ? record.code : "UNKNOWN", message: typeof record.message === "string" ? record.message : "" };
}

const TLS_VERIFY_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID/;

/** The system error code of a failed request (undici puts it on the error or on its cause). */
function errorCode(error: unknown): string | undefined {
  for (let current: unknown = error, depth = 0; typeof current === "object" && current !== null && depth < 4; depth += 1) {
    const record = current as { code?: unknown; cause?: unknown };
    if (typeof record.code === "string" && !record.code.startsWith("UND_ERR_SOCKET")) return record.code;
    current = record.cause;
  }
  return undefined;
}

function networkReason(error: unknown): string {
  if (typeof error === "object" && error !== null) {
    const record = error as { code?: unknown; message?: unknown };
    if (typeof record.code === "string") return `network error ${record.code}`;
    if (typeof record.message === "string") return record.message;
  }
  return "network error";
}
