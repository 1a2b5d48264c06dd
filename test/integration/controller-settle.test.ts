// Ready on the harness's real engine (issue 10, defect 11): a cache whose process exits a moment
// after starting is running for an instant at a time, and Swarm's restart policy starts it again
// as a new task. The controller must never report it Ready.
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
  labels,
  memoryLogger,
  resolveDockerConnection,
  type ContainerOptions,
  type Controller,
  type SwarmApi,
} from "@dtrcache/controller";
import { prepareSpecDir, removeOwned, runbookVariant } from "../bench/controller/support.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `it-settle-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const cacheName = `settle-${suffix}`;
/** Runs for 1.5 s, then exits 1: what a cache does when it rejects its config.yml after starting. */
const EXITS_AT_START: ContainerOptions = { command: ["/usr/local/bin/node", "-e", "setTimeout(() => process.exit(1), 1500)"] };

let dir = "";
let api: SwarmApi;
let controller: Controller | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(harness.workDir, "controller-settle-"));
  await prepareSpecDir(dir);
  await writeFile(
    join(dir, "cachespec.yaml"),
    await runbookVariant({
      cache: cacheName,
      hostname: node.hostname,
      nodeLabel: `dtr.cache.${suffix}=true`,
      port: 29_900 + Math.floor(Math.random() * 90),
      image: harness.images.testHttp,
    }),
  );
  api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
});

afterAll(async () => {
  await controller?.stop();
  await removeOwned(api, owner);
  await rm(dir, { recursive: true, force: true });
});

describe("controller Ready on a real engine", () => {
  it("never reports Ready for a cache whose tasks exit right after starting", async () => {
    controller = createController({
      docker: api,
      specSource: fileSpecSource(join(dir, "cachespec.yaml"), { debounceMs: 50 }),
      logger: memoryLogger(),
      id: owner,
      rolloutPollMs: 250,
      resyncIntervalMs: 3_000,
      settleMs: 5_000,
      container: EXITS_AT_START,
    });
    await controller.start();
    const running = new Set<string>();
    const readySeen: string[] = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const service = (await api.listServices(labels.ownerFilter(owner, cacheName))).find((s) => s.name === cacheName);
      if (service) for (const t of await api.listTasks(service.id)) if (t.state === "running") running.add(t.id);
      const ready = conditionOf(controller.status().caches[0], "Ready");
      if (ready?.status === "True") readySeen.push(ready.message);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(running.size, "the task ran, and was started again").toBeGreaterThanOrEqual(2);
    expect(readySeen).toEqual([]);
    expect(conditionOf(controller.status().caches[0], "Ready")).toMatchObject({ status: "False" });
  }, 60_000);
});
