// The cluster (issue 12, item 2): the real entry file with `workers: 2` — one port, two worker
// processes on one store, a crashed worker replaced, /metrics aggregated over the workers, one
// upstream fetch for 50 concurrent cold requests, SIGTERM stops everything cleanly.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf } from "./names.js";
import { FakeUpstream } from "./testing/fake-upstream.js";
import { bundleChildCache } from "./testing/child-cache.js";
import { httpGet } from "./testing/http-get.js";

let work: string;
let up: FakeUpstream;
let primary: ChildProcess;
let exited: Promise<number | null>;
let registry: string;
let debug: string;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function health(): Promise<{ ok: boolean; workers: number[] } | undefined> {
  try {
    const r = await fetch(`${debug}/healthz`, { signal: AbortSignal.timeout(1000) });
    return (await r.json()) as { ok: boolean; workers: number[] };
  } catch {
    return undefined;
  }
}

async function waitFor<T>(what: string, get: () => Promise<T | undefined>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined && ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "workers-"));
  up = new FakeUpstream();
  await up.start();
  const bundle = await bundleChildCache(work, "main");
  const [port, debugPort] = [await freePort(), await freePort()];
  registry = `http://127.0.0.1:${port}`;
  debug = `http://127.0.0.1:${debugPort}`;
  const configFile = join(work, "config.yml");
  await writeFile(
    configFile,
    `version: 0.1
log:
  level: warn
storage:
  delete:
    enabled: true
  filesystem:
    rootdirectory: ${join(work, "root")}
http:
  addr: 127.0.0.1:${port}
  debug:
    addr: 127.0.0.1:${debugPort}
middleware:
  registry:
    - name: downstream
      options:
        blobttl: 24h
        workers: 2
        upstreams:
          - ${up.url}
`,
  );
  primary = spawn(process.execPath, [bundle, configFile], { stdio: ["ignore", "ignore", "inherit"] });
  exited = new Promise((resolve) => primary.once("exit", (code) => resolve(code)));
  await waitFor("2 workers", health, (h) => h.workers.length === 2);
}, 60_000);

afterAll(async () => {
  if (primary.exitCode === null) primary.kill("SIGKILL");
  await up.stop();
  await rm(work, { recursive: true, force: true });
});

describe("a cache with workers: 2", () => {
  it("answers on one port from 2 worker processes, and replaces a worker that is killed", async () => {
    const blob = randomBytes(64 * 1024);
    const digest = up.addBlob("library/app", blob);
    const r = await httpGet(`${registry}/v2/library/app/blobs/${digest}`);
    expect(r.status).toBe(200);
    expect(digestOf(r.body)).toBe(digest);
    const before = (await health())?.workers ?? [];
    expect(before).toHaveLength(2);
    expect(before).not.toContain(primary.pid);
    const victim = before[0] ?? 0;
    process.kill(victim, "SIGKILL");
    const after = await waitFor("a replacement worker", health, (h) => h.workers.length === 2 && !h.workers.includes(victim));
    expect(after.workers).toContain(before[1]);
    const again = await httpGet(`${registry}/v2/library/app/blobs/${digest}`);
    expect(digestOf(again.body)).toBe(digest);
  }, 60_000);

  it("fetches a cold blob ONCE for 50 concurrent requests spread over the workers; /metrics sums the workers", async () => {
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    up.faults.set(digest, { kind: "slow", bytesPerTick: 256 * 1024, tickMs: 10 });
    const results = await Promise.all(Array.from({ length: 50 }, () => httpGet(`${registry}/v2/library/app/blobs/${digest}`)));
    for (const res of results) {
      expect(res.status).toBe(200);
      expect(digestOf(res.body)).toBe(digest);
    }
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
    const text = await (await fetch(`${debug}/metrics`)).text();
    const served = text
      .split("\n")
      .filter((l) => l.startsWith("cache_requests_total{") && l.includes('kind="blob"'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
    // Both workers' counters (the killed worker's are gone with it): at least these 50.
    expect(served).toBeGreaterThanOrEqual(50);
  }, 60_000);

  it("SIGTERM stops every worker and the primary, and the last worker marks the store clean", async () => {
    const workers = (await health())?.workers ?? [];
    primary.kill("SIGTERM");
    expect(await exited).toBe(0);
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
    expect((await stat(join(work, "root", "clean-shutdown"))).isFile()).toBe(true);
  }, 60_000);
});
