// bench:cache's tables: throughput per peer side by side, the ratios issue 12 sets targets for
// (ours with one worker per core against nginx with its default worker count, and one process
// against one process), and each target next to what was measured.

export interface Cell {
  readonly rps: number;
  readonly mbps: number;
  readonly errors: number;
}

/** Peer names as used in the tables. */
export const OURS_1 = "ours×1";
export const NGINX_1 = "nginx×1";
export const PROXY = "proxy-registry";

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** One row per case, one req/s column per peer, then the process-for-process and machine-for-machine ratios. */
export function throughputTable(
  cases: readonly string[],
  peers: readonly string[],
  results: Map<string, Map<string, Cell>>,
  oursN: string,
  nginxAuto: string,
): string[] {
  const lines: string[] = [];
  lines.push(`| case | ${peers.map((p) => `${p} req/s`).join(" | ")} | ${OURS_1}/${NGINX_1} | ${oursN}/${nginxAuto} | ${OURS_1}/${PROXY} |`);
  lines.push(`|---|${peers.map(() => "---:").join("|")}|---:|---:|---:|`);
  for (const c of cases) {
    const row = results.get(c);
    if (!row) continue;
    const cells = peers.map((p) => row.get(p));
    const errs = cells.some((x) => (x?.errors ?? 0) > 0) ? ` (errors: ${cells.map((x) => x?.errors ?? "-").join("/")})` : "";
    const ratio = (a: string, b: string): string => {
      const x = row.get(a)?.rps;
      const y = row.get(b)?.rps;
      return x !== undefined && y ? `${fmt(x / y, 2)}×` : "-";
    };
    lines.push(
      `| ${c}${errs} | ${cells.map((x) => (x ? fmt(x.rps) : "-")).join(" | ")} | ${ratio(OURS_1, NGINX_1)} | ${ratio(oursN, nginxAuto)} | ${ratio(OURS_1, PROXY)} |`,
    );
  }
  return lines;
}

export interface Target {
  readonly what: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

export function ratioTarget(what: string, results: Map<string, Map<string, Cell>>, c: string, ours: string, peer: string, min: number): Target {
  const a = results.get(c)?.get(ours)?.rps;
  const b = results.get(c)?.get(peer)?.rps;
  if (a === undefined || !b) return { what, target: `≥ ${fmt(min, 1)}×`, measured: "not measured", met: undefined };
  return { what, target: `≥ ${fmt(min, 1)}×`, measured: `${fmt(a / b, 2)}× (${fmt(a)} / ${fmt(b)} req/s)`, met: a / b >= min };
}

export function targetTable(targets: readonly Target[]): string[] {
  const lines = ["| issue 12 target | target | measured | met |", "|---|---:|---:|---|"];
  for (const t of targets) lines.push(`| ${t.what} | ${t.target} | ${t.measured} | ${t.met === undefined ? "-" : t.met ? "yes" : "**no**"} |`);
  return lines;
}
