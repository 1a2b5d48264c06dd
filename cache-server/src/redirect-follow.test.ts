// The cache against an upstream that redirects blob requests the way DTR does for a user whose
// Content Cache setting names this cache (307 back to the cache with a signed query), and the
// way a registry on object storage does (a pre-signed URL on another origin).
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { startCacheServer, type RunningCache } from "./app.js";
import { parseConfig } from "./config.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { digestOf, FakeUpstream } from "./testing/fake-upstream.js";
import { testConfigText } from "./testing/config-text.js";
import { httpGet } from "./testing/http-get.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }));
// The name DTR has registered for this cache; it never needs to resolve: a redirect to it must
// never be followed literally.
const CACHE_HOST = "https://cache.invalid:5443";
const TOKEN = "alice-token";
const REPO = "team/app";
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function setup(opts: { httpHost?: string | undefined } = {}): Promise<{ up: FakeUpstream; cache: RunningCache; root: string }> {
  const up = new FakeUpstream();
  await up.start();
  cleanups.push(() => up.stop());
  const root = await mkdtemp(join(tmpdir(), "cache-redirect-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const host = "httpHost" in opts ? opts.httpHost : CACHE_HOST;
  const parsed = parseConfig(testConfigText({ root, upstreams: [up.url], httpLines: host ? `  host: ${host}` : "" }));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  const cache = await startCacheServer({ config: parsed.config, logger: quiet, metrics: createMetrics(false) });
  cleanups.push(() => cache.close());
  up.token = TOKEN;
  return { up, cache, root };
}

const bearer = { authorization: `Bearer ${TOKEN}` };
const blobGets = (up: FakeUpstream, digest: string): { path: string; authorization: string | undefined }[] =>
  up.requests.filter((r) => r.method === "GET" && r.path.includes(digest)).map((r) => ({ path: r.path, authorization: r.authorization }));

async function redirectCount(cache: RunningCache, kind: string): Promise<number> {
  const metric = await cache.metrics.upstreamRedirects.get();
  return metric.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

describe("upstream redirects of blob requests", () => {
  it("fills a blob redirected to its own http.host from the same upstream with the signed query and no Authorization", async () => {
    const { up, cache } = await setup();
    const bytes = randomBytes(2 * 1024 * 1024 + 5);
    const digest = up.addBlob(REPO, bytes);
    up.redirects.set(digest, { status: 307, to: CACHE_HOST });

    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(200);
    expect(got.headers["x-cache"]).toBe("MISS");
    expect(digestOf(got.body)).toBe(digest);
    const path = `/v2/${REPO}/blobs/${digest}`;
    expect(blobGets(up, digest)).toEqual([
      { path, authorization: `Bearer ${TOKEN}` },
      { path: `${path}?sig=${up.signature(digest)}`, authorization: undefined },
    ]);
    expect(await redirectCount(cache, "self")).toBe(1);

    // Kept and authorized for this credential: the next pull is a hit without another upstream GET.
    const again = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(again.headers["x-cache"]).toBe("HIT");
    expect(digestOf(again.body)).toBe(digest);
    expect(blobGets(up, digest)).toHaveLength(2);
  });

  it.each([301, 302, 303, 308] as const)("treats a %i to its own http.host like a 307", async (status) => {
    const { up, cache } = await setup();
    const digest = up.addBlob(REPO, randomBytes(4096));
    up.redirects.set(digest, { status, to: CACHE_HOST });
    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(200);
    expect(digestOf(got.body)).toBe(digest);
    expect(blobGets(up, digest)[1]).toEqual({ path: `/v2/${REPO}/blobs/${digest}?sig=${up.signature(digest)}`, authorization: undefined });
  });

  it("answers 502 without looping or keeping anything when the re-issued request is redirected again", async () => {
    const { up, cache, root } = await setup();
    const digest = up.addBlob(REPO, randomBytes(64 * 1024));
    up.redirects.set(digest, { status: 307, to: CACHE_HOST, always: true });

    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(502);
    const body = JSON.parse(got.body.toString()) as { errors: { code: string; detail?: string }[] };
    expect(body.errors[0]?.code).toBe("UPSTREAM_ERROR");
    expect(body.errors[0]?.detail).toMatch(/redirected again/);
    // The signed query is a credential: it never appears in what the client is told.
    expect(got.body.toString()).not.toContain(up.signature(digest));
    expect(blobGets(up, digest)).toHaveLength(2);
    expect(cache.store.getBlob(digest)).toBeUndefined();
    await expect.poll(() => readdir(join(root, "tmp"))).toEqual([]);
  });

  it("relays the upstream's refusal of the signed re-issue and serves no bytes", async () => {
    const { up, cache } = await setup();
    const digest = up.addBlob(REPO, randomBytes(4096));
    up.redirects.set(digest, { status: 307, location: `${CACHE_HOST}/v2/${REPO}/blobs/${digest}?sig=forged` });
    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(403);
    expect(got.body.toString()).toContain("DENIED");
    expect(cache.store.getBlob(digest)).toBeUndefined();
  });

  it("does not follow anything for a credential the upstream refuses before redirecting", async () => {
    const { up, cache } = await setup();
    const digest = up.addBlob(REPO, randomBytes(4096));
    up.redirects.set(digest, { status: 307, to: CACHE_HOST });
    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: { authorization: "Bearer wrong" } });
    expect(got.status).toBe(401);
    expect(blobGets(up, digest)).toHaveLength(1);
  });

  it("re-issues a redirect naming the same blob path at an unknown origin when http.host is not set", async () => {
    const { up, cache } = await setup({ httpHost: undefined });
    const digest = up.addBlob(REPO, randomBytes(4096));
    up.redirects.set(digest, { status: 307, to: "http://cache-behind-a-balancer.invalid:5000" });
    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(200);
    expect(digestOf(got.body)).toBe(digest);
    expect(blobGets(up, digest)[1]?.authorization).toBeUndefined();
  });

  it("follows a redirect to another origin once, dropping Authorization, and keeps the verified blob", async () => {
    const { up, cache } = await setup();
    const storage = new FakeUpstream();
    await storage.start();
    cleanups.push(() => storage.stop());
    const bytes = randomBytes(256 * 1024);
    const digest = up.addBlob(REPO, bytes);
    storage.objects.set("/bucket/data", bytes);
    up.redirects.set(digest, { status: 307, location: `${storage.url}/bucket/data?X-Signature=abc` });

    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(200);
    expect(digestOf(got.body)).toBe(digest);
    expect(storage.requests).toEqual([expect.objectContaining({ method: "GET", path: "/bucket/data?X-Signature=abc", authorization: undefined })]);
    expect(blobGets(up, digest)).toHaveLength(1);
    expect(cache.store.getBlob(digest)).toBeDefined();
    expect(await redirectCount(cache, "foreign")).toBe(1);
  });

  it("cuts the client off and keeps nothing when a foreign redirect target sends other bytes", async () => {
    const { up, cache } = await setup();
    const storage = new FakeUpstream();
    await storage.start();
    cleanups.push(() => storage.stop());
    const digest = up.addBlob(REPO, randomBytes(64 * 1024));
    storage.objects.set("/bucket/data", randomBytes(64 * 1024));
    up.redirects.set(digest, { status: 302, location: `${storage.url}/bucket/data` });
    await expect(httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer })).rejects.toThrow();
    await expect.poll(() => cache.handler.fills.inFlight).toBe(0);
    expect(cache.store.getBlob(digest)).toBeUndefined();
  });

  it("answers 503 and keeps the upstream healthy when a foreign redirect target is unreachable", async () => {
    const { up, cache } = await setup();
    const gone = new FakeUpstream();
    const goneUrl = await gone.start();
    await gone.stop();
    const digest = up.addBlob(REPO, randomBytes(4096));
    up.redirects.set(digest, { status: 307, location: `${goneUrl}/bucket/data` });
    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(503);
    expect(cache.upstream.health()).toEqual([expect.objectContaining({ url: up.url, up: true })]);
  });

  it("follows a redirected authorization HEAD for a cached blob to the signed URL", async () => {
    const { up, cache } = await setup();
    up.token = undefined;
    const digest = up.addBlob(REPO, randomBytes(4096));
    expect((await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`)).status).toBe(200);
    up.token = TOKEN;
    up.redirects.set(digest, { status: 307, to: CACHE_HOST, methods: ["GET", "HEAD"] });

    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(200);
    expect(got.headers["x-cache"]).toBe("HIT");
    expect(digestOf(got.body)).toBe(digest);
    const heads = up.requests.filter((r) => r.method === "HEAD").map((r) => ({ path: r.path, authorization: r.authorization }));
    expect(heads).toEqual([
      { path: `/v2/${REPO}/blobs/${digest}`, authorization: `Bearer ${TOKEN}` },
      { path: `/v2/${REPO}/blobs/${digest}?sig=${up.signature(digest)}`, authorization: undefined },
    ]);
    expect(blobGets(up, digest)).toHaveLength(1);
  });

  it("answers a HEAD on a cold blob through a redirected HEAD", async () => {
    const { up, cache } = await setup();
    const bytes = randomBytes(12_345);
    const digest = up.addBlob(REPO, bytes);
    up.redirects.set(digest, { status: 307, to: CACHE_HOST, methods: ["HEAD"] });
    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { method: "HEAD", headers: bearer });
    expect(got.status).toBe(200);
    expect(got.headers["content-length"]).toBe(String(bytes.length));
    expect(up.count("HEAD", `?sig=${up.signature(digest)}`)).toBe(1);
  });

  it("refuses a redirected authorization HEAD that loops instead of serving the cached blob", async () => {
    const { up, cache } = await setup();
    up.token = undefined;
    const digest = up.addBlob(REPO, randomBytes(4096));
    expect((await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`)).status).toBe(200);
    up.token = TOKEN;
    up.redirects.set(digest, { status: 307, to: CACHE_HOST, methods: ["GET", "HEAD"], always: true });
    const got = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: bearer });
    expect(got.status).toBe(502);
    expect(up.count("HEAD", digest)).toBe(2);
  });
});
