// Loading a CacheSpec: read (file or directory) -> parse -> validate each document -> normalize ->
// file checks -> cross-document rules -> resolve. Only `loadCacheSpec` touches the spec files; the
// rest works on text so tests and the controller's watcher can feed it directly.
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { checkCacheFiles, checkDtrFiles } from "./files.js";
import { makeIssue } from "./issues.js";
import type { CacheSpec, ResolvedCache, ResolvedDtr, SpecIssue } from "./model.js";
import { normalizeCache, normalizeDtr, type Normalized } from "./normalize.js";
import { readFromDisk, type FileReader } from "./pem.js";
import { checkChains, checkPlacement, checkUniqueNames, checkUniqueness, resolveDtrs, upstreamUrls } from "./rules.js";
import type { ContentCacheSpec, DtrSpec } from "./schema.js";
import { validateDocument } from "./validate.js";
import { parseSource } from "./yaml-source.js";

export { formatIssue } from "./issues.js";

export type LoadResult = { ok: true; spec: CacheSpec } | { ok: false; issues: SpecIssue[] };

export interface SpecText {
  /** Name used in messages and SourceLocation (the path as given, or a bare file name). */
  readonly file: string;
  readonly text: string;
  /** Directory relative references (certFile, caFile, ...) are resolved against. */
  readonly baseDir: string;
}

const SPEC_FILE = /\.ya?ml$/i;

/**
 * Loads a spec file (several `---` documents allowed) or a directory of *.yaml / *.yml files
 * (not recursive, in name order). Never throws for user mistakes: they come back as issues.
 */
export async function loadCacheSpec(specPath: string): Promise<LoadResult> {
  const absolute = path.resolve(specPath);
  let files: string[];
  try {
    const info = await stat(absolute);
    files = info.isDirectory() ? await specFilesIn(absolute) : [absolute];
  } catch (error) {
    return { ok: false, issues: [readFailure(absolute, error)] };
  }
  const texts: SpecText[] = [];
  for (const file of files) {
    try {
      texts.push({ file, text: await readFile(file, "utf8"), baseDir: path.dirname(file) });
    } catch (error) {
      return { ok: false, issues: [readFailure(file, error)] };
    }
  }
  return loadCacheSpecFromTexts(texts);
}

/**
 * *.yaml / *.yml directly in `dir`, by name. Symbolic links to files count (mounted configs are
 * often links); hidden names (editor swap files, `..data` of mounted volumes) do not.
 */
async function specFilesIn(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((name) => SPEC_FILE.test(name) && !name.startsWith(".")).sort();
  const files: string[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const info = await stat(file).catch(() => undefined);
    if (info?.isFile()) files.push(file);
  }
  return files;
}

function readFailure(file: string, error: unknown): SpecIssue {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR"
    ? makeIssue("FILE_NOT_FOUND", file, "", "the spec file or directory does not exist")
    : makeIssue("FILE_UNREADABLE", file, "", `the spec cannot be read (${code ?? "unknown error"})`);
}

/** One spec text; referenced files are still checked, relative to `baseDir` (default: the file's directory). */
export function loadCacheSpecFromText(text: string, fileName: string, baseDir?: string): LoadResult {
  return loadCacheSpecFromTexts([{ file: fileName, text, baseDir: baseDir ?? path.dirname(path.resolve(fileName)) }]);
}

/** Several spec texts loaded as one spec (what a directory load does after reading). */
export function loadCacheSpecFromTexts(texts: readonly SpecText[], read: FileReader = readFromDisk): LoadResult {
  const issues: SpecIssue[] = [];
  const dtrs: Normalized<DtrSpec>[] = [];
  const caches: Normalized<ContentCacheSpec>[] = [];
  for (const { file, text, baseDir } of texts) {
    const parsed = parseSource(text, file, baseDir);
    issues.push(...parsed.issues);
    for (const source of parsed.documents) {
      const result = validateDocument(source);
      if (!result.ok) {
        issues.push(...result.issues);
        continue;
      }
      const { document } = result;
      if (document.kind === "DTR") {
        const dtr = normalizeDtr(document.doc.metadata.name, document.doc.spec, source);
        issues.push(...checkDtrFiles(dtr, read));
        dtrs.push(dtr);
      } else {
        const cache = normalizeCache(document.doc.metadata.name, document.doc.spec, source);
        issues.push(...checkCacheFiles(cache, read));
        caches.push(cache);
      }
    }
  }
  // Cross-document rules only run on a spec whose documents are each valid: a document that
  // failed validation would otherwise show up again as a dangling reference.
  if (issues.length > 0) return { ok: false, issues: sortIssues(issues, texts) };

  const { issues: referenceIssues, dtrOf } = resolveDtrs(dtrs, caches);
  issues.push(
    ...checkUniqueNames("DTR", dtrs),
    ...checkUniqueNames("ContentCache", caches),
    ...referenceIssues,
    ...checkChains(caches),
    ...checkPlacement(caches),
    ...checkUniqueness(caches),
  );
  if (issues.length > 0) return { ok: false, issues: sortIssues(issues, texts) };

  const resolvedDtrs = new Map<Normalized<DtrSpec>, ResolvedDtr>(dtrs.map((d) => [d, { name: d.name, spec: d.spec, source: d.location }]));
  const resolvedCaches: ResolvedCache[] = caches.map((cache) => {
    const dtr = dtrOf.get(cache);
    const resolvedDtr = dtr ? resolvedDtrs.get(dtr) : undefined;
    if (!dtr || !resolvedDtr) throw new Error(`internal: cache ${cache.name} has no resolved DTR`);
    return {
      name: cache.name,
      spec: { ...cache.spec, dtr: dtr.name },
      dtr: resolvedDtr,
      upstreamUrls: upstreamUrls(cache, dtr, caches),
      source: cache.location,
    };
  });
  return { ok: true, spec: { dtrs: [...resolvedDtrs.values()], caches: resolvedCaches, files: texts.map((t) => t.file) } };
}

/** File order as loaded, then line and column, so messages read top to bottom. */
function sortIssues(issues: SpecIssue[], texts: readonly SpecText[]): SpecIssue[] {
  const order = new Map(texts.map((t, i) => [t.file, i]));
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort(
      (a, b) =>
        (order.get(a.issue.file) ?? 0) - (order.get(b.issue.file) ?? 0) ||
        (a.issue.line ?? 0) - (b.issue.line ?? 0) ||
        (a.issue.column ?? 0) - (b.issue.column ?? 0) ||
        a.i - b.i,
    )
    .map(({ issue }) => issue);
}
