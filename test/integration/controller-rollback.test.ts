// A rollout Swarm rolls back (UpdateConfig FailureAction rollback) on the harness's real engine:
// a controller started afterwards — knowing nothing in memory — must not push the same spec again,
// must report Degraded/RolledBack, and must push once the spec changes. The failing update is an
// entry point that does not exist, so the task fails at once and the rollback takes seconds.
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
  recordSwarmApi,
  resolveDockerConnection,
  type ContainerOptions,
  type Controller,
  type RecordingSwarmApi,
  type SwarmApi,
  type SwarmService,
} from "@dtrcache/controller";
import { prepareSpecDir, removeOwned, runbookVariant, type RunbookVariant } from "../bench/controller/support.js";

const harness = inject("harness");
const suffix = randomBytes(3).toString("hex");
const owner = `it-rb-${suffix}`;
const node = harness.nodes[0];
if (!node) throw new Error("the harness has no node");
const cacheName = `rb-${suffix}`;
const BROKEN: ContainerOptions = { command: ["/no-such-entrypoint"] };

let dir = "";
let specFile = "";
let api: SwarmApi;
let recording: RecordingSwarmApi;
let variant: RunbookVariant;
const controllers: Controller[] = [];

/** A new controller instance: nothing in memory, as after a process restart. */
function freshController(container?: ContainerOptions): Controller {
  const c = createController({
    docker: recording,
    specSource: fileSpecSource(specFile, { debounceMs: 50 }),
    logger: memoryLogger(),
    id: owner,
    rolloutPollMs: 250,
    ...(container ? { container } : {}),
  });
  controllers.push(c);
  return c;
}

async function service(): Promise<SwarmService | undefined> {
  return (await api.listServices(labels.ownerFilter(owner, cacheName))).find((s) => s.name === cacheName);
}

beforeAll(async () => {
  dir = await mkdtemp(join(harness.workDir, "controller-rollback-"));
  await prepareSpecDir(dir);
  specFile = join(dir, "cachespec.yaml");
  variant = {
    cache: cacheName,
    hostname: node.hostname,
    nodeLabel: `dtr.cache.${suffix}=true`,
    port: 29_000 + Math.floor(Math.random() * 900),
    image: harness.images.testHttp,
  };
  await writeFile(specFile, await runbookVariant(variant));
  api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(harness.dockerHost)));
  recording = recordSwarmApi(api);
});

afterAll(async () => {
  for (const c of controllers) await c.stop();
  await removeOwned(api, owner);
  await rm(dir, { recursive: true, force: true });
});

describe("controller and a rollout Swarm rolled back", () => {
  it("a restarted controller does not push the rolled-back spec again, reports Degraded/RolledBack, and pushes once the spec changes", async () => {
    // A good rollout first, so Swarm has a spec to roll back to.
    const first = freshController();
    await first.reconcileOnce();
    await expect
      .poll(async () => (await api.listTasks((await service())?.id ?? "")).filter((t) => t.state === "running").length, { timeout: 30_000, interval: 250 })
      .toBe(1);

    // The controller that pushes the failing update; Swarm rolls it back on its own.
    const pusher = freshController(BROKEN);
    await pusher.reconcileOnce();
    expect(recording.calls.filter((c) => c.call === "updateService")).toHaveLength(1);
    // Swarm's rollback takes ~5 s here when the machine is idle; under a loaded CI run it has taken
    // longer than 45 s, so the bound is generous and a miss says what the tasks were doing.
    const rollbackDone = async (): Promise<string | undefined> => (await service())?.updateStatus?.state;
    const deadline = Date.now() + 150_000;
    while ((await rollbackDone()) !== "rollback_completed" && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
    const tasksNow = (await api.listTasks((await service())?.id ?? "")).map((t) => `${t.state}/${t.desiredState} ${t.error ?? ""}`);
    expect(await rollbackDone(), `tasks: ${tasksNow.join("; ")}`).toBe("rollback_completed");
    const rolledBack = await service();
    expect(rolledBack?.spec.TaskTemplate.ContainerSpec.Command).toEqual(["/start.sh", "/config.yml"]);
    // What the engine keeps: an automatic rollback clears PreviousSpec; the failed task keeps the
    // ContainerSpec it was made from, rollout hash included — that is what the hold is keyed on.
    expect(rolledBack?.previousSpec).toBeUndefined();
    const tried = (await api.listTasks(rolledBack?.id ?? "")).filter((t) => t.desiredState !== "running" && t.state !== "running");
    expect(tried.map((t) => t.containerLabels?.[labels.ROLLOUT_HASH])).toEqual(expect.arrayContaining([expect.stringMatching(/^[0-9a-f]{64}$/)]));
    await pusher.stop();

    // Restart: a new instance with the same (failing) desired state.
    const restarted = freshController(BROKEN);
    recording.reset();
    await restarted.reconcileOnce();
    await restarted.reconcileOnce();
    expect(recording.mutatingCalls()).toEqual([]);
    expect(conditionOf(restarted.status().caches[0], "Degraded")).toMatchObject({ status: "True", reason: "RolledBack" });
    expect((await service())?.version).toEqual(rolledBack?.version);

    // A spec change is pushed (and fails again: it still has the broken entry point).
    await writeFile(specFile, await runbookVariant({ ...variant, blobTTL: "1h" }));
    recording.reset();
    await restarted.reconcileOnce();
    expect(recording.mutatingCalls().filter((c) => c.call === "updateService")).toHaveLength(1);
    expect((await service())?.spec.TaskTemplate.ContainerSpec.Command).toEqual(BROKEN.command);
  }, 300_000);
});
