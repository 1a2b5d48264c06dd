// The typed model of the cache's config.yml as the cache uses it: what parseConfig returns and
// what the cache-server runs on. Durations are whole milliseconds, sizes whole bytes; every value
// here has passed the contract's rules (rules.ts), so the cache never re-checks them.

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface UpstreamConfig {
  /** Base URL without a trailing slash, e.g. https://dtr.example:443 */
  readonly url: string;
}

export interface DownstreamOptions {
  readonly blobTtlMs: number;
  readonly upstreams: readonly UpstreamConfig[];
  /** PEM files added to the default roots for upstream TLS. */
  readonly cas: readonly string[];
  /** Serve the last known tag manifest (X-Cache: STALE) when no upstream answers. */
  readonly serveStale: boolean;
  /** How long an upstream "allowed" for one (credential, repository, digest) is reused: the revocation delay. */
  readonly authTtlMs: number;
  /**
   * How long an allowed (credential, repository, digest) is still honoured while no upstream
   * answers at all (connection refused/reset, timeout, 502/503/504). Never after a refusal.
   */
  readonly outageAllowanceMs: number;
  /** How long an upstream 404 for one (credential, repository, digest) is remembered. */
  readonly notFoundTtlMs: number;
  /** Optional cap on stored bytes; LRU eviction between the watermarks. */
  readonly maxSizeBytes: number | undefined;
  readonly highWatermark: number;
  readonly lowWatermark: number;
  /** Cap on concurrent upstream requests across all upstreams. */
  readonly upstreamConcurrency: number;
  /** How often the sweeper looks for expired blobs. */
  readonly sweepIntervalMs: number;
  /** Worker processes (node:cluster) sharing the port and the store; undefined = one per usable core. */
  readonly workers?: number;
}

/** Connection limits of the registry listener (downstream options; see docs/cache-server.md, Limits). */
export interface ConnectionLimits {
  /** Open connections above this are refused (closed at accept), not queued. */
  readonly maxConnections: number;
  /** Time a client has to send a complete request head, from its first byte (slowloris). */
  readonly headerTimeoutMs: number;
  /** Time a client has to send a complete request, head and body. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection (no request in progress) is closed after this. */
  readonly idleTimeoutMs: number;
  /** A response whose client takes no bytes for this long is destroyed (and its blob released). */
  readonly stallTimeoutMs: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxConnections: 1000,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  stallTimeoutMs: 60_000,
};

/** `http.debug.addr`: the listener of /metrics and /healthz, kept off the registry port. */
export interface DebugListen {
  readonly host: string;
  readonly port: number;
  /** false when the address is the default (a bind failure is then a warning, not fatal). */
  readonly explicit: boolean;
}

/** DEFAULT_DEBUG_LISTEN (rules.ts) as written in a config.yml. */
export const DEFAULT_DEBUG_ADDR = "127.0.0.1:5001";

export interface CacheConfig {
  readonly logLevel: LogLevel;
  readonly rootDirectory: string;
  readonly deleteEnabled: boolean;
  readonly listenHost: string;
  readonly listenPort: number;
  readonly debug: DebugListen;
  readonly limits: ConnectionLimits;
  readonly secret: string | undefined;
  readonly publicHost: string | undefined;
  readonly tls: { readonly certificate: string; readonly key: string } | undefined;
  readonly downstream: DownstreamOptions;
}

/** One finding about a config.yml: the field's path, and its line:col when the YAML had one. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly line?: number;
  readonly col?: number;
}

export type ConfigResult = { ok: true; config: CacheConfig; warnings: ConfigProblem[] } | { ok: false; errors: ConfigProblem[]; warnings: ConfigProblem[] };

export function formatProblem(p: ConfigProblem): string {
  const where = p.line !== undefined ? ` (line ${p.line}, col ${p.col ?? 1})` : "";
  return `${p.path}: ${p.message}${where}`;
}

/** A config.yml the cache refuses (reading it), with every problem; messages are already masked. */
export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
  }
}
