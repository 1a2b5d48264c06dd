// Events (issue 11, item 7): the recorder's bounds and folding, and the three observers wired
// around a controller on the fake Swarm — Swarm writes, DTR passes, failures and condition
// changes land on the cache they concern, with no secret material.
import { describe, expect, it } from "vitest";
import { createController } from "../controller.js";
import type { DtrSync } from "../dtr/sync.js";
import { DtrError } from "../dtr/errors.js";
import { memoryLogger } from "../logger.js";
import { staticSpecSource } from "../source.js";
import type { SwarmApi } from "../swarm/api.js";
import { FakeSwarm } from "../swarm/fake.js";
import { faultySwarmApi } from "../swarm/faulty.js";
import { load, runbookText } from "../testing/specs.js";
import { recordDtrEvents } from "./dtr-events.js";
import { reconcileEventObserver } from "./reconcile-events.js";
import { EventRecorder } from "./recorder.js";
import { recordSwarmEvents } from "./swarm-events.js";

describe("EventRecorder", () => {
  it("keeps the last perCache events per cache, folds repeats into a count, and drops the least recently active cache", () => {
    let t = 0;
    const recorder = new EventRecorder({ perCache: 3, maxCaches: 2, now: () => new Date(1_700_000_000_000 + t++ * 1000) });
    for (let i = 0; i < 5; i += 1) recorder.record({ cache: "a", type: "Normal", source: "swarm", reason: "R", message: `m${i}` });
    expect(recorder.list("a").map((e) => e.message)).toEqual(["m2", "m3", "m4"]);
    for (let i = 0; i < 100; i += 1) recorder.record({ cache: "a", type: "Warning", source: "reconcile", reason: "ReconcileFailed", message: "same" });
    const folded = recorder.list("a");
    expect(folded).toHaveLength(3);
    expect(folded[2]).toMatchObject({ reason: "ReconcileFailed", count: 100 });
    expect((folded[2]?.firstTime ?? "") < (folded[2]?.lastTime ?? "")).toBe(true);
    recorder.record({ cache: "b", type: "Normal", source: "dtr", reason: "DtrSynced", message: "ok" });
    recorder.record({ cache: "c", type: "Normal", source: "dtr", reason: "DtrSynced", message: "ok" });
    expect(recorder.list("a")).toEqual([]);
    expect(recorder.list("c", 1)).toHaveLength(1);
    expect(recorder.list(undefined).map((e) => e.cache)).toEqual(["b", "c"]);
  });
});

function setup(dtrSync: DtrSync, wrap: (api: SwarmApi) => SwarmApi = (api) => api) {
  const fake = new FakeSwarm(["node-1"]);
  const recorder = new EventRecorder();
  const source = staticSpecSource(load(runbookText()));
  let status: () => ReturnType<ReturnType<typeof createController>["status"]> = () => ({
    controllerId: "",
    engine: { reachable: true, manager: true },
    spec: { path: "", loaded: false, files: [], errors: [] },
    caches: [],
  });
  const observe = reconcileEventObserver(recorder, () => status());
  const controller = createController({
    docker: recordSwarmEvents(wrap(fake), recorder),
    specSource: source,
    dtrSync: recordDtrEvents(dtrSync, recorder),
    logger: memoryLogger(),
    id: "test",
    settleMs: 0,
    allowEmpty: true,
    onReconcile: observe,
  });
  status = () => controller.status();
  return { fake, recorder, source, controller };
}

describe("events of a controller", () => {
  const okDtr: DtrSync = {
    apply: (cache) =>
      Promise.resolve({ registrationId: "id-1", host: "cache.example", users: cache.spec.users.map((username) => ({ username, state: "assigned" as const })) }),
    remove: () => Promise.resolve({ foreign: [] }),
  };

  it("records the Swarm writes, the DTR pass and the conditions of a cache; a teardown's removals land on the cache", async () => {
    const { recorder, source, controller } = setup(okDtr);
    await controller.reconcileOnce();
    await controller.reconcileOnce();
    const events = recorder.list("region-asia");
    const reasons = events.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["ConfigCreated", "SecretCreated", "ServiceCreated", "NodeLabelsUpdated", "DtrSynced"]));
    expect(events.find((e) => e.reason === "ServiceCreated")?.message).toMatch(/^created service region-asia \(image /);
    expect(events.find((e) => e.reason === "DtrSynced")?.message).toMatch(/registration id-1 \(host cache\.example\); \d+\/\d+ users assigned/);
    expect(events.some((e) => e.message.startsWith("Ready=True"))).toBe(true);
    if (process.env["SHOW_EVENTS"]) console.log(events.map((e) => `${e.type} ${e.reason} ${e.source} ${e.message}`).join("\n"));
    for (const e of events) expect(e.firstTime).toMatch(/^\d{4}-\d\d-\d\dT/);

    source.set(load(runbookText().split("---")[0] ?? ""));
    await controller.reconcileOnce();
    const after = recorder.list("region-asia").map((e) => `${e.reason} ${e.message}`);
    expect(after).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ServiceRemoved removed service region-asia/),
        expect.stringMatching(/^SecretRemoved removed secret region-asia-key-/),
        expect.stringMatching(/^DtrRemoved /),
        expect.stringMatching(/^TornDown /),
      ]),
    );
  });

  it("records a failed write, a failed DTR pass and a failed reconcile as warnings with stable codes, never a password", async () => {
    const failingDtr: DtrSync = {
      apply: () => Promise.reject(new DtrError("DTR_UNAUTHENTICATED", "POST /api/v0/content_caches: 401 UNAUTHORIZED", false, 401)),
      remove: () => Promise.resolve({ foreign: [] }),
    };
    const { recorder, controller } = setup(failingDtr);
    await controller.reconcileOnce();
    await controller.reconcileOnce();
    const warnings = recorder.list("region-asia").filter((e) => e.type === "Warning");
    expect(warnings.map((e) => `${e.reason} ${e.message}`)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^DtrSyncFailed DTR_UNAUTHENTICATED: /), expect.stringMatching(/^DTR_UNAUTHENTICATED DtrSynced=False/)]),
    );

    const second = setup(okDtr, (api) => {
      const faulty = faultySwarmApi(api);
      faulty.inject({ call: "createService", code: "INVALID", message: "invalid mount config" });
      return faulty;
    });
    await second.controller.reconcileOnce();
    const failed = second.recorder
      .list("region-asia")
      .filter((e) => e.type === "Warning")
      .map((e) => `${e.reason} ${e.message}`);
    expect(failed).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ServiceCreateFailed create service region-asia \(image .*\) failed: INVALID: /),
        expect.stringMatching(/^ReconcileFailed apply failed: /),
      ]),
    );
    const all = JSON.stringify([...recorder.list(undefined), ...second.recorder.list(undefined)]);
    expect(all).not.toMatch(/BEGIN [A-Z ]*PRIVATE KEY|hunter2|DTR_ADMIN_PASSWORD=/);
  });
});
