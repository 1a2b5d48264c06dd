// A/B of two builds of the cache on the hot paths, for judging one change at a time:
// `node test/dist/bench/cache/ab.js <old main.js>` runs an old build (a copy of
// cache-server/dist taken before the change) and this tree's cache-server/dist side by side
// against one docker-registry upstream, and drives both with wrk in alternation (old, new, old,
// new, ...) so that the machine's load drifts over both equally. Prints every run, the medians,
// and each process's RSS after warming. AB_ROUNDS (default 5), AB_SECONDS (default 4),
// AB_WORKERS (default 1), AB_CASES (substrings, as BENCH_CASES). Besides medians it prints the
// best run of each side (highest req/s, lowest CPU per request): on a shared machine a
// neighbour's burst only ever makes a run worse, so the best runs compare the builds themselves.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startRegistry } from "../../harness/index.js";
import { withRuntimeEnv } from "@dtrcache/cache-server";
import { buildImage, pushBlob, pushImage, renderCacheConfig, tarOf } from "../../support/index.js";
import { cpuMs, median, processMemoryKiB } from "./measure.js";
import { wrk } from "./wrk.js";

const ROUNDS = Number(process.env.AB_ROUNDS ?? 5);
const SECONDS = Number(process.env.AB_SECONDS ?? 4);
const WORKERS = Number(process.env.AB_WORKERS ?? 1);
const FILTER = (process.env.AB_CASES ?? "")
  .split(",")
  .map((s) => s.trim().toLowerCase())
  .filter(Boolean);
const ACCEPT = "application/vnd.oci.image.manifest.v1+json";

/**
 * Both builds run with the image's environment (runtime-env.ts). AB_OLD_ENV / AB_NEW_ENV
 * ("K=V K=V", "K=" unsets) change one side, to A/B a runtime setting on one build.
 */
function envFor(label: string): NodeJS.ProcessEnv {
  const env = withRuntimeEnv(process.env);
  for (const kv of (process.env[label === "old" ? "AB_OLD_ENV" : "AB_NEW_ENV"] ?? "").split(" ").filter(Boolean)) {
    const eq = kv.indexOf("=");
    const key = kv.slice(0, eq);
    const value = kv.slice(eq + 1);
    if (value === "") delete env[key];
    else env[key] = value;
  }
  return env;
}

interface Build {
  readonly label: string;
  readonly url: string;
  readonly child: ChildProcess;
}

async function startBuild(label: string, main: string, work: string, upstream: string): Promise<Build> {
  const port = await freePort("127.0.0.1");
  const debugPort = await freePort("127.0.0.1");
  const dir = join(work, label);
  await mkdir(dir, { recursive: true });
  const config = join(dir, "config.yml");
  await writeFile(config, renderCacheConfig({ workDir: dir, upstreams: [upstream], port, debugPort, workers: WORKERS }, join(dir, "root")));
  const fd = openSync(join(dir, "cache.log"), "a");
  const child = spawn(process.execPath, [main, config], { stdio: ["ignore", fd, fd], env: envFor(label) });
  closeSync(fd);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${debugPort}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`${label} did not start: ${(await readFile(join(dir, "cache.log"), "utf8")).slice(-1000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { label, url: `http://127.0.0.1:${port}`, child };
}

async function rssMiB(pid: number | undefined): Promise<number> {
  return (await processMemoryKiB(pid)).rss / 1024;
}

async function main(): Promise<void> {
  const oldMain = process.argv[2];
  if (!oldMain) throw new Error("usage: ab.js <old cache-server/dist/main.js>");
  const newMain = fileURLToPath(new URL("../../../../cache-server/dist/main.js", import.meta.url));
  const work = await mkdtemp(join(tmpdir(), "bench-ab-"));
  const builds: Build[] = [];
  const upstream = await startRegistry({ workDir: join(work, "upstream") });
  try {
    const repo = "bench/app";
    const small = await pushBlob(upstream.url, repo, randomBytes(1024 * 1024));
    await pushImage(upstream.url, repo, "v1", buildImage([tarOf([{ name: "f", content: randomBytes(4096) }])]));
    const head = await fetch(`${upstream.url}/v2/${repo}/manifests/v1`, { method: "HEAD", headers: { accept: ACCEPT } });
    const digest = head.headers.get("docker-content-digest") ?? "";
    builds.push(await startBuild("old", resolve(oldMain), work, upstream.url));
    builds.push(await startBuild("new", newMain, work, upstream.url));
    const all: { name: string; path: string; headers: Record<string, string> }[] = [
      { name: "manifest by digest", path: `/v2/${repo}/manifests/${digest}`, headers: { Accept: ACCEPT } },
      { name: "1 MiB blob", path: `/v2/${repo}/blobs/${small}`, headers: {} },
    ];
    const cases = all.filter((c) => FILTER.length === 0 || FILTER.some((f) => c.name.replace(/\s+/g, "").toLowerCase().includes(f)));
    for (const b of builds) {
      for (const c of cases) {
        const r = await fetch(b.url + c.path, { headers: c.headers });
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`${b.label} ${c.name}: ${r.status}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    process.stdout.write(`workers ${WORKERS}; load average at start ${loadavg()[0]?.toFixed(2)}\n`);
    for (const b of builds) process.stdout.write(`${b.label} RSS after warming: ${(await rssMiB(b.child.pid)).toFixed(1)} MiB\n`);
    for (const c of cases) {
      const runs: Record<string, number[]> = { old: [], new: [] };
      // CPU per request is steadier than req/s on a shared machine: time stolen by neighbours
      // lowers the rate but is not charged to the process.
      const cpu: Record<string, number[]> = { old: [], new: [] };
      for (let i = 0; i < ROUNDS; i++) {
        // Alternate which build goes first, so neither always follows the other.
        const order = i % 2 === 0 ? builds : [...builds].reverse();
        for (const b of order) {
          const before = await cpuMs(b.child.pid);
          const r = await wrk(b.url + c.path, { connections: 16, seconds: SECONDS, headers: c.headers });
          if (r.errors > 0) throw new Error(`${b.label} ${c.name}: ${r.errors} errors`);
          runs[b.label]?.push(Math.round(r.rps));
          cpu[b.label]?.push(Math.round((((await cpuMs(b.child.pid)) - before) * 10_000) / Math.max(1, r.requests)) / 10);
        }
      }
      const o = runs.old ?? [];
      const n = runs.new ?? [];
      process.stdout.write(
        `${c.name}: old ${o.join(", ")} (median ${median(o)}) | new ${n.join(", ")} (median ${median(n)}) | new/old ${(median(n) / median(o)).toFixed(3)}; best old ${Math.max(...o)} new ${Math.max(...n)} (${(Math.max(...n) / Math.max(...o)).toFixed(3)})\n`,
      );
      const co = cpu.old ?? [];
      const cn = cpu.new ?? [];
      process.stdout.write(
        `${c.name} CPU µs per request (workers 1 only): old ${co.join(", ")} (median ${median(co)}) | new ${cn.join(", ")} (median ${median(cn)}) | new/old ${(median(cn) / median(co)).toFixed(3)}; best old ${Math.min(...co)} new ${Math.min(...cn)} (${(Math.min(...cn) / Math.min(...co)).toFixed(3)})\n`,
      );
    }
    process.stdout.write(`load average at end ${loadavg()[0]?.toFixed(2)}\n`);
    for (const b of builds) process.stdout.write(`${b.label} RSS at end: ${(await rssMiB(b.child.pid)).toFixed(1)} MiB\n`);
  } finally {
    // Wait for the processes to exit: one still closing writes into its root while it is removed.
    await Promise.all(
      builds.map((b): Promise<unknown> => (b.child.exitCode !== null ? Promise.resolve() : new Promise((r) => b.child.once("exit", r).kill("SIGTERM")))),
    );
    await upstream.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
