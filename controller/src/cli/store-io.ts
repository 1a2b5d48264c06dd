// Small pieces the store verbs share: reading -f FILE|DIR into spec texts, a line diff, tables.
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { SpecText } from "@dtrcache/crds";

/** A file, or the *.yaml / *.yml files directly in a directory (by name, hidden ones skipped). */
export async function readSpecTexts(target: string): Promise<SpecText[]> {
  const absolute = path.resolve(target);
  const info = await stat(absolute);
  const files = info.isDirectory()
    ? (await readdir(absolute))
        .filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith("."))
        .sort()
        .map((n) => path.join(absolute, n))
    : [absolute];
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(file, "utf8"), baseDir: path.dirname(file) })));
}

/** A unified-style line diff (longest common subsequence; the documents are small). */
export function lineDiff(before: string, after: string, from: string, to: string): string {
  const a = before === "" ? [] : before.replace(/\n$/, "").split("\n");
  const b = after === "" ? [] : after.replace(/\n$/, "").split("\n");
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      const row = lcs[i] ?? [];
      row[j] = a[i] === b[j] ? (lcs[i + 1]?.[j + 1] ?? 0) + 1 : Math.max(lcs[i + 1]?.[j] ?? 0, row[j + 1] ?? 0);
    }
  }
  const out = [`--- ${from}`, `+++ ${to}`];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(`  ${a[i] ?? ""}`);
      i += 1;
      j += 1;
    } else if (j < b.length && (i >= a.length || (lcs[i]?.[j + 1] ?? 0) >= (lcs[i + 1]?.[j] ?? 0))) {
      out.push(`+ ${b[j] ?? ""}`);
      j += 1;
    } else {
      out.push(`- ${a[i] ?? ""}`);
      i += 1;
    }
  }
  return out.join("\n");
}

export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("   ")
        .trimEnd(),
    )
    .join("\n");
}

/** kubectl-style age: 45s, 12m, 3h, 2d. */
export function age(iso: string, now = Date.now()): string {
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return "-";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
