// The contract's rules: every boundary a config.yml value must meet, in one place. The reader
// (parse.ts) refuses a value with these messages; the renderer refuses to write one that breaks
// them; the CacheSpec's validation (crds) calls the same functions for the fields it renders, so a
// spec that validates never renders a config the cache refuses at start (issue 10, defects 5, 11).
// Each check returns the value the cache will use, or a message saying what is wrong; the
// message never echoes the value (callers add it, masked).
import { DURATION_HINT, parseDuration } from "./duration.js";
import { parseSize, SIZE_HINT } from "./size.js";

export type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const bad = <T>(message: string): Checked<T> => ({ ok: false, message });

export const BLOB_TTL_MINIMUM = "must be at least 1ms (a bare number counts nanoseconds: 1000000 is 1ms)";

/** Any duration option: the registry's syntax, in whole milliseconds. */
export function checkDuration(value: unknown): Checked<number> {
  const parsed = typeof value === "string" || typeof value === "number" ? parseDuration(value) : undefined;
  return parsed ? ok(parsed.milliseconds) : bad(`is not a duration; ${DURATION_HINT}`);
}

/**
 * `blobttl`: the cache counts time in whole milliseconds and a TTL of 0 there would expire every
 * blob at once, so 0s and a bare number under 1,000,000 (nanoseconds) are refused.
 */
export function checkBlobTtl(value: unknown): Checked<number> {
  const ms = checkDuration(value);
  if (!ms.ok) return ms;
  return ms.value >= 1 ? ms : bad(BLOB_TTL_MINIMUM);
}

/** `maxsize`: at least one byte and within the cache's exact byte accounting (below 2^53). */
export function checkMaxSize(value: unknown): Checked<number> {
  const bytes = parseSize(value);
  return bytes === undefined ? bad(`must be ${SIZE_HINT}`) : ok(bytes);
}

/** Limit timeouts (headertimeout, requesttimeout, idletimeout, stalltimeout). */
export const MAX_LIMIT_MS = 3600_000;
export function checkLimitTimeout(value: unknown): Checked<number> {
  const ms = checkDuration(value);
  if (!ms.ok) return ms;
  return ms.value > 0 && ms.value <= MAX_LIMIT_MS ? ms : bad("must be greater than zero and at most 1h");
}

/** `outageallowance` bounds how long a revoked credential can still be served during an outage. */
export const MAX_OUTAGE_ALLOWANCE_MS = 24 * 3600_000;
/** `notfoundttl`: a pushed blob must become visible quickly. */
export const MAX_NOT_FOUND_TTL_MS = 60_000;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** `host:port` or `[v6]:port`; an empty host means every interface. Port 0 asks the kernel for one. */
export function checkAddress(value: string): Checked<ListenAddress> {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (!m || port > 65535) return bad("must be host:port");
  const host = m[1] ?? m[2] ?? "";
  return ok({ host: host === "" ? "0.0.0.0" : host, port });
}

/** True when two listeners would claim the same port (a wildcard host overlaps every host). */
export function addressesCollide(a: ListenAddress, b: ListenAddress): boolean {
  return a.port !== 0 && a.port === b.port && (a.host === b.host || a.host === "0.0.0.0" || b.host === "0.0.0.0");
}

/** Where the debug listener (/metrics, /healthz) is when http.debug.addr is not set. */
export const DEFAULT_DEBUG_LISTEN: ListenAddress = { host: "127.0.0.1", port: 5001 };

/**
 * http.addr and http.debug.addr (absent: DEFAULT_DEBUG_LISTEN) must not claim one port: the
 * registry port never serves /metrics, and the second bind would fail at start. Returns the
 * debug listener's address.
 */
export function checkListeners(listen: ListenAddress, debug: ListenAddress | undefined): Checked<ListenAddress> {
  const effective = debug ?? DEFAULT_DEBUG_LISTEN;
  if (!addressesCollide(effective, listen)) return ok(effective);
  return bad(
    debug
      ? "must not be the registry's own address (http.addr)"
      : `is the port of the cache's default debug listener (${DEFAULT_DEBUG_LISTEN.host}:${DEFAULT_DEBUG_LISTEN.port}); move the debug listener (http.debug.addr) or the registry`,
  );
}

const UPSTREAM_SHAPE = "must be an http(s)://host[:port] URL without path or credentials";

/**
 * An upstream: http(s), a host and optional port, nothing else. Credentials are refused with their
 * own reason: the cache forwards each client's own credentials upstream. Returns the URL without a
 * trailing slash, the form the cache keys upstreams by.
 */
export function checkUpstreamUrl(value: unknown): Checked<string> {
  if (typeof value !== "string") return bad(UPSTREAM_SHAPE);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return bad(UPSTREAM_SHAPE);
  }
  if (u.username || u.password) return bad("must not carry credentials (user:password@): the cache forwards each client's own credentials upstream");
  if ((u.protocol !== "https:" && u.protocol !== "http:") || u.search || u.hash) return bad(UPSTREAM_SHAPE);
  if (u.pathname !== "/" && u.pathname !== "") return bad(UPSTREAM_SHAPE);
  return ok(`${u.protocol}//${u.host}`);
}
