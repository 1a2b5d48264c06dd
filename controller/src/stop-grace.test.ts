// A stopping controller does not wait forever for a reconcile stuck on a slow call: the run in hand
// gets the grace period, then its waits and calls are aborted and stop() returns (issue 10:
// cancellation that is real; the stack's stop_grace_period is sized on it).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createController, DEFAULT_STOP_GRACE_MS } from "./controller.js";
import { memoryLogger } from "./logger.js";
import { FakeClock } from "./runner/fake-clock.js";
import { staticSpecSource } from "./source.js";
import type { SwarmApi } from "./swarm/api.js";
import { FakeSwarm } from "./swarm/fake.js";
import { load, runbookText } from "./testing/specs.js";

/** The fake, whose listTasks hangs (never answers) while `hang.on` is set; `hang.hit` says it was reached. */
function hanging(fake: FakeSwarm, hang: { on: boolean; hit: boolean }): SwarmApi {
  return new Proxy(fake, {
    get(target, prop, receiver) {
      if (prop === "listTasks") {
        return (id: string) => {
          if (!hang.on) return target.listTasks(id);
          hang.hit = true;
          return new Promise(() => undefined);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function setup(options: { clock?: FakeClock; stopGraceMs: number }) {
  const fake = new FakeSwarm(["node-1"]);
  const hang = { on: false, hit: false };
  const source = staticSpecSource(load(runbookText()));
  const logger = memoryLogger();
  const controller = createController({
    docker: hanging(fake, hang),
    specSource: source,
    logger,
    id: "test",
    settleMs: 0,
    resyncIntervalMs: 3_600_000,
    stopGraceMs: options.stopGraceMs,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return { fake, hang, source, logger, controller };
}

describe("stop() with a reconcile blocked on a slow call", () => {
  it("returns within the grace period (real time): the run in hand is aborted, not awaited", async () => {
    const graceMs = 300;
    const { hang, source, logger, controller } = setup({ stopGraceMs: graceMs });
    await controller.start();
    await controller.idle();
    hang.on = true;
    source.set(load(runbookText({ blobTTL: "12h" }))); // an edit: the next run observes the tasks and hangs there
    await expect.poll(() => hang.hit, { timeout: 5_000, interval: 10 }).toBe(true);
    const started = performance.now();
    await controller.stop();
    const tookMs = performance.now() - started;
    expect(tookMs).toBeGreaterThanOrEqual(graceMs - 20); // it did give the run its grace period
    expect(tookMs).toBeLessThan(graceMs + 700); // and did not wait for the call
    expect(logger.entries.map((e) => e.message)).toContain("reconcile aborted: the controller is stopping");
  });

  it("waits exactly the grace period on the controller's clock before aborting", async () => {
    const clock = new FakeClock();
    const { hang, source, controller } = setup({ clock, stopGraceMs: 10_000 });
    await controller.start();
    await controller.idle();
    hang.on = true;
    source.set(load(runbookText({ blobTTL: "12h" })));
    await expect.poll(() => hang.hit, { timeout: 5_000, interval: 10 }).toBe(true);
    let stopped = false;
    const stopping = controller.stop().then(() => (stopped = true));
    // stop() closes the watches first, then gives the run in hand its grace timer.
    await expect.poll(() => clock.timers, { timeout: 5_000, interval: 5 }).toBe(1);
    clock.advance(9_999);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    clock.advance(1);
    await stopping;
    expect(stopped).toBe(true);
  });
});

describe("the controller stack's stop_grace_period", () => {
  it("leaves the controller its whole grace period plus room to abort, release the lease and exit", () => {
    const stack = parse(readFileSync(new URL("../../deploy/stack/controller.stack.yml", import.meta.url), "utf8")) as {
      services: { controller: { stop_grace_period?: string } };
    };
    const period = /^(\d+)s$/.exec(stack.services.controller.stop_grace_period ?? "");
    expect(period, "stop_grace_period in whole seconds").not.toBeNull();
    expect(Number(period?.[1]) * 1000).toBeGreaterThanOrEqual(DEFAULT_STOP_GRACE_MS + 5_000);
  });
});
