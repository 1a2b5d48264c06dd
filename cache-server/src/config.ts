// The cache's config.yml: the registry configuration format of the runbook, read unchanged.
// Three steps, kept apart: parse (YAML text -> document, with positions), validate (pure: document
// -> config or `path: message` errors with line:col), and file reading (loadConfigFile). Unknown
// keys are warnings, wrong values are errors; the entry file exits non-zero on any error before
// it listens.
import { readFile } from "node:fs/promises";
import { parseDuration, parseSize, DURATION_HINT } from "@dtrcache/crds";
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode, type YAMLMap } from "yaml";
import { maskCredentials } from "./mask.js";

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

/** `http.debug.addr`: the listener of /metrics and /healthz, kept off the registry port. */
export interface DebugListen {
  readonly host: string;
  readonly port: number;
  /** false when the address is the default (a bind failure is then a warning, not fatal). */
  readonly explicit: boolean;
}

export const DEFAULT_DEBUG_ADDR = "127.0.0.1:5001";

export interface CacheConfig {
  readonly logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
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

export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly line?: number;
  readonly col?: number;
}

export type ConfigResult =
  | { ok: true; config: CacheConfig; warnings: ConfigProblem[] }
  | { ok: false; errors: ConfigProblem[]; warnings: ConfigProblem[] };

export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line !== undefined ? ` (line ${p.line}, col ${p.col ?? 1})` : "";
  return `${p.path}: ${p.message}${where}`;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
// Sections of the registry format that mean something to the reference registry but not to a
// read-only cache; accepted with a warning so a copied config still starts.
const IGNORED_TOP = new Set(["notifications", "reporting", "redis", "health", "validation", "compatibility", "proxy", "auth", "loglevel"]);

class Reader {
  readonly errors: ConfigProblem[] = [];
  readonly warnings: ConfigProblem[] = [];
  constructor(private readonly lines: LineCounter) {}

  private at(node: YamlNode | null | undefined): { line?: number; col?: number } {
    const offset = node?.range?.[0];
    if (offset === undefined) return {};
    const pos = this.lines.linePos(offset);
    return { line: pos.line, col: pos.col };
  }
  // Every message is masked here, once, so no error or warning path can echo a URL's credentials.
  error(path: string, message: string, node?: YamlNode | null): void {
    this.errors.push({ path, message: maskCredentials(message), ...this.at(node) });
  }
  warn(path: string, message: string, node?: YamlNode | null): void {
    this.warnings.push({ path, message: maskCredentials(message), ...this.at(node) });
  }

  /** Returns the map at `path` (or undefined when absent), warning about keys not in `known`. */
  map(parent: YAMLMap | undefined, key: string, path: string, known: readonly string[], ignored: ReadonlySet<string> = new Set()): YAMLMap | undefined {
    const node = parent?.get(key, true) as YamlNode | undefined;
    if (node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (!isMap(node)) {
      this.error(path, "must be a mapping", node);
      return undefined;
    }
    this.checkKeys(node, path, known, ignored);
    return node;
  }

  checkKeys(node: YAMLMap, path: string, known: readonly string[], ignored: ReadonlySet<string> = new Set()): void {
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (known.includes(k)) continue;
      if (ignored.has(k)) this.warn(`${path ? `${path}.` : ""}${k}`, "ignored by the cache", pair.key as YamlNode);
      else this.warn(`${path ? `${path}.` : ""}${k}`, "unknown key (ignored)", pair.key as YamlNode);
    }
  }

  scalar(parent: YAMLMap | undefined, key: string): { value: unknown; node: YamlNode } | undefined {
    const node = parent?.get(key, true) as YamlNode | undefined;
    if (node === undefined) return undefined;
    if (!isScalar(node)) return { value: node, node };
    if (node.value === null) return undefined;
    return { value: node.value, node };
  }

  string(parent: YAMLMap | undefined, key: string, path: string): string | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    if (typeof s.value !== "string" || s.value.trim() === "") {
      this.error(path, "must be a non-empty string", s.node);
      return undefined;
    }
    return s.value;
  }

  boolean(parent: YAMLMap | undefined, key: string, path: string): boolean | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    if (typeof s.value !== "boolean") {
      this.error(path, "must be true or false", s.node);
      return undefined;
    }
    return s.value;
  }

  duration(parent: YAMLMap | undefined, key: string, path: string): number | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    const parsed = typeof s.value === "string" || typeof s.value === "number" ? parseDuration(s.value) : undefined;
    if (!parsed) {
      this.error(path, `invalid duration ${JSON.stringify(s.value)}; ${DURATION_HINT}`, s.node);
      return undefined;
    }
    return parsed.milliseconds;
  }

  number(parent: YAMLMap | undefined, key: string, path: string, min: number, max: number, integer: boolean): number | undefined {
    const s = this.scalar(parent, key);
    if (!s) return undefined;
    if (typeof s.value !== "number" || !Number.isFinite(s.value) || s.value < min || s.value > max || (integer && !Number.isInteger(s.value))) {
      this.error(path, `must be ${integer ? "an integer" : "a number"} between ${min} and ${max}`, s.node);
      return undefined;
    }
    return s.value;
  }

  stringList(parent: YAMLMap | undefined, key: string, path: string): { value: string; node: YamlNode }[] {
    const node = parent?.get(key, true) as YamlNode | undefined;
    if (node === undefined || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) {
      this.error(path, "must be a list of strings", node);
      return [];
    }
    const out: { value: string; node: YamlNode }[] = [];
    node.items.forEach((item, i) => {
      if (isScalar(item) && typeof item.value === "string" && item.value.trim() !== "") out.push({ value: item.value, node: item });
      else this.error(`${path}[${i}]`, "must be a non-empty string", item as YamlNode);
    });
    return out;
  }
}

function normalizeUpstreamUrl(raw: string): { url: string } | { problem: string } {
  const generic = "must be an http(s)://host[:port] URL without path or credentials";
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { problem: generic };
  }
  if (u.username || u.password) {
    return { problem: "must not carry credentials (user:password@): the cache forwards each client's own credentials upstream" };
  }
  if ((u.protocol !== "https:" && u.protocol !== "http:") || u.search || u.hash) return { problem: generic };
  if (u.pathname !== "/" && u.pathname !== "") return { problem: generic };
  return { url: `${u.protocol}//${u.host}` };
}

function parseAddr(addr: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? m[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/** Pure: YAML text -> config or problems. */
export function parseConfig(text: string): ConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reader(lines);
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    // The parser may quote source text back (a token of a broken line): masked like every message.
    r.errors.push({ path: "(yaml)", message: maskCredentials(e.message.split("\n")[0] ?? e.message), ...(pos ? { line: pos.line, col: pos.col } : {}) });
  }
  if (r.errors.length > 0) return { ok: false, errors: r.errors, warnings: r.warnings };
  const root = doc.contents;
  if (!isMap(root)) {
    return { ok: false, errors: [{ path: "(root)", message: "the configuration must be a YAML mapping" }], warnings: [] };
  }
  r.checkKeys(root, "", ["version", "log", "storage", "http", "middleware"], IGNORED_TOP);

  const version = r.scalar(root, "version");
  if (version && String(version.value) !== "0.1") r.error("version", `unsupported version ${JSON.stringify(version.value)}; expected 0.1`, version.node);

  const log = r.map(root, "log", "log", ["level"], new Set(["formatter", "fields", "accesslog", "hooks", "reportcaller"]));
  const levelText = r.string(log, "level", "log.level") ?? "info";
  const logLevel = (LOG_LEVELS as readonly string[]).includes(levelText) ? (levelText as CacheConfig["logLevel"]) : undefined;
  if (!logLevel) r.error("log.level", `must be one of ${LOG_LEVELS.join(", ")}`, log?.get("level", true) as YamlNode);

  const storage = r.map(root, "storage", "storage", ["filesystem", "delete"], new Set(["cache", "maintenance", "redirect", "inmemory"]));
  const fsNode = r.map(storage, "filesystem", "storage.filesystem", ["rootdirectory"], new Set(["maxthreads"]));
  const rootDirectory = r.string(fsNode, "rootdirectory", "storage.filesystem.rootdirectory") ?? "/var/lib/registry";
  const del = r.map(storage, "delete", "storage.delete", ["enabled"]);
  const deleteEnabled = r.boolean(del, "enabled", "storage.delete.enabled") ?? false;

  const http = r.map(root, "http", "http", ["addr", "secret", "host", "tls", "debug"], new Set(["net", "prefix", "headers", "relativeurls", "http2", "draintimeout"]));
  const addrText = r.string(http, "addr", "http.addr") ?? ":5000";
  const addr = parseAddr(addrText);
  if (!addr) r.error("http.addr", `must be host:port, got ${JSON.stringify(addrText)}`, http?.get("addr", true) as YamlNode);
  // distribution's debug server: /metrics and /healthz live there, never on the registry port.
  const debugNode = r.map(http, "debug", "http.debug", ["addr"], new Set(["prometheus", "pprof", "tls"]));
  const debugText = r.string(debugNode, "addr", "http.debug.addr");
  const debugAddr = parseAddr(debugText ?? DEFAULT_DEBUG_ADDR);
  if (!debugAddr) r.error("http.debug.addr", `must be host:port, got ${JSON.stringify(debugText)}`, debugNode?.get("addr", true) as YamlNode);
  else if (addr && debugAddr.port !== 0 && debugAddr.port === addr.port && (debugAddr.host === addr.host || debugAddr.host === "0.0.0.0" || addr.host === "0.0.0.0")) {
    r.error("http.debug.addr", "must not be the registry's own address (http.addr)", debugNode?.get("addr", true) as YamlNode);
  }
  const secret = r.string(http, "secret", "http.secret");
  const publicHost = r.string(http, "host", "http.host");
  const tlsNode = r.map(http, "tls", "http.tls", ["certificate", "key"], new Set(["clientcas", "minimumtls", "ciphersuites", "letsencrypt"]));
  const certificate = r.string(tlsNode, "certificate", "http.tls.certificate");
  const key = r.string(tlsNode, "key", "http.tls.key");
  if (tlsNode && (certificate === undefined) !== (key === undefined)) {
    r.error("http.tls", "certificate and key must be given together", tlsNode);
  }

  const { options: downstream, map: downstreamMap, base: downstreamBase } = readDownstream(r, root);
  const limits = readLimits(r, downstreamMap, downstreamBase);

  if (r.errors.length > 0 || !logLevel || !addr || !debugAddr || !downstream) return { ok: false, errors: r.errors, warnings: r.warnings };
  if (!deleteEnabled) r.warn("storage.delete.enabled", "is false: blobs past blobttl are kept (no expiry)");
  return {
    ok: true,
    warnings: r.warnings,
    config: {
      logLevel,
      rootDirectory,
      deleteEnabled,
      listenHost: addr.host,
      listenPort: addr.port,
      debug: { ...debugAddr, explicit: debugText !== undefined },
      limits,
      secret,
      publicHost,
      tls: certificate && key ? { certificate, key } : undefined,
      downstream,
    },
  };
}

const MAX_OUTAGE_ALLOWANCE_MS = 24 * 3600_000;
const MAX_NOT_FOUND_TTL_MS = 60_000;

const DOWNSTREAM_KEYS = [
  "blobttl", "upstreams", "cas", "servestale", "authttl", "outageallowance", "notfoundttl", "maxsize", "highwatermark", "lowwatermark", "upstreamconcurrency", "sweepinterval",
  "workers", "maxconnections", "headertimeout", "requesttimeout", "idletimeout", "stalltimeout",
] as const;

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxConnections: 1000,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  stallTimeoutMs: 60_000,
};
const MAX_LIMIT_MS = 3600_000;

// Limits are read from the same downstream options (the runbook's format has no place for them
// under http:); keys are checked there by readDownstream, values here.
function readLimits(r: Reader, opts: YAMLMap | undefined, base: string): ConnectionLimits {
  const timeout = (key: string, fallback: number): number => {
    const ms = r.duration(opts, key, `${base}.${key}`);
    if (ms === undefined) return fallback;
    if (ms <= 0 || ms > MAX_LIMIT_MS) {
      r.error(`${base}.${key}`, "must be greater than zero and at most 1h", opts?.get(key, true) as YamlNode);
      return fallback;
    }
    return ms;
  };
  const maxConnections = r.number(opts, "maxconnections", `${base}.maxconnections`, 1, 1_000_000, true) ?? DEFAULT_LIMITS.maxConnections;
  const headerTimeoutMs = timeout("headertimeout", DEFAULT_LIMITS.headerTimeoutMs);
  const requestTimeoutMs = timeout("requesttimeout", Math.max(DEFAULT_LIMITS.requestTimeoutMs, headerTimeoutMs));
  if (requestTimeoutMs < headerTimeoutMs) {
    r.error(`${base}.requesttimeout`, "must be at least headertimeout (the head is part of the request)", opts?.get("requesttimeout", true) as YamlNode);
  }
  return {
    maxConnections,
    headerTimeoutMs,
    requestTimeoutMs,
    idleTimeoutMs: timeout("idletimeout", DEFAULT_LIMITS.idleTimeoutMs),
    stallTimeoutMs: timeout("stalltimeout", DEFAULT_LIMITS.stallTimeoutMs),
  };
}

interface DownstreamRead {
  readonly options: DownstreamOptions | undefined;
  /** The options map itself (undefined when absent), and its path for messages. */
  readonly map: YAMLMap | undefined;
  readonly base: string;
}

function readDownstream(r: Reader, root: YAMLMap): DownstreamRead {
  const mw = r.map(root, "middleware", "middleware", ["registry"], new Set(["repository", "storage"]));
  const list = mw?.get("registry", true) as YamlNode | undefined;
  if (!list || !isSeq(list)) {
    r.error("middleware.registry", "must be a list containing the `downstream` middleware", list ?? mw ?? root);
    return { options: undefined, map: undefined, base: "" };
  }
  let found: YAMLMap | undefined;
  let base = "";
  list.items.forEach((item, i) => {
    const path = `middleware.registry[${i}]`;
    if (!isMap(item)) {
      r.error(path, "must be a mapping with name and options", item as YamlNode);
      return;
    }
    const name = r.string(item, "name", `${path}.name`);
    if (name === "downstream") {
      r.checkKeys(item, path, ["name", "options", "disabled"]);
      found = item;
      base = `${path}.options`;
    } else {
      r.warn(path, `middleware ${JSON.stringify(name)} is not supported by the cache (ignored)`, item);
    }
  });
  if (!found) {
    r.error("middleware.registry", "no middleware named `downstream`", list);
    return { options: undefined, map: undefined, base };
  }
  const opts = r.map(found, "options", base, DOWNSTREAM_KEYS);
  if (!opts) {
    r.error(base, "is required (blobttl, upstreams)", found);
    return { options: undefined, map: undefined, base };
  }
  const blobTtlMs = r.duration(opts, "blobttl", `${base}.blobttl`);
  if (blobTtlMs === undefined && !r.errors.some((e) => e.path === `${base}.blobttl`)) r.error(`${base}.blobttl`, "is required", opts);
  else if (blobTtlMs !== undefined && blobTtlMs <= 0) r.error(`${base}.blobttl`, "must be greater than zero", opts.get("blobttl", true) as YamlNode);

  const upstreams = readUpstreams(r, opts, `${base}.upstreams`);
  const cas = r.stringList(opts, "cas", `${base}.cas`).map((c) => c.value);
  const serveStale = r.boolean(opts, "servestale", `${base}.servestale`) ?? true;
  const authTtlMs = r.duration(opts, "authttl", `${base}.authttl`) ?? 30_000;
  const outageAllowanceMs = r.duration(opts, "outageallowance", `${base}.outageallowance`) ?? 10 * 60_000;
  if (outageAllowanceMs > MAX_OUTAGE_ALLOWANCE_MS) {
    r.error(`${base}.outageallowance`, "must be at most 24h (it bounds how long a revoked credential can still be served during an outage)", opts.get("outageallowance", true) as YamlNode);
  }
  const notFoundTtlMs = r.duration(opts, "notfoundttl", `${base}.notfoundttl`) ?? 5_000;
  if (notFoundTtlMs > MAX_NOT_FOUND_TTL_MS) {
    r.error(`${base}.notfoundttl`, "must be at most 1m (a pushed blob must become visible quickly)", opts.get("notfoundttl", true) as YamlNode);
  }
  const sweepIntervalMs = r.duration(opts, "sweepinterval", `${base}.sweepinterval`) ?? 60_000;
  let maxSizeBytes: number | undefined;
  const maxsize = r.scalar(opts, "maxsize");
  if (maxsize) {
    maxSizeBytes = parseSize(maxsize.value);
    if (maxSizeBytes === undefined) r.error(`${base}.maxsize`, "must be a size such as 20GiB, 500MB or a byte count", maxsize.node);
  }
  const highWatermark = r.number(opts, "highwatermark", `${base}.highwatermark`, 0.01, 1, false) ?? 0.9;
  const lowWatermark = r.number(opts, "lowwatermark", `${base}.lowwatermark`, 0, 1, false) ?? 0.8;
  if (lowWatermark >= highWatermark) r.error(`${base}.lowwatermark`, "must be below highwatermark", opts.get("lowwatermark", true) as YamlNode);
  const upstreamConcurrency = r.number(opts, "upstreamconcurrency", `${base}.upstreamconcurrency`, 1, 10_000, true) ?? 64;
  const workers = r.number(opts, "workers", `${base}.workers`, 1, 1024, true);
  if (blobTtlMs === undefined || upstreams.length === 0) {
    if (upstreams.length === 0 && !r.errors.some((e) => e.path.startsWith(`${base}.upstreams`))) {
      r.error(`${base}.upstreams`, "needs at least one upstream URL", opts);
    }
    return { options: undefined, map: opts, base };
  }
  const options = { blobTtlMs, upstreams, cas, serveStale, authTtlMs, outageAllowanceMs, notFoundTtlMs, maxSizeBytes, highWatermark, lowWatermark, upstreamConcurrency, sweepIntervalMs, ...(workers !== undefined ? { workers } : {}) };
  return { options, map: opts, base };
}

// Two accepted shapes: the list of URLs of current caches, and the 2.3-era list of
// `{originhost, upstreamhosts}` where the hops to use are `upstreamhosts` (the origin itself when
// that list is empty).
function readUpstreams(r: Reader, opts: YAMLMap, path: string): UpstreamConfig[] {
  const node = opts.get("upstreams", true) as YamlNode | undefined;
  if (node === undefined) return [];
  if (!isSeq(node)) {
    r.error(path, "must be a list of upstream URLs", node);
    return [];
  }
  const out: UpstreamConfig[] = [];
  const add = (raw: unknown, p: string, n: YamlNode): void => {
    const checked = typeof raw === "string" ? normalizeUpstreamUrl(raw) : { problem: "must be an http(s)://host[:port] URL" };
    // The echoed value is masked by Reader.error (user:***@host), like every message.
    if ("problem" in checked) r.error(p, `${checked.problem}, got ${JSON.stringify(raw)}`, n);
    else if (!out.some((u) => u.url === checked.url)) out.push({ url: checked.url });
  };
  node.items.forEach((item, i) => {
    const p = `${path}[${i}]`;
    if (isScalar(item)) add(item.value, p, item);
    else if (isMap(item)) {
      r.checkKeys(item, p, ["originhost", "upstreamhosts"]);
      const origin = r.string(item, "originhost", `${p}.originhost`);
      const hosts = r.stringList(item, "upstreamhosts", `${p}.upstreamhosts`);
      if (hosts.length > 0) hosts.forEach((h, j) => add(h.value, `${p}.upstreamhosts[${j}]`, h.node));
      else if (origin) add(origin, `${p}.originhost`, item.get("originhost", true) as YamlNode);
      else r.error(p, "needs originhost or upstreamhosts", item);
    } else r.error(p, "must be a URL or {originhost, upstreamhosts}", item as YamlNode);
  });
  return out;
}

/** File I/O apart from validation: read and parse, throwing ConfigError with every problem. */
export async function loadConfigFile(path: string): Promise<{ config: CacheConfig; warnings: ConfigProblem[] }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError([{ path: "(file)", message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  const result = parseConfig(text);
  if (!result.ok) throw new ConfigError(result.errors);
  return { config: result.config, warnings: result.warnings };
}
