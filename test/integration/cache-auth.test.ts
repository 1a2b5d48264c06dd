// Authorization through the cache against docker-registry with token auth (a private
// repository): the registry's own challenge reaches clients unchanged, no bytes go out without a
// credential the registry accepts (also once the blob is cached), and the harness engine's docker
// CLI logs in and pulls through the cache.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { dockerCli, freePort } from "../harness/index.js";
import { run } from "../harness/proc.js";
import {
  buildImage,
  getHashed,
  pushImage,
  sha256,
  startCacheProcess,
  startTokenRegistry,
  tarOf,
  type CacheProcess,
  type TokenRegistry,
} from "../support/index.js";

const harness = inject("harness");
const repo = "private/app";
const password = `pw-${randomBytes(6).toString("hex")}`;
let workDir = "";
let registry: TokenRegistry;
let cache: CacheProcess;
const image = buildImage([tarOf([{ name: "secret.bin", content: randomBytes(300_000) }])]);
const layer = sha256(image.layers[0] ?? Buffer.alloc(0));

beforeAll(async () => {
  workDir = await mkdtemp(join(harness.workDir, "cache-auth-"));
  registry = await startTokenRegistry({ workDir: join(workDir, "registry"), tokenHost: harness.hostIp, users: { alice: password } });
  await pushImage(registry.url, repo, "1", image, { authorization: `Bearer ${registry.issue("alice", [`repository:${repo}:pull,push`])}` });
  cache = await startCacheProcess({
    workDir: join(workDir, "cache"),
    upstreams: [registry.url],
    listenHost: harness.hostIp,
    port: await freePort(harness.hostIp),
  });
});

afterAll(async () => {
  await cache?.stop();
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("a private repository behind token auth", () => {
  it("answers 401 with the registry's own challenge and never bytes without a credential", async () => {
    const direct = await fetch(`${registry.url}/v2/${repo}/blobs/${layer}`);
    await direct.arrayBuffer();
    const anon = await fetch(`${cache.url}/v2/${repo}/blobs/${layer}`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get("www-authenticate")).toBe(direct.headers.get("www-authenticate"));
    expect(anon.headers.get("www-authenticate")).toContain(`realm="${registry.realm}"`);
    expect(Buffer.from(await anon.arrayBuffer()).length).toBeLessThan(1000);

    const pull = `Bearer ${registry.issue("alice", [`repository:${repo}:pull`])}`;
    const ok = await getHashed(`${cache.url}/v2/${repo}/blobs/${layer}`, { authorization: pull });
    expect(ok.status).toBe(200);
    expect(ok.digest).toBe(layer);

    // Cached now: still refused without a credential, and with a token for another repository.
    const anonAfter = await fetch(`${cache.url}/v2/${repo}/blobs/${layer}`);
    expect(anonAfter.status).toBe(401);
    expect(Buffer.from(await anonAfter.arrayBuffer()).length).toBeLessThan(1000);
    const otherRepo = await fetch(`${cache.url}/v2/${repo}/blobs/${layer}`, {
      headers: { authorization: `Bearer ${registry.issue("alice", ["repository:other/app:pull"])}` },
    });
    expect(otherRepo.status).toBe(401);
    await otherRepo.arrayBuffer();
    const manifest = await fetch(`${cache.url}/v2/${repo}/manifests/1`);
    expect(manifest.status).toBe(401);
    await manifest.arrayBuffer();

    const log = await readFile(cache.logFile, "utf8");
    expect(log).not.toContain(pull.slice(7));
    expect(log).not.toContain("test-secret-not-logged");
  });

  it("lets the harness engine's docker CLI log in through the cache and pull the private image", async () => {
    const docker = await dockerCli();
    const config = join(workDir, "docker-config");
    const ref = `${cache.hostPort}/${repo}:1`;
    const d = (...args: string[]): Promise<{ stdout: string }> => run(docker, ["--config", config, "-H", harness.dockerHost, ...args]);
    try {
      await expect(d("pull", ref)).rejects.toThrow();
      await run(docker, ["--config", config, "-H", harness.dockerHost, "login", "--username", "alice", "--password-stdin", cache.hostPort], {
        input: password,
      });
      await d("pull", ref);
      const ids = (await d("image", "inspect", ref, "--format", "{{json .RepoDigests}}")).stdout;
      const upstream = await fetch(`${registry.url}/v2/${repo}/manifests/1`, {
        method: "HEAD",
        headers: { accept: "application/vnd.oci.image.manifest.v1+json", authorization: `Bearer ${registry.issue("alice", [`repository:${repo}:pull`])}` },
      });
      expect(ids).toContain(upstream.headers.get("docker-content-digest") ?? "missing");
    } finally {
      await run(docker, ["--config", config, "-H", harness.dockerHost, "image", "rm", ref], { allowFailure: true });
      await run(docker, ["--config", config, "-H", harness.dockerHost, "logout", cache.hostPort], { allowFailure: true });
    }
  });
});
