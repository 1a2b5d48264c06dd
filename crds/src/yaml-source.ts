// Step 1 of loading: YAML text -> plain documents, each with a locator that maps a field path back
// to the line and column where the user wrote it. No schema knowledge lives here.
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node, type Pair } from "yaml";
import { makeIssue, type IssueLocation } from "./issues.js";
import type { SpecIssue } from "./model.js";

export interface SourceDocument {
  readonly file: string;
  /** Directory relative file references in this document are resolved against. */
  readonly baseDir: string;
  /** 0-based position of the document in its file. */
  readonly index: number;
  /** The document as plain data (anchors and aliases resolved). */
  readonly value: unknown;
  /**
   * Where `path` was written. `prefer: "key"` points at the field's key (unknown fields), else at
   * its value. A path that does not exist points at the deepest part of it that does.
   */
  locate(path: readonly PropertyKey[], prefer?: "key" | "value"): IssueLocation;
}

export interface ParsedSource {
  readonly documents: SourceDocument[];
  readonly issues: SpecIssue[];
}

export function parseSource(text: string, file: string, baseDir: string): ParsedSource {
  const lineCounter = new LineCounter();
  // prettyErrors off: messages stay one line; positions come from the line counter instead.
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): IssueLocation => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const documents: SourceDocument[] = [];
  const issues: SpecIssue[] = [];
  // An empty stream yields a non-array "EmptyStream": no documents.
  if (!Array.isArray(docs)) return { documents, issues };
  docs.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        issues.push(makeIssue("YAML_SYNTAX", file, "", cleanYamlMessage(error.message), at(error.pos[0])));
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      // Alias bombs and unresolved aliases surface here rather than as parse errors.
      const message = error instanceof Error ? error.message : String(error);
      issues.push(makeIssue("YAML_SYNTAX", file, "", cleanYamlMessage(message), at(doc.range[0])));
      return;
    }
    // A bare `---` (or a trailing one) or a comment-only document is no document at all.
    if (value === null || value === undefined) return;
    documents.push({ file, baseDir, index, value, locate: (path, prefer = "value") => locateIn(doc, path, prefer, at) });
  });
  return { documents, issues };
}

function cleanYamlMessage(message: string): string {
  const first = message.split("\n")[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?$/, "").trim();
}

function locateIn(doc: Document, path: readonly PropertyKey[], prefer: "key" | "value", at: (offset: number) => IssueLocation): IssueLocation {
  let node: unknown = doc.contents;
  // Best known position so far: the key of the deepest field found, or the document start.
  let best: Node | null = (doc.contents as Node | null) ?? null;
  for (let i = 0; i < path.length; i += 1) {
    const segment = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((item): item is Pair<unknown, unknown> => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      const keyNode = pair.key as Node;
      const valueNode = (pair.value as Node | null) ?? null;
      best = last && prefer === "value" && valueNode ? valueNode : keyNode;
      node = valueNode;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as Node | undefined;
      if (!item) break;
      best = item;
      node = item;
    } else {
      break;
    }
  }
  const offset = best?.range?.[0] ?? doc.range?.[0] ?? 0;
  return at(offset);
}
