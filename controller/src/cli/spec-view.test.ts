// `dtrcache status` (issue 13, item 2): a GENERATION column (observed vs stored: the store's
// revision numbers in store mode), the spec's state (Valid/Rejected), an AGE that is an age, and a
// rollout said as one "Rolling out (...)" line instead of "Ready=False ...".
import type { CacheSpec } from "@dtrcache/crds";
import { describe, expect, it } from "vitest";
import { specGeneration } from "../reconcile/desired.js";
import { load, runbookText } from "../testing/specs.js";
import { formatStatusTable } from "./format.js";
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";
import { SpecViewTracker, trackedSpecSource } from "./spec-view.js";

const T0 = Date.parse("2026-12-01T10:00:00Z");

function cacheSnapshot(name: string, observed: string, generation: string, conditions: CacheSnapshot["conditions"]): CacheSnapshot {
  return {
    name,
    observedGeneration: observed,
    generation,
    terminating: false,
    conditions,
    node: { hostname: "node-1", label: "dtr.cache=true", labelled: true },
    revisions: [],
    tasks: { running: 1, desired: 2 },
    dtr: { users: [] },
  };
}

function snapshotOf(caches: CacheSnapshot[], errors: string[] = []): RuntimeSnapshot {
  return { controllerId: "dtrcache", engine: { reachable: true, manager: true }, spec: { path: "store", loaded: true, files: [], errors }, caches };
}

const ready = (status: "True" | "False", reason = "TasksRunning", message = "2/2 tasks running") => ({
  type: "Ready" as const,
  status,
  reason,
  message,
  lastTransitionTime: "2026-12-01T10:00:00Z",
});

describe("the spec view of each cache", () => {
  const loaded = load(runbookText());
  if (!loaded.ok) throw new Error("the runbook example must load");
  const spec: CacheSpec = loaded.spec;
  const asia = spec.caches.find((c) => c.name === "region-asia");
  const hash = asia ? specGeneration(asia) : "";

  it("maps the observed spec hash back to the store revision it came from, and ages from the revision's time", async () => {
    const tracker = new SpecViewTracker(() => new Date(T0));
    let heads = [{ kind: "ContentCache", name: "region-asia", generation: 3, when: "2026-12-01T09:00:00Z", deleted: false }];
    const store = { heads: () => Promise.resolve(heads) } as never;
    const source = trackedSpecSource(
      { description: "store", load: () => Promise.resolve({ ok: true, spec }), watch: () => Promise.resolve(() => Promise.resolve()) },
      tracker,
      store,
    );
    await source.load();
    let view = tracker.view(cacheSnapshot("region-asia", hash, hash, []), false);
    expect(view).toEqual({ state: "Valid", storedGeneration: 3, observedStoreGeneration: 3, since: "2026-12-01T09:00:00Z" });
    // a newer revision stored, not yet acted on: observed stays 3
    heads = [{ ...heads[0], generation: 4, when: "2026-12-01T09:30:00Z" } as (typeof heads)[0]];
    await source.load();
    view = tracker.view(cacheSnapshot("region-asia", hash, hash, []), true);
    expect(view.state).toBe("Rejected");
    expect(view.storedGeneration).toBe(4);
    const table = formatStatusTable(tracker.decorate(snapshotOf([cacheSnapshot("region-asia", hash, hash, [ready("True")])])), T0);
    expect(table).toMatch(/NAME\s+READY\s+TASKS\s+NODE\s+DTR ID\s+USERS\s+DTR\s+TLS\s+GENERATION\s+SPEC\s+AGE/);
    // the same content re-applied as revision 4: generation 4 of 4, aged from when it first appeared
    expect(table).toMatch(/region-asia\s+True\s+1\/2\s+node-1\s+-\s+-\s+Unknown\s+-\s+4\/4\s+Valid\s+60m/);
  });

  it("file mode: the short content hash, acted-on/loaded while a change is applied, Rejected when the latest load failed", () => {
    const tracker = new SpecViewTracker(() => new Date(T0 - 3 * 3600_000));
    tracker.loaded(spec);
    const table = formatStatusTable(
      tracker.decorate(snapshotOf([cacheSnapshot("region-asia", "0123456789abcdef", hash, [ready("True")])], ["spec.yaml:3:1 bad"])),
      T0,
    );
    expect(table).toMatch(new RegExp(`region-asia\\s+True.*0123456/${hash.slice(0, 7)}\\s+Rejected\\s+3h`));
  });
});

describe("rollout wording", () => {
  it("says Rolling out (...) once instead of Ready=False and Progressing=True", () => {
    const rolling = cacheSnapshot("region-asia", "a", "a", [
      ready("False", "RollingOut", "Rolling out: 1/2 tasks running, Swarm's update in progress"),
      {
        type: "Progressing",
        status: "True",
        reason: "RolloutInProgress",
        message: "Rolling out: 1/2 tasks running, Swarm's update in progress",
        lastTransitionTime: "2026-12-01T10:00:00Z",
      },
      { type: "Degraded", status: "False", reason: "AsExpected", message: "", lastTransitionTime: "2026-12-01T10:00:00Z" },
    ]);
    const text = formatStatusTable(snapshotOf([rolling]), T0);
    expect(text).toContain("region-asia: Rolling out (1/2 tasks running, Swarm's update in progress)");
    expect(text).not.toContain("Ready=False");
    expect(text).not.toContain("Progressing=True");
  });

  it("a degraded cache still shows its conditions (a failed rollout is not 'rolling out')", () => {
    const failing = cacheSnapshot("region-asia", "a", "a", [
      ready("False", "TaskFailed", "0/2 tasks running"),
      {
        type: "Progressing",
        status: "True",
        reason: "RolloutInProgress",
        message: "Rolling out: 0/2 tasks running",
        lastTransitionTime: "2026-12-01T10:00:00Z",
      },
      { type: "Degraded", status: "True", reason: "TaskFailed", message: "exit 1", lastTransitionTime: "2026-12-01T10:00:00Z" },
    ]);
    const text = formatStatusTable(snapshotOf([failing]), T0);
    expect(text).not.toContain("Rolling out (");
    expect(text).toContain("region-asia: Degraded=True TaskFailed: exit 1");
    expect(text).toContain("region-asia: Ready=False TaskFailed");
  });
});
