// The executable blocks of a Markdown guide. A block is marked for the docs test by an HTML
// comment on the line before its fence, which a reader of the rendered page never sees:
//
//   <!-- docs-test: step-name (optional note for the reader of the source) -->
//   ```sh
//   commands
//   ```
//
// A `sh` block that is not to run says so, with the reason: `<!-- docs-test: skip (why) -->`.
// An unmarked `sh` block, a marker not followed by a `sh` fence, a repeated step name or a step the
// test expects but the guide lacks is an error, so a command block cannot silently drop out of
// the test when the guide is edited. Other fences (```text, ```yaml) are illustration.

export interface DocBlock {
  /** The marker's step name. */
  readonly step: string;
  /** 1-based line of the fence's first command line. */
  readonly line: number;
  /** The block's text exactly as written (without the fences), newline-terminated. */
  readonly script: string;
}

export class DocBlockError extends Error {
  readonly code = "DOC_BLOCKS" as const;
  constructor(message: string) {
    super(message);
    this.name = "DocBlockError";
  }
}

const MARKER = /^<!--\s*docs-test:\s*([a-z0-9][a-z0-9-]*)(?:\s+\(([^)]*)\))?\s*-->\s*$/;
/** The marker of a block kept out of the run on purpose; its note must say why. */
const SKIP = "skip";
const LOOSE_MARKER = /<!--\s*docs-test/;

/** Every marked block of `markdown` that is to run, in document order. */
export function markedBlocks(markdown: string, source = "markdown"): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i] ?? "";
    if (text.trim() === "```sh")
      throw new DocBlockError(`${source}:${i + 1}: a sh block without a docs-test marker (name its step, or <!-- docs-test: skip (why) -->)`);
    if (!LOOSE_MARKER.test(text)) continue;
    const marker = MARKER.exec(text.trim());
    if (!marker?.[1]) throw new DocBlockError(`${source}:${i + 1}: malformed docs-test marker (want <!-- docs-test: step-name -->): ${text.trim()}`);
    const step = marker[1];
    const skipped = step === SKIP;
    if (skipped && !marker[2]?.trim()) throw new DocBlockError(`${source}:${i + 1}: a skipped block must say why: <!-- docs-test: skip (why) -->`);
    if (!skipped && seen.has(step)) throw new DocBlockError(`${source}:${i + 1}: step "${step}" is marked twice`);
    seen.add(step);
    let fence = i + 1;
    while (fence < lines.length && (lines[fence] ?? "").trim() === "") fence++;
    if ((lines[fence] ?? "").trim() !== "```sh") throw new DocBlockError(`${source}:${i + 1}: step "${step}" is not followed by a \`\`\`sh block`);
    const body: string[] = [];
    let end = fence + 1;
    for (; end < lines.length && (lines[end] ?? "").trim() !== "```"; end++) body.push(lines[end] ?? "");
    if (end >= lines.length) throw new DocBlockError(`${source}:${fence + 1}: step "${step}": the block is never closed`);
    if (!skipped) blocks.push({ step, line: fence + 2, script: `${body.join("\n")}\n` });
    i = end;
  }
  return blocks;
}

/**
 * The blocks for `steps`, in that order. Throws naming every expected step the guide lacks and
 * every marked step the caller does not know, and when the guide's order differs from `steps`
 * (the guide is read top to bottom, so the test runs it in that order).
 */
export function requireSteps(blocks: readonly DocBlock[], steps: readonly string[], source = "markdown"): DocBlock[] {
  const byStep = new Map(blocks.map((b) => [b.step, b]));
  const missing = steps.filter((s) => !byStep.has(s));
  const unknown = blocks.map((b) => b.step).filter((s) => !steps.includes(s));
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`missing marked block(s): ${missing.join(", ")}`);
  if (unknown.length > 0) problems.push(`marked block(s) the test does not run: ${unknown.join(", ")}`);
  if (problems.length === 0) {
    const order = blocks.map((b) => b.step);
    if (order.join(",") !== steps.join(",")) problems.push(`steps out of order: the guide has ${order.join(", ")}`);
  }
  if (problems.length > 0) throw new DocBlockError(`${source}: ${problems.join("; ")}`);
  return steps.map((s) => byStep.get(s) as DocBlock);
}

/** Names a block sets for later blocks: `export NAME=...` and `read [-flags] NAME`. */
export function variablesSet(script: string): string[] {
  const names: string[] = [];
  for (const line of script.split("\n")) {
    const exported = /^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=/.exec(line);
    const read = /^\s*read\s+(?:-[a-z]+\s+)*([A-Za-z_][A-Za-z0-9_]*)\b/.exec(line);
    const name = exported?.[1] ?? read?.[1];
    if (name) names.push(name);
  }
  return names;
}
