// Ready means the new tasks have stayed running past the settle time and Swarm's update has
// completed (issue 10, defect 11): a cache that exits at start is running for an instant only, and
// `dtrcache apply` must not exit 0 on it.
import { describe, expect, it } from "vitest";
import { buildSnapshot } from "./cli/snapshot.js";
import { waitForConvergence } from "./cli/wait.js";
import { createController } from "./controller.js";
import { FakeClock } from "./runner/fake-clock.js";
import { staticSpecSource } from "./source.js";
import { conditionOf } from "./status.js";
import { FakeSwarm } from "./swarm/fake.js";
import { load, runbookText } from "./testing/specs.js";

const CACHE = "region-asia";

function setup(extra: { rolloutPollMs?: number } = {}) {
  const fake = new FakeSwarm(["node-1"]);
  const clock = new FakeClock(Date.UTC(2026, 10, 1));
  const controller = createController({
    docker: fake,
    specSource: staticSpecSource(load(runbookText())),
    id: "test",
    clock,
    settleMs: 10_000,
    resyncIntervalMs: 3_600_000,
    ...extra,
  });
  const ready = () => conditionOf(controller.status().caches[0], "Ready");
  const progressing = () => conditionOf(controller.status().caches[0], "Progressing");
  return { fake, controller, ready, progressing, advance: (ms: number) => clock.advance(ms) };
}

describe("Ready after the settle time (defect 11)", () => {
  it("never reports a cache whose tasks exit at start Ready, and apply's wait does not converge on it", async () => {
    const { fake, controller, ready, progressing, advance } = setup();
    await controller.reconcileOnce(); // creates the service
    fake.crashAtStart(CACHE);
    for (let i = 0; i < 10; i++) {
      advance(11_000); // longer than the settle time between any two looks
      await controller.reconcileOnce();
      expect(ready()?.status, `look ${i}: ${ready()?.message}`).toBe("False");
    }
    expect(ready()).toMatchObject({ reason: "RollingOut", message: expect.stringMatching(/^Rolling out: 1\/1 tasks running, waiting 10s to settle/) });
    expect(progressing()).toMatchObject({ status: "True", reason: "Settling" });
    const outcome = await waitForConvergence(
      () => buildSnapshot(controller.status(), new Map()),
      0,
      () => undefined,
    );
    expect(outcome.converged).toBe(false);
    expect(outcome.reason).toMatch(/region-asia: RollingOut: Rolling out/);
  });

  it("is Ready once the same tasks have run for the settle time, and not while Swarm's update is in progress", async () => {
    const { fake, controller, ready, progressing, advance } = setup();
    await controller.reconcileOnce();
    expect(ready()).toMatchObject({ status: "False", reason: "RollingOut" });
    await controller.reconcileOnce(); // first look at the running task
    expect(ready()).toMatchObject({ status: "False", reason: "RollingOut", message: "Rolling out: 1/1 tasks running, waiting 10s to settle" });
    advance(6_000);
    await controller.reconcileOnce();
    expect(ready()).toMatchObject({ status: "False", message: "Rolling out: 1/1 tasks running, waiting 4s to settle" });
    advance(4_000);
    await controller.reconcileOnce();
    expect(ready()).toMatchObject({ status: "True", reason: "TasksRunning" });
    expect(progressing()).toMatchObject({ status: "False", reason: "RolloutComplete" });

    fake.setUpdateState(CACHE, "updating"); // Swarm still monitoring the tasks of an update
    await controller.reconcileOnce();
    expect(ready()).toMatchObject({ status: "False", reason: "RollingOut", message: "Rolling out: 1/1 tasks running, Swarm's update in progress" });
    fake.setUpdateState(CACHE, "completed");
    await controller.reconcileOnce();
    expect(ready()?.status).toBe("True");
  });

  it("looks again on its own while tasks settle, so a running controller turns Ready without an event", async () => {
    const { controller, ready, advance } = setup({ rolloutPollMs: 20 });
    await controller.start();
    try {
      await controller.idle(); // the first pass creates the service
      advance(20); // its requeue: the first look at the running task
      await controller.idle();
      expect(ready()?.message).toMatch(/waiting 10s to settle/);
      advance(9_000);
      await controller.idle();
      expect(ready()?.status).toBe("False");
      advance(1_000); // the looks every 20 ms go on by themselves; the one at 10 s finds it settled
      await controller.idle();
      expect(ready()?.status).toBe("True");
    } finally {
      await controller.stop();
    }
  });
});
