// Admission's swarm-side check: every Swarm object the spec names ({secret: NAME} / {config:
// NAME} references: the admin password, TLS certificate and key, CA material) must exist, so a
// typo is refused at `apply` instead of surfacing as a failed DTR login or a cache that cannot
// start later. And a secret — which the controller can mount but never read — must not be used
// where the controller has to read it: combined into a CA bundle, or as a chained cache's
// certificate that its downstream must trust.
import { isNode, LineCounter, parseAllDocuments } from "yaml";
import type { CacheSpec, PemSource, ResolvedCache, SpecIssue, SpecText } from "@dtrcache/crds";
import type { SwarmApi } from "../swarm/api.js";

type Path = readonly (string | number)[];

interface Reference {
  readonly kind: "secret" | "config";
  readonly name: string;
  readonly file: string;
  readonly documentIndex: number;
  readonly path: Path;
}

interface Located {
  readonly file: string;
  readonly documentIndex: number;
}

function refOf(source: PemSource | undefined, at: Located, path: Path): Reference | undefined {
  if (source === undefined || typeof source === "string") return undefined;
  return "secret" in source
    ? { kind: "secret", name: source.secret, ...at, path: [...path, "secret"] }
    : { kind: "config", name: source.config, ...at, path: [...path, "config"] };
}

function located(resource: { source: { file: string; documentIndex: number } }): Located {
  return { file: resource.source.file, documentIndex: resource.source.documentIndex };
}

function referencesOf(spec: CacheSpec): Reference[] {
  const out: (Reference | undefined)[] = [];
  for (const dtr of spec.dtrs) {
    const password = dtr.spec.admin.password;
    if ("secret" in password) out.push({ kind: "secret", name: password.secret, ...located(dtr), path: ["spec", "admin", "password", "secret"] });
    out.push(refOf(dtr.spec.trust.caFile, located(dtr), ["spec", "trust", "caFile"]));
  }
  for (const cache of spec.caches) {
    const tls = cache.spec.tls;
    if ("certFile" in tls) {
      out.push(refOf(tls.certFile, located(cache), ["spec", "tls", "certFile"]));
      out.push(refOf(tls.keyFile, located(cache), ["spec", "tls", "keyFile"]));
    }
    cache.spec.extraCAFiles.forEach((source, i) => out.push(refOf(source, located(cache), ["spec", "extraCAFiles", i])));
  }
  return out.filter((r): r is Reference => r !== undefined);
}

interface Misuse {
  readonly at: Located;
  readonly path: Path;
  readonly message: string;
}

/** Secrets where the controller would have to read them (see the header). */
function misusesOf(spec: CacheSpec): Misuse[] {
  const out: Misuse[] = [];
  const upstreamCaches = (cache: ResolvedCache): ResolvedCache[] =>
    cache.spec.upstreams.flatMap((u) => (typeof u === "string" ? [] : spec.caches.filter((c) => c.name === u.cache)));
  for (const cache of spec.caches) {
    const caFile = cache.dtr.spec.trust.caFile;
    const sources: { source: PemSource | "readable"; at: Located; path: Path }[] = [];
    if (caFile !== undefined) sources.push({ source: caFile, at: located(cache.dtr), path: ["spec", "trust", "caFile", "secret"] });
    else if (cache.dtr.spec.trust.fetchCA) sources.push({ source: "readable", at: located(cache.dtr), path: [] });
    cache.spec.extraCAFiles.forEach((source, i) => sources.push({ source, at: located(cache), path: ["spec", "extraCAFiles", i, "secret"] }));
    for (const upstream of upstreamCaches(cache)) {
      const tls = upstream.spec.tls;
      if ("certFile" in tls && typeof tls.certFile === "object" && "secret" in tls.certFile) {
        out.push({
          at: located(upstream),
          path: ["spec", "tls", "certFile", "secret"],
          message: `is a Swarm secret, but cache ${cache.name} chains through this cache and needs its certificate in its CA bundle, which the controller assembles; reference the certificate as {config: ${tls.certFile.secret}} (a certificate is public)`,
        });
      }
      sources.push({ source: "readable", at: located(upstream), path: [] });
    }
    if (sources.length < 2) continue;
    for (const s of sources) {
      if (s.source === "readable" || typeof s.source === "string" || !("secret" in s.source)) continue;
      out.push({
        at: s.at,
        path: s.path,
        message: `is a Swarm secret, which the controller cannot read, so it cannot be combined with cache ${cache.name}'s other CA material; reference it as {config: ${s.source.secret}} (a CA certificate is public)`,
      });
    }
  }
  return out;
}

/** Line and column of `path` in document `index` of `text`, when it can be found. */
function locate(text: string | undefined, index: number, path: Path): { line: number; column: number } | undefined {
  if (text === undefined) return undefined;
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter });
  if (!Array.isArray(docs)) return undefined;
  const node = docs[index]?.getIn(path, true);
  if (!isNode(node) || !node.range) return undefined;
  const pos = lineCounter.linePos(node.range[0]);
  return { line: pos.line, column: pos.col };
}

export function swarmReferenceCheck(swarm: SwarmApi): (spec: CacheSpec, texts: readonly SpecText[]) => Promise<SpecIssue[]> {
  return async (spec, texts) => {
    const refs = referencesOf(spec);
    const byFile = new Map(texts.map((t) => [t.file, t.text]));
    const issue = (code: string, file: string, documentIndex: number, path: Path, message: string): SpecIssue => {
      const at = locate(byFile.get(file), documentIndex, path);
      const base = { code, file, path: path.join("."), message };
      return at ? { ...base, line: at.line, column: at.column } : base;
    };
    // A misuse is decided from the spec alone; shown once per place even when several caches share it.
    const misuses = new Map<string, SpecIssue>();
    for (const m of misusesOf(spec)) {
      const found = issue("SWARM_REFERENCE_UNUSABLE", m.at.file, m.at.documentIndex, m.path, m.message);
      misuses.set(`${m.at.file}\n${m.at.documentIndex}\n${found.path}`, found);
    }
    if (refs.length === 0) return [...misuses.values()];
    const secrets = refs.some((r) => r.kind === "secret") ? new Set((await swarm.listSecrets({ labels: [] })).map((s) => s.name)) : new Set<string>();
    const configs = refs.some((r) => r.kind === "config") ? new Set((await swarm.listConfigs({ labels: [] })).map((c) => c.name)) : new Set<string>();
    const missing = refs
      .filter((r) => !(r.kind === "secret" ? secrets : configs).has(r.name))
      .map((r) =>
        issue(
          "SWARM_REFERENCE_MISSING",
          r.file,
          r.documentIndex,
          r.path,
          `Swarm ${r.kind} "${r.name}" does not exist (create it with \`docker ${r.kind} create ${r.name} FILE\`)`,
        ),
      );
    return [...missing, ...misuses.values()];
  };
}
