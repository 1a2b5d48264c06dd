// The controller against the harness's private one-node Swarm: the runbook example applied,
// no-op passes that write nothing, edits picked up by the watcher, drift repaired, bad specs
// ignored, a SIGKILLed controller process that converges on restart, and a complete teardown.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  conditionOf,
  createController,
  createDockerClient,
  DockerodeSwarmApi,
  fileSpecSource,
  generateSelfSigned,
  labels,
  memoryLogger,
  recordSwarmApi,
  resolveDockerConnection,
  type Controller,
  type RecordingSwarmApi,
  type SwarmApi,
} from "@dtrcache/controller";
import {
  bundleRunner,
  ownedObjects,
  prepareSpecDir,
  removeOwned,
  runbookVariant,
  spawnController,
  writeAtomically,
  type RunbookVariant,
} from "../bench/controller/support.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `it-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const basePort = 21_000 + Math.floor(Math.random() * 8_000);

let dir = "";
let specFile = "";
let api: SwarmApi;
let recording: RecordingSwarmApi;
let controller: Controller | undefined;
let variant: RunbookVariant;

const cacheName = `asia-${suffix}`;
const newController = (): Controller =>
  createController({
    docker: recording,
    specSource: fileSpecSource(specFile, { debounceMs: 50 }),
    logger: memoryLogger(),
    id: owner,
    allowEmpty: true,
    resyncIntervalMs: 3_000,
    rolloutPollMs: 250,
    settleMs: 0,
  }); // the settle time has its own test (controller-settle)

async function answers(port: number): Promise<number> {
  try {
    return (await fetch(`http://${node?.ip}:${port}/`, { signal: AbortSignal.timeout(1500) })).status;
  } catch {
    return 0;
  }
}

async function currentService(): Promise<{ configs: string[]; secrets: string[]; port?: number } | undefined> {
  const [service] = (await api.listServices(labels.ownerFilter(owner, cacheName))).filter((s) => s.name === cacheName);
  if (!service) return undefined;
  const c = service.spec.TaskTemplate.ContainerSpec;
  const port = service.spec.EndpointSpec?.Ports?.[0]?.PublishedPort;
  return { configs: (c.Configs ?? []).map((r) => r.ConfigName), secrets: (c.Secrets ?? []).map((r) => r.SecretName).sort(), ...(port ? { port } : {}) };
}

async function configText(name: string): Promise<string> {
  const [config] = (await api.listConfigs(labels.ownerFilter(owner, cacheName))).filter((c) => c.name === name);
  return config ? ((await api.inspectConfig(config.id)).data?.toString("utf8") ?? "") : "";
}

beforeAll(async () => {
  dir = await mkdtemp(join(harness.workDir, "controller-"));
  await prepareSpecDir(dir);
  specFile = join(dir, "cachespec.yaml");
  variant = { cache: cacheName, hostname: node.hostname, nodeLabel: `dtr.cache.${suffix}=true`, port: basePort, image: harness.images.testHttp };
  await writeFile(specFile, await runbookVariant(variant));
  api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
  recording = recordSwarmApi(api);
});

afterAll(async () => {
  await controller?.stop();
  await removeOwned(api, owner);
  await rm(dir, { recursive: true, force: true });
});

describe("controller on the harness swarm", () => {
  it("applies the runbook example: node labelled, config and three secrets at the runbook targets, service answering on its port", async () => {
    controller = newController();
    const reports = await controller.reconcileOnce();
    expect(reports.map((r) => [r.cache, r.error])).toEqual([[cacheName, undefined]]);

    const inspected = (await api.listNodes()).find((n) => n.hostname === node.hostname);
    expect(inspected?.spec.Labels?.[`dtr.cache.${suffix}`]).toBe("true");

    const objects = await ownedObjects(api, owner, cacheName);
    expect(objects.configs.map((c) => c.name)).toEqual([expect.stringMatching(new RegExp(`^${cacheName}-config-[0-9a-f]{8}$`))]);
    expect(objects.secrets.map((s) => s.labels[labels.PURPOSE]).sort()).toEqual(["ca", "cert", "key"]);
    const service = (await api.listServices(labels.ownerFilter(owner, cacheName)))[0];
    const container = service?.spec.TaskTemplate.ContainerSpec;
    expect(container?.Configs?.map((c) => c.File.Name)).toEqual(["/config.yml"]);
    expect(container?.Secrets?.map((s) => s.File.Name).sort()).toEqual([
      "/run/secrets/cache.cert.pem",
      "/run/secrets/cache.key.pem",
      "/run/secrets/dtr.cert.pem",
    ]);
    expect(container?.Command).toEqual(["/start.sh", "/config.yml"]);
    expect(service?.spec.TaskTemplate.Placement?.Constraints).toContain(`node.labels.dtr.cache.${suffix} == true`);

    await expect
      .poll(async () => (await api.listTasks(service?.id ?? "")).filter((t) => t.state === "running").map((t) => t.nodeId), { timeout: 60_000, interval: 250 })
      .toEqual([inspected?.id]);
    await expect.poll(() => answers(basePort), { timeout: 30_000, interval: 250 }).toBe(200);
  });

  it("issues zero mutating Engine API calls on a reconcile with nothing to do", async () => {
    await controller?.reconcileOnce(); // settles: the rollout is observed as converged
    recording.reset();
    const reports = await controller?.reconcileOnce();
    expect(reports?.flatMap((r) => r.actions.filter((a) => a.result === "done"))).toEqual([]);
    expect(recording.mutatingCalls()).toEqual([]);
    expect(recording.counts().total).toBeGreaterThan(0);
    expect(conditionOf(controller?.status().caches[0], "Ready")?.status).toBe("True");
  });

  it("applies blobTTL, certificate and port edits written to the watched file, prunes old revisions after the rollout, and never runs a task with a mixed set", async () => {
    await controller?.start();
    const before = await currentService();
    const seenSpecs = new Set<string>();
    const seenTasks = new Set<string>();
    let sampling = true;
    // Sample the service's reference set and every running task's set for the whole edit.
    const sampler = (async () => {
      while (sampling) {
        const s = await currentService().catch(() => undefined);
        if (s) seenSpecs.add(JSON.stringify([...s.configs, ...s.secrets].sort()));
        const [svc] = await api.listServices(labels.ownerFilter(owner, cacheName)).catch(() => []);
        for (const t of svc ? await api.listTasks(svc.id).catch(() => []) : [])
          if (t.state === "running") seenTasks.add(JSON.stringify([...t.configNames, ...t.secretNames].sort()));
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    })();

    const pair = await generateSelfSigned("dtr-cache.example.com", new Date());
    await writeFile(join(dir, "certs", "cache2.cert.pem"), pair.certPem);
    await writeFile(join(dir, "certs", "cache2.key.pem"), pair.keyPem);
    const edited: RunbookVariant = { ...variant, blobTTL: "1h", port: basePort + 1, certFile: "certs/cache2.cert.pem", keyFile: "certs/cache2.key.pem" };
    await writeAtomically(specFile, await runbookVariant(edited));

    await expect.poll(async () => (await currentService())?.port, { timeout: 20_000, interval: 100 }).toBe(basePort + 1);
    const after = await currentService();
    expect(await configText(after?.configs[0] ?? "")).toContain("blobttl: 1h");
    expect(
      after?.secrets
        .filter((s) => !before?.secrets.includes(s))
        .map((s) => s.replace(/-[0-9a-f]{8}$/, ""))
        .sort(),
    ).toEqual([`${cacheName}-cert`, `${cacheName}-key`]);
    await expect.poll(() => answers(basePort + 1), { timeout: 60_000, interval: 250 }).toBe(200);

    // A second edit; the first revision is pruned once this rollout is through (two kept).
    variant = { ...edited, blobTTL: "2h" };
    await writeAtomically(specFile, await runbookVariant(variant));
    await expect
      .poll(async () => (await ownedObjects(api, owner, cacheName)).configs.map((c) => c.name).includes(before?.configs[0] ?? ""), {
        timeout: 60_000,
        interval: 250,
      })
      .toBe(false);
    await expect.poll(async () => (await ownedObjects(api, owner, cacheName)).configs.length, { timeout: 30_000, interval: 250 }).toBe(2);
    // Certificate and key changed once: the current and the previous revision (for a rollback) remain.
    const purposes = (await ownedObjects(api, owner, cacheName)).secrets.map((s) => s.labels[labels.PURPOSE]).sort();
    expect(purposes).toEqual(["ca", "cert", "cert", "key", "key"]);

    sampling = false;
    await sampler;
    expect(seenTasks.size).toBeGreaterThan(0);
    for (const taskSet of seenTasks) expect(seenSpecs).toContain(taskSet);
  });

  it("repairs drift: a removed node label and a deleted service come back on their own", async () => {
    const labelKey = `dtr.cache.${suffix}`;
    const n = (await api.listNodes()).find((x) => x.hostname === node.hostname);
    if (!n) throw new Error("node vanished");
    const stripped = { ...(n.spec.Labels ?? {}) };
    delete stripped[labelKey];
    await api.updateNode(n.id, n.version, { ...n.spec, Labels: stripped });
    await expect
      .poll(async () => (await api.listNodes()).find((x) => x.hostname === node.hostname)?.spec.Labels?.[labelKey], { timeout: 10_000, interval: 100 })
      .toBe("true");

    const [service] = await api.listServices(labels.ownerFilter(owner, cacheName));
    await api.removeService(service?.id ?? "");
    await expect
      .poll(async () => (await api.listServices(labels.ownerFilter(owner, cacheName))).map((s) => s.id).filter((id) => id !== service?.id).length, {
        timeout: 10_000,
        interval: 100,
      })
      .toBe(1);
    await expect.poll(() => answers(variant.port), { timeout: 60_000, interval: 250 }).toBe(200);
  });

  it("repairs a secret removed by hand", async () => {
    // Swarm refuses to remove a secret a service uses, so the drift happens while the controller is
    // down: service removed, then its key secret.
    await controller?.stop();
    const [service] = await api.listServices(labels.ownerFilter(owner, cacheName));
    await api.removeService(service?.id ?? "");
    const key = (await ownedObjects(api, owner, cacheName)).secrets.find(
      (s) =>
        s.labels[labels.PURPOSE] === "key" &&
        s.labels[labels.HASH] !== undefined &&
        (service?.spec.TaskTemplate.ContainerSpec.Secrets ?? []).some((r) => r.SecretName === s.name),
    );
    await expect
      .poll(
        async () =>
          api.removeSecret(key?.id ?? "").then(
            () => "removed",
            (e: unknown) => String(e),
          ),
        { timeout: 30_000, interval: 250 },
      )
      .toBe("removed");

    controller = newController();
    await controller.start();
    await expect
      .poll(async () => (await ownedObjects(api, owner, cacheName)).secrets.map((s) => s.name), { timeout: 15_000, interval: 100 })
      .toContain(key?.name);
    await expect.poll(() => answers(variant.port), { timeout: 60_000, interval: 250 }).toBe(200);
  });

  it("reports a bad spec, changes nothing, and applies the fixed file", async () => {
    await controller?.idle();
    const before = JSON.stringify(await ownedObjects(api, owner, cacheName));
    recording.reset();
    await writeAtomically(specFile, (await runbookVariant(variant)).replace("blobTTL: 2h", "blobTTL: two hours"));
    await expect.poll(() => controller?.status().spec.errors.join("\n") ?? "", { timeout: 10_000, interval: 100 }).toMatch(/blobTTL/);
    // A resync happens in between (every 3 s here): it still must not write.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    await controller?.idle();
    expect(recording.mutatingCalls()).toEqual([]);
    expect(JSON.stringify(await ownedObjects(api, owner, cacheName))).toBe(before);

    variant = { ...variant, blobTTL: "3h" };
    await writeAtomically(specFile, await runbookVariant(variant));
    await expect.poll(async () => configText((await currentService())?.configs[0] ?? ""), { timeout: 15_000, interval: 100 }).toContain("blobttl: 3h");
    expect(controller?.status().spec.errors).toEqual([]);
  });

  it("converges without duplicates after the controller process is SIGKILLed mid-reconcile", async () => {
    await controller?.stop();
    controller = undefined;
    const bundle = await bundleRunner(dir);
    variant = { ...variant, blobTTL: "4h", port: variant.port + 1 };
    await writeFile(specFile, await runbookVariant(variant));
    const first = spawnController(bundle, { dockerHost: harness.dockerHost, spec: specFile, owner, allowEmpty: true });
    try {
      // Killed right after its first write: the config exists, the service does not point at it yet.
      await first.waitForLine((l) => l["msg"] === "action applied", 30_000);
      await first.kill("SIGKILL");
    } finally {
      await first.kill("SIGKILL");
    }
    const second = spawnController(bundle, { dockerHost: harness.dockerHost, spec: specFile, owner, allowEmpty: true });
    try {
      await expect.poll(async () => (await currentService())?.port, { timeout: 30_000, interval: 100 }).toBe(variant.port);
      await expect.poll(() => answers(variant.port), { timeout: 60_000, interval: 250 }).toBe(200);
      const objects = await ownedObjects(api, owner, cacheName);
      expect(objects.services).toEqual([cacheName]);
      const hashes = [...objects.configs, ...objects.secrets].map((o) => o.labels[labels.HASH]);
      expect(new Set(hashes).size).toBe(hashes.length);
      await expect.poll(async () => (await ownedObjects(api, owner, cacheName)).configs.length, { timeout: 30_000, interval: 250 }).toBeLessThanOrEqual(2);
      expect(await second.kill("SIGTERM")).toBe(0);
    } finally {
      await second.kill("SIGKILL");
      await rm(bundle, { force: true });
    }
  });

  it("removes everything a cache owned when it leaves the spec and leaves objects it does not own alone", async () => {
    const foreign = `foreign-${suffix}`;
    await api.createConfig({ name: foreign, labels: { team: "not-the-controller" }, data: Buffer.from("x") });
    await api.createSecret({ name: foreign, labels: { [labels.CACHE]: cacheName }, data: Buffer.from("y") });
    try {
      controller = newController();
      await controller.start();
      const dtrOnly = (await runbookVariant(variant)).split("\n---\n")[0] ?? "";
      await writeAtomically(specFile, dtrOnly);
      await expect.poll(async () => ownedObjects(api, owner), { timeout: 60_000, interval: 250 }).toEqual({ configs: [], secrets: [], services: [] });
      const n = (await api.listNodes()).find((x) => x.hostname === node.hostname);
      expect(Object.keys(n?.spec.Labels ?? {}).filter((k) => k.includes(suffix))).toEqual([]);
      expect((await api.listConfigs({ labels: ["team=not-the-controller"] })).map((c) => c.name)).toContain(foreign);
      expect((await api.listSecrets({ labels: [`${labels.CACHE}=${cacheName}`] })).map((c) => c.name)).toEqual([foreign]);
      expect(controller.status().caches).toEqual([]);
    } finally {
      for (const c of await api.listConfigs({ labels: ["team=not-the-controller"] })) if (c.name === foreign) await api.removeConfig(c.id);
      for (const s of await api.listSecrets({ labels: [`${labels.CACHE}=${cacheName}`] })) if (s.name === foreign) await api.removeSecret(s.id);
    }
  });
});
