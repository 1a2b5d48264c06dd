// Step 4 of loading: rules that span documents. Pure: takes normalized documents, returns issues
// (each pointing at the field of the later document involved, naming the earlier one).
import { displayFile, formatPath, makeIssue, quote, type IssueCode } from "./issues.js";
import type { SpecIssue } from "./model.js";
import type { Normalized } from "./normalize.js";
import type { ContentCacheSpec, DtrSpec } from "./schema.js";

type Dtr = Normalized<DtrSpec>;
type Cache = Normalized<ContentCacheSpec>;

function issueAt(doc: Normalized<unknown>, code: IssueCode, path: readonly PropertyKey[], message: string): SpecIssue {
  return makeIssue(code, doc.source.file, formatPath(path), message, doc.source.locate(path));
}

function where(doc: Normalized<unknown>): string {
  return `${displayFile(doc.location.file)}:${doc.location.line}`;
}

export function checkUniqueNames(kind: string, docs: readonly Normalized<unknown>[]): SpecIssue[] {
  const seen = new Map<string, Normalized<unknown>>();
  const issues: SpecIssue[] = [];
  for (const doc of docs) {
    const first = seen.get(doc.name);
    if (first) issues.push(issueAt(doc, "DUPLICATE_NAME", ["metadata", "name"], `${kind} ${quote(doc.name)} is already defined at ${where(first)}`));
    else seen.set(doc.name, doc);
  }
  return issues;
}

/** The DTR each cache serves; issues for unknown or ambiguous references. */
export function resolveDtrs(dtrs: readonly Dtr[], caches: readonly Cache[]): { issues: SpecIssue[]; dtrOf: Map<Cache, Dtr> } {
  const byName = new Map(dtrs.map((d) => [d.name, d]));
  const dtrOf = new Map<Cache, Dtr>();
  const issues: SpecIssue[] = [];
  for (const cache of caches) {
    const wanted = cache.spec.dtr;
    if (wanted !== undefined) {
      const dtr = byName.get(wanted);
      if (dtr) dtrOf.set(cache, dtr);
      else issues.push(issueAt(cache, "UNKNOWN_REFERENCE", ["spec", "dtr"], `no DTR named ${quote(wanted)}${known(byName.keys())}`));
    } else if (dtrs.length === 1 && dtrs[0]) {
      dtrOf.set(cache, dtrs[0]);
    } else {
      const message =
        dtrs.length === 0
          ? "is required: the spec has no DTR document (add one with kind: DTR)"
          : `is required when the spec has more than one DTR (${dtrs.map((d) => quote(d.name)).join(", ")})`;
      issues.push(issueAt(cache, "AMBIGUOUS_DTR", ["spec", "dtr"], message));
    }
  }
  return { issues, dtrOf };
}

function known(names: Iterable<string>): string {
  const list = [...names];
  return list.length === 0 ? "" : ` (known: ${list.map((n) => quote(n)).join(", ")})`;
}

/** {cache: NAME} upstreams exist, and no cache reaches itself through them. */
export function checkChains(caches: readonly Cache[]): SpecIssue[] {
  const byName = new Map(caches.map((c) => [c.name, c]));
  const issues: SpecIssue[] = [];
  const edges = new Map<string, string[]>();
  for (const cache of caches) {
    const next: string[] = [];
    cache.spec.upstreams.forEach((upstream, index) => {
      if (typeof upstream === "string") return;
      const path = ["spec", "upstreams", index, "cache"];
      if (upstream.cache === cache.name) issues.push(issueAt(cache, "CHAIN_CYCLE", path, `a cache cannot be its own upstream (${quote(cache.name)})`));
      else if (!byName.has(upstream.cache))
        issues.push(issueAt(cache, "UNKNOWN_REFERENCE", path, `no ContentCache named ${quote(upstream.cache)}${known(byName.keys())}`));
      else next.push(upstream.cache);
    });
    edges.set(cache.name, next);
  }
  // Depth-first search; a back edge closes a loop. Each loop is reported once, at the edge that
  // closes it (the cache listed last in the loop).
  const state = new Map<string, "visiting" | "done">();
  const reported = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    state.set(name, "visiting");
    for (const target of edges.get(name) ?? []) {
      if (state.get(target) === "visiting") {
        const loop = [...trail.slice(trail.indexOf(target)), name, target].filter((n, i, all) => i === 0 || n !== all[i - 1]);
        const key = [...new Set(loop)].sort().join(",");
        const cache = byName.get(name);
        if (!reported.has(key) && cache) {
          reported.add(key);
          const index = cache.spec.upstreams.findIndex((u) => typeof u !== "string" && u.cache === target);
          issues.push(issueAt(cache, "CHAIN_CYCLE", ["spec", "upstreams", index, "cache"], `upstream chain loops: ${loop.join(" -> ")}`));
        }
      } else if (state.get(target) === undefined) {
        visit(target, [...trail, name]);
      }
    }
    state.set(name, "done");
  };
  for (const cache of caches) if (state.get(cache.name) === undefined) visit(cache.name, []);
  return issues;
}

/** Where Swarm places a cache: a hostname-pinned cache lands on every node carrying its nodeLabel. */
function placementLabel(cache: Cache): string {
  return "hostname" in cache.spec.node ? cache.spec.nodeLabel : cache.spec.node.existingLabel;
}

function nodeText(cache: Cache): string {
  return "hostname" in cache.spec.node ? `node ${quote(cache.spec.node.hostname)}` : `nodes labelled ${quote(cache.spec.node.existingLabel)}`;
}

/** The ports a cache publishes, with the field that names each. */
function publishedPorts(cache: Cache): [field: "port" | "debugPort", port: number][] {
  const ports: [field: "port" | "debugPort", port: number][] = [["port", cache.spec.port]];
  if (cache.spec.debugPort !== undefined) ports.push(["debugPort", cache.spec.debugPort]);
  return ports;
}

export function checkPlacement(caches: readonly Cache[]): SpecIssue[] {
  const issues: SpecIssue[] = [];
  for (const cache of caches) {
    if (cache.spec.replicas > 1 && "hostname" in cache.spec.node) {
      issues.push(
        issueAt(
          cache,
          "REPLICAS_NEED_LABEL",
          ["spec", "replicas"],
          `${cache.spec.replicas} replicas need node.existingLabel (a label on several nodes); node.hostname pins the cache to one node`,
        ),
      );
    }
  }
  caches.forEach((cache, i) => {
    for (const other of caches.slice(0, i)) {
      const label = placementLabel(cache);
      const sameLabel = label === placementLabel(other);
      const cacheHost = "hostname" in cache.spec.node ? cache.spec.node.hostname : undefined;
      const otherHost = "hostname" in other.spec.node ? other.spec.node.hostname : undefined;
      // The controller puts nodeLabel on the hostname's node; another cache placed by the same
      // label would then run there too (and this one on the other's nodes).
      if (sameLabel && cacheHost !== undefined && cacheHost !== otherHost) {
        const path = ["spec", "nodeLabel"];
        issues.push(
          issueAt(
            cache,
            "LABEL_CONFLICT",
            path,
            `${quote(label)} also places cache ${quote(other.name)} (${nodeText(other)}); both caches would run on both nodes, give each cache its own nodeLabel`,
          ),
        );
        continue;
      }
      if (sameLabel && cacheHost === undefined && otherHost !== undefined) {
        issues.push(
          issueAt(
            cache,
            "LABEL_CONFLICT",
            ["spec", "node", "existingLabel"],
            `${quote(label)} is the nodeLabel the controller sets for cache ${quote(other.name)} on ${nodeText(other)}; this cache would run there too`,
          ),
        );
        continue;
      }
      const sameNode = sameLabel || (cacheHost !== undefined && cacheHost === otherHost);
      const ingress = cache.spec.publishMode === "ingress" || other.spec.publishMode === "ingress";
      if (!sameNode && !ingress) continue;
      const why = ingress && !sameNode ? "an ingress port is published on every node" : `both run on ${nodeText(cache)}`;
      // Every published port counts: the registry port and the debug listener's.
      const theirs = publishedPorts(other);
      for (const [field, port] of publishedPorts(cache)) {
        const clash = theirs.find(([, p]) => p === port);
        if (!clash) continue;
        const as = clash[0] === "port" ? "" : ` (as its ${clash[0]})`;
        issues.push(issueAt(cache, "PORT_CLASH", ["spec", field], `port ${port} is also used by cache ${quote(other.name)}${as}; ${why}`));
      }
    }
  });
  return issues;
}

export function checkUniqueness(caches: readonly Cache[]): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const urls = new Map<string, Cache>();
  const users = new Map<string, Cache>();
  for (const cache of caches) {
    // Compare origins, so https://a and https://A:443 count as the same place.
    const origin = new URL(cache.spec.externalURL).origin;
    const first = urls.get(origin);
    if (first)
      issues.push(
        issueAt(cache, "DUPLICATE_URL", ["spec", "externalURL"], `${quote(cache.spec.externalURL)} is also the externalURL of cache ${quote(first.name)}`),
      );
    else urls.set(origin, cache);
    cache.spec.users.forEach((user, index) => {
      const owner = users.get(user);
      if (owner) {
        const message =
          owner === cache
            ? `${quote(user)} is listed twice`
            : `${quote(user)} is already assigned to cache ${quote(owner.name)}; DTR keeps one content cache per user`;
        issues.push(issueAt(cache, "DUPLICATE_USER", ["spec", "users", index], message));
      } else {
        users.set(user, cache);
      }
    });
  }
  return issues;
}

/** Upstream URLs in order: empty means the DTR itself; {cache} means that cache's externalURL. */
export function upstreamUrls(cache: Cache, dtr: Dtr, caches: readonly Cache[]): string[] {
  if (cache.spec.upstreams.length === 0) return [dtr.spec.url];
  return cache.spec.upstreams.map((u) => (typeof u === "string" ? u : (caches.find((c) => c.name === u.cache)?.spec.externalURL ?? "")));
}
