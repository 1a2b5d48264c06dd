// The downstream middleware's options: the cache's own settings (blobttl, upstreams, cas, our
// extra options) and the connection limits, which the runbook's format has no other place for.
import { isMap, isScalar, isSeq } from "yaml";
import { DEFAULT_LIMITS, type ConnectionLimits, type DownstreamOptions, type UpstreamConfig } from "./model.js";
import type { Reader, YamlNode, YAMLMap } from "./reader.js";
import { checkBlobTtl, checkDuration, checkLimitTimeout, checkMaxSize, checkUpstreamUrl, MAX_NOT_FOUND_TTL_MS, MAX_OUTAGE_ALLOWANCE_MS } from "./rules.js";

export const DOWNSTREAM_KEYS = [
  "blobttl",
  "upstreams",
  "cas",
  "servestale",
  "authttl",
  "outageallowance",
  "notfoundttl",
  "maxsize",
  "highwatermark",
  "lowwatermark",
  "upstreamconcurrency",
  "sweepinterval",
  "workers",
  "maxconnections",
  "headertimeout",
  "requesttimeout",
  "idletimeout",
  "stalltimeout",
] as const;

export interface DownstreamRead {
  readonly options: DownstreamOptions | undefined;
  /** The options map itself (undefined when absent), and its path for messages. */
  readonly map: YAMLMap | undefined;
  readonly base: string;
}

/** Finds the `downstream` entry of middleware.registry and reads its options. */
export function readDownstream(r: Reader, root: YAMLMap): DownstreamRead {
  const mw = r.map(root, "middleware", "middleware", ["registry"], new Set(["repository", "storage"]));
  const list = r.node(mw, "registry");
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
  const at = (key: string): string => `${base}.${key}`;
  const blobTtlMs = r.checked(opts, "blobttl", at("blobttl"), checkBlobTtl);
  if (blobTtlMs === undefined && !r.hasError(at("blobttl"))) r.error(at("blobttl"), "is required", opts);

  const upstreams = readUpstreams(r, opts, at("upstreams"));
  const cas = r.stringList(opts, "cas", at("cas")).map((c) => c.value);
  const serveStale = r.boolean(opts, "servestale", at("servestale")) ?? true;
  const authTtlMs = r.checked(opts, "authttl", at("authttl"), checkDuration) ?? 30_000;
  const outageAllowanceMs = r.checked(opts, "outageallowance", at("outageallowance"), checkDuration) ?? 10 * 60_000;
  if (outageAllowanceMs > MAX_OUTAGE_ALLOWANCE_MS) {
    r.error(
      at("outageallowance"),
      "must be at most 24h (it bounds how long a revoked credential can still be served during an outage)",
      r.node(opts, "outageallowance"),
    );
  }
  const notFoundTtlMs = r.checked(opts, "notfoundttl", at("notfoundttl"), checkDuration) ?? 5_000;
  if (notFoundTtlMs > MAX_NOT_FOUND_TTL_MS) {
    r.error(at("notfoundttl"), "must be at most 1m (a pushed blob must become visible quickly)", r.node(opts, "notfoundttl"));
  }
  const sweepIntervalMs = r.checked(opts, "sweepinterval", at("sweepinterval"), checkDuration) ?? 60_000;
  const maxSizeBytes = r.checked(opts, "maxsize", at("maxsize"), checkMaxSize);
  const highWatermark = r.number(opts, "highwatermark", at("highwatermark"), 0.01, 1, false) ?? 0.9;
  const lowWatermark = r.number(opts, "lowwatermark", at("lowwatermark"), 0, 1, false) ?? 0.8;
  if (lowWatermark >= highWatermark) r.error(at("lowwatermark"), "must be below highwatermark", r.node(opts, "lowwatermark"));
  const upstreamConcurrency = r.number(opts, "upstreamconcurrency", at("upstreamconcurrency"), 1, 10_000, true) ?? 64;
  const workers = r.number(opts, "workers", at("workers"), 1, 1024, true);
  if (upstreams.length === 0 && !r.hasError(at("upstreams"))) r.error(at("upstreams"), "needs at least one upstream URL", opts);
  if (blobTtlMs === undefined || upstreams.length === 0) return { options: undefined, map: opts, base };
  const options: DownstreamOptions = {
    blobTtlMs,
    upstreams,
    cas,
    serveStale,
    authTtlMs,
    outageAllowanceMs,
    notFoundTtlMs,
    maxSizeBytes,
    highWatermark,
    lowWatermark,
    upstreamConcurrency,
    sweepIntervalMs,
    ...(workers !== undefined ? { workers } : {}),
  };
  return { options, map: opts, base };
}

/** Limits are read from the same downstream options; keys are checked by readDownstream, values here. */
export function readLimits(r: Reader, opts: YAMLMap | undefined, base: string): ConnectionLimits {
  const timeout = (key: string, fallback: number): number => r.checked(opts, key, `${base}.${key}`, checkLimitTimeout) ?? fallback;
  const maxConnections = r.number(opts, "maxconnections", `${base}.maxconnections`, 1, 1_000_000, true) ?? DEFAULT_LIMITS.maxConnections;
  const headerTimeoutMs = timeout("headertimeout", DEFAULT_LIMITS.headerTimeoutMs);
  const requestTimeoutMs = timeout("requesttimeout", Math.max(DEFAULT_LIMITS.requestTimeoutMs, headerTimeoutMs));
  if (requestTimeoutMs < headerTimeoutMs) {
    r.error(`${base}.requesttimeout`, "must be at least headertimeout (the head is part of the request)", r.node(opts, "requesttimeout"));
  }
  return {
    maxConnections,
    headerTimeoutMs,
    requestTimeoutMs,
    idleTimeoutMs: timeout("idletimeout", DEFAULT_LIMITS.idleTimeoutMs),
    stallTimeoutMs: timeout("stalltimeout", DEFAULT_LIMITS.stallTimeoutMs),
  };
}

// Two accepted shapes: the list of URLs of current caches, and the 2.3-era list of
// `{originhost, upstreamhosts}` where the hops to use are `upstreamhosts` (the origin itself when
// that list is empty).
function readUpstreams(r: Reader, opts: YAMLMap, path: string): UpstreamConfig[] {
  const node = r.node(opts, "upstreams");
  if (node === undefined) return [];
  if (!isSeq(node)) {
    r.error(path, "must be a list of upstream URLs", node);
    return [];
  }
  const out: UpstreamConfig[] = [];
  const add = (raw: unknown, p: string, n: YamlNode | undefined): void => {
    const checked = checkUpstreamUrl(raw);
    // The echoed value is masked by Reader.error (user:***@host), like every message.
    if (!checked.ok) r.error(p, `${checked.message}, got ${JSON.stringify(raw)}`, n);
    else if (!out.some((u) => u.url === checked.value)) out.push({ url: checked.value });
  };
  node.items.forEach((item, i) => {
    const p = `${path}[${i}]`;
    if (isScalar(item)) add(item.value, p, item);
    else if (isMap(item)) {
      r.checkKeys(item, p, ["originhost", "upstreamhosts"]);
      const origin = r.string(item, "originhost", `${p}.originhost`);
      const hosts = r.stringList(item, "upstreamhosts", `${p}.upstreamhosts`);
      if (hosts.length > 0) hosts.forEach((h, j) => add(h.value, `${p}.upstreamhosts[${j}]`, h.node));
      else if (origin) add(origin, `${p}.originhost`, r.node(item, "originhost"));
      else r.error(p, "needs originhost or upstreamhosts", item);
    } else r.error(p, "must be a URL or {originhost, upstreamhosts}", item as YamlNode);
  });
  return out;
}
