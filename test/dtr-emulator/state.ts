// The emulator's in-memory model of DTR: accounts, content cache registrations, user settings,
// the request log tests assert on, and the fault switches tests flip.
import { randomUUID } from "node:crypto";

export interface EmulatorUser {
  readonly username: string;
  readonly password: string;
  /** Admins may register caches and change anyone's settings. */
  readonly admin?: boolean;
  /** Access tokens; each stands in for the password in basic auth. */
  readonly tokens?: readonly string[];
}

export interface ContentCache {
  readonly id: string;
  readonly name: string;
  readonly host: string;
}

export interface RequestLogEntry {
  /** 1-based position in arrival order; tests assert ordering with it. */
  readonly seq: number;
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly status: number;
  /** The authenticated user; undefined when the request carried no valid credentials. */
  readonly user?: string;
  /** True when the answer was a blob redirect to a content cache. */
  readonly redirected: boolean;
  /** The redirect target, for redirected requests. */
  readonly location?: string;
  /** True when the request was authorized by a signed blob query instead of credentials. */
  readonly signed: boolean;
  /** The parsed JSON request body of API writes (POST, PATCH), exactly as sent. */
  readonly body?: unknown;
  /** Requests being handled when this one arrived, itself included (for concurrency bounds). */
  readonly concurrent: number;
}

/** Fault switches. `down` wins over `failRequests`, which wins over normal handling. */
export interface Faults {
  /** Every request answers 503 (including /_ping, which then reports Healthy: false). */
  down: boolean;
  /** This many of the next requests answer `failStatus` (default 500); counts down per request. */
  failRequests: number;
  failStatus: number;
  /** This many of the next requests are carried out but their answer is lost (connection cut). */
  loseAnswers: number;
  /** Restricts `failRequests` and `loseAnswers` to matching requests; others pass and do not count down. */
  failOnly: { method?: string; pathPrefix?: string } | undefined;
  /** Every request waits this long before it is handled (to exercise client timeouts). */
  delayMs: number;
}

export class EmulatorState {
  readonly users: ReadonlyMap<string, EmulatorUser>;
  private readonly caches = new Map<string, ContentCache>();
  private readonly settings = new Map<string, string>();
  private readonly log: RequestLogEntry[] = [];
  readonly faults: Faults = { down: false, failRequests: 0, failStatus: 500, failOnly: undefined, loseAnswers: 0, delayMs: 0 };

  constructor(users: readonly EmulatorUser[]) {
    this.users = new Map(users.map((user) => [user.username, user]));
    for (const user of users) this.settings.set(user.username, "");
  }

  /**
   * Repositories readable only by the listed users; every other repository may be pulled by
   * every active user (UNCONFIRMED how real DTR maps team and organization permissions; the
   * emulator needs per-repository readers so that the cache's per-repository authorization is
   * tested against an upstream that really refuses).
   */
  private readonly readers = new Map<string, ReadonlySet<string>>();

  restrictRepository(repository: string, users: readonly string[]): void {
    this.readers.set(repository, new Set(users));
  }

  /** May this authenticated user pull this repository (now)? */
  mayPull(username: string, repository: string): boolean {
    return this.users.has(username) && (this.readers.get(repository)?.has(username) ?? true);
  }

  /** The user these basic-auth credentials identify (password or any of the user's tokens). */
  authenticate(username: string, secret: string): EmulatorUser | undefined {
    const user = this.users.get(username);
    if (user === undefined) return undefined;
    if (user.password === secret || (user.tokens ?? []).includes(secret)) return user;
    return undefined;
  }

  listCaches(): ContentCache[] {
    return [...this.caches.values()].map((cache) => ({ ...cache }));
  }

  getCache(id: string): ContentCache | undefined {
    const cache = this.caches.get(id);
    return cache === undefined ? undefined : { ...cache };
  }

  createCache(name: string, host: string): ContentCache {
    const cache = { id: randomUUID(), name, host };
    this.caches.set(cache.id, cache);
    return { ...cache };
  }

  /**
   * Deleting leaves users' settings pointing at the old id (what real DTR does is UNCONFIRMED);
   * such a dangling setting simply means "no redirect".
   */
  deleteCache(id: string): boolean {
    return this.caches.delete(id);
  }

  /** The user's ContentCacheUUID ("" when unset); undefined for an unknown user. */
  contentCacheOf(username: string): string | undefined {
    return this.settings.get(username);
  }

  setContentCache(username: string, id: string): void {
    this.settings.set(username, id);
  }

  record(entry: Omit<RequestLogEntry, "seq">): void {
    this.log.push({ seq: this.log.length + 1, ...entry });
  }

  requestLog(): readonly RequestLogEntry[] {
    return [...this.log];
  }

  clearRequestLog(): void {
    this.log.length = 0;
  }
}
