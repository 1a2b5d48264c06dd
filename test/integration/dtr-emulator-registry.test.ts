// The emulated DTR's registry side against a real backend (Debian's docker-registry): the flow a
// docker client follows (challenge -> token -> manifest -> blob), the content-cache redirect for a
// user whose setting names a cache, and a cache's delegated authorization through the signed URL.
// Raw HTTP on purpose: every status code and header is asserted, not hidden by a client.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDtrEmulator, type DtrEmulator } from "../dtr-emulator/index.js";
import { startRegistry, type RegistryHandle } from "../harness/registry.js";
import { sha256 } from "../support/oci.js";

const MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json";
const REPO = "team/app";
const CACHE_HOST = "https://cache.asia.test:5443";
const basic = (user: string, secret: string): string => `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}`;

let workDir: string;
let backend: RegistryHandle;
let dtr: DtrEmulator;
let now = Date.now();
const layer = randomBytes(256 * 1024);
const layerDigest = sha256(layer);
let manifestDigest: string;

/** Pushes one blob to the backend with the registry's monolithic upload (POST then PUT ?digest=). */
async function pushBlob(data: Buffer): Promise<string> {
  const digest = sha256(data);
  const start = await fetch(`${backend.url}/v2/${REPO}/blobs/uploads/`, { method: "POST" });
  expect(start.status).toBe(202);
  const location = new URL(start.headers.get("location") ?? "", backend.url);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, { method: "PUT", body: data, headers: { "content-type": "application/octet-stream" } });
  expect(put.status).toBe(201);
  return digest;
}

async function tokenFor(auth: string | undefined, scope = `repository:${REPO}:pull`): Promise<string> {
  const challenge = await fetch(`${dtr.url}/v2/`);
  const header = challenge.headers.get("www-authenticate") ?? "";
  const realm = /realm="([^"]+)"/.exec(header)?.[1] ?? "";
  const service = /service="([^"]+)"/.exec(header)?.[1] ?? "";
  const answer = await fetch(`${realm}?service=${encodeURIComponent(service)}&scope=${encodeURIComponent(scope)}`, {
    headers: auth === undefined ? {} : { authorization: auth },
  });
  expect(answer.status).toBe(200);
  return ((await answer.json()) as { token: string }).token;
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "dtr-emu-reg-"));
  backend = await startRegistry({ workDir: join(workDir, "registry") });
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layerDigest] } }));
  const configDigest = await pushBlob(config);
  await pushBlob(layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_V2,
      config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: configDigest },
      layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: layer.length, digest: layerDigest }],
    }),
  );
  manifestDigest = sha256(manifest);
  const put = await fetch(`${backend.url}/v2/${REPO}/manifests/1.0`, { method: "PUT", body: manifest, headers: { "content-type": MANIFEST_V2 } });
  expect(put.status).toBe(201);

  dtr = await startDtrEmulator({
    listenHost: "127.0.0.1",
    backendRegistryUrl: backend.url,
    users: [
      { username: "admin", password: "admin-pw", admin: true },
      { username: "alice", password: "alice-pw" },
      { username: "bob", password: "bob-pw" },
    ],
    clock: () => now,
  });
  const cache = dtr.seed.contentCache("region-asia", CACHE_HOST);
  dtr.seed.userSetting("alice", cache.id);
});

afterAll(async () => {
  await dtr?.stop();
  await backend?.stop();
  await rm(workDir, { recursive: true, force: true });
});

describe("emulated DTR registry", () => {
  it("answers a docker-like client: challenge, token, then the manifest from the backend", async () => {
    const challenge = await fetch(`${dtr.url}/v2/`);
    expect(challenge.status).toBe(401);
    expect(challenge.headers.get("www-authenticate")).toBe(`Bearer realm="${dtr.url}/auth/token",service="${dtr.hostPort}"`);
    const token = await tokenFor(basic("alice", "alice-pw"));
    const manifest = await fetch(`${dtr.url}/v2/${REPO}/manifests/1.0`, { headers: { authorization: `Bearer ${token}`, accept: MANIFEST_V2 } });
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get("docker-content-digest")).toBe(manifestDigest);
    expect(manifest.headers.get("content-type")).toBe(MANIFEST_V2);
    expect(sha256(Buffer.from(await manifest.arrayBuffer()))).toBe(manifestDigest);
  });

  it("redirects a cache user's blob GET to the cache with a signed URL, which the emulator honours without credentials", async () => {
    const token = await tokenFor(basic("alice", "alice-pw"));
    dtr.clearRequestLog();
    const redirect = await fetch(`${dtr.url}/v2/${REPO}/blobs/${layerDigest}`, { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    expect(redirect.status).toBe(307);
    const location = new URL(redirect.headers.get("location") ?? "");
    expect(`${location.origin}${location.pathname}`).toBe(`${CACHE_HOST}/v2/${REPO}/blobs/${layerDigest}`);
    expect([...location.searchParams.keys()].sort()).toEqual(["expires", "signature", "user"]);

    // What a cache does to authorize: forward the signed query to its upstream (the emulator).
    const delegated = `${dtr.url}${location.pathname}${location.search}`;
    const head = await fetch(delegated, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(layer.length));
    const body = await fetch(delegated);
    expect(body.status).toBe(200);
    expect(sha256(Buffer.from(await body.arrayBuffer()))).toBe(layerDigest);

    expect(dtr.requestLog()).toEqual([
      expect.objectContaining({ method: "GET", status: 307, user: "alice", redirected: true, signed: false }),
      expect.objectContaining({ method: "HEAD", status: 200, user: "alice", redirected: false, signed: true }),
      expect.objectContaining({ method: "GET", status: 200, user: "alice", redirected: false, signed: true }),
    ]);
  });

  it("refuses a tampered signed URL (403) and an expired one (401)", async () => {
    const token = await tokenFor(basic("alice", "alice-pw"));
    const redirect = await fetch(`${dtr.url}/v2/${REPO}/blobs/${layerDigest}`, { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    const location = new URL(redirect.headers.get("location") ?? "");
    const tampered = new URL(location.pathname + location.search, dtr.url);
    tampered.searchParams.set("user", "bob");
    expect((await fetch(tampered)).status).toBe(403);
    const otherBlob = new URL(`/v2/other/repo/blobs/${layerDigest}${location.search}`, dtr.url);
    expect((await fetch(otherBlob)).status).toBe(403);

    now += 301_000;
    const expired = await fetch(new URL(location.pathname + location.search, dtr.url));
    expect(expired.status).toBe(401);
    expect(await expired.json()).toEqual({ errors: [{ code: "UNAUTHORIZED", message: "signed blob URL has expired", detail: null }] });
  });

  it("serves the blob bytes directly to a user without a cache setting", async () => {
    const token = await tokenFor(basic("bob", "bob-pw"));
    dtr.clearRequestLog();
    const direct = await fetch(`${dtr.url}/v2/${REPO}/blobs/${layerDigest}`, { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    expect(direct.status).toBe(200);
    expect(direct.headers.get("docker-content-digest")).toBe(layerDigest);
    expect(sha256(Buffer.from(await direct.arrayBuffer()))).toBe(layerDigest);
    expect(dtr.requestLog()).toEqual([expect.objectContaining({ status: 200, user: "bob", redirected: false })]);
    const backendGets = (await backend.accessLog()).filter((entry) => entry.method === "GET" && entry.path.startsWith(`/v2/${REPO}/blobs/${layerDigest}`));
    expect(backendGets.length).toBeGreaterThanOrEqual(2);
  });

  it("answers 404 for a blob the backend does not have, instead of redirecting", async () => {
    const token = await tokenFor(basic("alice", "alice-pw"));
    const missing = await fetch(`${dtr.url}/v2/${REPO}/blobs/sha256:${"0".repeat(64)}`, { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    expect(missing.status).toBe(404);
  });

  it("gives an anonymous client no manifest of a private repository", async () => {
    const token = await tokenFor(undefined);
    const manifest = await fetch(`${dtr.url}/v2/${REPO}/manifests/1.0`, { headers: { authorization: `Bearer ${token}`, accept: MANIFEST_V2 } });
    expect(manifest.status).toBe(401);
  });
});
