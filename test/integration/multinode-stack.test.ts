// Issue 11: "the runbook example with Swarm-secret references deploys under the unchanged stack
// file on the multi-node harness and a docker client pulls through it". On a 3-node swarm of its
// own: the operator's Swarm secrets (DTR admin password, status token, the cache's certificate and
// key, as the runbook makes them with `docker secret create`), deploy/stack/controller.stack.yml
// unchanged on the manager (one replica: the harness has one manager), the spec applied into the
// store with `dtrcache apply` (every file a {secret: NAME} reference), the cache placed on node 2
// over TLS, and a docker client on node 3 pulling as alice through DTR, whose blob redirects go to
// the cache. (The harness's engines treat their subnet as insecure registries, so node 3's docker
// accepts the cache's certificate without a certs.d entry on this machine.)
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { generateSelfSigned } from "@dtrcache/controller";
import { dockerCli, repoRoot, startSwarm, type SwarmHandle, type SwarmNode } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { blobTraffic, dockerAs, startDtrStack, type DtrStack } from "../support/dtr-stack.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `mns-${suffix}`;
const cacheName = `mns-${suffix}`;
const PORT = 5000;
const STATUS_PORT = 9090;
const cli = join(repoRoot(), "controller", "dist", "cli", "main.js");
const statusToken = randomBytes(16).toString("hex");

let swarm: SwarmHandle | undefined;
let stack: DtrStack | undefined;
let docker = "";
let workDir = "";
let nodes: [SwarmNode, SwarmNode, SwarmNode];

const managerEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: workDir,
  DOCKER_CONFIG: join(workDir, "docker-config"),
  DOCKER_HOST: swarm?.manager.dockerHost ?? "",
  DTRCACHE_CONTROLLER_IMAGE: harness.images.controller ?? "",
  DTRCACHE_CONTROLLER_REPLICAS: "1",
  DTRCACHE_OWNER_ID: owner,
  DOCKER_SOCKET: (swarm?.manager.dockerHost ?? "").replace(/^unix:\/\//, ""),
});
const onManager = (args: string[], input?: string) => run(docker, args, { env: managerEnv(), ...(input !== undefined ? { input } : {}) });

async function status(): Promise<{ caches: { name: string; conditions: { type: string; status: string }[] }[] } | undefined> {
  try {
    const response = await fetch(`http://${nodes[0].ip}:${STATUS_PORT}/status`, {
      headers: { authorization: `Bearer ${statusToken}` },
      signal: AbortSignal.timeout(2_000),
    });
    return response.ok ? ((await response.json()) as { caches: { name: string; conditions: { type: string; status: string }[] }[] }) : undefined;
  } catch {
    return undefined;
  }
}
const condition = async (type: string): Promise<string | undefined> =>
  (await status())?.caches.find((c) => c.name === cacheName)?.conditions.find((c) => c.type === type)?.status;

beforeAll(async () => {
  const cacheImage = harness.images.cacheServer;
  const controllerImage = harness.images.controller;
  if (!cacheImage || !controllerImage) throw new Error("the global setup did not build the cache-server and controller images");
  docker = await dockerCli();
  swarm = await startSwarm({ nodes: 3 });
  const [n1, n2, n3] = swarm.nodes;
  if (!n1 || !n2 || !n3) throw new Error("expected 3 nodes");
  nodes = [n1, n2, n3];
  workDir = join(swarm.workDir, "multinode-stack");
  await mkdir(workDir, { recursive: true });
  await swarm.loadImage(cacheImage, harness.dockerHost);
  await swarm.loadImage(controllerImage, harness.dockerHost);
  stack = await startDtrStack({ workDir: join(workDir, "dtr"), hostIp: swarm.hostIp, dockerHost: n1.dockerHost });

  // The runbook's objects, made by the operator.
  const pair = await generateSelfSigned(n2.ip, new Date());
  await onManager(["secret", "create", "dtr-admin-password", "-"], stack.users.admin.password);
  await onManager(["secret", "create", "dtrcache-status-token", "-"], statusToken);
  await onManager(["secret", "create", "cache.cert.pem", "-"], pair.certPem);
  await onManager(["secret", "create", "cache.key.pem", "-"], pair.keyPem);
});

afterAll(async () => {
  await stack?.stop().catch(() => undefined);
  await swarm?.stop();
});

describe("the runbook with Swarm-secret references under the unchanged stack, on 3 nodes", () => {
  it("deploys the cache on node 2 from the store and a docker client on node 3 pulls through it over TLS", async () => {
    if (!stack || !swarm) throw new Error("setup failed");
    const [, n2, n3] = nodes;
    await onManager(["stack", "deploy", "--resolve-image", "never", "-c", join(repoRoot(), "deploy", "stack", "controller.stack.yml"), "dtrcache"]);

    // The spec: DTR's admin password and the cache's certificate and key by Swarm reference.
    const written = await stack.writeSpec({
      cacheName,
      nodeHostname: n2.hostname,
      port: PORT,
      externalURL: `https://${n2.ip}:${PORT}`,
      users: [stack.users.alice.username],
      image: harness.images.cacheServer ?? "",
      path: join(workDir, "written.yaml"),
    });
    const docs = parseAllDocuments(await readFile(written, "utf8"));
    if (!Array.isArray(docs)) throw new Error("expected a multi-document spec");
    for (const doc of docs) {
      if (doc.get("kind") === "DTR") doc.setIn(["spec", "admin", "password"], doc.createNode({ secret: "dtr-admin-password" }));
      if (doc.get("kind") === "ContentCache")
        doc.setIn(["spec", "tls"], doc.createNode({ certFile: { secret: "cache.cert.pem" }, keyFile: { secret: "cache.key.pem" } }));
    }
    const specFile = join(workDir, "cachespec.yaml");
    await writeFile(specFile, docs.map((d) => d.toString()).join(""));
    const applied = await run(process.execPath, [cli, "apply", "-f", specFile, "--id", owner], {
      env: { PATH: process.env.PATH ?? "", DOCKER_HOST: swarm.manager.dockerHost },
      allowFailure: true,
    });
    expect(applied.code, applied.stderr).toBe(0);

    await expect.poll(() => condition("Ready"), { timeout: 120_000, interval: 500 }).toBe("True");
    await expect.poll(() => condition("DtrSynced"), { timeout: 60_000, interval: 500 }).toBe("True");
    const tasks = await onManager(["service", "ps", cacheName, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"]);
    expect(tasks.stdout.trim()).toMatch(new RegExp(`^${n2.hostname} Running`));

    // A docker client on node 3, as alice, through DTR: blobs redirected to the cache on node 2.
    const viaDtr = dockerAs({
      docker,
      dockerHost: n3.dockerHost,
      configDir: join(workDir, "cli-node3-alice"),
      registryHostPort: stack.emulator.hostPort,
      user: stack.users.alice,
    });
    await viaDtr.login();
    stack.emulator.clearRequestLog();
    await viaDtr.pull(stack.sampleImage.ref);
    expect(await viaDtr.repoDigests(stack.sampleImage.ref)).toContain(`${stack.emulator.hostPort}/${stack.sampleImage.repository}@${stack.sampleImage.digest}`);
    const traffic = blobTraffic(stack.emulator.requestLog(), stack.sampleImage.repository);
    expect(traffic.redirected.length).toBeGreaterThanOrEqual(2);
    for (const r of traffic.redirected) expect(r.location.startsWith(`https://${n2.ip}:${PORT}/`)).toBe(true);
    expect(traffic.servedDirect).toEqual([]);
  });
});
