// Finding 5 of issue 9: a blob torn by a host crash must never be served as clean. A crash is
// simulated as a stop that never wrote the clean-shutdown marker (what SIGKILL, a kernel panic or
// power loss leave behind); the blob file is then truncated or corrupted on disk, as a rename that
// reached the disk before the file's bytes would leave it.
import { randomBytes } from "node:crypto";
import { access, mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { startCacheServer, type RunningCache } from "./app.js";
import { parseConfig } from "./config.js";
import { ManualClock } from "./clock.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { BlobStore } from "./store.js";
import { digestOf, FakeUpstream } from "./testing/fake-upstream.js";
import { testConfigText } from "./testing/config-text.js";
import { httpGet } from "./testing/http-get.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function upstream(): Promise<FakeUpstream> {
  const up = new FakeUpstream();
  await up.start();
  cleanups.push(() => up.stop());
  return up;
}

async function tempRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "cache-durable-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  return root;
}

async function start(root: string, up: FakeUpstream): Promise<RunningCache> {
  const parsed = parseConfig(testConfigText({ root, upstreams: [up.url] }));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  const cache = await startCacheServer({ config: parsed.config, logger: quiet, metrics: createMetrics(false) });
  cleanups.push(() => cache.close());
  return cache;
}

/** A stop that leaves no clean-shutdown marker behind: what a crash leaves. */
async function crash(cache: RunningCache, root: string): Promise<void> {
  await cache.close();
  await rm(join(root, "clean-shutdown"), { force: true });
}

async function verifiedCount(cache: RunningCache, result: string): Promise<number> {
  const m = await cache.metrics.registry.getSingleMetric("cache_store_verified_total")?.get();
  return m?.values.find((v) => v.labels.result === result)?.value ?? 0;
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );
const blobFile = (root: string, digest: string): string => new BlobStore(root, new ManualClock()).blobPath(digest);

/** Stores `count` blobs of `size` bytes through a first cache, then stops it uncleanly. */
async function storedThenCrashed(size: number, count = 1): Promise<{ up: FakeUpstream; root: string; digests: string[]; bytes: Buffer[] }> {
  const up = await upstream();
  const root = await tempRoot();
  const bytes = Array.from({ length: count }, () => randomBytes(size));
  const digests = bytes.map((b) => up.addBlob("library/app", b));
  const first = await start(root, up);
  for (const d of digests) expect((await httpGet(`${first.url}/v2/library/app/blobs/${d}`)).status).toBe(200);
  await crash(first, root);
  return { up, root, digests, bytes };
}

describe("after an unclean stop, a damaged blob is never served as clean", () => {
  it.each([
    ["truncated", (path: string, size: number) => truncate(path, Math.floor(size / 2))],
    [
      "corrupted (same size)",
      async (path: string) => {
        const b = await readFile(path);
        b[b.length >> 1] = (b[b.length >> 1] ?? 0) ^ 0xff;
        await writeFile(path, b);
      },
    ],
  ])("%s: hashed before its first answer, deleted, refetched from upstream", async (_name, damage) => {
    const size = 3 * 1024 * 1024 + 5;
    const { up, root, digests, bytes } = await storedThenCrashed(size);
    const digest = digests[0] ?? "";
    const path = blobFile(root, digest);
    await damage(path, size);
    const second = await start(root, up);
    const r = await httpGet(`${second.url}/v2/library/app/blobs/${digest}`);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(size);
    expect(digestOf(r.body)).toBe(digest);
    expect(Buffer.compare(r.body, bytes[0] ?? Buffer.alloc(0))).toBe(0);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(2);
    expect(await verifiedCount(second, "mismatch")).toBe(1);
    // The refetched copy replaced the bad file and is served from the store from now on.
    expect((await stat(path)).size).toBe(size);
    expect((await httpGet(`${second.url}/v2/library/app/blobs/${digest}`)).headers["x-cache"]).toBe("HIT");
  });

  it("a HEAD on a truncated blob never announces the short size", async () => {
    const size = 2 * 1024 * 1024;
    const { up, root, digests } = await storedThenCrashed(size);
    const digest = digests[0] ?? "";
    await truncate(blobFile(root, digest), 1000);
    const second = await start(root, up);
    const r = await httpGet(`${second.url}/v2/library/app/blobs/${digest}`, { method: "HEAD" });
    expect(r.status).toBe(200);
    expect(r.headers["content-length"]).toBe(String(size));
  });

  it("with the upstream gone, a truncated blob is an error, never a clean short 200, and its file is removed", async () => {
    const size = 1024 * 1024;
    const { up, root, digests } = await storedThenCrashed(size);
    const digest = digests[0] ?? "";
    const path = blobFile(root, digest);
    await truncate(path, 100);
    await up.stop();
    const second = await start(root, up);
    const r = await httpGet(`${second.url}/v2/library/app/blobs/${digest}`).catch((err: Error) => ({ status: -1, body: Buffer.alloc(0), headers: {}, err }));
    expect(r.status).not.toBe(200);
    expect(await exists(path)).toBe(false);
    expect(second.store.getBlob(digest)).toBeUndefined();
  });

  it("the background pass verifies every blob without a request: good ones kept, a torn one deleted", async () => {
    const { up, root, digests } = await storedThenCrashed(256 * 1024, 4);
    const bad = digests[2] ?? "";
    await truncate(blobFile(root, bad), 10);
    const third = await start(root, up);
    expect(third.store.unverifiedCount).toBe(4);
    await third.verified;
    expect(third.store.unverifiedCount).toBe(0);
    expect(await verifiedCount(third, "ok")).toBe(3);
    expect(await verifiedCount(third, "mismatch")).toBe(1);
    expect(third.store.getBlob(bad)).toBeUndefined();
    expect(await exists(third.store.blobPath(bad))).toBe(false);
    for (const d of digests.filter((x) => x !== bad)) {
      const r = await httpGet(`${third.url}/v2/library/app/blobs/${d}`);
      expect(r.headers["x-cache"]).toBe("HIT");
      expect(digestOf(r.body)).toBe(d);
    }
    expect(up.count("GET", `/blobs/${bad}`)).toBe(1);
  });
});

describe("a clean restart trusts the store without rehashing it", () => {
  it("writes the marker on close, consumes it at start, and hashes nothing", async () => {
    const up = await upstream();
    const root = await tempRoot();
    const bytes = randomBytes(512 * 1024);
    const digest = up.addBlob("library/app", bytes);
    const first = await start(root, up);
    await httpGet(`${first.url}/v2/library/app/blobs/${digest}`);
    await first.close();
    expect(await exists(join(root, "clean-shutdown"))).toBe(true);
    const second = await start(root, up);
    // Consumed at once: a crash of this run must not find the previous run's marker.
    expect(await exists(join(root, "clean-shutdown"))).toBe(false);
    expect(second.store.startedClean).toBe(true);
    expect(second.store.unverifiedCount).toBe(0);
    const r = await httpGet(`${second.url}/v2/library/app/blobs/${digest}`);
    expect(r.headers["x-cache"]).toBe("HIT");
    expect(digestOf(r.body)).toBe(digest);
    expect((await verifiedCount(second, "ok")) + (await verifiedCount(second, "mismatch"))).toBe(0);
  });

  it("does not write the marker while blobs are still unverified (they would be trusted unhashed)", async () => {
    const { root, digests } = await storedThenCrashed(64 * 1024, 2);
    const store = new BlobStore(root, new ManualClock());
    await store.open();
    expect(store.unverifiedCount).toBe(2);
    expect(await store.markClean()).toBe(false);
    expect(await exists(join(root, "clean-shutdown"))).toBe(false);
    expect(await store.verifyBlob(digests[0] ?? "")).toBe(true);
    expect(await store.verifyAll(new AbortController().signal)).toEqual({ ok: 1, removed: 0 });
    expect(await store.markClean()).toBe(true);
    expect(await exists(join(root, "clean-shutdown"))).toBe(true);
  });
});
