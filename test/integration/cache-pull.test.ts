// The cache against the real thing: Debian's docker-registry as upstream (the harness registry),
// skopeo and the harness engine's docker CLI as clients. Upstream traffic is counted from the
// registry's own access log.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { dockerCli, freePort, readAccessLog } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { buildImage, getHashed, pushBlob, sha256, startCacheProcess, tarOf, writeOciLayout, type CacheProcess } from "../support/index.js";

const harness = inject("harness");
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const suffix = randomBytes(3).toString("hex");
let workDir = "";
let cache: CacheProcess;
let docker = "";

async function blobGets(digest?: string): Promise<number> {
  const log = await readAccessLog(harness.registry.logFile);
  return log.filter((e) => e.method === "GET" && e.path.includes("/blobs/sha256:") && (!digest || e.path.includes(digest))).length;
}

beforeAll(async () => {
  docker = await dockerCli();
  workDir = await mkdtemp(join(harness.workDir, "cache-pull-"));
  cache = await startCacheProcess({ workDir, upstreams: [harness.registry.url], listenHost: harness.hostIp, port: await freePort(harness.hostIp) });
});

afterAll(async () => {
  await cache?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("pulling through the cache from docker-registry", () => {
  const repo = `cachetest/pull-${suffix}`;
  let upstreamDigest = "";
  let upstreamManifest = Buffer.alloc(0);
  const image = buildImage([
    tarOf([{ name: "payload.bin", content: randomBytes(3 * 1024 * 1024) }]),
    tarOf([{ name: "second.txt", content: Buffer.from(`hello ${suffix}\n`) }]),
  ]);

  beforeAll(async () => {
    const layout = join(workDir, "layout");
    await writeOciLayout(layout, "1", image);
    await run("skopeo", ["copy", "--dest-tls-verify=false", `oci:${layout}:1`, `docker://${harness.registry.hostPort}/${repo}:1`]);
    // skopeo may re-serialize the manifest on push: the upstream's digest is the reference.
    const head = await fetch(`${harness.registry.url}/v2/${repo}/manifests/1`, { headers: { accept: OCI_MANIFEST } });
    upstreamManifest = Buffer.from(await head.arrayBuffer());
    upstreamDigest = head.headers.get("docker-content-digest") ?? "";
    expect(sha256(upstreamManifest)).toBe(upstreamDigest);
  });

  it("copies an image through the cache with skopeo, digests equal to the upstream's", async () => {
    const out = join(workDir, "skopeo-out");
    await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${cache.hostPort}/${repo}:1`, `dir:${out}`]);
    const manifest = await readFile(join(out, "manifest.json"));
    expect(sha256(manifest)).toBe(upstreamDigest);
    const layers = (JSON.parse(upstreamManifest.toString()) as { layers: { digest: string }[] }).layers;
    expect(layers).toHaveLength(2);
    for (const { digest } of layers) expect(sha256(await readFile(join(out, digest.slice(7))))).toBe(digest);
    const inspect = JSON.parse((await run("skopeo", ["inspect", "--tls-verify=false", `docker://${cache.hostPort}/${repo}:1`])).stdout) as { Digest: string };
    expect(inspect.Digest).toBe(upstreamDigest);
  });

  it("lets the harness engine's docker pull through the cache, the second pull without any upstream blob GET", async () => {
    const ref = `${cache.hostPort}/${repo}:1`;
    const d = (...args: string[]): Promise<{ stdout: string }> => run(docker, ["-H", harness.dockerHost, ...args]);
    try {
      await d("pull", ref);
      const digests = (await d("image", "inspect", ref, "--format", "{{json .RepoDigests}}")).stdout;
      expect(digests).toContain(upstreamDigest);
      await d("image", "rm", ref);
      const before = await blobGets();
      await d("pull", ref);
      expect(await blobGets()).toBe(before);
      expect((await d("image", "inspect", ref, "--format", "{{json .RepoDigests}}")).stdout).toContain(upstreamDigest);
    } finally {
      await run(docker, ["-H", harness.dockerHost, "image", "rm", ref], { allowFailure: true });
    }
  });

  it("fetches a cold 64 MiB blob once for 50 concurrent requests, every client getting the right bytes", async () => {
    const big = randomBytes(64 * 1024 * 1024);
    const digest = await pushBlob(harness.registry.url, repo, big);
    const results = await Promise.all(Array.from({ length: 50 }, () => getHashed(`${cache.url}/v2/${repo}/blobs/${digest}`)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.bytes).toBe(big.length);
      expect(r.digest).toBe(digest);
    }
    expect(await blobGets(digest)).toBe(1);
  });
});
