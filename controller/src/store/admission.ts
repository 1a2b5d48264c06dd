// Admission: a change is checked as part of the whole spec it would produce (every stored
// resource, with this change applied) by crds's own loader — schema, files, cross-resource
// rules — and then against the swarm (referenced secrets/configs exist). Only an admitted change
// is written, so a bad object never reaches the controller through the store.
import path from "node:path";
import { loadCacheSpecFromTexts, type CacheSpec, type SpecIssue, type SpecText } from "@dtrcache/crds";
import { StoreError } from "./errors.js";
import {
  absolutizeFiles,
  changedFields,
  documentHash,
  documentsOf,
  keyOf,
  stripStoreFields,
  toYaml,
  writtenGeneration,
  type Document,
  type ResourceKey,
} from "./resource.js";
import type { Revision, SpecStore, StoredResource } from "./store.js";

export type ChangeAction = "created" | "configured" | "unchanged" | "deleted";

export interface AdmittedChange extends ResourceKey {
  readonly action: ChangeAction;
  /** Stored form (absolute file paths, no metadata.generation); undefined for a delete. */
  readonly doc: Document | undefined;
  /** Generation the write is based on: the one read, or the document's metadata.generation. */
  readonly base: number;
  readonly fields: readonly string[];
}

export interface Proposal {
  /** Applied files; issues point at their lines. */
  readonly texts?: readonly SpecText[];
  readonly deletes?: readonly ResourceKey[];
}

/** Checks the resulting spec against the swarm (e.g. referenced secrets exist); returns issues. */
export type ReferenceCheck = (spec: CacheSpec, texts: readonly SpecText[]) => Promise<SpecIssue[]>;

export interface Admitted {
  readonly changes: readonly AdmittedChange[];
  /** The whole spec as it will be once the changes are written. */
  readonly spec: CacheSpec;
}

/** Stored resources are loaded under this pseudo file name, so issues in them say where they live. */
export function storeFileName(r: ResourceKey): string {
  return `store:${keyOf(r)}`;
}

export function storedText(r: StoredResource): SpecText {
  return { file: storeFileName(r), text: toYaml(r.doc), baseDir: path.sep };
}

export async function admit(store: SpecStore, proposal: Proposal, checkReferences?: ReferenceCheck): Promise<Admitted> {
  const heads = new Map<string, Revision>((await store.heads()).map((r) => [keyOf(r), r]));
  const live = await store.list();
  const texts = proposal.texts ?? [];

  const applied = texts.flatMap((t) => documentsOf(t.text).map((d) => ({ ...d, doc: absolutizeFiles(d.doc, t.baseDir) })));
  const replaced = new Set([...applied.map(keyOf), ...(proposal.deletes ?? []).map(keyOf)]);
  for (const d of proposal.deletes ?? []) {
    const head = heads.get(keyOf(d));
    if (!head || head.deleted) throw new StoreError("NOT_FOUND", `${keyOf(d)} not found`);
  }

  const all = [...texts, ...live.filter((r) => !replaced.has(keyOf(r))).map(storedText)];
  const result = loadCacheSpecFromTexts(all);
  if (!result.ok) throw new StoreError("INVALID", "admission refused the change; nothing was written", result.issues);
  const referenceIssues = checkReferences ? await checkReferences(result.spec, all) : [];
  if (referenceIssues.length > 0) throw new StoreError("INVALID", "admission refused the change; nothing was written", referenceIssues);

  const changes: AdmittedChange[] = [];
  for (const a of applied) {
    const head = heads.get(keyOf(a));
    const current = head && !head.deleted ? live.find((r) => keyOf(r) === keyOf(a)) : undefined;
    const precondition = writtenGeneration(a.doc);
    if (precondition !== undefined && precondition !== (head?.generation ?? 0)) {
      throw new StoreError(
        "CONFLICT",
        `${keyOf(a)}: metadata.generation is ${precondition} but the store holds generation ${head?.generation ?? "none"}${head ? ` (written by ${head.who} at ${head.when})` : ""}; nothing was written — re-read and try again`,
      );
    }
    const doc = stripStoreFields(a.doc);
    const action: ChangeAction = !current ? "created" : documentHash(doc) === current.hash ? "unchanged" : "configured";
    changes.push({ kind: a.kind, name: a.name, action, doc, base: precondition ?? head?.generation ?? 0, fields: changedFields(current?.doc, doc) });
  }
  for (const d of proposal.deletes ?? []) {
    const head = heads.get(keyOf(d));
    changes.push({ kind: d.kind, name: d.name, action: "deleted", doc: undefined, base: head?.generation ?? 0, fields: [] });
  }
  return { changes, spec: result.spec };
}

export interface WriteResult extends AdmittedChange {
  readonly generation: number;
}

/**
 * Writes admitted changes one resource at a time (Swarm has no multi-object transaction: each
 * resource is atomic, a multi-resource apply is not). Unchanged resources are not written.
 */
export async function writeChanges(store: SpecStore, changes: readonly AdmittedChange[], verb = "apply"): Promise<WriteResult[]> {
  const out: WriteResult[] = [];
  for (const c of changes) {
    if (c.action === "unchanged") {
      out.push({ ...c, generation: c.base });
      continue;
    }
    const change = c.action === "deleted" ? "deleted" : c.action === "created" ? `${verb}: created` : summarizeFields(verb, c.fields);
    const revision = await store.write({ kind: c.kind, name: c.name, doc: c.doc, base: c.base, change });
    out.push({ ...c, generation: revision.generation });
  }
  return out;
}

function summarizeFields(verb: string, fields: readonly string[]): string {
  const shown = fields.slice(0, 4).join(", ");
  const text = fields.length === 0 ? verb : fields.length > 4 ? `${verb}: ${shown} (+${fields.length - 4} more)` : `${verb}: ${shown}`;
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
