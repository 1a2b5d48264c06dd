// docs/operations.md, executed (issue 13, item 4): every block marked `<!-- docs-test: STEP -->`
// runs verbatim, in the guide's order, in one operator "terminal" (bash, set -euo pipefail,
// variables exported by one block seen by the next) against the harness's swarm, and must exit 0.
// The environment the guide documents in 1.0 is set from the harness: DOCKER_HOST is the private
// manager, REGISTRY the harness's registry, DTR a TLS DTR emulator in front of that registry (its
// self-signed certificate is the operator's dtr.cert.pem), and alice, a user of the cache, is
// logged in to it. What the prose asks the reader to do between blocks (write the renewed
// certificate, edit cachespec.yaml) the test does with the YAML library. After the key steps it
// checks the documented outcome: the cache Ready and synced with DTR, a docker pull through DTR
// whose blobs the cache serves, an edit rolled out, new secrets mounted and served, the upgrade's
// image running, and after the uninstall nothing of the project left in the swarm or in DTR.
//
// Not run, on purpose (marked `docs-test: skip (why)` in the guide): `npm ci && npm run build` (it would rewrite the
// node_modules of the checkout this test runs from; the integration setup needs it built anyway)
// and the completion `cp`s (they write to this machine's /etc and /usr/local).
import { randomBytes, X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { generateSelfSigned } from "@dtrcache/controller";
import { startDtrEmulator, type DtrEmulator } from "../dtr-emulator/index.js";
import { dockerCli, pushTestImage, repoRoot, type PushedImage } from "../harness/index.js";
import { run } from "../harness/proc.js";
import { blobTraffic } from "../support/dtr-stack.js";
import { markedBlocks, requireSteps, variablesSet, type DocBlock } from "../support/docs/blocks.js";
import { docShell, type BlockRun, type DocShell } from "../support/docs/shell.js";
import { OPERATIONS_GUIDE, OPERATIONS_STEPS, type OperationsStep } from "../support/docs/operations-steps.js";

const GUIDE = OPERATIONS_GUIDE;
const STEPS = OPERATIONS_STEPS;
type Step = OperationsStep;

const harness = inject("harness");
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const CACHE = "region-asia";
const CACHE_PORT = 5443; // a port no other file of the shared harness publishes
const STACK = "dtr-cache-controller";
const statusUrl = `http://${node.ip}:9090`;
const registry = `${harness.registry.hostPort}/docs-ops`;
const version = "0.1.0";
const newVersion = "0.1.1-docs";
const users = {
  admin: { username: "admin", password: randomBytes(12).toString("base64url"), admin: true },
  alice: { username: "alice", password: randomBytes(12).toString("base64url") },
};

let docker = "";
let workDir = "";
let opDir = "";
let emulator: DtrEmulator | undefined;
let sample: PushedImage;
let shell: DocShell;
let blocks: Map<Step, DocBlock>;
const timings: string[] = [];

const dockerEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: join(workDir, "home"),
  DOCKER_CONFIG: join(workDir, "docker-config"),
  DOCKER_HOST: harness.dockerHost,
});
const onSwarm = (args: string[]) => run(docker, args, { env: dockerEnv(), allowFailure: true });

async function step(name: Step, options: { timeoutMs?: number; set?: Record<string, string> } = {}): Promise<BlockRun> {
  const block = blocks.get(name);
  if (!block) throw new Error(`no block ${name}`);
  const result = await shell.run(block, options);
  timings.push(`${name} ${result.seconds.toFixed(1)} s`);
  // what each block printed, for a reader of a run (never secrets: the guide's commands print none)
  if (process.env["DTRCACHE_DOCS_LOG"])
    await appendFile(process.env["DTRCACHE_DOCS_LOG"], `=== ${name} (exit ${result.code}, ${result.seconds.toFixed(1)} s)\n${result.stdout}${result.stderr}`);
  expect(
    result.code,
    `${GUIDE}:${block.line} step ${name} exited ${result.code}\n--- stdout\n${result.stdout.slice(-3000)}\n--- stderr\n${result.stderr.slice(-3000)}`,
  ).toBe(0);
  return result;
}

interface CacheStatus {
  name: string;
  generation: string;
  observedGeneration: string;
  conditions: { type: string; status: string; reason: string }[];
}

async function status(token?: string): Promise<{ code: number; caches: CacheStatus[] }> {
  const bearer = token ?? (await readFile(join(opDir, "status-token"), "utf8")).trim();
  try {
    const response = await fetch(`${statusUrl}/status`, { headers: { authorization: `Bearer ${bearer}` }, signal: AbortSignal.timeout(2_000) });
    return { code: response.status, caches: response.ok ? ((await response.json()) as { caches: CacheStatus[] }).caches : [] };
  } catch {
    return { code: 0, caches: [] };
  }
}

/** "Ready DtrSynced" when both are True for the cache's current spec, else what they are. */
async function converged(): Promise<string> {
  const cache = (await status()).caches.find((c) => c.name === CACHE);
  if (!cache) return "absent";
  const of = (type: string) => cache.conditions.find((c) => c.type === type);
  const current = cache.observedGeneration === cache.generation ? "" : " (changing)";
  return `${of("Ready")?.status === "True" ? "Ready" : `Ready=${of("Ready")?.reason}`} ${of("DtrSynced")?.status === "True" ? "DtrSynced" : `DtrSynced=${of("DtrSynced")?.reason}`}${current}`;
}

/** The cache service's mounted secret names and image, from the engine. */
async function cacheService(): Promise<{ image: string; secrets: string[]; config: string }> {
  const inspected = await onSwarm(["service", "inspect", CACHE, "--format", "{{json .Spec.TaskTemplate.ContainerSpec}}"]);
  if (inspected.code !== 0) return { image: "", secrets: [], config: "" };
  const spec = JSON.parse(inspected.stdout) as {
    Image: string;
    Secrets?: { SecretName: string }[];
    Configs?: { ConfigName: string; File: { Name: string } }[];
  };
  const configName = spec.Configs?.find((c) => c.File.Name === "/config.yml")?.ConfigName ?? "";
  const config = configName ? (await onSwarm(["config", "inspect", configName, "--format", '{{printf "%s" .Spec.Data}}'])).stdout : "";
  return { image: spec.Image, secrets: (spec.Secrets ?? []).map((s) => s.SecretName).sort(), config };
}

async function controllerService(): Promise<{ image: string; secrets: string[] }> {
  const inspected = await onSwarm(["service", "inspect", `${STACK}_controller`, "--format", "{{json .Spec.TaskTemplate.ContainerSpec}}"]);
  if (inspected.code !== 0) return { image: "", secrets: [] };
  const spec = JSON.parse(inspected.stdout) as { Image: string; Secrets?: { SecretName: string }[] };
  return { image: spec.Image, secrets: (spec.Secrets ?? []).map((s) => s.SecretName).sort() };
}

/** SHA-256 fingerprint of the certificate the cache presents. */
function servedFingerprint(): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: node?.ip, port: CACHE_PORT, rejectUnauthorized: false, timeout: 3_000 }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on("error", () => resolve(""));
    socket.on("timeout", () => {
      socket.destroy();
      resolve("");
    });
  });
}

/** The reader's edits of cachespec.yaml, as the guide's prose describes them. */
async function editSpec(edit: (kind: string, set: (path: (string | number)[], value: unknown) => void) => void): Promise<void> {
  const path = join(opDir, "cachespec.yaml");
  const docs = parseAllDocuments(await readFile(path, "utf8"));
  if (!Array.isArray(docs)) throw new Error("cachespec.yaml: expected several documents");
  for (const doc of docs) edit(String(doc.get("kind")), (p, value) => doc.setIn(p, doc.createNode(value)));
  await writeFile(path, docs.map((d) => d.toString()).join(""));
}

async function writePair(host: string, prefix: string): Promise<string> {
  const pair = await generateSelfSigned(host, new Date());
  await writeFile(join(opDir, `${prefix}.cert.pem`), pair.certPem);
  await writeFile(join(opDir, `${prefix}.key.pem`), pair.keyPem, { mode: 0o600 });
  return new X509Certificate(pair.certPem).fingerprint256;
}

/** Everything in the swarm that this installation made: by name, stack namespace or owner label. */
async function projectLeftovers(): Promise<string[]> {
  const madeByHand = /^(dtr-admin-password|dtrcache-status-token|cache\.cert\.pem|cache\.key\.pem|dtr\.cert\.pem)(\.2)?$|^dtrcache-lease-dtrcache$/;
  const found: string[] = [];
  for (const kind of ["service", "config", "secret"]) {
    const ids = (await onSwarm([kind, "ls", "-q"])).stdout.split("\n").filter(Boolean);
    if (ids.length === 0) continue;
    const lines = (await onSwarm([kind, "inspect", "--format", "{{.Spec.Name}} {{json .Spec.Labels}}", ...ids])).stdout.split("\n").filter(Boolean);
    for (const line of lines) {
      const [name = "", json = "{}"] = line.split(/ (.*)/s);
      const labels = (JSON.parse(json) ?? {}) as Record<string, string>;
      const owned = Object.entries(labels).some(([k, v]) => k.startsWith("io.dtrcache.") && k.endsWith("owner") && v === "dtrcache");
      if (owned || labels["com.docker.stack.namespace"] === STACK || madeByHand.test(name)) found.push(`${kind} ${name}`);
    }
  }
  const networks = (await onSwarm(["network", "ls", "-q", "--filter", `label=com.docker.stack.namespace=${STACK}`])).stdout.trim();
  if (networks) found.push(`network(s) ${networks}`);
  const nodeLabels = JSON.parse((await onSwarm(["node", "inspect", "self", "--format", "{{json .Spec.Labels}}"])).stdout || "{}") as Record<
    string,
    string
  > | null;
  for (const key of Object.keys(nodeLabels ?? {}).filter((k) => k === "dtr.cache")) found.push(`node label ${key}`);
  return found;
}

beforeAll(async () => {
  if (!harness.images.controller || !harness.images.cacheServer)
    throw new Error("the harness did not build the controller and cache-server images (are both packages compiled?)");
  docker = await dockerCli();
  workDir = await mkdtemp(join(harness.workDir, "docs-ops-"));
  opDir = join(workDir, "ops");
  for (const d of [opDir, join(workDir, "home"), join(workDir, "docker-config"), join(workDir, "scratch")]) await mkdir(d, { recursive: true });

  const source = await readFile(join(repoRoot(), GUIDE), "utf8");
  blocks = new Map(requireSteps(markedBlocks(source, GUIDE), STEPS, GUIDE).map((b) => [b.step as Step, b]));

  // An image of this file's own (a random layer): one pulled by an earlier file would already be
  // in the engine, and docker would not ask DTR for its blobs at all.
  sample = await pushTestImage({
    dockerHost: harness.dockerHost,
    registryHostPort: harness.registry.hostPort,
    workDir,
    repository: `docs-ops/sample-${randomBytes(3).toString("hex")}`,
  });
  // DTR over TLS; its certificate is the CA the operator obtained out of band.
  const dtrPair = await generateSelfSigned(harness.hostIp, new Date());
  await writeFile(join(opDir, "dtr.cert.pem"), dtrPair.certPem);
  emulator = await startDtrEmulator({
    listenHost: harness.hostIp,
    backendRegistryUrl: harness.registry.url,
    users: [users.admin, users.alice],
    tls: { cert: dtrPair.certPem, key: dtrPair.keyPem },
  });
  await writePair(node.ip, "cache");
  // alice logged in to DTR earlier (the guide's pull step assumes a logged-in user)
  await run(docker, ["login", emulator.hostPort, "-u", users.alice.username, "--password-stdin"], { env: dockerEnv(), input: users.alice.password });

  // The editor `dtrcache edit` opens: the change the guide's comment names (blobTTL: 12h).
  const editor = join(workDir, "editor.sh");
  await writeFile(editor, "#!/bin/sh\nsed -i -E 's/^( *blobTTL:) .*/\\1 12h/' \"$1\"\n", { mode: 0o755 });

  // The guide's environment (1.0), from the harness; its names must be exactly the guide's.
  const documented: Record<string, string> = {
    DTRCACHE_SRC: repoRoot().replace(/\/$/, ""),
    DOCKER_HOST: harness.dockerHost,
    REGISTRY: registry,
    VERSION: version,
    DTRCACHE_CONTROLLER_IMAGE: `${registry}/controller:${version}`,
    DTRCACHE_CONTROLLER_REPLICAS: "1",
    DTRCACHE_STATUS_URL: statusUrl,
    PULL_IMAGE: `${emulator.hostPort}/${sample.repository}:${sample.tag}`,
    DTR_ADMIN_TOKEN: users.admin.password,
  };
  const environment = blocks.get("environment");
  expect(variablesSet(environment?.script ?? "").sort(), `${GUIDE}: the environment block's variables`).toEqual(Object.keys(documented).sort());
  const npmPrefix = join(workDir, "npm-global");
  shell = docShell({
    cwd: opDir,
    scratch: join(workDir, "scratch"),
    source: GUIDE,
    env: {
      ...documented,
      // the terminal: the project's Node 24 and npm, the docker CLI; a private HOME and docker config
      PATH: `${join(npmPrefix, "bin")}:${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: join(workDir, "home"),
      DOCKER_CONFIG: join(workDir, "docker-config"),
      EDITOR: editor,
      // `npm i -g` into a prefix of this test's, never the machine's global one
      npm_config_prefix: npmPrefix,
      npm_config_cache: join(workDir, "npm-cache"),
      npm_config_update_notifier: "false",
      npm_config_fund: "false",
      npm_config_audit: "false",
      // a stack variable (see the stack file): the harness engine's socket is not /var/run/docker.sock
      DOCKER_SOCKET: harness.dockerHost.replace(/^unix:\/\//, ""),
    },
  });
});

afterAll(async () => {
  if (docker && workDir) {
    // only what the guide's uninstall would have removed, if the run stopped before it
    const left = await projectLeftovers().catch(() => [] as string[]);
    if (left.some((l) => l.startsWith("service"))) {
      const env = { ...dockerEnv() };
      await run(docker, ["stack", "rm", "--detach=false", STACK], { env, allowFailure: true, timeoutMs: 60_000 });
      await run(docker, ["service", "rm", CACHE], { env, allowFailure: true });
      await new Promise((resolve) => setTimeout(resolve, 3_000));
    }
    for (const entry of await projectLeftovers().catch(() => [] as string[])) {
      const [kind = "", name = ""] = entry.split(" ");
      if (kind === "config" || kind === "secret") await onSwarm([kind, "rm", name]);
    }
  }
  await emulator?.stop();
  process.stderr.write(`docs-operations: ${timings.join(", ")}\n`);
});

describe(`${GUIDE}, run as written`, () => {
  it("installs, deploys, changes, rotates, upgrades and uninstalls the cache with the guide's commands", async () => {
    if (!emulator) throw new Error("setup failed");
    const emu = emulator;

    // 1.1 build and push the images, install the CLI
    await step("build-images", { timeoutMs: 300_000 });
    await step("install-cli", { timeoutMs: 120_000 });
    expect(existsSync(join(workDir, "npm-global", "bin", "dtrcache"))).toBe(true);

    // 1.2-1.4: Swarm objects, the stack, the spec
    await step("swarm-objects");
    await step("deploy-stack");
    await step("spec-file");
    await editSpec((kind, set) => {
      if (kind === "DTR") set(["spec", "url"], emu.url);
      if (kind === "ContentCache") {
        set(["spec", "node", "hostname"], node.hostname);
        set(["spec", "port"], CACHE_PORT);
        set(["spec", "externalURL"], `https://${node.ip}:${CACHE_PORT}`);
        set(["spec", "image"], `${registry}/cache-server:${version}`);
        set(["spec", "users"], [users.alice.username]);
      }
    });
    expect((await step("apply")).stdout).toContain(`contentcache/${CACHE} created`);
    const watched = await step("watch", { timeoutMs: 180_000 });
    expect(watched.stdout).toMatch(new RegExp(`${CACHE}\\s+True\\s+1/1`));
    expect(watched.stdout).toMatch(/Events:\n/);
    expect(await converged()).toBe("Ready DtrSynced");
    const registration = emu.contentCaches().find((c) => c.name === CACHE);
    expect(registration?.host).toBe(`https://${node.ip}:${CACHE_PORT}`);
    expect(emu.settings()["alice"]).toBe(registration?.id);

    // the pull: DTR redirects every blob to the cache, which serves it
    emu.clearRequestLog();
    await step("pull", { timeoutMs: 120_000 });
    const traffic = blobTraffic(emu.requestLog(), sample.repository);
    expect(traffic.redirected.length).toBeGreaterThanOrEqual(2);
    for (const r of traffic.redirected) expect(r.location.startsWith(`https://${node.ip}:${CACHE_PORT}/`)).toBe(true);
    expect(traffic.servedDirect).toEqual([]);
    const pulled = await onSwarm(["image", "inspect", `${emu.hostPort}/${sample.repository}:${sample.tag}`, "--format", "{{json .RepoDigests}}"]);
    expect(pulled.stdout).toContain(`@${sample.digest}`);

    // 1.5 a change through the store: the editor sets blobTTL 12h; the controller rolls it out
    const day2 = await step("day-2");
    expect(day2.stdout).toContain(CACHE);
    await expect.poll(async () => (await cacheService()).config, { timeout: 60_000, interval: 500 }).toMatch(/blobttl: 12h/i);
    await expect.poll(converged, { timeout: 90_000, interval: 500 }).toBe("Ready DtrSynced");

    // 1.6 TLS rotation: the renewed pair under new names; the cache serves the new certificate
    const renewed = await writePair(node.ip, "cache");
    await editSpec((kind, set) => {
      if (kind === "ContentCache") set(["spec", "tls"], { certFile: { secret: "cache.cert.pem.2" }, keyFile: { secret: "cache.key.pem.2" } });
    });
    await step("rotate-tls");
    await expect
      .poll(async () => (await cacheService()).secrets, { timeout: 60_000, interval: 500 })
      .toEqual(expect.arrayContaining(["cache.cert.pem.2", "cache.key.pem.2"]));
    await expect.poll(converged, { timeout: 90_000, interval: 500 }).toBe("Ready DtrSynced");
    await expect.poll(servedFingerprint, { timeout: 30_000, interval: 500 }).toBe(renewed);
    await step("rotate-tls-cleanup");

    // the admin password: the stack mounts the new secret, the spec names it, DTR syncs again
    await editSpec((kind, set) => {
      if (kind === "DTR") set(["spec", "admin", "password"], { secret: "dtr-admin-password.2" });
    });
    emu.clearRequestLog();
    await step("rotate-admin-password", { timeoutMs: 120_000 });
    expect((await controllerService()).secrets).toContain("dtr-admin-password.2");
    await expect.poll(converged, { timeout: 120_000, interval: 1_000 }).toBe("Ready DtrSynced");
    // the restarted controller authenticated to DTR's API with what the new secret holds
    await expect
      .poll(() => emu.requestLog().some((e) => e.user === users.admin.username && e.path.startsWith("/api/") && e.status < 300), {
        timeout: 60_000,
        interval: 1_000,
      })
      .toBe(true);

    // the status token: the old one is refused, the new one (the file the guide rewrote) works
    const oldToken = (await readFile(join(opDir, "status-token"), "utf8")).trim();
    await step("rotate-status-token", { timeoutMs: 120_000 });
    const newToken = (await readFile(join(opDir, "status-token"), "utf8")).trim();
    expect(newToken).not.toBe(oldToken);
    await expect.poll(async () => (await status(newToken)).code, { timeout: 90_000, interval: 1_000 }).toBe(200);
    expect((await status(oldToken)).code).toBe(401);
    await expect.poll(converged, { timeout: 90_000, interval: 1_000 }).toBe("Ready DtrSynced");

    // 5 the upgrade: a new tag for both images (this checkout's build stands in for the release)
    await editSpec((kind, set) => {
      if (kind === "ContentCache") set(["spec", "image"], `${registry}/cache-server:${newVersion}`);
    });
    await step("upgrade", { timeoutMs: 300_000, set: { VERSION: newVersion } });
    expect((await controllerService()).image).toContain(`${registry}/controller:${newVersion}`);
    await expect.poll(async () => (await cacheService()).image, { timeout: 90_000, interval: 1_000 }).toContain(`${registry}/cache-server:${newVersion}`);
    await expect.poll(converged, { timeout: 120_000, interval: 1_000 }).toBe("Ready DtrSynced");

    // 8 uninstall: nothing of the project is left, in the swarm or in DTR
    await step("uninstall", { timeoutMs: 240_000 });
    // a removed stack's overlay network stays listed on the node until its last endpoint is gone
    await expect.poll(projectLeftovers, { timeout: 30_000, interval: 1_000 }).toEqual([]);
    expect(emu.contentCaches()).toEqual([]);
    expect(emu.settings()["alice"]).toBe("");
  }, 900_000);
});
