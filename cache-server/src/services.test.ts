// The blob and manifest services without HTTP: a scripted upstream, a real store in a temp
// directory, real authorization memory on a manual clock. One row per decision: a stored object
// served when allowed (remembered or asked), refused or unknown upstream, the upstream failing,
// and the outage allowance (only for a grant the upstream confirmed recently).
import { Readable } from "node:stream";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuthCache, credentialOf } from "./auth.js";
import { BlobService } from "./blob-service.js";
import { ManualClock } from "./clock.js";
import { UpstreamError } from "./errors.js";
import { FillCoordinator } from "./fill-coordinator.js";
import { createLogger } from "./log.js";
import { ManifestService } from "./manifest-service.js";
import { createMetrics } from "./metrics.js";
import { digestOf } from "./names.js";
import type { Outcome, RequestInfo } from "./outcome.js";
import { BlobStore, HOT_BLOB_MAX_BYTES } from "./store.js";
import type { UpstreamRequest, UpstreamResponse } from "./upstream.js";
import { UpstreamAccess } from "./upstream-access.js";

type Answer = { status: number; headers?: Record<string, string>; body?: Buffer } | "down";

/** An upstream that answers from a script and records what it was asked. */
class ScriptedUpstream {
  answer: (req: UpstreamRequest) => Answer = () => ({ status: 404 });
  readonly asked: string[] = [];
  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    this.asked.push(`${req.method} ${req.path}`);
    const a = this.answer(req);
    if (a === "down") return Promise.reject(new UpstreamError("UPSTREAM_UNREACHABLE", "connection refused", true));
    const body = a.body ?? Buffer.alloc(0);
    return Promise.resolve({
      status: a.status,
      headers: { "content-length": String(body.length), ...a.headers },
      body: Readable.from(body.length ? [body] : []),
      upstream: "scripted",
    });
  }
}

const TTL = 60_000;
const OUTAGE = 3600_000;
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json", layers: [] }));
const MANIFEST_DIGEST = digestOf(MANIFEST);
const SMALL_BLOB = Buffer.from("layer bytes ".repeat(1000));
// One byte past what the store keeps in memory: always served from its file.
const LARGE_BLOB = Buffer.alloc(HOT_BLOB_MAX_BYTES + 1, "large layer ");
const CHALLENGE = { "www-authenticate": 'Bearer realm="https://dtr.example/auth"' };

let root: string;
let clock: ManualClock;
let store: BlobStore;
let up: ScriptedUpstream;
let manifests: ManifestService;
let blobs: BlobService;
let fills: FillCoordinator;
const quiet = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }));
const alice: RequestInfo = {
  cred: credentialOf("Basic YWxpY2U6cHc=", ""),
  authorization: "Basic YWxpY2U6cHc=",
  query: "",
  accept: "application/vnd.docker.distribution.manifest.v2+json",
  log: quiet,
};

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "cache-services-"));
  clock = new ManualClock();
  store = new BlobStore(root, clock);
  await store.open();
  up = new ScriptedUpstream();
  const metrics = createMetrics(false);
  const auth = new AuthCache(clock, { ttlMs: TTL, outageAllowanceMs: OUTAGE, notFoundTtlMs: 5000 });
  const access = new UpstreamAccess(up, auth);
  fills = new FillCoordinator(store, {}, () => clock.now());
  manifests = new ManifestService({ store, access, metrics, serveStale: true });
  blobs = new BlobService({ store, access, fills, metrics });
});
afterEach(async () => {
  await fills.settled();
  await rm(root, { recursive: true, force: true });
});

/** Stores the manifest through a first allowed request, then clears the upstream's log. */
async function warmManifest(): Promise<void> {
  up.answer = () => ({ status: 200, headers: { "content-type": "application/vnd.docker.distribution.manifest.v2+json" }, body: MANIFEST });
  expect(await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST)).toMatchObject({ kind: "manifest", xcache: "MISS" });
  up.asked.length = 0;
}

function brief(o: Outcome): string {
  if (o.kind === "manifest") return `manifest ${o.xcache}`;
  if (o.kind === "relay") return `relay ${o.status}`;
  if (o.kind === "error") return `error ${o.code}`;
  if (o.kind === "file") return `file ${o.status} ${o.xcache}`;
  if (o.kind === "buffer") return `buffer ${o.status} ${o.xcache}`;
  return o.kind;
}

describe("ManifestService.byDigest decision table", () => {
  it("hit with a fresh grant: served from the store, upstream not asked", async () => {
    await warmManifest();
    expect(brief(await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST))).toBe("manifest HIT");
    expect(up.asked).toEqual([]);
  });

  it("hit with an expired grant: asks upstream (HEAD) and serves on its 200", async () => {
    await warmManifest();
    clock.advance(TTL + 1);
    up.answer = () => ({ status: 200 });
    expect(brief(await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST))).toBe("manifest HIT");
    expect(up.asked).toEqual([`HEAD /v2/library/app/manifests/${MANIFEST_DIGEST}`]);
  });

  it.each([
    [401, "relay 401"],
    [403, "relay 403"],
    [404, "error MANIFEST_UNKNOWN"],
    [429, "relay 429"],
    [400, "relay 502"],
  ])("hit, grant expired, upstream answers %i: %s, stored bytes not served", async (status, expected) => {
    await warmManifest();
    clock.advance(TTL + 1);
    up.answer = () => ({ status, headers: status === 401 ? CHALLENGE : {} });
    const o = await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST);
    expect(brief(o)).toBe(expected);
    if (status === 401 && o.kind === "relay") expect(o.headers["www-authenticate"]).toBe(CHALLENGE["www-authenticate"]);
  });

  it.each([503, 500, "down"] as const)("hit, grant expired, upstream %s: served within the outage allowance, not after it", async (failure) => {
    await warmManifest();
    up.answer = () => (failure === "down" ? "down" : { status: failure });
    clock.advance(TTL + 1);
    expect(brief(await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST))).toBe("manifest HIT");
    clock.advance(OUTAGE);
    expect(brief(await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST))).toBe("error UPSTREAM_UNAVAILABLE");
  });

  it("outage allowance is per credential: another credential is not served stored bytes", async () => {
    await warmManifest();
    up.answer = () => "down";
    const bob: RequestInfo = { ...alice, cred: credentialOf("Basic Ym9iOnB3", ""), authorization: "Basic Ym9iOnB3" };
    expect(brief(await manifests.byDigest(bob, "library/app", MANIFEST_DIGEST))).toBe("error UPSTREAM_UNAVAILABLE");
  });

  it("a manifest held in memory is served only under the repository it was allowed in", async () => {
    await warmManifest();
    up.answer = () => ({ status: 404 });
    expect(brief(await manifests.byDigest(alice, "other/app", MANIFEST_DIGEST))).toBe("error MANIFEST_UNKNOWN");
    expect(up.asked).toEqual([`HEAD /v2/other/app/manifests/${MANIFEST_DIGEST}`]);
  });

  it("a refusal is remembered: the next request is refused without asking upstream", async () => {
    await warmManifest();
    clock.advance(TTL + 1);
    up.answer = () => ({ status: 401, headers: CHALLENGE });
    expect(brief(await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST))).toBe("relay 401");
    up.asked.length = 0;
    expect(brief(await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST))).toBe("relay 401");
    expect(up.asked).toEqual([]);
  });

  it("miss: upstream 404 answers MANIFEST_UNKNOWN (as a relay), down answers UPSTREAM_UNAVAILABLE, a wrong digest UPSTREAM_ERROR", async () => {
    up.answer = () => ({ status: 404 });
    const o = await manifests.byDigest(alice, "library/app", MANIFEST_DIGEST);
    expect(o).toMatchObject({ kind: "relay", status: 404, notFound: "MANIFEST_UNKNOWN" });
    up.answer = () => "down";
    expect(brief(await manifests.byDigest(alice, "library/other", MANIFEST_DIGEST))).toBe("error UPSTREAM_UNAVAILABLE");
    up.answer = () => ({ status: 200, body: Buffer.from("{}") });
    expect(brief(await manifests.byDigest(alice, "library/third", MANIFEST_DIGEST))).toBe("error UPSTREAM_ERROR");
    expect(await store.getManifest(MANIFEST_DIGEST)).toBeUndefined();
  });
});

describe("ManifestService.byTag", () => {
  it("304 serves the stored copy (HIT); 5xx serves it STALE within the allowance; 401 is relayed", async () => {
    up.answer = () => ({ status: 200, headers: { "content-type": "application/vnd.docker.distribution.manifest.v2+json" }, body: MANIFEST });
    expect(brief(await manifests.byTag(alice, "library/app", "1.0"))).toBe("manifest MISS");
    up.answer = (req) => ({ status: req.headers?.["if-none-match"] === `"${MANIFEST_DIGEST}"` ? 304 : 500 });
    expect(brief(await manifests.byTag(alice, "library/app", "1.0"))).toBe("manifest HIT");
    up.answer = () => ({ status: 503 });
    expect(brief(await manifests.byTag(alice, "library/app", "1.0"))).toBe("manifest STALE");
    clock.advance(OUTAGE + 1);
    expect(brief(await manifests.byTag(alice, "library/app", "1.0"))).toBe("error UPSTREAM_UNAVAILABLE");
    up.answer = () => ({ status: 401, headers: CHALLENGE });
    expect(brief(await manifests.byTag(alice, "library/app", "1.0"))).toBe("relay 401");
  });
});

// Small blobs are answered from the store's memory copy ("buffer"), large ones from the open
// file ("file"): every decision row holds for both.
describe.each([
  ["small blob (memory tier)", SMALL_BLOB, "buffer"],
  ["large blob (file)", LARGE_BLOB, "file"],
] as const)("BlobService decision table, %s", (_label, BLOB, served) => {
  const BLOB_DIGEST = digestOf(BLOB);
  async function warmBlob(): Promise<void> {
    up.answer = () => ({ status: 200, body: BLOB });
    const o = await blobs.get(alice, { name: "library/app", digest: BLOB_DIGEST, head: false, range: undefined });
    expect(o.kind).toBe("fill");
    if (o.kind === "fill") o.reader.detach();
    await fills.settled();
    expect(store.getBlob(BLOB_DIGEST)?.size).toBe(BLOB.length);
    up.asked.length = 0;
  }
  const get = async (head = false, range?: string): Promise<Outcome> => blobs.get(alice, { name: "library/app", digest: BLOB_DIGEST, head, range });
  const release = (o: Outcome): void => {
    if (o.kind === "file") o.done();
  };

  it("hit with a fresh grant: the stored file (open, counted as read until done()) or the bytes in memory", async () => {
    await warmBlob();
    const o = await get();
    expect(brief(o)).toBe(`${served} 200 HIT`);
    if (o.kind === "file") {
      expect(store.getBlob(BLOB_DIGEST)?.readers).toBe(1);
      expect(o.file).toMatchObject({ start: 0, end: BLOB.length });
    }
    if (o.kind === "buffer") expect(o.body.equals(BLOB)).toBe(true);
    release(o);
    expect(store.getBlob(BLOB_DIGEST)?.readers).toBe(0);
    expect(up.asked).toEqual([]);
  });

  it("a range: 206 with Content-Range; an unsatisfiable one: RANGE_INVALID, nothing held", async () => {
    await warmBlob();
    const o = await get(false, "bytes=10-19");
    expect(brief(o)).toBe(`${served} 206 HIT`);
    if (o.kind === "file" || o.kind === "buffer") expect(o.headers["Content-Range"]).toBe(`bytes 10-19/${BLOB.length}`);
    if (o.kind === "buffer") expect(o.body.equals(BLOB.subarray(10, 20))).toBe(true);
    release(o);
    const bad = await get(false, `bytes=${BLOB.length}-`);
    expect(bad).toMatchObject({ kind: "error", code: "RANGE_INVALID", headers: { "Content-Range": `bytes */${BLOB.length}` } });
    expect(store.getBlob(BLOB_DIGEST)?.readers).toBe(0);
  });

  it.each([
    [200, `${served} 200 HIT`],
    [401, "relay 401"],
    [403, "relay 403"],
    [404, "error BLOB_UNKNOWN"],
    [503, `${served} 200 HIT`],
  ])("hit, grant expired, upstream HEAD answers %i: %s", async (status, expected) => {
    await warmBlob();
    clock.advance(TTL + 1);
    up.answer = () => ({ status });
    const o = await get();
    expect(brief(o)).toBe(expected);
    release(o);
    expect(up.asked).toEqual([`HEAD /v2/library/app/blobs/${BLOB_DIGEST}`]);
  });

  it("a blob the store deleted (eviction, expiry) is not served from memory: the next request is a miss", async () => {
    await warmBlob();
    const hit = await get();
    expect(brief(hit)).toBe(`${served} 200 HIT`);
    release(hit);
    expect(await store.deleteBlob(BLOB_DIGEST)).toBe(true);
    expect(store.hotBlob(BLOB_DIGEST)).toBeUndefined();
    up.answer = () => ({ status: 200, body: BLOB });
    const o = await get();
    expect(o.kind).toBe("fill");
    if (o.kind === "fill") o.reader.detach();
    expect(up.asked).toEqual([`GET /v2/library/app/blobs/${BLOB_DIGEST}`]);
  });

  it("hit past the outage allowance with the upstream down: UPSTREAM_UNAVAILABLE", async () => {
    await warmBlob();
    clock.advance(OUTAGE + 1);
    up.answer = () => "down";
    expect(brief(await get())).toBe("error UPSTREAM_UNAVAILABLE");
  });

  it("miss refused by the upstream's GET: relayed, nothing fetched or kept", async () => {
    up.answer = () => ({ status: 401, headers: CHALLENGE });
    const o = await get();
    expect(brief(o)).toBe("relay 401");
    await fills.settled();
    expect(store.getBlob(BLOB_DIGEST)).toBeUndefined();
  });

  it("miss with the upstream down: UPSTREAM_UNAVAILABLE; HEAD miss: the upstream's headers", async () => {
    up.answer = () => "down";
    expect(brief(await get())).toBe("error UPSTREAM_UNAVAILABLE");
    up.answer = () => ({ status: 200, headers: { "content-length": String(BLOB.length) } });
    const head = await get(true);
    expect(head).toMatchObject({ kind: "head", status: 200, headers: { "Content-Length": String(BLOB.length), "X-Cache": "MISS" } });
    expect(store.getBlob(BLOB_DIGEST)).toBeUndefined();
  });
});
