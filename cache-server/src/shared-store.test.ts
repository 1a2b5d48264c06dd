// Two cache processes on ONE root directory (cluster workers, or replicas on shared storage):
// one upstream fill per digest across both, a crash of the filling process taken over by the
// other, eviction by one while the other streams, and a blob filled by one served by the other.
// Real child processes (bundled from the sources), so claims, descriptors and unlinks behave as
// they do in production.
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { digestOf } from "./names.js";
import { FakeUpstream } from "./testing/fake-upstream.js";
import { bundleChildCache, startChildCache, type ChildCache } from "./testing/child-cache.js";
import { testConfigText } from "./testing/config-text.js";
import { httpGet } from "./testing/http-get.js";

let work: string;
let bundle: string;
const running: ChildCache[] = [];
const upstreams: FakeUpstream[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "shared-store-"));
  bundle = await bundleChildCache(work);
}, 60_000);

afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
  for (const u of upstreams.splice(0)) await u.stop();
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function upstream(): Promise<FakeUpstream> {
  const up = new FakeUpstream();
  await up.start();
  upstreams.push(up);
  return up;
}

/** Starts one cache process on `root`; `optionLines` go under the downstream options. */
async function cacheOn(root: string, up: FakeUpstream, name: string, optionLines = ""): Promise<ChildCache> {
  const configFile = join(work, `${name}-${randomBytes(4).toString("hex")}.yml`);
  await writeFile(configFile, testConfigText({ root, upstreams: [up.url], optionLines }));
  const cache = await startChildCache(bundle, configFile);
  running.push(cache);
  return cache;
}

async function freshRoot(): Promise<string> {
  return mkdtemp(join(work, "root-"));
}

/** Starts a GET and reads it slowly under the test's control. */
function slowGet(url: string): { gotSome: Promise<void>; resume: () => void; done: Promise<{ status: number; body: Buffer; clean: boolean }> } {
  let resume = (): void => undefined;
  let gotSomeResolve = (): void => undefined;
  const gotSome = new Promise<void>((r) => (gotSomeResolve = r));
  const done = new Promise<{ status: number; body: Buffer; clean: boolean }>((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.once("data", (c: Buffer) => {
        parts.push(c);
        res.pause();
        resume = () => {
          res.on("data", (more: Buffer) => parts.push(more));
          res.resume();
        };
        gotSomeResolve();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), clean: true }));
      res.on("aborted", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), clean: false }));
      res.on("error", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), clean: false }));
    });
    req.on("error", reject);
    req.end();
  });
  return { gotSome, resume: () => resume(), done };
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether nothing is at `path` any more (a blob evicted by a sweeper). */
async function isGone(path: string): Promise<boolean> {
  return stat(path).then(
    () => false,
    () => true,
  );
}

describe("two cache processes sharing one root directory", () => {
  it("50 concurrent cold requests spread over both processes cause ONE upstream fetch", async () => {
    const up = await upstream();
    const root = await freshRoot();
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    // Slow enough that both processes are asked while the fill is running.
    up.faults.set(digest, { kind: "slow", bytesPerTick: 256 * 1024, tickMs: 10 });
    const [a, b] = [await cacheOn(root, up, "a"), await cacheOn(root, up, "b")];
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => httpGet(`${(i % 2 ? b : a).url}/v2/library/app/blobs/${digest}`)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(digestOf(r.body)).toBe(digest);
    }
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
    // Nothing left behind: the claim is dropped after the commit, the temp file renamed.
    expect(await readdir(join(root, "claims"))).toEqual([]);
    expect(await readdir(join(root, "tmp"))).toEqual([]);
  }, 60_000);

  it("a blob filled by one process is served by the other without an upstream GET", async () => {
    const up = await upstream();
    const root = await freshRoot();
    const bytes = randomBytes(2 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    const [a, b] = [await cacheOn(root, up, "a"), await cacheOn(root, up, "b")];
    expect(digestOf((await httpGet(`${a.url}/v2/library/app/blobs/${digest}`)).body)).toBe(digest);
    const r = await httpGet(`${b.url}/v2/library/app/blobs/${digest}`);
    expect(r.status).toBe(200);
    expect(r.headers["x-cache"]).toBe("HIT");
    expect(digestOf(r.body)).toBe(digest);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
  }, 60_000);

  it("the filling process SIGKILLed mid-fill: the other takes over its claim and serves correct bytes", async () => {
    const up = await upstream();
    const root = await freshRoot();
    const bytes = randomBytes(6 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    let release = (): void => undefined;
    up.faults.set(digest, { kind: "pause", afterBytes: 2 * 1024 * 1024, release: new Promise<void>((r) => (release = r)) });
    const [a, b] = [await cacheOn(root, up, "a"), await cacheOn(root, up, "b")];
    const viaA = slowGet(`${a.url}/v2/library/app/blobs/${digest}`);
    await viaA.gotSome;
    // B joins A's fill (no second upstream GET while A is alive), and gets A's first bytes.
    const viaB = slowGet(`${b.url}/v2/library/app/blobs/${digest}`);
    await viaB.gotSome;
    viaB.resume();
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
    process.kill(a.pid, "SIGKILL");
    await a.exited;
    up.faults.delete(digest);
    release();
    // A is gone (its pid no longer runs on this host): B takes its claim over, continues A's
    // temp file and commits it.
    const got = await viaB.done;
    expect(got.clean).toBe(true);
    expect(got.status).toBe(200);
    expect(digestOf(got.body)).toBe(digest);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(2);
    const st = await stat(join(root, "blobs", "sha256", digest.slice(7, 9), digest.slice(7)));
    expect(st.size).toBe(bytes.length);
    expect(await readdir(join(root, "claims"))).toEqual([]);
    // The stored copy is served by B as a hit with the right bytes.
    const again = await httpGet(`${b.url}/v2/library/app/blobs/${digest}`);
    expect(again.headers["x-cache"]).toBe("HIT");
    expect(digestOf(again.body)).toBe(digest);
  }, 60_000);

  it("a small blob in one process's memory tier, evicted by the other: same bytes until the resync, then a miss", async () => {
    const up = await upstream();
    const root = await freshRoot();
    const bytes = randomBytes(512 * 1024);
    const digest = up.addBlob("library/app", bytes);
    const b = await cacheOn(root, up, "b", "          sweepinterval: 300ms\n");
    const url = `${b.url}/v2/library/app/blobs/${digest}`;
    expect(digestOf((await httpGet(url)).body)).toBe(digest); // the fill
    const hit = await httpGet(url); // read whole and kept in memory
    expect({ cache: hit.headers["x-cache"], digest: digestOf(hit.body) }).toEqual({ cache: "HIT", digest });
    const blobPath = join(root, "blobs", "sha256", digest.slice(7, 9), digest.slice(7));
    await cacheOn(root, up, "a", "          maxsize: 100KB\n          sweepinterval: 300ms\n");
    await waitFor("A to evict the blob", () => isGone(blobPath), 10_000);
    // B notices at its next resync and drops its copy: a request is then a miss, fetched again,
    // and every answer before that carried the digest's own bytes.
    await waitFor(
      "B to forget the evicted blob",
      async () => {
        const r = await httpGet(url);
        expect(digestOf(r.body)).toBe(digest);
        return r.headers["x-cache"] === "MISS";
      },
      10_000,
    );
    expect(up.count("GET", `/blobs/${digest}`)).toBe(2);
  }, 60_000);

  it("eviction in one process while the other streams the blob: the stream completes with correct bytes", async () => {
    const up = await upstream();
    const root = await freshRoot();
    const bytes = randomBytes(16 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    const b = await cacheOn(root, up, "b");
    // B fills it, then a client streams it from B slowly.
    expect(digestOf((await httpGet(`${b.url}/v2/library/app/blobs/${digest}`)).body)).toBe(digest);
    const blobPath = join(root, "blobs", "sha256", digest.slice(7, 9), digest.slice(7));
    const viaB = slowGet(`${b.url}/v2/library/app/blobs/${digest}`);
    await viaB.gotSome;
    // Only now A starts: it evicts anything above 1 MB at its first sweep (B keeps everything),
    // so the eviction surely falls into B's download.
    await cacheOn(root, up, "a", "          maxsize: 1MB\n          sweepinterval: 300ms\n");
    // A's sweeper sees B's blob through the directory (usage is the directory's) and evicts it.
    await waitFor("A to evict the blob", () => isGone(blobPath), 10_000);
    viaB.resume();
    const got = await viaB.done;
    expect({ status: got.status, clean: got.clean, bytes: got.body.length, digest: digestOf(got.body) }).toEqual({
      status: 200,
      clean: true,
      bytes: bytes.length,
      digest,
    });
    // Gone from the store: the next request through B is a miss that fetches again.
    const again = await httpGet(`${b.url}/v2/library/app/blobs/${digest}`);
    expect({ digest: digestOf(again.body), cache: again.headers["x-cache"] }).toEqual({ digest, cache: "MISS" });
  }, 60_000);
});
