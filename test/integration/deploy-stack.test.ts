// Deploys the controller the way an operator would: deploy/stack/controller.stack.yml with
// `docker stack deploy`, the offline controller image, the CacheSpec as a Swarm config and the DTR
// admin password as a Swarm secret. The controller runs as a Swarm task on the manager, talks to
// the engine through the mounted socket, deploys the cache and registers it with the DTR emulator;
// its status endpoint answers on the published port. Afterwards `dtrcache reconcile --once --allow-empty`
// run from the host tears the cache down in order (users reset, registration deleted, objects gone).
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { createDockerClient, DockerodeSwarmApi, labels, resolveDockerConnection } from "@dtrcache/controller";
import { removeOwned } from "../bench/controller/support.js";
import { dockerCli, repoRoot } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { startDtrStack, type DtrStack } from "../support/dtr-stack.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `stack-${suffix}`;
const cacheName = `stack-${suffix}`;
const stackName = `dtrcache-${suffix}`;
const specConfig = `cachespec-${suffix}`;
const adminSecret = `dtr-admin-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const cachePort = 35_000 + Math.floor(Math.random() * 2_000);
const statusPort = 37_000 + Math.floor(Math.random() * 2_000);
const statusUrl = `http://${node.ip}:${statusPort}`;
const socketPath = harness.dockerHost.replace(/^unix:\/\//, "");
const swarm = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));

let docker = "";
let workDir = "";
let stack: DtrStack;

const dockerEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: workDir,
  DOCKER_CONFIG: join(workDir, "docker-config"),
  DOCKER_HOST: harness.dockerHost,
  DTRCACHE_CONTROLLER_IMAGE: harness.images.controller ?? "",
  DTRCACHE_SPEC_CONFIG: specConfig,
  DTRCACHE_ADMIN_SECRET: adminSecret,
  DTRCACHE_STATUS_PORT: String(statusPort),
  DTRCACHE_OWNER_ID: owner,
  DOCKER_SOCKET: socketPath,
});

/** The spec as the controller inside the task sees it: the password is the stack's secret file. */
function specForTheTask(text: string): string {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error("expected a multi-document spec");
  for (const doc of docs) if (doc.get("kind") === "DTR") doc.setIn(["spec", "admin", "password"], doc.createNode({ file: "/run/secrets/dtr-admin-password" }));
  return docs.map((d) => d.toString()).join("");
}

interface StatusBody {
  caches: { name: string; conditions: { type: string; status: string; reason: string }[]; dtr: { registrationId?: string } }[];
}

async function fetchStatus(): Promise<StatusBody | undefined> {
  try {
    const response = await fetch(`${statusUrl}/status`, { signal: AbortSignal.timeout(2_000) });
    return response.ok ? ((await response.json()) as StatusBody) : undefined;
  } catch {
    return undefined;
  }
}

const condition = (body: StatusBody | undefined, type: string): string | undefined => body?.caches.find((c) => c.name === cacheName)?.conditions.find((c) => c.type === type)?.status;

beforeAll(async () => {
  if (!harness.images.controller || !harness.images.cacheServer) throw new Error("the harness did not build the controller and cache-server images (are both packages compiled?)");
  docker = await dockerCli();
  workDir = await mkdtemp(join(harness.workDir, "deploy-stack-"));
  stack = await startDtrStack({ workDir: join(workDir, "stack"), hostIp: harness.hostIp, dockerHost: harness.dockerHost, repository: `stack/web-${suffix}` });
  const specPath = await stack.writeSpec({
    cacheName,
    nodeHostname: node.hostname,
    port: cachePort,
    externalURL: `http://${node.ip}:${cachePort}`,
    users: ["alice"],
    image: harness.images.cacheServer,
    nodeLabel: `dtr.cache.stack${suffix}=true`,
    passwordRef: "file",
    path: join(workDir, "cachespec.yaml"),
  });
  await run(docker, ["config", "create", specConfig, "-"], { env: dockerEnv(), input: specForTheTask(await readFile(specPath, "utf8")) });
  await run(docker, ["secret", "create", adminSecret, "-"], { env: dockerEnv(), input: stack.users.admin.password });
});

afterAll(async () => {
  if (docker) {
    await run(docker, ["stack", "rm", stackName], { env: dockerEnv(), allowFailure: true });
    // the stack's service must be gone before its config and secret can be removed
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await swarm.listServices({ labels: [`com.docker.stack.namespace=${stackName}`] }).catch(() => [])).length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await run(docker, ["config", "rm", specConfig], { env: dockerEnv(), allowFailure: true });
    await run(docker, ["secret", "rm", adminSecret], { env: dockerEnv(), allowFailure: true });
  }
  await removeOwned(swarm, owner).catch(() => undefined);
  await stack?.stop();
});

describe("the controller deployed with deploy/stack/controller.stack.yml", () => {
  it("runs as a Swarm task on the manager, deploys the cache and registers it with DTR", async () => {
    const stackFile = join(repoRoot(), "deploy", "stack", "controller.stack.yml");
    await run(docker, ["stack", "deploy", "--resolve-image", "never", "-c", stackFile, stackName], { env: dockerEnv() });

    // The status endpoint of the controller task answers on the manager's published port.
    await expect.poll(async () => condition(await fetchStatus(), "Ready"), { timeout: 90_000, interval: 500 }).toBe("True");
    await expect.poll(async () => condition(await fetchStatus(), "DtrSynced"), { timeout: 30_000, interval: 500 }).toBe("True");

    const registration = stack.emulator.contentCaches().find((c) => c.name === cacheName);
    expect(registration?.host).toBe(`http://${node.ip}:${cachePort}`);
    expect(stack.emulator.settings()["alice"]).toBe(registration?.id);
    expect((await fetchStatus())?.caches.find((c) => c.name === cacheName)?.dtr.registrationId).toBe(registration?.id);

    // The cache the task deployed answers the registry API on its node.
    const v2 = await fetch(`http://${node.ip}:${cachePort}/v2/`, { signal: AbortSignal.timeout(5_000) });
    expect(v2.headers.get("docker-distribution-api-version")).toBe("registry/2.0");

    // `dtrcache status` from the host reads the same endpoint.
    const cli = await run(process.execPath, [join(repoRoot(), "controller", "dist", "cli", "main.js"), "status", "--url", statusUrl], { env: { PATH: process.env.PATH ?? "" } });
    expect(cli.stdout).toMatch(new RegExp(`${cacheName}\\s+True\\s+1/1`));
  });

  it("tears the cache down in order with `dtrcache reconcile --once --allow-empty` once the controller is gone", async () => {
    await run(docker, ["stack", "rm", stackName], { env: dockerEnv() });
    await expect.poll(async () => (await swarm.listServices({ labels: [`com.docker.stack.namespace=${stackName}`] })).length, { timeout: 30_000 }).toBe(0);

    // A spec with the DTR document only: the cache has left it.
    const emptied = join(workDir, "emptied.yaml");
    const docs = parseAllDocuments(await readFile(join(workDir, "cachespec.yaml"), "utf8"));
    if (!Array.isArray(docs)) throw new Error("expected a multi-document spec");
    await writeFile(emptied, docs.filter((d) => d.get("kind") === "DTR").map((d) => d.toString()).join(""));
    const cli = join(repoRoot(), "controller", "dist", "cli", "main.js");
    const env = { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost };

    // Without the opt-in the controller refuses to remove every cache.
    const refused = await run(process.execPath, [cli, "reconcile", "--once", "-f", emptied, "--id", owner, "--timeout", "3s"], { env, allowFailure: true });
    expect(refused.code, refused.stderr + refused.stdout).toBe(1);
    expect(refused.stderr + refused.stdout).toContain("refusing to remove them all");
    expect((await swarm.listServices(labels.ownerFilter(owner))).length).toBe(1);

    const applied = await run(process.execPath, [cli, "reconcile", "--once", "-f", emptied, "--id", owner, "--allow-empty", "--timeout", "60s"], { env, allowFailure: true });
    expect(applied.stderr + applied.stdout).not.toContain(stack.users.admin.password);
    expect(applied.code).toBe(0);

    const filter = labels.ownerFilter(owner);
    expect(await swarm.listServices(filter)).toEqual([]);
    expect(await swarm.listConfigs(filter)).toEqual([]);
    expect(await swarm.listSecrets(filter)).toEqual([]);
    const nodes = await swarm.listNodes();
    expect(nodes.some((n) => Object.keys(n.spec.Labels ?? {}).some((k) => k.startsWith(`dtr.cache.stack${suffix}`)))).toBe(false);
    expect(stack.emulator.contentCaches().some((c) => c.name === cacheName)).toBe(false);
    expect(stack.emulator.settings()["alice"]).toBe("");
  });
});
