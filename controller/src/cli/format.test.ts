// `dtrcache status` and `describe` name the node of each running cache task: with replicas > 1 or
// a label placement the spec alone does not say where the cache answers, and an operator needs
// exactly those addresses for the load balancer's pool.
import { describe, expect, it } from "vitest";
import { createController } from "../controller.js";
import { memoryLogger } from "../logger.js";
import { staticSpecSource } from "../source.js";
import { FakeSwarm } from "../swarm/fake.js";
import { load, runbookText } from "../testing/specs.js";
import { formatStatusTable, formatTasksLine } from "./format.js";
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";

const ready = {
  type: "Ready" as const,
  status: "True" as const,
  reason: "TasksRunning",
  message: "2/2 tasks running",
  lastTransitionTime: "2026-12-07T00:00:00.000Z",
};

function snapshotWith(cache: Partial<CacheSnapshot>): RuntimeSnapshot {
  const base: CacheSnapshot = {
    name: "region-asia",
    observedGeneration: "abcdef1234",
    generation: "abcdef1234",
    terminating: false,
    conditions: [ready],
    node: { label: "dtr.cache=true", labelled: true },
    revisions: [],
    tasks: { running: 2, desired: 2 },
    dtr: { users: [] },
  };
  return {
    controllerId: "test",
    engine: { reachable: true, manager: true },
    spec: { path: "store", loaded: true, files: [], errors: [] },
    caches: [{ ...base, ...cache }],
  };
}

const nodeColumn = (table: string): string => {
  const [header, row] = table.split("\n");
  const start = header?.indexOf("NODE") ?? -1;
  const end = header?.indexOf("DTR ID") ?? -1;
  return (row ?? "").slice(start, end).trim();
};

describe("the node of each running task", () => {
  it("status: the NODE column lists the running tasks' nodes, not the placement label", () => {
    const table = formatStatusTable(snapshotWith({ tasks: { running: 2, desired: 2, nodes: ["node-2", "node-3"] } }));
    expect(nodeColumn(table)).toBe("node-2,node-3");
  });

  it("status: with no task running, where the spec places the cache (as before)", () => {
    expect(nodeColumn(formatStatusTable(snapshotWith({ tasks: { running: 0, desired: 2, nodes: [] } })))).toBe("dtr.cache=true");
    expect(
      nodeColumn(
        formatStatusTable(snapshotWith({ node: { hostname: "node-1", label: "dtr.cache=true", labelled: false }, tasks: { running: 0, desired: 1 } })),
      ),
    ).toBe("node-1 (unlabelled)");
  });

  it("describe: one Tasks line with counts and nodes; counts alone from a controller without node names", () => {
    expect(formatTasksLine({ tasks: { running: 1, desired: 2, nodes: ["node-3"] } })).toBe("Tasks:        1/2 running on node-3");
    expect(formatTasksLine({ tasks: { running: 1, desired: 1 } })).toBe("Tasks:        1/1 running");
  });

  it("the controller's status carries the hostname of the node each running task is on", async () => {
    const fake = new FakeSwarm(["node-1", "node-2"]);
    const controller = createController({
      docker: fake,
      specSource: staticSpecSource(load(runbookText({ hostname: "node-2" }))),
      logger: memoryLogger(),
      id: "test",
    });
    const reports = await controller.reconcileOnce();
    expect(reports.map((r) => r.error)).toEqual([undefined]);
    // the first pass created the service; the next one sees its task running
    await controller.reconcileOnce();
    const cache = controller.status().caches[0];
    expect(cache?.tasks).toEqual({ running: 1, desired: 1, nodes: ["node-2"] });
    expect(nodeColumn(formatStatusTable({ ...controller.status(), caches: controller.status().caches }))).toBe("node-2");
  });
});
