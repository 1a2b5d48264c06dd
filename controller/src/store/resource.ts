// One stored resource (a DTR or ContentCache document) as plain data: the canonical form that is
// stored and hashed, the documents of an applied file, and a short summary of what changed.
import { createHash } from "node:crypto";
import path from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { KINDS, type ResourceKind } from "./labels.js";

export type Document = Record<string, unknown>;

export interface ResourceKey {
  readonly kind: ResourceKind;
  readonly name: string;
}

export function keyOf(r: ResourceKey): string {
  return `${r.kind}/${r.name}`;
}

/** Sorted-key JSON: equal documents hash equally whatever order their keys were written in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The document without store-owned fields (metadata.generation): what is stored and compared. */
export function stripStoreFields(doc: Document): Document {
  const metadata = doc["metadata"];
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) return doc;
  const { generation: _generation, ...rest } = metadata as Record<string, unknown>;
  return { ...doc, metadata: rest };
}

export function documentHash(doc: Document): string {
  return createHash("sha256")
    .update(canonicalJson(stripStoreFields(doc)))
    .digest("hex");
}

export function toYaml(doc: Document): string {
  return stringify(doc, { lineWidth: 0 });
}

/** `metadata.generation` as written in an applied document (a write precondition), if any. */
export function writtenGeneration(doc: Document): number | undefined {
  const metadata = doc["metadata"] as Record<string, unknown> | undefined;
  const g = metadata?.["generation"];
  return typeof g === "number" && Number.isInteger(g) && g >= 1 ? g : undefined;
}

export interface AppliedDocument extends ResourceKey {
  readonly doc: Document;
}

/**
 * The documents of an applied text that name a kind and a metadata.name. Others are skipped here:
 * admission loads the same text with crds' loader, which reports them with line and column.
 */
export function documentsOf(text: string): AppliedDocument[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  if (!Array.isArray(docs)) return [];
  const out: AppliedDocument[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) continue;
    let value: unknown;
    try {
      value = d.toJS({ maxAliasCount: 100 });
    } catch {
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) continue;
    const doc = value as Document;
    const kind = KINDS.find((k) => k === doc["kind"]);
    const name = (doc["metadata"] as Record<string, unknown> | undefined)?.["name"];
    if (kind && typeof name === "string") out.push({ kind, name, doc });
  }
  return out;
}

/**
 * Relative file references (trust.caFile, tls.certFile/keyFile, extraCAFiles, password {file})
 * made absolute against the applied file's directory: a stored resource is read later by a
 * controller with another working directory, so a relative path would mean something else there.
 */
export function absolutizeFiles(doc: Document, baseDir: string): Document {
  const copy = structuredClone(doc);
  const spec = copy["spec"] as Record<string, unknown> | undefined;
  if (!spec || typeof spec !== "object") return copy;
  const fix = (holder: Record<string, unknown> | undefined, key: string): void => {
    const v = holder?.[key];
    if (holder && typeof v === "string" && v !== "" && !path.isAbsolute(v)) holder[key] = path.resolve(baseDir, v);
  };
  const obj = (v: unknown): Record<string, unknown> | undefined =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  fix(obj(spec["trust"]), "caFile");
  fix(obj(obj(spec["admin"])?.["password"]), "file");
  fix(obj(spec["tls"]), "certFile");
  fix(obj(spec["tls"]), "keyFile");
  if (Array.isArray(spec["extraCAFiles"]))
    spec["extraCAFiles"] = spec["extraCAFiles"].map((f) => (typeof f === "string" && !path.isAbsolute(f) ? path.resolve(baseDir, f) : f));
  return copy;
}

function leaves(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) leaves(v, prefix === "" ? k : `${prefix}.${k}`, out);
    return;
  }
  out.set(prefix, canonicalJson(value));
}

/** Field paths that differ, e.g. "spec.blobTTL, spec.users" (lists count as one field). */
export function changedFields(before: Document | undefined, after: Document): string[] {
  if (!before) return [];
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  leaves(stripStoreFields(before), "", a);
  leaves(stripStoreFields(after), "", b);
  const paths = new Set([...a.keys(), ...b.keys()]);
  return [...paths].filter((p) => a.get(p) !== b.get(p)).sort();
}
