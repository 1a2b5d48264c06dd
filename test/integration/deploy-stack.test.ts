// Deploys the controller the way an operator would (docs/operations.md): the DTR admin password,
// the status token and the cache's certificate and key (the runbook's cache.cert.pem and
// cache.key.pem, made with `docker secret create`) as Swarm secrets, deploy/stack/controller.stack.yml
// unchanged with `docker stack deploy` and the offline controller image, then `dtrcache apply -f`
// from the host into the swarm's spec store, every one of them by reference ({secret: NAME}); a
// client (skopeo, trusting only the cache's certificate) pulls through the cache over TLS. The controller runs as a Swarm task on the
// manager (replicas 1: the harness has one manager), reads the store, deploys the cache and
// registers it with the DTR emulator; its status endpoint answers on the published port behind the
// token; an `edit` through the store is applied live. Afterwards `dtrcache delete` tears the
// cache down in order (users reset, registration deleted, objects gone) while the controller runs.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { Agent, request } from "undici";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { createDockerClient, DockerodeSwarmApi, generateSelfSigned, labels, resolveDockerConnection } from "@dtrcache/controller";
import { sha256 } from "../support/oci.js";
import { removeOwned } from "../bench/controller/support.js";
import { dockerCli, repoRoot } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { startDtrStack, type DtrStack } from "../support/dtr-stack.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `stack-${suffix}`;
const cacheName = `stack-${suffix}`;
const stackName = `dtrcache-${suffix}`;
const adminSecret = `dtr-admin-${suffix}`;
const tokenSecret = `dtrcache-status-token-${suffix}`;
const certSecret = `cache.cert.pem-${suffix}`;
const keySecret = `cache.key.pem-${suffix}`;
let cachePair: { certPem: string; keyPem: string };
const statusToken = randomBytes(16).toString("hex");
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
  DTRCACHE_CONTROLLER_REPLICAS: "1",
  DTRCACHE_ADMIN_SECRET: adminSecret,
  DTRCACHE_STATUS_TOKEN_SECRET: tokenSecret,
  DTRCACHE_STATUS_PORT: String(statusPort),
  DTRCACHE_OWNER_ID: owner,
  DOCKER_SOCKET: socketPath,
});

const cacheUrl = `https://${node.ip}:${cachePort}`;

/** The spec for the store: the password, the cache's certificate and key are Swarm secrets. */
function specForTheStore(text: string): string {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error("expected a multi-document spec");
  for (const doc of docs) {
    if (doc.get("kind") === "DTR") doc.setIn(["spec", "admin", "password"], doc.createNode({ secret: adminSecret }));
    if (doc.get("kind") === "ContentCache") {
      doc.setIn(["spec", "tls"], doc.createNode({ certFile: { secret: certSecret }, keyFile: { secret: keySecret } }));
      doc.setIn(["spec", "externalURL"], cacheUrl);
    }
  }
  return docs.map((d) => d.toString()).join("");
}

const cli = join(repoRoot(), "controller", "dist", "cli", "main.js");
const dtrcache = (...args: string[]) =>
  run(process.execPath, [cli, ...args, "--id", owner], { env: { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost }, allowFailure: true });

interface StatusBody {
  caches: { name: string; conditions: { type: string; status: string; reason: string }[]; dtr: { registrationId?: string } }[];
}

async function fetchStatus(): Promise<StatusBody | undefined> {
  try {
    const response = await fetch(`${statusUrl}/status`, { headers: { authorization: `Bearer ${statusToken}` }, signal: AbortSignal.timeout(2_000) });
    return response.ok ? ((await response.json()) as StatusBody) : undefined;
  } catch {
    return undefined;
  }
}

const condition = (body: StatusBody | undefined, type: string): string | undefined =>
  body?.caches.find((c) => c.name === cacheName)?.conditions.find((c) => c.type === type)?.status;

beforeAll(async () => {
  if (!harness.images.controller || !harness.images.cacheServer)
    throw new Error("the harness did not build the controller and cache-server images (are both packages compiled?)");
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
  await writeFile(join(workDir, "store.yaml"), specForTheStore(await readFile(specPath, "utf8")));
  await run(docker, ["secret", "create", adminSecret, "-"], { env: dockerEnv(), input: stack.users.admin.password });
  await run(docker, ["secret", "create", tokenSecret, "-"], { env: dockerEnv(), input: statusToken });
  cachePair = await generateSelfSigned(node.ip, new Date());
  await run(docker, ["secret", "create", certSecret, "-"], { env: dockerEnv(), input: cachePair.certPem });
  await run(docker, ["secret", "create", keySecret, "-"], { env: dockerEnv(), input: cachePair.keyPem });
});

afterAll(async () => {
  if (docker) {
    await run(docker, ["stack", "rm", stackName], { env: dockerEnv(), allowFailure: true });
    // the stack's service must be gone before its config and secret can be removed
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await swarm.listServices({ labels: [`com.docker.stack.namespace=${stackName}`] }).catch(() => [])).length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await run(docker, ["secret", "rm", adminSecret], { env: dockerEnv(), allowFailure: true });
    await run(docker, ["secret", "rm", tokenSecret, certSecret, keySecret], { env: dockerEnv(), allowFailure: true });
    for (const c of await swarm.listConfigs({ labels: [`io.dtrcache.store.owner=${owner}`] }).catch(() => []))
      await swarm.removeConfig(c.id).catch(() => undefined);
    for (const c of await swarm.listConfigs({ labels: [] }).catch(() => []))
      if (c.name === `dtrcache-lease-${owner}`) await swarm.removeConfig(c.id).catch(() => undefined);
  }
  await removeOwned(swarm, owner).catch(() => undefined);
  await stack?.stop();
});

describe("the controller deployed with deploy/stack/controller.stack.yml", () => {
  it("runs as a Swarm task on the manager, reads the store, deploys the cache and registers it with DTR; an edit is live", async () => {
    const stackFile = join(repoRoot(), "deploy", "stack", "controller.stack.yml");
    await run(docker, ["stack", "deploy", "--resolve-image", "never", "-c", stackFile, stackName], { env: dockerEnv() });
    const applied = await dtrcache("apply", "-f", join(workDir, "store.yaml"));
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain(`contentcache/${cacheName} created`);

    // The status endpoint of the controller task answers on the manager's published port.
    await expect.poll(async () => condition(await fetchStatus(), "Ready"), { timeout: 90_000, interval: 500 }).toBe("True");
    await expect.poll(async () => condition(await fetchStatus(), "DtrSynced"), { timeout: 30_000, interval: 500 }).toBe("True");

    const registration = stack.emulator.contentCaches().find((c) => c.name === cacheName);
    expect(registration?.host).toBe(cacheUrl);
    expect(stack.emulator.settings()["alice"]).toBe(registration?.id);
    expect((await fetchStatus())?.caches.find((c) => c.name === cacheName)?.dtr.registrationId).toBe(registration?.id);

    // The cache answers the registry API over TLS with the certificate from the operator's secret
    // (mounted as it is: the controller made no cert/key secret of its own).
    const v2 = await request(`${cacheUrl}/v2/`, { dispatcher: new Agent({ connect: { ca: cachePair.certPem, timeout: 5_000 } }) });
    await v2.body.dump();
    expect(v2.headers["docker-distribution-api-version"]).toBe("registry/2.0");
    const mounted = (await swarm.listServices(labels.ownerFilter(owner)))[0]?.spec.TaskTemplate.ContainerSpec.Secrets?.map(
      (r) => `${r.SecretName} ${r.File.Name}`,
    ).sort();
    expect(mounted).toEqual(expect.arrayContaining([`${certSecret} /run/secrets/cache.cert.pem`, `${keySecret} /run/secrets/cache.key.pem`]));
    expect((await swarm.listSecrets(labels.ownerFilter(owner))).filter((o) => ["cert", "key"].includes(o.labels["io.dtrcache.purpose"] ?? ""))).toEqual([]);

    // A client pulls through the cache as alice, trusting nothing but the cache's certificate.
    const home = join(workDir, "skopeo-home");
    const certDir = join(workDir, "cache-certs");
    await mkdir(home, { recursive: true });
    await mkdir(certDir, { recursive: true });
    await writeFile(join(certDir, "ca.crt"), cachePair.certPem);
    const registry = `${node.ip}:${cachePort}`;
    const authFile = join(home, "auth.json");
    await writeFile(
      authFile,
      JSON.stringify({ auths: { [registry]: { auth: Buffer.from(`${stack.users.alice.username}:${stack.users.alice.password}`).toString("base64") } } }),
      { mode: 0o600 },
    );
    const target = join(workDir, "pulled");
    const pulled = await run(
      "skopeo",
      [
        "copy",
        "--retry-times",
        "0",
        "--src-cert-dir",
        certDir,
        "--authfile",
        authFile,
        `docker://${registry}/${stack.sampleImage.repository}:${stack.sampleImage.tag}`,
        `dir:${target}`,
      ],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_RUNTIME_DIR: home },
        timeoutMs: 120_000,
        allowFailure: true,
      },
    );
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(sha256(await readFile(join(target, "manifest.json")))).toBe(stack.sampleImage.digest);

    // The endpoint wants the token; `dtrcache status` from the host reads it with the token.
    expect((await fetch(`${statusUrl}/status`, { signal: AbortSignal.timeout(2_000) })).status).toBe(401);
    const tokenFile = join(workDir, "status-token");
    await writeFile(tokenFile, statusToken, { mode: 0o600 });
    const status = await run(process.execPath, [cli, "status", "--url", statusUrl, "--token-file", tokenFile], { env: { PATH: process.env.PATH ?? "" } });
    expect(status.stdout).toMatch(new RegExp(`${cacheName}\\s+True\\s+1/1`));

    // One command changes the running cache: an edit through the store, picked up without a restart.
    const editor = join(workDir, "editor.sh");
    await writeFile(editor, "#!/bin/sh\nsed -i 's/blobTTL: .*/blobTTL: 2h/' \"$1\"\n", { mode: 0o755 });
    const edited = await run(process.execPath, [cli, "edit", cacheName, "--id", owner], {
      env: { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost, DTRCACHE_EDITOR: editor },
      allowFailure: true,
    });
    expect(edited.code, edited.stderr).toBe(0);
    const serviceConfigText = async (): Promise<string> => {
      const service = (await swarm.listServices(labels.ownerFilter(owner)))[0];
      const ref = service?.spec.TaskTemplate.ContainerSpec.Configs?.find((c) => c.File.Name === "/config.yml");
      return ref ? ((await swarm.inspectConfig(ref.ConfigID)).data?.toString("utf8") ?? "") : "";
    };
    await expect.poll(serviceConfigText, { timeout: 30_000, interval: 500 }).toContain("blobttl: 2h");

    // describe shows the controller's events for the cache.
    const described = await run(
      process.execPath,
      [cli, "describe", cacheName, "--id", owner, "--url", statusUrl, "--token-file", tokenFile, "--events", "50"],
      { env: { PATH: process.env.PATH ?? "", DOCKER_HOST: harness.dockerHost } },
    );
    expect(described.stdout).toMatch(/Events:\n/);
    expect(described.stdout).toMatch(/ServiceCreated\s+\S+\s+swarm\s+created service /);
    expect(described.stdout).toMatch(/DtrSynced\s+\S+\s+dtr\s+registration /);
    expect(described.stdout).not.toContain(stack.users.admin.password);
  });

  it("tears the cache down in order with `dtrcache delete` while the controller runs", async () => {
    const deleted = await dtrcache("delete", cacheName);
    expect(deleted.code, deleted.stderr).toBe(0);
    const filter = labels.ownerFilter(owner);
    await expect.poll(async () => (await swarm.listServices(filter)).length, { timeout: 60_000, interval: 500 }).toBe(0);
    await expect
      .poll(async () => (await swarm.listConfigs(filter)).length + (await swarm.listSecrets(filter)).length, { timeout: 30_000, interval: 500 })
      .toBe(0);
    const nodes = await swarm.listNodes();
    expect(nodes.some((n) => Object.keys(n.spec.Labels ?? {}).some((k) => k.startsWith(`dtr.cache.stack${suffix}`)))).toBe(false);
    expect(stack.emulator.contentCaches().some((c) => c.name === cacheName)).toBe(false);
    expect(stack.emulator.settings()["alice"]).toBe("");
  });
});
