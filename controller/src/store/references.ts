// Admission's swarm-side check: every Swarm object the spec names ({secret: NAME} references)
// must exist, so a typo is refused at `apply` instead of surfacing as a failed DTR login later.
import { isNode, LineCounter, parseAllDocuments } from "yaml";
import type { CacheSpec, SpecIssue, SpecText } from "@dtrcache/crds";
import type { SwarmApi } from "../swarm/api.js";

interface Reference {
  readonly kind: "secret";
  readonly name: string;
  readonly file: string;
  readonly documentIndex: number;
  readonly path: readonly string[];
}

function referencesOf(spec: CacheSpec): Reference[] {
  const out: Reference[] = [];
  for (const dtr of spec.dtrs) {
    const password = dtr.spec.admin.password;
    if ("secret" in password) out.push({ kind: "secret", name: password.secret, file: dtr.source.file, documentIndex: dtr.source.documentIndex, path: ["spec", "admin", "password", "secret"] });
  }
  return out;
}

/** Line and column of `path` in document `index` of `text`, when it can be found. */
function locate(text: string | undefined, index: number, path: readonly string[]): { line: number; column: number } | undefined {
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
    if (refs.length === 0) return [];
    const existing = new Set((await swarm.listSecrets({ labels: [] })).map((s) => s.name));
    const byFile = new Map(texts.map((t) => [t.file, t.text]));
    return refs
      .filter((r) => !existing.has(r.name))
      .map((r) => {
        const at = locate(byFile.get(r.file), r.documentIndex, r.path);
        const base = { code: "SWARM_REFERENCE_MISSING", file: r.file, path: r.path.join("."), message: `Swarm ${r.kind} "${r.name}" does not exist (create it with \`docker ${r.kind} create ${r.name} -\`)` };
        return at ? { ...base, line: at.line, column: at.column } : base;
      });
  };
}
