// Every user mistake the loader can report, with a stable code. Callers (controller status, CLI)
// match on `code`; the message is for people and may be reworded.
import path from "node:path";
import type { SpecIssue } from "./model.js";

export const ISSUE_CODES = {
  YAML_SYNTAX: "The file is not valid YAML (or repeats a key).",
  NOT_A_MAPPING: "A document is not a mapping of apiVersion, kind, metadata, spec.",
  WRONG_API_VERSION: "apiVersion is missing or not cache.dtr.io/v1alpha1.",
  WRONG_KIND: "kind is missing or not DTR / ContentCache.",
  MISSING_FIELD: "A required field is absent.",
  INVALID_FIELD: "A field has the wrong type or an invalid value.",
  UNKNOWN_FIELD: "A field the schema does not define (typo or wrong level).",
  INLINE_SECRET: "A secret-looking value is written inline instead of by {env} or {file} reference.",
  DUPLICATE_NAME: "Two documents of one kind share metadata.name.",
  DUPLICATE_URL: "Two caches share an externalURL.",
  DUPLICATE_USER: "A user is assigned to more than one cache (DTR keeps one cache per user).",
  UNKNOWN_REFERENCE: "spec.dtr or an upstream {cache} names a document that does not exist.",
  AMBIGUOUS_DTR: "spec.dtr is omitted but the spec does not have exactly one DTR.",
  CHAIN_CYCLE: "Caches chain to each other in a loop (or to themselves).",
  REPLICAS_NEED_LABEL: "replicas > 1 with node.hostname (one node cannot run several replicas on one port).",
  PORT_CLASH: "Two caches would publish the same port on one node.",
  LABEL_CONFLICT: "Two caches share a placement label, so each would also run on the other's node.",
  FILE_NOT_FOUND: "A referenced file does not exist (or is a directory).",
  FILE_UNREADABLE: "A referenced file exists but cannot be read.",
  WRONG_PEM_KIND: "A referenced file is not PEM of the expected kind (certificate vs private key).",
  KEY_MISMATCH: "tls.keyFile does not belong to the certificate in tls.certFile.",
} as const;

export type IssueCode = keyof typeof ISSUE_CODES;

export interface IssueLocation {
  readonly line: number;
  readonly column: number;
}

export function makeIssue(code: IssueCode, file: string, fieldPath: string, message: string, at?: IssueLocation): SpecIssue {
  return at ? { code, file, path: fieldPath, message, line: at.line, column: at.column } : { code, file, path: fieldPath, message };
}

/** Formats `caches.yaml:14:7 spec.blobTTL: "24 hours" is not a duration (use e.g. 24h)`. */
export function formatIssue(issue: SpecIssue): string {
  const file = displayFile(issue.file);
  const where = issue.line === undefined ? file : `${file}:${issue.line}:${issue.column ?? 1}`;
  return issue.path === "" ? `${where} ${issue.message}` : `${where} ${issue.path}: ${issue.message}`;
}

/** A path relative to the working directory when the file is below it, else its base name. */
export function displayFile(file: string): string {
  if (!path.isAbsolute(file)) return file;
  const relative = path.relative(process.cwd(), file);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : path.basename(file);
}

/** Field paths as users write them: `spec.upstreams[1].cache`. */
export function formatPath(segments: readonly PropertyKey[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out === "" ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

const MAX_SHOWN = 60;

/** Quotes a user's value for a message; long values are cut so one line stays one line. */
export function quote(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  // Credentials in a URL (https://user:pass@host) are a secret even in an otherwise plain value.
  const shown = typeof value === "string" ? value.replace(/(\/\/[^/:@\s]*:)[^@/\s]*@/, "$1***@") : value;
  const text = JSON.stringify(shown);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 4)}..."` : text;
}
