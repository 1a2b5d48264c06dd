// What the cache benchmarks read from /proc and how they summarise samples: one place for the
// process memory and CPU readers and the order statistics every bench file uses.
import { readFile } from "node:fs/promises";

/**
 * VmRSS and its parts from /proc (KiB): RssFile is the executable's and libraries' pages (shared
 * between processes of one binary, reclaimable), RssAnon the process's private memory. Zeros
 * once the process is gone.
 */
export async function processMemoryKiB(pid: number | undefined): Promise<{ rss: number; anon: number; file: number }> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const field = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(text)?.[1] ?? "0");
  return { rss: field("VmRSS"), anon: field("RssAnon"), file: field("RssFile") };
}

/** CPU time (user + system) a process has used, in ms (from /proc; clock ticks of 10 ms). */
export async function cpuMs(pid: number | undefined): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10;
}

/** The p-th percentile (0-100) by the nearest-rank rule; 0 for no values. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** The median (the mean of the middle two for an even count); 0 for no values. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}
