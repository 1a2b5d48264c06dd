// "Rolling out (1/2 tasks updated)" (issue 13, item 2): a task counts as updated when it runs and
// its container carries the service's current rollout hash; only rolling-out caches are looked at.
import { describe, expect, it } from "vitest";
import { ROLLOUT_HASH } from "../reconcile/labels.js";
import type { SwarmApi, SwarmService, SwarmTask } from "../swarm/api.js";
import { formatStatusTable } from "./format.js";
import { countUpdated, RolloutProgress } from "./rollout-progress.js";
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";

const service = (hash: string, replicas: number): SwarmService =>
  ({
    id: "svc1",
    version: { index: 1 },
    name: "region-asia",
    labels: {},
    spec: {
      Name: "region-asia",
      TaskTemplate: { ContainerSpec: { Image: "x", Labels: { [ROLLOUT_HASH]: hash } } },
      Mode: { Replicated: { Replicas: replicas } },
    },
  }) as unknown as SwarmService;
const task = (hash: string, state: string, desiredState = "running"): SwarmTask => ({
  id: `${hash}-${state}-${Math.random()}`,
  serviceId: "svc1",
  state,
  desiredState,
  message: "",
  configNames: [],
  secretNames: [],
  containerLabels: { [ROLLOUT_HASH]: hash },
  updatedAt: "2026-12-01T10:00:00Z",
});

const condition = (type: "Ready" | "Progressing" | "Degraded", status: "True" | "False", reason: string, message: string) => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: "2026-12-01T10:00:00Z",
});

function cache(progressing: boolean): CacheSnapshot {
  return {
    name: "region-asia",
    observedGeneration: "a",
    generation: "a",
    terminating: false,
    conditions: progressing
      ? [
          condition("Ready", "False", "RollingOut", "Rolling out: 2/2 tasks running, Swarm's update in progress"),
          condition("Progressing", "True", "RolloutInProgress", "Rolling out: 2/2 tasks running, Swarm's update in progress"),
          condition("Degraded", "False", "AsExpected", ""),
        ]
      : [condition("Ready", "True", "TasksRunning", "2/2 tasks running")],
    node: { label: "dtr.cache=true", labelled: true },
    revisions: [],
    tasks: { running: 2, desired: 2 },
    dtr: { users: [] },
  };
}

const snapshotOf = (c: CacheSnapshot): RuntimeSnapshot => ({
  controllerId: "dtrcache",
  engine: { reachable: true, manager: true },
  spec: { path: "store", loaded: true, files: [], errors: [] },
  caches: [c],
});

describe("rollout progress", () => {
  it("counts running tasks of the current spec only (an old task still running, a new one starting)", () => {
    expect(
      countUpdated(service("new", 2), [task("old", "running"), task("new", "running"), task("new", "starting"), task("old", "shutdown", "shutdown")]),
    ).toEqual({ updated: 1, desired: 2 });
  });

  it("asks the engine only about caches that are rolling out, and status says 'Rolling out (1/2 tasks updated; ...)'", async () => {
    const asked: string[] = [];
    const swarm = {
      inspectService: (name: string) => (asked.push(`inspect ${name}`), Promise.resolve(service("new", 2))),
      listTasks: (id: string) => (asked.push(`tasks ${id}`), Promise.resolve([task("old", "running"), task("new", "running")])),
    } as unknown as SwarmApi;
    let current = cache(false);
    const progress = new RolloutProgress(swarm, () => snapshotOf(current));
    await progress.poll();
    expect(asked).toEqual([]);
    current = cache(true);
    await progress.poll();
    expect(asked).toEqual(["inspect region-asia", "tasks svc1"]);
    const text = formatStatusTable(progress.decorate(snapshotOf(current)));
    expect(text).toContain("region-asia: Rolling out (1/2 tasks updated; 2/2 tasks running, Swarm's update in progress)");
    // rollout over: the count is dropped
    current = cache(false);
    await progress.poll();
    expect(progress.decorate(snapshotOf(current)).caches[0]?.rollout).toBeUndefined();
  });
});
