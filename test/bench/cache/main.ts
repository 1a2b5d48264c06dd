// `npm run bench:cache`: the same warm content served by our cache, by docker-registry in proxy
// mode and by nginx proxy_cache, all in front of one docker-registry upstream on loopback, all
// driven by wrk. Prints req/s and MB/s per case, ratios, the cold-pull coalescing figure and peak
// RSS while 16 clients pull a 256 MiB blob. Bounded: every phase has a fixed duration or count.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, readAccessLog, startRegistry, type RegistryHandle } from "../../harness/index.js";
import { buildImage, getHashed, pushBlob, pushImage, putManifest, startCacheProcess, tarOf, type CacheProcess } from "../../support/index.js";
import { measureAuthzCost, type AuthzCost } from "./authz-cost.js";
import { measureDtrPath, type DtrPathResult } from "./dtr-path.js";
import { startNginx, type NginxPeer } from "./nginx.js";
import { wrk } from "./wrk.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CONNECTIONS = 16;
const MiB = 1024 * 1024;
const ACCEPT = "application/vnd.oci.image.manifest.v1+json";
// For profiling one case: BENCH_CASES=1mib (substring of case names, comma-separated) and
// BENCH_ONLY_TABLE=1 (skip freshness, coalescing and RSS phases). CACHE_LOG_LEVEL sets ours;
// CACHE_NODE_ARGS adds node flags to our process (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
const CASE_FILTER = (process.env.BENCH_CASES ?? "").split(",").map((s) => s.trim().toLowerCase().replace(/\s+/g, "")).filter(Boolean);
const ONLY_TABLE = process.env.BENCH_ONLY_TABLE === "1";

interface Peer {
  readonly name: string;
  readonly url: string;
  pids(): Promise<number[]>;
}

async function rssKiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? "0");
}

/** GET and throw the body away (counting only), so the client side costs little. */
function drain(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      let n = 0;
      res.on("data", (c: Buffer) => (n += c.length));
      res.on("end", () => resolve(n));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

async function upstreamGets(reg: RegistryHandle, digest: string): Promise<number> {
  return (await readAccessLog(reg.logFile)).filter((e) => e.method === "GET" && e.path.includes(digest)).length;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

type Row = Map<string, { rps: number; mbps: number; errors: number }>;

function table(cases: readonly { name: string }[], results: Map<string, Row>): string[] {
  const lines: string[] = [];
  lines.push(`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s per cell; upstream: docker-registry on loopback; nginx: 1 worker, sendfile, proxy_cache`);
  lines.push("");
  lines.push("| case | ours req/s | ours MB/s | proxy-registry req/s | proxy-registry MB/s | nginx req/s | nginx MB/s | ours/proxy | ours/nginx |");
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const c of cases) {
    const row = results.get(c.name);
    const o = row?.get("ours");
    const pr = row?.get("proxy-registry");
    const n = row?.get("nginx");
    if (!o || !pr || !n) continue;
    const errs = [o, pr, n].some((x) => x.errors > 0) ? ` (errors: ${o.errors}/${pr.errors}/${n.errors})` : "";
    lines.push(`| ${c.name}${errs} | ${fmt(o.rps)} | ${fmt(o.mbps)} | ${fmt(pr.rps)} | ${fmt(pr.mbps)} | ${fmt(n.rps)} | ${fmt(n.mbps)} | ${fmt(o.rps / pr.rps, 2)}× | ${fmt(o.rps / n.rps, 2)}× |`);
  }
  return lines;
}

async function main(): Promise<void> {
  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), "bench-cache-"));
  const stops: (() => Promise<unknown>)[] = [];
  const say = (m: string): void => void process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${m}\n`);
  try {
    const upstream = await startRegistry({ workDir: join(work, "upstream") });
    stops.push(() => upstream.stop());
    const repo = "bench/app";
    const small = await pushBlob(upstream.url, repo, randomBytes(MiB));
    const medium = await pushBlob(upstream.url, repo, randomBytes(64 * MiB));
    const huge = await pushBlob(upstream.url, repo, randomBytes(256 * MiB));
    const image = buildImage([tarOf([{ name: "f", content: randomBytes(4096) }])]);
    await pushImage(upstream.url, repo, "v1", image);
    say("upstream docker-registry filled");

    const cache: CacheProcess = await startCacheProcess({ workDir: join(work, "ours"), upstreams: [upstream.url], port: await freePort("127.0.0.1"), logLevel: process.env.CACHE_LOG_LEVEL ?? "info", nodeArgs: (process.env.CACHE_NODE_ARGS ?? "").split(" ").filter(Boolean) });
    stops.push(() => cache.stop());
    const proxy = await startRegistry({ workDir: join(work, "proxy"), proxyRemoteUrl: upstream.url });
    stops.push(() => proxy.stop());
    const nginx: NginxPeer = await startNginx(join(work, "nginx"), await freePort("127.0.0.1"), upstream.url);
    stops.push(() => nginx.stop());
    const peers: Peer[] = [
      { name: "ours", url: cache.url, pids: async () => (cache.child.pid ? [cache.child.pid] : []) },
      { name: "proxy-registry", url: proxy.url, pids: async () => [proxy.pid] },
      { name: "nginx", url: nginx.url, pids: () => nginx.workerPids() },
    ];

    // Warm every peer with every case (and wait until each fill is on disk).
    const manifestDigest = (await (await fetch(`${upstream.url}/v2/${repo}/manifests/v1`, { method: "HEAD", headers: { accept: ACCEPT } })).headers.get("docker-content-digest")) ?? "";
    const cases: { name: string; path: string; headers: Record<string, string> }[] = [
      { name: "1 MiB blob", path: `/v2/${repo}/blobs/${small}`, headers: {} },
      { name: "64 MiB blob", path: `/v2/${repo}/blobs/${medium}`, headers: {} },
      { name: "manifest by tag", path: `/v2/${repo}/manifests/v1`, headers: { Accept: ACCEPT } },
      { name: "manifest by digest", path: `/v2/${repo}/manifests/${manifestDigest}`, headers: { Accept: ACCEPT } },
    ];
    for (const p of peers) {
      for (const c of cases) {
        for (let i = 0; i < 2; i++) {
          const r = await fetch(`${p.url}${c.path}`, { headers: c.headers });
          await r.arrayBuffer();
          if (r.status !== 200) throw new Error(`${p.name} ${c.name}: warm-up answered ${r.status}`);
        }
      }
    }
    say("peers warm");

    const results = new Map<string, Row>();
    const measured = cases.filter((c) => CASE_FILTER.length === 0 || CASE_FILTER.some((f) => c.name.toLowerCase().replace(/\s+/g, "").includes(f)));
    for (const c of measured) {
      const row = new Map<string, { rps: number; mbps: number; errors: number }>();
      for (const p of peers) {
        const r = await wrk(`${p.url}${c.path}`, { connections: CONNECTIONS, seconds: SECONDS, headers: c.headers });
        row.set(p.name, { rps: r.rps, mbps: r.bytesPerSec / 1e6, errors: r.errors });
        say(`${c.name} via ${p.name}: ${fmt(r.rps)} req/s`);
      }
      results.set(c.name, row);
    }

    if (ONLY_TABLE) {
      process.stdout.write(`${table(measured, results).join("\n")}\n`);
      return;
    }
    // Freshness of tags: per peer, read the tag (so it is cached), retag upstream, read again
    // at once: a fresh peer returns the new manifest.
    const fresh = new Map<string, boolean>();
    for (const p of peers) {
      await (await fetch(`${p.url}/v2/${repo}/manifests/v1`, { headers: { accept: ACCEPT } })).arrayBuffer();
      const next = buildImage([tarOf([{ name: "g", content: randomBytes(4096) }])]);
      await pushImage(upstream.url, repo, `next-${p.name}`, next);
      await putManifest(upstream.url, repo, "v1", next.manifest);
      const r = await fetch(`${p.url}/v2/${repo}/manifests/v1`, { headers: { accept: ACCEPT } });
      fresh.set(p.name, Buffer.from(await r.arrayBuffer()).equals(next.manifest));
    }

    // Cold-pull coalescing: a fresh 64 MiB blob per peer, 50 concurrent requests.
    const coalesce = new Map<string, { upstreamGets: number; ok: number }>();
    for (const p of peers) {
      const digest = await pushBlob(upstream.url, repo, randomBytes(64 * MiB));
      const rs = await Promise.allSettled(Array.from({ length: 50 }, () => getHashed(`${p.url}/v2/${repo}/blobs/${digest}`)));
      const ok = rs.filter((r) => r.status === "fulfilled" && r.value.digest === digest).length;
      coalesce.set(p.name, { upstreamGets: await upstreamGets(upstream, digest), ok });
      say(`coalescing via ${p.name}: ${ok}/50 ok`);
    }

    // Peak RSS while 16 clients pull the warm 256 MiB blob.
    const rss = new Map<string, number>();
    for (const p of peers) {
      await drain(`${p.url}/v2/${repo}/blobs/${huge}`);
      const pids = await p.pids();
      let peak = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          let sum = 0;
          for (const pid of pids) sum += await rssKiB(pid);
          peak = Math.max(peak, sum);
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      const t0 = Date.now();
      const sizes = await Promise.all(Array.from({ length: 16 }, () => drain(`${p.url}/v2/${repo}/blobs/${huge}`)));
      sampling = false;
      await sampler;
      if (sizes.some((s) => s !== 256 * MiB)) throw new Error(`${p.name}: short 256 MiB response`);
      rss.set(p.name, peak / 1024);
      say(`16 x 256 MiB via ${p.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s, peak RSS ${fmt(peak / 1024, 1)} MiB`);
    }

    // The price of per-object authorization, on our cache only (the peers do not authorize).
    const authz: AuthzCost = await measureAuthzCost(cache.url, upstream, `/v2/${repo}/blobs/${small}`, small, SECONDS);
    say(`authorization cost: ${authz.upstreamHeads} upstream HEADs for ${authz.wrkRequests} requests; new-credential hit p50 ${fmt(authz.newCredentialP50Ms, 2)} ms`);

    const dtrPath: DtrPathResult = await measureDtrPath(work, upstream.url, repo, small);
    say(`DTR-redirected requests, a new signed URL each: ${fmt(dtrPath.newUrlRps)} req/s`);

    // --- report ---
    const lines: string[] = table(measured, results);
    lines.push("");
    lines.push("| | ours | proxy-registry | nginx |");
    lines.push("|---|---:|---:|---:|");
    lines.push(`| tag change seen by the request right after it | ${fresh.get("ours") ? "yes" : "no"} | ${fresh.get("proxy-registry") ? "yes" : "no"} | ${fresh.get("nginx") ? "yes" : "no"} |`);
    lines.push(`| upstream GETs for 50 concurrent cold 64 MiB requests | ${coalesce.get("ours")?.upstreamGets} (${coalesce.get("ours")?.ok}/50 ok) | ${coalesce.get("proxy-registry")?.upstreamGets} (${coalesce.get("proxy-registry")?.ok}/50 ok) | ${coalesce.get("nginx")?.upstreamGets} (${coalesce.get("nginx")?.ok}/50 ok) |`);
    lines.push(`| peak RSS, 16 concurrent 256 MiB pulls (MiB) | ${fmt(rss.get("ours") ?? 0, 1)} | ${fmt(rss.get("proxy-registry") ?? 0, 1)} | ${fmt(rss.get("nginx") ?? 0, 1)} |`);
    lines.push("");
    lines.push("Per-object authorization (ours; 1 MiB warm blob; the upstream is asked once per (credential, repository, digest) per authttl):");
    lines.push("");
    lines.push("| | value |");
    lines.push("|---|---:|");
    lines.push(`| upstream authorization calls per request, one credential under wrk | ${authz.upstreamHeads} / ${fmt(authz.wrkRequests)} = ${fmt(authz.upstreamHeads / Math.max(1, authz.wrkRequests), 5)} |`);
    lines.push(`| hit latency, remembered decision (p50 / p95 ms) | ${fmt(authz.rememberedP50Ms, 2)} / ${fmt(authz.rememberedP95Ms, 2)} |`);
    lines.push(`| hit latency, new credential each request (p50 / p95 ms) | ${fmt(authz.newCredentialP50Ms, 2)} / ${fmt(authz.newCredentialP95Ms, 2)} |`);
    lines.push(`| upstream authorization calls per request, new credential each | ${fmt(authz.newCredentialHeadsPerRequest, 2)} |`);
    lines.push("");
    lines.push(`Blob requests redirected by the DTR emulator (1 MiB, warm cache, ${dtrPath.clients} clients, each request its own signed URL; DTR round trip emulated at ${dtrPath.dtrRoundTripMs} ms):`);
    lines.push("");
    lines.push("| | value |");
    lines.push("|---|---:|");
    lines.push(`| req/s, a new signed URL per request | ${fmt(dtrPath.newUrlRps)} |`);
    lines.push(`| latency p50 / p95, new signed URL (ms) | ${fmt(dtrPath.newUrlP50Ms, 1)} / ${fmt(dtrPath.newUrlP95Ms, 1)} |`);
    lines.push(`| latency p50 / p95, plain hit, remembered URL (ms) | ${fmt(dtrPath.plainP50Ms, 1)} / ${fmt(dtrPath.plainP95Ms, 1)} |`);
    lines.push(`| added latency over a plain hit (p50, ms) | ${fmt(dtrPath.newUrlP50Ms - dtrPath.plainP50Ms, 1)} |`);
    lines.push(`| DTR calls per request (authorization) | ${fmt(dtrPath.dtrCallsPerRequest, 2)} |`);
    lines.push("");
    lines.push(`total bench time ${((Date.now() - started) / 1000).toFixed(0)} s`);
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    while (stops.length) await stops.pop()?.().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:cache failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
