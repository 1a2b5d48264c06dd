// A cache-enabled user pulling straight from the cache: the cache process fills a cold blob from
// the DTR emulator with the user's bearer token, the emulator answers 307 to the cache's own
// http.host with a signed query, and the cache re-issues the fill to the emulator with that query
// (no Authorization). What happened is read from each party's own records: the emulator's
// request log and the cache's /metrics. The emulator fronts the harness's docker-registry.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startDtrEmulator, type DtrEmulator } from "../dtr-emulator/index.js";
import { freePort } from "../harness/index.js";
import { metricValue, pushBlob, startCacheProcess, type CacheProcess } from "../support/index.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const repo = `redirect/direct-${suffix}`;
const alice = { username: "alice", password: `a-${randomBytes(6).toString("hex")}` };
let workDir = "";
let dtr: DtrEmulator | undefined;
let cache: CacheProcess | undefined;

beforeAll(async () => {
  workDir = await mkdtemp(join(harness.workDir, "cache-redirect-"));
  dtr = await startDtrEmulator({ listenHost: harness.hostIp, backendRegistryUrl: harness.registry.url, users: [alice] });
  const port = await freePort(harness.hostIp);
  const self = `http://${harness.hostIp}:${port}`;
  cache = await startCacheProcess({ workDir, upstreams: [dtr.url], listenHost: harness.hostIp, port, httpHost: self });
  // Alice's Content Cache setting names this cache, registered under its own http.host.
  const registration = dtr.seed.contentCache(`direct-${suffix}`, self);
  dtr.seed.userSetting(alice.username, registration.id);
});

afterAll(async () => {
  await cache?.stop();
  await dtr?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function pullToken(emulator: DtrEmulator): Promise<string> {
  const basic = Buffer.from(`${alice.username}:${alice.password}`).toString("base64");
  const url = `${emulator.url}/auth/token?service=${encodeURIComponent(emulator.hostPort)}&scope=${encodeURIComponent(`repository:${repo}:pull`)}`;
  const answer = await fetch(url, { headers: { authorization: `Basic ${basic}` } });
  expect(answer.status).toBe(200);
  return ((await answer.json()) as { token: string }).token;
}

async function getBlob(url: string, token: string): Promise<{ status: number; xcache: string | null; digest: string; bytes: number }> {
  const answer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = Buffer.from(await answer.arrayBuffer());
  return {
    status: answer.status,
    xcache: answer.headers.get("x-cache"),
    digest: `sha256:${createHash("sha256").update(body).digest("hex")}`,
    bytes: body.length,
  };
}

describe("a cache-enabled user pulling a blob directly from the cache", () => {
  it("gets the bytes: the cache follows DTR's 307 to itself by fetching the signed URL from DTR", async () => {
    if (!dtr || !cache) throw new Error("setup did not finish");
    const bytes = randomBytes(5 * 1024 * 1024 + 3);
    const digest = await pushBlob(harness.registry.url, repo, bytes);
    const token = await pullToken(dtr);
    const path = `/v2/${repo}/blobs/${digest}`;
    dtr.clearRequestLog();

    const first = await getBlob(`${cache.url}${path}`, token);
    expect(first).toEqual({ status: 200, xcache: "MISS", digest, bytes: bytes.length });

    const blobCalls = dtr.requestLog().filter((e) => e.path === path);
    expect(blobCalls).toEqual([
      expect.objectContaining({
        method: "GET",
        status: 307,
        user: alice.username,
        redirected: true,
        signed: false,
        location: expect.stringMatching(new RegExp(`^${cache.url}${path}\\?`)),
      }),
      expect.objectContaining({ method: "GET", status: 200, user: alice.username, redirected: false, signed: true }),
    ]);
    expect(blobCalls[0]?.seq).toBeLessThan(blobCalls[1]?.seq ?? 0);
    expect(metricValue(await cache.metrics(), "cache_upstream_redirects_total")).toBe(1);

    // Kept: the next pull by the same user is served from the store without another DTR blob GET.
    const second = await getBlob(`${cache.url}${path}`, token);
    expect(second).toEqual({ status: 200, xcache: "HIT", digest, bytes: bytes.length });
    expect(dtr.requestLog().filter((e) => e.path === path && e.method === "GET")).toHaveLength(2);
  });

  it("still refuses a pull without a valid token, relaying DTR's challenge", async () => {
    if (!dtr || !cache) throw new Error("setup did not finish");
    const digest = await pushBlob(harness.registry.url, repo, randomBytes(4096));
    const answer = await fetch(`${cache.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: "Bearer not-a-token" } });
    await answer.arrayBuffer();
    expect(answer.status).toBe(401);
    expect(answer.headers.get("www-authenticate")).toContain(`${dtr.url}/auth/token`);
    expect(
      dtr
        .requestLog()
        .filter((e) => e.path.endsWith(digest))
        .map((e) => e.status),
    ).toEqual([401]);
  });
});
