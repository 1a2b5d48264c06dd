// Step 3 of loading: a valid document -> its normalized spec. Defaults are already applied by the
// schema; here relative file paths become absolute (relative to the file the document came from)
// so the result no longer depends on the working directory.
import path from "node:path";
import type { SourceLocation } from "./model.js";
import type { ContentCacheSpec, DtrSpec, SecretRef, TlsSpec } from "./schema.js";
import type { SourceDocument } from "./yaml-source.js";

export interface Normalized<S> {
  readonly name: string;
  readonly spec: S;
  /** The spec as written (relative paths), for messages that quote the user. */
  readonly written: S;
  readonly source: SourceDocument;
  readonly location: SourceLocation;
}

export function locationOf(source: SourceDocument): SourceLocation {
  const at = source.locate([]);
  return { file: source.file, documentIndex: source.index, line: at.line, column: at.column };
}

function absolute(baseDir: string, file: string): string {
  return path.resolve(baseDir, file);
}

/** A file path made absolute; a Swarm reference is a name and stays as written. */
function absoluteSource<T extends string | object>(baseDir: string, source: T): T {
  return (typeof source === "string" ? absolute(baseDir, source) : source) as T;
}

function absoluteSecret(baseDir: string, ref: SecretRef): SecretRef {
  return "file" in ref ? { ...ref, file: absolute(baseDir, ref.file) } : ref;
}

export function normalizeDtr(name: string, spec: DtrSpec, source: SourceDocument): Normalized<DtrSpec> {
  const { baseDir } = source;
  const trust = spec.trust.caFile === undefined ? spec.trust : { ...spec.trust, caFile: absoluteSource(baseDir, spec.trust.caFile) };
  const admin = { ...spec.admin, password: absoluteSecret(baseDir, spec.admin.password) };
  return { name, spec: { ...spec, trust, admin }, written: spec, source, location: locationOf(source) };
}

export function normalizeCache(name: string, spec: ContentCacheSpec, source: SourceDocument): Normalized<ContentCacheSpec> {
  const { baseDir } = source;
  const tls: TlsSpec =
    "certFile" in spec.tls ? { certFile: absoluteSource(baseDir, spec.tls.certFile), keyFile: absoluteSource(baseDir, spec.tls.keyFile) } : spec.tls;
  const extraCAFiles = spec.extraCAFiles.map((file) => absoluteSource(baseDir, file));
  return { name, spec: { ...spec, tls, extraCAFiles }, written: spec, source, location: locationOf(source) };
}
