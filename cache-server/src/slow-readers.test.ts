// Bounded memory under slow readers (issue 12, item 5): clients that stop reading a large blob,
// some attached to its fill while it is still coming from upstream and some after it was
// committed, must neither make the cache process hold their bytes nor hold up the fill. The
// cache runs as its own process, so its RSS is its own (the test's 48 MiB blob and clients are
// not in it).
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleChildCache, startChildCache, type ChildCache } from "./testing/child-cache.js";
import { testConfigText } from "./testing/config-text.js";
import { digestOf, FakeUpstream } from "./testing/fake-upstream.js";

const MiB = 1024 * 1024;
const BLOB = 48 * MiB;
/** Slow readers per phase: during the fill, and from the committed file. */
const READERS = 12;
/**
 * Growth of the cache's RSS allowed over its idle figure while 24 readers stall: the two-chunk
 * buffers of every download (12 MiB), the fill's own dead socket buffers before V8 collects them
 * (up to ~70 MiB measured), heap growth; 74 MiB measured in all. Buffering each stalled reader's data would need
 * 24 x (48 MiB - what the kernel's socket buffers hold), about 1 GiB.
 */
const RSS_GROWTH_BOUND_MIB = 128;

/** RSS growth over idle allowed while one 128 MiB fill runs at loopback speed (see the test). */
const FILL_GROWTH_BOUND_MIB = 48;

interface SlowReader {
  readonly status: Promise<number>;
  /** Resolves with the body's sha256 once the reader is resumed and the response ends. */
  readonly digest: Promise<string>;
  /** Resolves once the first bytes arrived and the reader stopped reading. */
  readonly stalled: Promise<void>;
  resume(): void;
}

/** A client that reads the first bytes, then stops reading until resume(). */
function slowReader(url: string): SlowReader {
  let res: IncomingMessage | undefined;
  let stalled!: () => void;
  let resolveStatus!: (s: number) => void;
  const stalledP = new Promise<void>((r) => (stalled = r));
  const status = new Promise<number>((r) => (resolveStatus = r));
  const digest = new Promise<string>((resolve, reject) => {
    request(url, { agent: false }, (r) => {
      res = r;
      resolveStatus(r.statusCode ?? 0);
      const hash = createHash("sha256");
      let first = true;
      r.on("data", (c: Buffer) => {
        hash.update(c);
        if (first) {
          first = false;
          r.pause();
          stalled();
        }
      });
      r.on("end", () => resolve(`sha256:${hash.digest("hex")}`));
      r.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
  return { status, digest, stalled: stalledP, resume: () => res?.resume() };
}

async function rssMiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? "0") / 1024;
}

describe("slow readers of a large blob", () => {
  let dir: string;
  let cache: ChildCache | undefined;
  const up = new FakeUpstream();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "slow-readers-"));
    await up.start();
  });
  afterAll(async () => {
    await cache?.stop();
    await up.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("hold at most a few chunks each in the cache, during the fill and after it, and the fill is not held up", { timeout: 120_000 }, async () => {
    const bytes = randomBytes(BLOB);
    const digest = up.addBlob("team/big", bytes);
    let release!: () => void;
    up.faults.set(digest, { kind: "pause", afterBytes: 4 * MiB, release: new Promise((r) => (release = r)) });
    const configFile = join(dir, "config.yml");
    await writeFile(configFile, testConfigText({ root: join(dir, "root"), upstreams: [up.url] }));
    cache = await startChildCache(await bundleChildCache(dir), configFile);
    const pid = cache.pid;
    const url = `${cache.url}/v2/team/big/blobs/${digest}`;
    // Idle figure after one small request, so lazily loaded code is in it.
    await new Promise<void>((resolve, reject) =>
      request(`${cache!.url}/v2/`, { agent: false }, (r) => r.resume().on("end", resolve))
        .on("error", reject)
        .end(),
    );
    const idle = await rssMiB(pid);
    let peak = idle;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await rssMiB(pid).catch(() => 0));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      // Phase 1: readers attach while the upstream has sent only the first 4 MiB, and stall.
      const during = Array.from({ length: READERS }, () => slowReader(url));
      await Promise.all(during.map((r) => r.stalled));
      release();
      // The fill completes for a reader that does read, while the others stay stalled.
      const fast = slowReader(url);
      await fast.stalled;
      fast.resume();
      expect(await fast.digest).toBe(digest);
      // Phase 2: readers of the committed blob, stalled too.
      const after = Array.from({ length: READERS }, () => slowReader(url));
      await Promise.all(after.map((r) => r.stalled));
      // Give the cache time to run into every stall.
      await new Promise((r) => setTimeout(r, 1500));
      const stalledPeak = peak;
      // Every stalled reader still gets the whole, correct blob.
      for (const r of [...during, ...after]) r.resume();
      const digests = await Promise.all([...during, ...after].map((r) => r.digest));
      for (const d of digests) expect(d).toBe(digestOf(bytes));
      for (const r of [...during, ...after]) expect(await r.status).toBe(200);
      expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
      expect(stalledPeak - idle, `idle ${idle.toFixed(1)} MiB, peak ${stalledPeak.toFixed(1)} MiB while ${2 * READERS} readers stalled`).toBeLessThanOrEqual(
        RSS_GROWTH_BOUND_MIB,
      );
    } finally {
      sampling = false;
      await sampler;
    }
  });

  it("a fill at link speed frees the upstream socket's read buffers as it goes", { timeout: 120_000 }, async () => {
    // Before gc-pacing.ts the child's RSS grew by 64-66 MiB over idle during this fill (dead
    // 64 KiB socket buffers that V8 collected late); with a young GC every 2 MiB, 26-27 MiB.
    const bytes = randomBytes(128 * MiB);
    const digest = up.addBlob("team/fast", bytes);
    const configFile = join(dir, "config-fast.yml");
    await writeFile(configFile, testConfigText({ root: join(dir, "root-fast"), upstreams: [up.url] }));
    const child = await startChildCache(await bundleChildCache(join(dir, "fast")), configFile);
    try {
      await new Promise<void>((resolve, reject) =>
        request(`${child.url}/v2/`, { agent: false }, (r) => r.resume().on("end", resolve))
          .on("error", reject)
          .end(),
      );
      const idle = await rssMiB(child.pid);
      let peak = idle;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, await rssMiB(child.pid).catch(() => 0));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const reader = slowReader(`${child.url}/v2/team/fast/blobs/${digest}`);
      await reader.stalled;
      reader.resume();
      const got = await reader.digest;
      sampling = false;
      await sampler;
      expect(got).toBe(digest);
      expect(peak - idle, `idle ${idle.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB during a 128 MiB fill`).toBeLessThanOrEqual(FILL_GROWTH_BOUND_MIB);
    } finally {
      await child.stop();
    }
  });
});
