import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { startCacheServer, type RunningCache } from "./app.js";
import { ManualClock } from "./clock.js";
import { parseConfig, type CacheConfig } from "./config.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { digestOf, FakeUpstream } from "./testing/fake-upstream.js";
import { testConfigText } from "./testing/config-text.js";
import { httpGet } from "./testing/http-get.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function setup(
  opts: { upstreams?: string[]; extra?: string; clock?: ManualClock; root?: string } = {},
): Promise<{ up: FakeUpstream; cache: RunningCache; root: string; config: CacheConfig }> {
  const up = new FakeUpstream();
  await up.start();
  cleanups.push(() => up.stop());
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), "cache-test-")));
  if (!opts.root) cleanups.push(() => rm(root, { recursive: true, force: true }));
  const text = testConfigText({ root, upstreams: opts.upstreams ?? [up.url], optionLines: opts.extra });
  const parsed = parseConfig(text);
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  const cache = await startCacheServer({ config: parsed.config, logger: quiet, clock: opts.clock, metrics: createMetrics(false) });
  cleanups.push(() => cache.close());
  return { up, cache, root, config: parsed.config };
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

describe("cache server (against an in-process upstream)", () => {
  it("serves a blob once from upstream, then from the store without an upstream GET", async () => {
    const { up, cache } = await setup();
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const digest = up.addBlob("library/app", bytes);
    const first = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(first.status).toBe(200);
    expect(first.headers["x-cache"]).toBe("MISS");
    expect(first.headers["docker-distribution-api-version"]).toBe("registry/2.0");
    expect(first.headers["docker-content-digest"]).toBe(digest);
    expect(digestOf(first.body)).toBe(digest);
    const second = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(second.headers["x-cache"]).toBe("HIT");
    expect(digestOf(second.body)).toBe(digest);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
  });

  it("fetches a cold blob once for 50 concurrent requests and gives each the right bytes", { timeout: 60_000 }, async () => {
    const { up, cache } = await setup();
    let release!: () => void;
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    up.faults.set(digest, { kind: "pause", afterBytes: 1024 * 1024, release: new Promise((r) => (release = r)) });
    const all = Array.from({ length: 50 }, () => httpGet(`${cache.url}/v2/library/app/blobs/${digest}`));
    // Generous bound: 50 connections are accepted slowly on a loaded 2-core machine; what is
    // asserted is one upstream GET, not speed.
    await expect.poll(() => cache.handler.fills.get(digest)?.readerCount ?? 0, { timeout: 20_000 }).toBe(50);
    release();
    const results = await Promise.all(all);
    for (const r of results) expect(digestOf(r.body)).toBe(digest);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
  });

  it.each(["corrupt", "truncate"] as const)("cuts clients off and keeps nothing when upstream bytes are %s", async (kind) => {
    const { up, cache, root } = await setup();
    const bytes = randomBytes(2 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    up.faults.set(digest, { kind });
    await expect(httpGet(`${cache.url}/v2/library/app/blobs/${digest}`)).rejects.toThrow();
    await expect.poll(() => cache.handler.fills.inFlight).toBe(0);
    expect(cache.store.getBlob(digest)).toBeUndefined();
    expect((await listFiles(join(root, "blobs"))).length).toBe(0);
    expect((await listFiles(join(root, "tmp"))).length).toBe(0);
  });

  it("completes and keeps the fill when the only client aborts mid-stream", async () => {
    const { up, cache } = await setup();
    let release!: () => void;
    const bytes = randomBytes(4 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    up.faults.set(digest, { kind: "pause", afterBytes: 1024 * 1024, release: new Promise((r) => (release = r)) });
    const ac = new AbortController();
    const pending = httpGet(`${cache.url}/v2/library/app/blobs/${digest}`, { signal: ac.signal });
    await expect.poll(() => cache.handler.fills.get(digest)?.received ?? 0).toBeGreaterThan(0);
    ac.abort();
    await expect(pending).rejects.toThrow();
    release();
    await expect.poll(() => cache.store.getBlob(digest)?.size).toBe(bytes.length);
    const again = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(again.headers["x-cache"]).toBe("HIT");
    expect(digestOf(again.body)).toBe(digest);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
  });

  it("passes the upstream's token challenge back and never hands bytes without the credential", async () => {
    const { up, cache } = await setup();
    up.token = "good-token";
    const digest = up.addBlob("private/app", randomBytes(1024));
    const anon = await httpGet(`${cache.url}/v2/private/app/blobs/${digest}`);
    expect(anon.status).toBe(401);
    expect(anon.headers["www-authenticate"]).toBe(`Bearer realm="${up.url}/token",service="fake-upstream",scope="repository:private/app:pull"`);
    const ok = await httpGet(`${cache.url}/v2/private/app/blobs/${digest}`, { headers: { authorization: "Bearer good-token" } });
    expect(ok.status).toBe(200);
    expect(digestOf(ok.body)).toBe(digest);
    // Now cached: other credentials are still asked upstream, and refused.
    const wrong = await httpGet(`${cache.url}/v2/private/app/blobs/${digest}`, { headers: { authorization: "Bearer other" } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.includes(Buffer.from("UNAUTHORIZED"))).toBe(true);
    const anonAgain = await httpGet(`${cache.url}/v2/private/app/blobs/${digest}`);
    expect(anonAgain.status).toBe(401);
    const base = await httpGet(`${cache.url}/v2/`);
    expect(base.status).toBe(401);
    expect(base.headers["www-authenticate"]).toContain("Bearer realm=");
  });

  it("rejects path traversal and malformed names or digests without touching the disk", async () => {
    const { up, cache, root } = await setup();
    const before = await listFiles(root);
    const bad = [
      "/v2/../../etc/passwd/blobs/sha256:" + "a".repeat(64),
      "/v2/library/app/blobs/sha256:../../../../etc/passwd",
      "/v2/library/app/blobs/sha256:" + "A".repeat(64),
      "/v2/library/app/blobs/sha512:" + "a".repeat(128),
      "/v2/Library/App/manifests/latest",
      "/v2/library//app/manifests/latest",
      "/v2/library/%2e%2e/manifests/latest",
      "/v2/library/app/manifests/..",
      "/v2/library/app/manifests/sha256:zz",
    ];
    for (const p of bad) {
      const r = await httpGet(`${cache.url}${p}`);
      expect([400, 404], p).toContain(r.status);
      expect(JSON.parse(r.body.toString()).errors[0].code).toMatch(/INVALID|NOT_FOUND/);
    }
    expect(await listFiles(root)).toEqual(before);
    expect(up.requests.length).toBe(0);
  });

  it("refuses pushes with UNSUPPORTED", async () => {
    const { cache } = await setup();
    for (const [method, path] of [
      ["POST", "/v2/library/app/blobs/uploads/"],
      ["PUT", "/v2/library/app/manifests/latest"],
      ["DELETE", `/v2/library/app/blobs/sha256:${"a".repeat(64)}`],
    ] as const) {
      const r = await httpGet(`${cache.url}${path}`, { method });
      expect(r.status).toBe(405);
      expect(JSON.parse(r.body.toString()).errors[0].code).toBe("UNSUPPORTED");
    }
  });

  it("serves byte ranges of a stored blob with 206", async () => {
    const { up, cache } = await setup();
    const bytes = randomBytes(100_000);
    const digest = up.addBlob("library/app", bytes);
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    const r = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`, { headers: { range: "bytes=10-19" } });
    expect(r.status).toBe(206);
    expect(r.headers["content-range"]).toBe(`bytes 10-19/${bytes.length}`);
    expect(r.body.equals(bytes.subarray(10, 20))).toBe(true);
  });

  it("revalidates tags with If-None-Match and sees a retag on the next request", async () => {
    const { up, cache } = await setup();
    const img1 = up.addImage("library/app", "v1", [randomBytes(100)]);
    const r1 = await httpGet(`${cache.url}/v2/library/app/manifests/v1`);
    expect(r1.headers["docker-content-digest"]).toBe(img1.manifestDigest);
    expect(r1.headers["x-cache"]).toBe("MISS");
    const r2 = await httpGet(`${cache.url}/v2/library/app/manifests/v1`);
    expect(r2.headers["x-cache"]).toBe("HIT");
    expect(up.requests.at(-1)?.ifNoneMatch).toBe(`"${img1.manifestDigest}"`);
    const img2 = up.addImage("library/app", "v1", [randomBytes(100)]);
    const r3 = await httpGet(`${cache.url}/v2/library/app/manifests/v1`);
    expect(r3.headers["docker-content-digest"]).toBe(img2.manifestDigest);
    const byDigest = await httpGet(`${cache.url}/v2/library/app/manifests/${img1.manifestDigest}`);
    expect(digestOf(byDigest.body)).toBe(img1.manifestDigest);
    expect(byDigest.headers["content-type"]).toBe("application/vnd.oci.image.manifest.v1+json");
  });

  it("serves the last known tag marked STALE and cached digests when the upstream is down", async () => {
    const { up, cache } = await setup();
    const img = up.addImage("library/app", "v1", [randomBytes(5000)]);
    const layer = img.layerDigests[0] ?? "";
    await httpGet(`${cache.url}/v2/library/app/manifests/v1`);
    await httpGet(`${cache.url}/v2/library/app/blobs/${layer}`);
    await up.stop();
    const tag = await httpGet(`${cache.url}/v2/library/app/manifests/v1`);
    expect(tag.status).toBe(200);
    expect(tag.headers["x-cache"]).toBe("STALE");
    expect(digestOf(tag.body)).toBe(img.manifestDigest);
    const blob = await httpGet(`${cache.url}/v2/library/app/blobs/${layer}`);
    expect(blob.status).toBe(200);
    expect(digestOf(blob.body)).toBe(layer);
    const unknown = await httpGet(`${cache.url}/v2/library/app/manifests/never-seen`);
    expect(unknown.status).toBe(503);
  });

  it("does not serve stale tags when servestale is false", async () => {
    const { up, cache } = await setup({ extra: "          servestale: false\n" });
    up.addImage("library/app", "v1", [randomBytes(10)]);
    await httpGet(`${cache.url}/v2/library/app/manifests/v1`);
    await up.stop();
    expect((await httpGet(`${cache.url}/v2/library/app/manifests/v1`)).status).toBe(503);
  });

  it("removes a blob past blobttl since its last access and fetches it again", async () => {
    const clock = new ManualClock();
    const { up, cache } = await setup({ clock });
    const digest = up.addBlob("library/app", randomBytes(4096));
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    clock.advance(23 * 3600_000);
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`); // access renews the TTL
    clock.advance(2 * 3600_000);
    expect((await cache.sweepNow()).expired).toBe(0);
    clock.advance(23 * 3600_000);
    expect((await cache.sweepNow()).expired).toBe(1);
    expect(cache.store.getBlob(digest)).toBeUndefined();
    const again = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(again.headers["x-cache"]).toBe("MISS");
    expect(up.count("GET", `/blobs/${digest}`)).toBe(2);
  });

  it("evicts least recently used blobs down to the low watermark when over maxsize", async () => {
    const clock = new ManualClock();
    const { up, cache } = await setup({ clock, extra: "          maxsize: 10000\n          highwatermark: 0.9\n          lowwatermark: 0.5\n" });
    const digests = [0, 1, 2, 3].map(() => up.addBlob("library/app", randomBytes(2500)));
    for (const d of digests) {
      await httpGet(`${cache.url}/v2/library/app/blobs/${d}`);
      clock.advance(1000);
    }
    await httpGet(`${cache.url}/v2/library/app/blobs/${digests[0]}`); // now the most recent
    const r = await cache.sweepNow();
    expect(r.evicted).toBe(2);
    expect(cache.store.getBlob(digests[0] ?? "")).toBeDefined();
    expect(cache.store.getBlob(digests[1] ?? "")).toBeUndefined();
    expect(cache.store.getBlob(digests[2] ?? "")).toBeUndefined();
  });

  it("rebuilds its index from disk after a restart", async () => {
    const { up, cache, root } = await setup();
    const img = up.addImage("library/app", "v1", [randomBytes(3000)]);
    await httpGet(`${cache.url}/v2/library/app/manifests/v1`);
    await httpGet(`${cache.url}/v2/library/app/blobs/${img.layerDigests[0]}`);
    await cache.close();
    const second = await setup({ root, upstreams: [up.url] });
    expect(second.cache.store.getBlob(img.layerDigests[0] ?? "")?.size).toBe(3000);
    expect(second.cache.store.getTag("library/app", "v1")?.digest).toBe(img.manifestDigest);
    expect((await stat(join(root, "tmp"))).isDirectory()).toBe(true);
  });

  it("fails over to the next upstream when one is down", async () => {
    const dead = new FakeUpstream();
    await dead.start();
    const deadUrl = dead.url;
    await dead.stop();
    const up = new FakeUpstream();
    await up.start();
    cleanups.push(() => up.stop());
    const digest = up.addBlob("library/app", randomBytes(1000));
    const { cache } = await setup({ upstreams: [deadUrl, up.url] });
    for (let i = 0; i < 3; i++) {
      const r = await httpGet(`${cache.url}/v2/library/app/manifests/missing-${i}`);
      expect(r.status).toBe(404);
    }
    const b = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(digestOf(b.body)).toBe(digest);
    expect(cache.upstream.health().find((h) => h.url === deadUrl)?.up).toBe(false);
  });

  it("honours a short Retry-After on 503 and then succeeds", async () => {
    const { up, cache } = await setup();
    const digest = up.addBlob("library/app", randomBytes(1000));
    up.busy = { status: 503, retryAfterSeconds: 0, remaining: 1 };
    const r = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(r.status).toBe(200);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(2);
  });

  it("passes a long Retry-After 429 on to the client", async () => {
    const { up, cache } = await setup();
    const digest = up.addBlob("library/app", randomBytes(1000));
    up.busy = { status: 429, retryAfterSeconds: 120, remaining: 5 };
    const r = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(r.status).toBe(429);
    expect(r.headers["retry-after"]).toBe("120");
  });
});
