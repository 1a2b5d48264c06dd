// The write budget (issue 11: a controller whose own writes keep being undone backs off and says
// Contended instead of writing in a loop): the bound itself, and a fight on the fake Swarm where
// someone undoes every service update the controller makes.
import { describe, expect, it } from "vitest";
import { createController } from "../controller.js";
import { ControllerError } from "../errors.js";
import { memoryLogger } from "../logger.js";
import { staticSpecSource } from "../source.js";
import { conditionOf } from "../status.js";
import { load, runbookText } from "../testing/specs.js";
import { FakeSwarm } from "./fake.js";
import { recordSwarmApi } from "./recording.js";
import { budgetSwarmWrites } from "./write-budget.js";

describe("write budget", () => {
  it("allows maxWrites per cache per window, refuses the next with CONTENDED before the engine sees it, and counts both", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const recording = recordSwarmApi(fake);
    let now = 0;
    const counted: string[] = [];
    const api = budgetSwarmWrites(recording, {
      maxWrites: 3,
      windowMs: 60_000,
      now: () => now,
      onWrite: (cache, refused) => counted.push(`${cache}${refused ? " refused" : ""}`),
    });
    const blob = (i: number, cache: string) => ({ name: `${cache}-config-${i}`, labels: { "io.dtrcache.cache": cache }, data: Buffer.from("x") });
    for (let i = 0; i < 3; i += 1) await api.createConfig(blob(i, "a"));
    const refused = await api.createConfig(blob(3, "a")).catch((error: unknown) => error);
    expect(refused instanceof ControllerError && refused.code).toBe("CONTENDED");
    expect((refused as Error).message).toMatch(/^Contended: 3 Swarm writes for cache a in the last 60 s/);
    expect(recording.mutatingCalls()).toHaveLength(3); // the refused one never reached the engine
    await api.createConfig(blob(0, "b")); // another cache has its own budget
    const [config] = await api.listConfigs({ labels: [] }); // learn ids: a removal is the same cache's write
    await expect(api.removeConfig(config?.id ?? "")).rejects.toMatchObject({ code: "CONTENDED" });
    now += 60_001;
    await api.createConfig(blob(4, "a"));
    expect(counted).toEqual(["a", "a", "a", "a refused", "b", "a refused", "a"]);
  });

  it("a fight: every service update undone by someone else → the controller stops writing at the budget and says Contended", async () => {
    const fake = new FakeSwarm(["node-1"]);
    const recording = recordSwarmApi(fake);
    const controller = createController({
      docker: budgetSwarmWrites(recording, { maxWrites: 10 }),
      specSource: staticSpecSource(load(runbookText())),
      logger: memoryLogger(),
      id: "test",
      settleMs: 0,
    });
    await controller.reconcileOnce();
    for (let round = 0; round < 50; round += 1) {
      // the other party: puts its own image back on the service
      const [service] = await fake.listServices({ labels: [] });
      if (!service) throw new Error("no service");
      await fake.updateService(service.id, service.version, {
        ...service.spec,
        TaskTemplate: { ...service.spec.TaskTemplate, ContainerSpec: { ...service.spec.TaskTemplate.ContainerSpec, Image: `someone/else:${round}` } },
      });
      await controller.reconcileOnce();
    }
    const updates = recording.mutatingCalls().filter((c) => c.call === "updateService").length;
    expect(updates).toBeLessThanOrEqual(10);
    const degraded = conditionOf(controller.status().caches[0], "Degraded");
    expect(degraded?.status).toBe("True");
    expect(degraded?.reason).toBe("Contended");
    expect(degraded?.message).toMatch(/Contended: \d+ Swarm writes for cache region-asia/);
  });
});
