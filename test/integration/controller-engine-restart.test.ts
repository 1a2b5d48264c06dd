// The engine under the controller goes away and comes back: the controller keeps its state,
// reconnects its event stream, and converges on an edit made while the engine was down. This file
// starts its own one-node swarm, because stopping the shared engine would disturb other files.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  conditionOf,
  createController,
  createDockerClient,
  DockerodeSwarmApi,
  fileSpecSource,
  labels,
  memoryLogger,
  resolveDockerConnection,
  type Controller,
  type SwarmApi,
} from "@dtrcache/controller";
import { buildServiceImage, startSwarm, type SwarmHandle } from "../harness/index.js";
import { prepareSpecDir, removeOwned, runbookVariant, writeAtomically, type RunbookVariant } from "../bench/controller/support.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `it-restart-${suffix}`;
const cacheName = `restart-${suffix}`;

let swarm: SwarmHandle | undefined;
let api: SwarmApi;
let controller: Controller | undefined;
let dir = "";
let specFile = "";
let variant: RunbookVariant;

beforeAll(async () => {
  swarm = await startSwarm({ nodes: 1 });
  const image = await buildServiceImage("test-http", swarm.manager.dockerHost);
  if (!image) throw new Error("test-http image was not built");
  dir = await mkdtemp(join(harness.workDir, "controller-restart-"));
  await prepareSpecDir(dir);
  specFile = join(dir, "cachespec.yaml");
  variant = {
    cache: cacheName,
    hostname: swarm.manager.hostname,
    nodeLabel: `dtr.cache.${suffix}=true`,
    port: 23_000 + Math.floor(Math.random() * 5_000),
    image,
  };
  await writeFile(specFile, await runbookVariant(variant));
  api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(swarm.manager.dockerHost)));
});

afterAll(async () => {
  await controller?.stop();
  if (swarm) await removeOwned(api, owner).catch(() => undefined);
  await swarm?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function serviceConfigText(): Promise<string> {
  const [service] = await api.listServices(labels.ownerFilter(owner, cacheName));
  const name = service?.spec.TaskTemplate.ContainerSpec.Configs?.[0]?.ConfigName;
  const config = (await api.listConfigs(labels.ownerFilter(owner, cacheName))).find((c) => c.name === name);
  return config ? ((await api.inspectConfig(config.id)).data?.toString("utf8") ?? "") : "";
}

/**
 * A unix-socket relay in front of the engine: `cut()` drops every connection and refuses new ones
 * (what the controller sees while dockerd is down), `restore()` listens again.
 */
function relay(socketPath: string, enginePath: string): { cut(): Promise<void>; restore(): Promise<void> } {
  const open = new Set<Socket>();
  let server: Server | undefined;
  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(enginePath);
        open.add(client).add(upstream);
        const drop = (): void => {
          client.destroy();
          upstream.destroy();
          open.delete(client);
          open.delete(upstream);
        };
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", drop);
        client.pipe(upstream).pipe(client);
      });
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
  return {
    async cut() {
      const closing = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      for (const s of open) s.destroy();
      open.clear();
      await closing;
    },
    restore: listen,
  };
}

describe("controller across an engine restart", () => {
  it("reconnects after the engine was unreachable and converges on an edit made meanwhile", async () => {
    if (!swarm) throw new Error("no swarm");
    const relayPath = join(dir, "engine-relay.sock");
    const link = relay(relayPath, swarm.manager.dockerHost.slice("unix://".length));
    await link.restore();
    const viaRelay = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(`unix://${relayPath}`)));
    const relayed = createController({
      docker: viaRelay,
      specSource: fileSpecSource(specFile, { debounceMs: 50 }),
      logger: memoryLogger(),
      id: owner,
      resyncIntervalMs: 2_000,
      rolloutPollMs: 250,
    });
    try {
      await relayed.start();
      await expect.poll(() => conditionOf(relayed.status().caches[0], "Ready")?.status, { timeout: 60_000, interval: 250 }).toBe("True");
      await link.cut();
      await expect.poll(() => relayed.status().engine.reachable, { timeout: 15_000, interval: 100 }).toBe(false);
      variant = { ...variant, blobTTL: "7h" };
      await writeAtomically(specFile, await runbookVariant(variant));
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // the edit lands while the engine is away
      await link.restore();
      await expect.poll(() => serviceConfigText().catch(() => ""), { timeout: 60_000, interval: 250 }).toContain("blobttl: 7h");
      await expect.poll(() => relayed.status().engine.reachable, { timeout: 30_000, interval: 250 }).toBe(true);
      await expect.poll(() => conditionOf(relayed.status().caches[0], "Ready")?.status, { timeout: 60_000, interval: 250 }).toBe("True");
    } finally {
      await relayed.stop();
      await link.cut();
    }
  });

  it("reconnects after the engine restarts and converges on an edit made while it was down", async () => {
    if (!swarm) throw new Error("no swarm");
    controller = createController({
      docker: api,
      specSource: fileSpecSource(specFile, { debounceMs: 50 }),
      logger: memoryLogger(),
      id: owner,
      resyncIntervalMs: 2_000,
      rolloutPollMs: 250,
    });
    await controller.start();
    await expect.poll(() => conditionOf(controller?.status().caches[0], "Ready")?.status, { timeout: 60_000, interval: 250 }).toBe("True");

    await swarm.stopNode(swarm.manager.index);
    await expect.poll(() => controller?.status().engine.reachable, { timeout: 15_000, interval: 100 }).toBe(false);
    variant = { ...variant, blobTTL: "5h" };
    await writeAtomically(specFile, await runbookVariant(variant));
    await swarm.startNode(swarm.manager.index);

    await expect.poll(() => serviceConfigText().catch(() => ""), { timeout: 90_000, interval: 500 }).toContain("blobttl: 5h");
    await expect.poll(() => controller?.status().engine.reachable, { timeout: 30_000, interval: 250 }).toBe(true);
    await expect.poll(() => conditionOf(controller?.status().caches[0], "Ready")?.status, { timeout: 90_000, interval: 250 }).toBe("True");
    const services = await api.listServices(labels.ownerFilter(owner));
    expect(services.map((s) => s.name)).toEqual([cacheName]);
  });
});
