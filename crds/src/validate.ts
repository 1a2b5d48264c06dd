// Step 2 of loading: one plain document -> a typed DTR or ContentCache document, or issues that
// name the field, its line and column. Pure: no file system, no cross-document knowledge.
import type { z } from "zod";
import { formatPath, makeIssue, quote, type IssueCode } from "./issues.js";
import type { SpecIssue } from "./model.js";
import {
  API_VERSION,
  contentCacheDocumentSchema,
  dtrDocumentSchema,
  KIND_CONTENT_CACHE,
  KIND_DTR,
  type ContentCacheDocument,
  type DtrDocument,
} from "./schema.js";
import type { SourceDocument } from "./yaml-source.js";

export type ValidDocument =
  { kind: "DTR"; doc: DtrDocument; source: SourceDocument } | { kind: "ContentCache"; doc: ContentCacheDocument; source: SourceDocument };

export type ValidateResult = { ok: true; document: ValidDocument } | { ok: false; issues: SpecIssue[] };

type ZodIssue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

/**
 * Keys whose scalar value would be a credential. Matching keys are reported as INLINE_SECRET and
 * their values are never quoted, wherever they appear (also as unknown fields).
 */
const SECRET_KEY = /(^|[^a-z])pass$|passw(or)?d|passphrase|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?$/i;
const INLINE_SECRET_MESSAGE = "inline secrets are not allowed; use {env: NAME}, {file: PATH} or {secret: NAME}";
const INLINE_PEM_MESSAGE = "inline PEM material is not allowed; put it in a file and give the file's path";

export function validateDocument(source: SourceDocument): ValidateResult {
  const { value } = source;
  const issue = (code: IssueCode, path: Path, message: string, prefer: "key" | "value" = "value"): SpecIssue =>
    makeIssue(code, source.file, formatPath(path), message, source.locate(path, prefer));

  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return {
      ok: false,
      issues: [issue("NOT_A_MAPPING", [], `document ${source.index + 1} must be a mapping with apiVersion, kind, metadata and spec, got ${quote(value)}`)],
    };
  }
  const record = value as Record<string, unknown>;
  if (record.apiVersion !== API_VERSION) {
    const got = record.apiVersion === undefined ? "it is missing" : `got ${quote(record.apiVersion)}`;
    return { ok: false, issues: [issue("WRONG_API_VERSION", ["apiVersion"], `must be ${API_VERSION}; ${got}`)] };
  }
  if (record.kind !== KIND_DTR && record.kind !== KIND_CONTENT_CACHE) {
    const got = record.kind === undefined ? "it is missing" : `got ${quote(record.kind)}`;
    return { ok: false, issues: [issue("WRONG_KIND", ["kind"], `must be ${KIND_DTR} or ${KIND_CONTENT_CACHE}; ${got}`)] };
  }

  const secretIssues = findInlineSecrets(record, []).map((found) => issue("INLINE_SECRET", found.path, found.pem ? INLINE_PEM_MESSAGE : INLINE_SECRET_MESSAGE));
  const secretPaths = new Set(secretIssues.map((s) => s.path));

  const schema = record.kind === KIND_DTR ? dtrDocumentSchema : contentCacheDocumentSchema;
  const parsed = schema.safeParse(record);
  const issues = [...secretIssues];
  if (!parsed.success) {
    for (const mapped of flattenZodIssues(parsed.error.issues, [], record)) {
      const at = formatPath(mapped.path);
      // A secret already reported is not reported again as a type or unknown-field error.
      if ([...secretPaths].some((secretPath) => at === secretPath || at.startsWith(`${secretPath}.`))) continue;
      const secret = isSecretPath(mapped.path);
      issues.push(issue(mapped.code, mapped.path, mapped.describe(secret), mapped.code === "UNKNOWN_FIELD" ? "key" : "value"));
    }
  }
  if (issues.length > 0 || !parsed.success) return { ok: false, issues };
  return parsed.data.kind === KIND_DTR
    ? { ok: true, document: { kind: "DTR", doc: parsed.data, source } }
    : { ok: true, document: { kind: "ContentCache", doc: parsed.data as ContentCacheDocument, source } };
}

function isSecretPath(path: Path): boolean {
  return path.some((segment) => typeof segment === "string" && SECRET_KEY.test(segment));
}

interface FoundSecret {
  path: PropertyKey[];
  pem: boolean;
}

/** Scalars under secret-looking keys, and PEM blocks anywhere. */
function findInlineSecrets(value: unknown, path: PropertyKey[]): FoundSecret[] {
  if (typeof value === "string" && value.includes("-----BEGIN ")) return [{ path, pem: true }];
  if (Array.isArray(value)) return value.flatMap((item, index) => findInlineSecrets(item, [...path, index]));
  if (value === null || typeof value !== "object") return [];
  const found: FoundSecret[] = [];
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    const childPath = [...path, key];
    const scalar = typeof child === "string" || typeof child === "number" || typeof child === "boolean";
    // `{secret: NAME}` alone in a mapping names a Swarm secret (a reference), it is not one.
    const swarmSecretRef = key === "secret" && Object.keys(value as object).length === 1;
    if (scalar && !swarmSecretRef && SECRET_KEY.test(key) && !(typeof child === "string" && child.includes("-----BEGIN ")))
      found.push({ path: childPath, pem: false });
    else found.push(...findInlineSecrets(child, childPath));
  }
  return found;
}

interface MappedIssue {
  code: IssueCode;
  path: PropertyKey[];
  /** The message; `secret` means the value must not be quoted. */
  describe(secret: boolean): string;
}

function valueAt(root: unknown, path: Path): unknown {
  let node: unknown = root;
  for (const segment of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[segment as string];
  }
  return node;
}

/**
 * Turns zod issues into one issue per user mistake. Unions are resolved to the alternative the
 * user evidently meant (the one whose keys and type match); when none or several fit, the union's
 * own message lists the accepted forms.
 */
function flattenZodIssues(zodIssues: readonly ZodIssue[], prefix: Path, root: unknown): MappedIssue[] {
  const out: MappedIssue[] = [];
  for (const zi of zodIssues) {
    const path = [...prefix, ...zi.path];
    const value = valueAt(root, path);
    const shown = (secret: boolean): string => (secret ? "the given value" : quote(value));
    switch (zi.code) {
      case "unrecognized_keys":
        for (const key of zi.keys) {
          out.push({ code: "UNKNOWN_FIELD", path: [...path, key], describe: () => `unknown field ${quote(key)}${suggestion(key)}` });
        }
        break;
      case "invalid_union": {
        const plausible = zi.errors.filter(
          (branch) => !branch.some((b) => b.path.length === 0 && (b.code === "unrecognized_keys" || b.code === "invalid_type")),
        );
        const onlyBranch = plausible.length === 1 ? plausible[0] : undefined;
        if (onlyBranch) out.push(...flattenZodIssues(onlyBranch, path, root));
        else if (value === undefined) out.push({ code: "MISSING_FIELD", path, describe: () => `is required; it ${zi.message}` });
        // A mapping or list is not quoted: the union's message names the accepted shapes.
        else if (typeof value === "object" && value !== null) out.push({ code: "INVALID_FIELD", path, describe: () => zi.message });
        else out.push({ code: "INVALID_FIELD", path, describe: (secret) => `${shown(secret)} ${zi.message}` });
        break;
      }
      case "invalid_type":
        if (value === undefined) out.push({ code: "MISSING_FIELD", path, describe: () => `is required (${article(zi.expected)})` });
        else
          out.push({
            code: "INVALID_FIELD",
            path,
            describe: (secret) => `expected ${article(zi.expected)}, got ${secret ? typeName(value) : `${typeName(value)} ${quote(value)}`}`,
          });
        break;
      case "invalid_value":
        out.push({ code: "INVALID_FIELD", path, describe: (secret) => `${shown(secret)} is not one of ${zi.values.map((v) => String(v)).join(", ")}` });
        break;
      case "too_small":
      case "too_big": {
        const bound = String(zi.code === "too_small" ? zi.minimum : zi.maximum);
        const limit = zi.code === "too_small" ? "at least" : "at most";
        const what =
          zi.origin === "string"
            ? `must be ${limit} ${bound} character(s) long`
            : zi.origin === "array"
              ? `must have ${limit} ${bound} item(s)`
              : `must be ${limit} ${bound}`;
        out.push({
          code: "INVALID_FIELD",
          path,
          describe: (secret) => (zi.origin === "string" && Number(bound) === 1 && zi.code === "too_small" ? "must not be empty" : `${shown(secret)} ${what}`),
        });
        break;
      }
      default:
        // Formats, refinements and the rest carry the schema's own wording ("must be key=value").
        out.push({ code: "INVALID_FIELD", path, describe: (secret) => `${shown(secret)} ${zi.message}` });
    }
  }
  return out;
}

function article(expected: string): string {
  if (expected === "object") return "a mapping";
  if (expected === "array") return "a list";
  if (expected === "int") return "an integer";
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${typeof value}`;
}

/** "did you mean" for the common typo of letter case (blobTtl) or a near spelling. */
function suggestion(key: string): string {
  const known = KNOWN_FIELD_NAMES.find((name) => name.toLowerCase() === key.toLowerCase() || editDistance(name.toLowerCase(), key.toLowerCase()) <= 1);
  return known && known !== key ? ` (did you mean ${quote(known)}?)` : "";
}

const KNOWN_FIELD_NAMES = [
  "apiVersion",
  "kind",
  "metadata",
  "spec",
  "name",
  "labels",
  "generation",
  "secret",
  "config",
  "url",
  "trust",
  "caFile",
  "fetchCA",
  "admin",
  "username",
  "password",
  "userConcurrency",
  "env",
  "file",
  "dtr",
  "node",
  "hostname",
  "existingLabel",
  "nodeLabel",
  "replicas",
  "image",
  "port",
  "debugPort",
  "publishMode",
  "externalURL",
  "tls",
  "certFile",
  "keyFile",
  "generate",
  "disabled",
  "storage",
  "path",
  "volume",
  "bind",
  "maxSize",
  "blobTTL",
  "upstreams",
  "cache",
  "extraCAFiles",
  "users",
  "logLevel",
];

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}
