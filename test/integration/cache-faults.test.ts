// Faults, one per test, with the cache running as its own process. Upstreams are a private
// docker-registry (faults made by damaging its own files, or by stopping it) or, where the fault
// must happen mid-body at a chosen byte, the in-process fault-injecting upstream.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, stat, truncate, open, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { freePort, readAccessLog, repoRoot, startRegistry, type RegistryHandle } from "../harness/index.js";
import { run } from "../harness/proc.js";
import {
  buildImage,
  FakeUpstream,
  getHashed,
  metricValue,
  pushBlob,
  pushImage,
  renderCacheConfig,
  startCacheProcess,
  tarOf,
  type CacheProcess,
} from "../support/index.js";

const harness = inject("harness");
let workDir = "";
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(join(harness.workDir, "cache-faults-"));
});
afterAll(async () => {
  while (stops.length)
    await stops
      .pop()?.()
      .catch(() => undefined);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function registry(name: string): Promise<RegistryHandle> {
  const r = await startRegistry({ workDir: join(workDir, name) });
  stops.push(() => r.stop());
  return r;
}

async function cacheFor(name: string, upstreams: string[], extra: { rootDirectory?: string; extraOptions?: string[] } = {}): Promise<CacheProcess> {
  const c = await startCacheProcess({ workDir: join(workDir, name), upstreams, port: await freePort("127.0.0.1"), ...extra });
  stops.push(() => c.stop());
  return c;
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

function registryBlobFile(r: RegistryHandle, digest: string): string {
  const hex = digest.slice(7);
  return join(r.dataDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
}

describe("cache faults", () => {
  it("serves cached digests and the last known tag (X-Cache: STALE) while the upstream is down", async () => {
    const up = await registry("down-reg");
    const image = buildImage([tarOf([{ name: "a", content: randomBytes(200_000) }])]);
    await pushImage(up.url, "faults/down", "v1", image);
    const cache = await cacheFor("down-cache", [up.url]);
    const tag1 = await fetch(`${cache.url}/v2/faults/down/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    const digest = tag1.headers.get("docker-content-digest") ?? "";
    expect(tag1.headers.get("x-cache")).toBe("MISS");
    await tag1.arrayBuffer();
    const layer = await getHashed(`${cache.url}/v2/faults/down/blobs/${await pushBlob(up.url, "faults/down", image.layers[0] ?? Buffer.alloc(0))}`);
    expect(layer.status).toBe(200);
    await up.stop();
    const stale = await fetch(`${cache.url}/v2/faults/down/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(stale.status).toBe(200);
    expect(stale.headers.get("x-cache")).toBe("STALE");
    expect(stale.headers.get("docker-content-digest")).toBe(digest);
    await stale.arrayBuffer();
    const again = await getHashed(`${cache.url}/v2/faults/down/blobs/${layer.digest}`);
    expect(again.status).toBe(200);
    expect(again.digest).toBe(layer.digest);
    expect((await fetch(`${cache.url}/v2/faults/down/manifests/never`)).status).toBe(503);
  });

  it.each(["corrupted", "truncated"] as const)("cuts the client off and keeps nothing when the upstream serves %s bytes", async (kind) => {
    const up = await registry(`${kind}-reg`);
    const bytes = randomBytes(4 * 1024 * 1024);
    const digest = await pushBlob(up.url, "faults/bad", bytes);
    const file = registryBlobFile(up, digest);
    if (kind === "truncated") await truncate(file, bytes.length / 2);
    else {
      const fh = await open(file, "r+");
      await fh.write(Buffer.from([bytes[1000]! ^ 0xff]), 0, 1, 1000);
      await fh.close();
    }
    const cache = await cacheFor(`${kind}-cache`, [up.url]);
    await expect(getHashed(`${cache.url}/v2/faults/bad/blobs/${digest}`)).rejects.toThrow();
    await expect.poll(async () => metricValue(await cache.metrics(), "cache_fill_failures_total")).toBe(1);
    expect(await filesUnder(join(cache.rootDirectory, "blobs"))).toEqual([]);
    expect(await filesUnder(join(cache.rootDirectory, "tmp"))).toEqual([]);
  });

  it("completes and keeps a fill whose only client aborted mid-stream", async () => {
    const up = new FakeUpstream();
    await up.start();
    stops.push(() => up.stop());
    const bytes = randomBytes(16 * 1024 * 1024);
    const digest = up.addBlob("faults/abort", bytes);
    let release!: () => void;
    up.faults.set(digest, { kind: "pause", afterBytes: 2 * 1024 * 1024, release: new Promise((r) => (release = r)) });
    const cache = await cacheFor("abort-cache", [up.url]);
    const ac = new AbortController();
    const res = await fetch(`${cache.url}/v2/faults/abort/blobs/${digest}`, { signal: ac.signal });
    const reader = res.body?.getReader();
    await reader?.read();
    ac.abort();
    release();
    await expect.poll(async () => (await filesUnder(join(cache.rootDirectory, "blobs"))).length, { timeout: 10_000 }).toBe(1);
    const again = await getHashed(`${cache.url}/v2/faults/abort/blobs/${digest}`);
    expect(again.headers["x-cache"]).toBe("HIT");
    expect(again.digest).toBe(digest);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(1);
  });

  it("never serves a partial blob after a SIGKILL mid-fill and a restart", async () => {
    const up = new FakeUpstream();
    await up.start();
    stops.push(() => up.stop());
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = up.addBlob("faults/kill", bytes);
    up.faults.set(digest, { kind: "pause", afterBytes: 3 * 1024 * 1024, release: new Promise(() => undefined) });
    const port = await freePort("127.0.0.1");
    const dir = join(workDir, "kill-cache");
    const first = await startCacheProcess({ workDir: dir, upstreams: [up.url], port });
    stops.push(() => first.stop());
    const pending = getHashed(`${first.url}/v2/faults/kill/blobs/${digest}`);
    pending.catch(() => undefined);
    const tmp = join(first.rootDirectory, "tmp");
    await expect
      .poll(async () => {
        const parts = await filesUnder(tmp);
        return parts.length === 1 && parts[0] ? (await stat(parts[0])).size : 0;
      })
      .toBe(3 * 1024 * 1024);
    await first.kill();
    await expect(pending).rejects.toThrow();
    up.faults.delete(digest);
    const second = await startCacheProcess({ workDir: dir, upstreams: [up.url], port });
    stops.push(() => second.stop());
    expect(await filesUnder(tmp)).toEqual([]);
    expect(await filesUnder(join(second.rootDirectory, "blobs"))).toEqual([]);
    const r = await getHashed(`${second.url}/v2/faults/kill/blobs/${digest}`);
    expect(r.headers["x-cache"]).toBe("MISS");
    expect(r.digest).toBe(digest);
  });

  it("never serves a blob torn by a host crash as clean (SIGKILL, file truncated while stopped, restart)", async () => {
    const up = new FakeUpstream();
    await up.start();
    stops.push(() => up.stop());
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = up.addBlob("faults/torn", bytes);
    const port = await freePort("127.0.0.1");
    const dir = join(workDir, "torn-cache");
    const first = await startCacheProcess({ workDir: dir, upstreams: [up.url], port });
    stops.push(() => first.stop());
    expect((await getHashed(`${first.url}/v2/faults/torn/blobs/${digest}`)).digest).toBe(digest);
    // SIGKILL leaves no clean-shutdown marker, as a host crash would; the rename that reached the
    // disk before the bytes is simulated by cutting the file.
    await first.kill();
    const file = join(first.rootDirectory, "blobs", "sha256", digest.slice(7, 9), digest.slice(7));
    await truncate(file, 3 * 1024 * 1024);
    const second = await startCacheProcess({ workDir: dir, upstreams: [up.url], port });
    stops.push(() => second.stop());
    const r = await getHashed(`${second.url}/v2/faults/torn/blobs/${digest}`);
    expect(r.status).toBe(200);
    expect(r.bytes).toBe(bytes.length);
    expect(r.digest).toBe(digest);
    expect(up.count("GET", `/blobs/${digest}`)).toBe(2);
    expect((await stat(file)).size).toBe(bytes.length);
    expect(metricValue(await second.metrics(), "cache_store_verified_total")).toBe(1);

    // With the upstream gone too, the torn copy is an error, never a clean short 200.
    await second.kill();
    await truncate(file, 1024);
    await up.stop();
    const third = await startCacheProcess({ workDir: dir, upstreams: [up.url], port });
    stops.push(() => third.stop());
    const refused = await fetch(`${third.url}/v2/faults/torn/blobs/${digest}`).then(
      async (res) => ({ status: res.status, body: Buffer.from(await res.arrayBuffer()) }),
      () => ({ status: 0, body: Buffer.alloc(0) }),
    );
    expect(refused.status).not.toBe(200);
    await expect(stat(file)).rejects.toThrow();
  });

  it("streams straight through and keeps nothing when the disk is full", async () => {
    const up = await registry("full-reg");
    const bytes = randomBytes(24 * 1024 * 1024);
    const digest = await pushBlob(up.url, "faults/full", bytes);
    const mnt = join(workDir, "tiny-tmpfs");
    await mkdir(mnt, { recursive: true });
    await run("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt]);
    stops.push(() => run("umount", [mnt], { allowFailure: true }));
    const cache = await cacheFor("full-cache", [up.url], { rootDirectory: join(mnt, "root") });
    for (let i = 0; i < 2; i++) {
      const r = await getHashed(`${cache.url}/v2/faults/full/blobs/${digest}`);
      expect(r.status).toBe(200);
      expect(r.bytes).toBe(bytes.length);
      expect(r.digest).toBe(digest);
    }
    expect(metricValue(await cache.metrics(), "cache_disk_full_total")).toBeGreaterThanOrEqual(1);
    expect(await filesUnder(join(mnt, "root", "blobs"))).toEqual([]);
    expect(await filesUnder(join(mnt, "root", "tmp"))).toEqual([]);
    const log = await readAccessLog(up.logFile);
    expect(log.filter((e) => e.method === "GET" && e.path.includes(digest)).length).toBe(2);
  });

  it("exits non-zero before listening when config.yml has a wrong value, naming the key and line", async () => {
    const dir = join(workDir, "bad-config");
    await mkdir(dir, { recursive: true });
    const port = await freePort("127.0.0.1");
    const file = join(dir, "config.yml");
    await writeFile(file, renderCacheConfig({ workDir: dir, upstreams: ["http://127.0.0.1:1"], port, blobttl: "one day" }, join(dir, "root")));
    const main = join(repoRoot(), "cache-server", "dist", "main.js");
    const result = await run(process.execPath, [main, file], { allowFailure: true });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("middleware.registry[0].options.blobttl");
    expect(result.stderr).toMatch(/line 16/);
    expect(result.stderr).not.toContain("test-secret-not-logged");
    await expect(fetch(`http://127.0.0.1:${port}/v2/`)).rejects.toThrow();
  });

  it("rejects path traversal and malformed names or digests without touching the disk", async () => {
    const up = await registry("traversal-reg");
    const cache = await cacheFor("traversal-cache", [up.url]);
    const before = await filesUnder(cache.rootDirectory);
    const raw = [
      "/v2/../../../etc/passwd/blobs/sha256:" + "a".repeat(64),
      "/v2/library/app/blobs/sha256:../../../../../etc/shadow",
      "/v2/library/app/blobs/..%2f..%2f..%2fetc%2fpasswd",
      "/v2/library/app/manifests/../../../tags/x",
      "/v2/library/app/blobs/sha256:" + "A".repeat(64),
      "/v2/UPPER/app/manifests/latest",
      "/v2/a//b/manifests/latest",
    ];
    for (const path of raw) {
      // A raw socket, so no client normalizes the path first.
      const status = await new Promise<number>((resolve, reject) => {
        const s = connect(Number(cache.hostPort.split(":")[1]), "127.0.0.1", () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let buf = "";
        s.on("data", (c: Buffer) => (buf += c.toString()));
        s.on("end", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0)));
        s.on("error", reject);
      });
      expect([400, 404], path).toContain(status);
    }
    expect(await filesUnder(cache.rootDirectory)).toEqual(before);
    expect((await readAccessLog(up.logFile)).filter((e) => e.path !== "/v2/")).toEqual([]);
  });
});
