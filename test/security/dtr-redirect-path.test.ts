// The path DTR users actually send a cache: blob requests redirected by DTR with a signed,
// expiring query (manifests never reach the cache). The emulator runs as real DTR is described:
// blob HEADs are redirected like GETs (distribution's redirect code does both) and /v2 takes bearer
// tokens only. The cache must answer the redirected GET, HEAD and Range requests, reuse one signed
// URL's decision for its own retries, and follow DTR's redirect back to itself when a cache user's
// own token reaches it directly.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLogger,
  createMetrics,
  digestOf,
  FakeUpstream,
  httpGet,
  parseConfig,
  startCacheServer,
  testConfigText,
  type RunningCache,
} from "@dtrcache/cache-server";
import { startDtrEmulator, type DtrEmulator } from "../dtr-emulator/index.js";

const REPO = "team/app";
let backend: FakeUpstream;
let dtr: DtrEmulator;
let cache: RunningCache;
let root: string;
let blob: Buffer;
let digest: string;

const basic = (user: string, pw: string): string => `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`;

async function tokenFor(user: string, pw: string): Promise<string> {
  const r = await fetch(`${dtr.url}/auth/token?service=dtr&scope=repository:${REPO}:pull`, { headers: { authorization: basic(user, pw) } });
  return ((await r.json()) as { token: string }).token;
}

/** What a docker client does: ask DTR, get the 307, go to the cache with the signed query only. */
async function redirectedByDtr(method: "GET" | "HEAD", bearer: string): Promise<string> {
  const r = await fetch(`${dtr.url}/v2/${REPO}/blobs/${digest}`, { method, headers: { authorization: `Bearer ${bearer}` }, redirect: "manual" });
  expect(r.status, `${method} to DTR`).toBe(307);
  const location = r.headers.get("location") ?? "";
  expect(location.startsWith(cache.url)).toBe(true);
  return location;
}

const upstreamBlobCalls = (): number => dtr.requestLog().filter((e) => e.path.includes("/blobs/")).length;

beforeAll(async () => {
  backend = new FakeUpstream();
  await backend.start();
  blob = randomBytes(256 * 1024 + 3);
  digest = backend.addBlob(REPO, blob);
  dtr = await startDtrEmulator({
    listenHost: "127.0.0.1",
    backendRegistryUrl: backend.url,
    users: [
      { username: "carol", password: "c-pw" },
      { username: "dave", password: "d-pw" },
    ],
    redirectHead: true,
    bearerOnly: true,
  });
  root = await mkdtemp(join(tmpdir(), "cache-dtr-path-"));
  // The cache's own URL, so a redirect back to it is recognized (http.host), as the controller renders it.
  const parsed = parseConfig(testConfigText({ root, upstreams: [dtr.url] }));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  cache = await startCacheServer({
    config: parsed.config,
    logger: createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() })),
    metrics: createMetrics(false),
  });
  dtr.seed.userSetting("carol", dtr.seed.contentCache("edge", cache.url).id);
});
afterAll(async () => {
  await cache.close();
  await dtr.stop();
  await backend.stop();
  await rm(root, { recursive: true, force: true });
});

describe("blob requests redirected by DTR (HEAD redirected too, tokens only)", () => {
  it("answers the redirected HEAD, GET and Range of one signed URL with one upstream check and one fill", async () => {
    const bearer = await tokenFor("carol", "c-pw");
    const before = upstreamBlobCalls();
    const headUrl = await redirectedByDtr("HEAD", bearer);
    const head = await httpGet(headUrl, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(blob.length));
    expect(head.headers["docker-content-digest"]).toBe(digest);

    const getUrl = await redirectedByDtr("GET", bearer);
    const got = await httpGet(getUrl);
    expect(got.status).toBe(200);
    expect(digestOf(got.body)).toBe(digest);
    const afterFill = upstreamBlobCalls();

    // A retry and Range requests of that same signed URL reuse its decision: no upstream call.
    const range = await httpGet(getUrl, { headers: { range: "bytes=100-199" } });
    expect(range.status).toBe(206);
    expect(range.body.equals(blob.subarray(100, 200))).toBe(true);
    expect((await httpGet(getUrl)).status).toBe(200);
    expect(upstreamBlobCalls()).toBe(afterFill);
    // DTR saw: the two redirected client requests, the cache's signed HEAD and its signed fill GET.
    const calls = dtr.requestLog().slice(-(afterFill - before));
    expect(calls.filter((e) => e.redirected).length).toBe(2);
    expect(
      calls
        .filter((e) => e.signed)
        .map((e) => e.method)
        .sort(),
    ).toEqual(["GET", "HEAD"]);
  });

  it("a cache user's own token sent straight to the cache: DTR redirects the cache's HEAD back to it, and the signed re-issue answers", async () => {
    const bearer = await tokenFor("carol", "c-pw");
    const r = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { method: "HEAD", headers: { authorization: `Bearer ${bearer}` } });
    expect(r.status).toBe(200);
    expect(r.headers["docker-content-digest"]).toBe(digest);
    const g = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: { authorization: `Bearer ${bearer}` } });
    expect(digestOf(g.body)).toBe(digest);
  });

  it("relays DTR's refusal of basic auth on /v2 (tokens only) and serves nothing for it", async () => {
    const r = await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: { authorization: basic("dave", "d-pw") } });
    expect(r.status).toBe(401);
    expect(String(r.headers["www-authenticate"])).toContain("Bearer realm=");
    const token = await tokenFor("dave", "d-pw");
    expect((await httpGet(`${cache.url}/v2/${REPO}/blobs/${digest}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it("lets any active user read one registration (DTR's published API)", async () => {
    const id = dtr.contentCaches()[0]?.id ?? "";
    const r = await fetch(`${dtr.url}/api/v0/content_caches/${id}`, { headers: { authorization: basic("dave", "d-pw") } });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ id, name: "edge" });
  });
});
