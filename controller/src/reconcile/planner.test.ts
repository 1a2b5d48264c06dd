import { describe, expect, it } from "vitest";
import type { ServiceSpec, SwarmNode, SwarmService, SwarmTask } from "../swarm/api.js";
import { rolloutHash, withRolloutHash } from "./desired.js";
import { ROLLOUT_HASH } from "./labels.js";
import { diffService } from "./normalize.js";
import { rolledBackTo } from "./rollback.js";
import { planNodeLabelGc, rolloutOf, labelUseKey } from "./planner.js";

const spec: ServiceSpec = {
  Name: "c",
  Labels: { a: "1" },
  TaskTemplate: {
    ContainerSpec: {
      Image: "img:1",
      Command: ["/start.sh", "/config.yml"],
      Env: ["PORT=1"],
      Configs: [{ File: { Name: "/config.yml", UID: "0", GID: "0", Mode: 0o444 }, ConfigID: "", ConfigName: "c-config-1" }],
    },
    Placement: { Constraints: ["node.labels.x == y", "node.hostname == h"] },
    RestartPolicy: { Condition: "on-failure" },
  },
  Mode: { Replicated: { Replicas: 1 } },
  UpdateConfig: { Parallelism: 1, Order: "stop-first", FailureAction: "rollback", Monitor: 3e9 },
  EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 1, PublishedPort: 1, PublishMode: "host" }] },
};

describe("normalized service comparison", () => {
  it("sees no difference in what the engine fills in: defaults, ids, digests, order", () => {
    const filled: ServiceSpec = {
      ...spec,
      TaskTemplate: {
        ...spec.TaskTemplate,
        ContainerSpec: {
          ...spec.TaskTemplate.ContainerSpec,
          Image: `img:1@sha256:${"a".repeat(64)}`,
          Configs: [{ File: { Name: "/config.yml", UID: "0", GID: "0", Mode: 0o444 }, ConfigID: "xyz", ConfigName: "c-config-1" }],
        },
        Placement: { Constraints: ["node.hostname == h", "node.labels.x == y"] },
        RestartPolicy: { Condition: "on-failure", Delay: 5e9, MaxAttempts: 0 },
        ForceUpdate: 0,
      },
      UpdateConfig: { ...spec.UpdateConfig, Delay: 0 },
      EndpointSpec: { Mode: "vip", ...spec.EndpointSpec },
    };
    expect(diffService(spec, filled)).toEqual([]);
  });

  it("names the changed fields with before and after", () => {
    const changed: ServiceSpec = { ...spec, EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 2, PublishedPort: 2, PublishMode: "host" }] } };
    expect(diffService(changed, spec)).toEqual([
      { path: "EndpointSpec.Ports", from: expect.stringContaining('\\"published\\":1'), to: expect.stringContaining('\\"published\\":2') },
    ]);
  });
});

describe("planner pieces", () => {
  const node = (labels: Record<string, string>): SwarmNode => ({
    id: "n1",
    version: { index: 1 },
    hostname: "h",
    role: "manager",
    state: "ready",
    availability: "active",
    spec: { Labels: labels },
  });

  it("removes only node labels carrying this owner's marker and no longer used", () => {
    const nodes = [node({ a: "true", "io.dtrcache.node-label.a": "me", b: "true", "io.dtrcache.node-label.b": "other", c: "true" })];
    expect(planNodeLabelGc(nodes, { owner: "me", labelsInUse: new Set(), keepRevisions: 2 })).toEqual([
      { type: "unlabel-node", nodeId: "n1", hostname: "h", key: "a" },
    ]);
    expect(planNodeLabelGc(nodes, { owner: "me", labelsInUse: new Set([labelUseKey("h", "a")]), keepRevisions: 2 })).toEqual([]);
  });

  it("reads the rollout from UpdateStatus first, then from tasks", () => {
    const service = { id: "s", version: { index: 1 }, name: "c", labels: {}, spec, createdAt: "", updatedAt: "" };
    const task = (state: string, desiredState = "running") => ({
      id: state,
      serviceId: "s",
      state,
      desiredState,
      message: "",
      configNames: [],
      secretNames: [],
      updatedAt: "",
    });
    expect(rolloutOf(undefined, [], 1)).toBe("absent");
    expect(rolloutOf({ ...service, updateStatus: { state: "updating", message: "" } }, [], 1)).toBe("updating");
    expect(rolloutOf({ ...service, updateStatus: { state: "rollback_completed", message: "" } }, [], 1)).toBe("rolled-back");
    expect(rolloutOf(service, [task("running")], 1)).toBe("converged");
    expect(rolloutOf(service, [task("running"), task("running", "shutdown")], 1)).toBe("starting");
    expect(rolloutOf(service, [task("pending")], 1)).toBe("starting");
  });
});

describe("rolled-back spec detection from what the engine keeps", () => {
  const labelled = (hash: string): ServiceSpec => ({
    ...spec,
    TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate.ContainerSpec, Labels: { [ROLLOUT_HASH]: hash } } },
  });
  const service = (state: string, current: string, previous?: string): SwarmService => ({
    id: "s",
    version: { index: 3 },
    name: "c",
    labels: {},
    spec: labelled(current),
    ...(previous ? { previousSpec: labelled(previous) } : {}),
    updateStatus: { state, message: "rollback completed", startedAt: "2026-01-01T00:10:00.123456789Z" },
    createdAt: "",
    updatedAt: "",
  });
  const task = (hash: string, updatedAt: string, state = "failed"): SwarmTask => ({
    id: `${hash}-${updatedAt}`,
    serviceId: "s",
    state,
    desiredState: "shutdown",
    message: "",
    configNames: [],
    secretNames: [],
    containerLabels: { [ROLLOUT_HASH]: hash },
    updatedAt,
  });

  it("holds after an automatic rollback: PreviousSpec is gone, the failed tasks carry the hash", () => {
    expect(rolledBackTo(service("rollback_completed", "good"), [task("bad", "2026-01-01T00:10:04Z")], "bad")).toBe(true);
    expect(rolledBackTo(service("rollback_paused", "good"), [task("bad", "2026-01-01T00:10:04Z", "shutdown")], "bad")).toBe(true);
  });

  it("holds after a manual rollback, where PreviousSpec is the undone spec", () => {
    expect(rolledBackTo(service("rollback_completed", "good", "bad"), [], "bad")).toBe(true);
  });

  it("does not hold a spec other than the one rolled back, nor one that only ran before that update", () => {
    expect(rolledBackTo(service("rollback_completed", "good"), [task("bad", "2026-01-01T00:10:04Z")], "newer")).toBe(false);
    // Tasks of an older spec, shut down before the rolled-back update began.
    expect(rolledBackTo(service("rollback_completed", "good"), [task("older", "2026-01-01T00:05:00Z", "shutdown")], "older")).toBe(false);
    // Edited back to what runs: nothing to hold.
    expect(rolledBackTo(service("rollback_completed", "good", "good"), [], "good")).toBe(false);
    expect(rolledBackTo(service("completed", "good", "bad"), [task("bad", "2026-01-01T00:10:04Z")], "bad")).toBe(false);
    expect(rolledBackTo(undefined, [], "bad")).toBe(false);
  });
});

describe("the rollout hash label", () => {
  it("is in the ContainerSpec labels only, and changes with the task template or ports, not with replicas, labels or update settings", () => {
    const base = withRolloutHash(spec);
    const hash = base.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH];
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(base.Labels[ROLLOUT_HASH]).toBeUndefined();
    const same = [
      { ...spec, Mode: { Replicated: { Replicas: 3 } } },
      { ...spec, Labels: { a: "2" } },
      { ...spec, UpdateConfig: { ...spec.UpdateConfig, Monitor: 9e9 } },
    ];
    for (const s of same) expect(rolloutHash(s)).toBe(hash);
    const ports: ServiceSpec = { ...spec, EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 2, PublishedPort: 2, PublishMode: "host" }] } };
    const image: ServiceSpec = { ...spec, TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate.ContainerSpec, Image: "img:2" } } };
    for (const s of [ports, image]) expect(rolloutHash(s)).not.toBe(hash);
    // Hashing an already labelled spec gives the same value (the label leaves itself out).
    expect(rolloutHash(base)).toBe(hash);
  });

  it("is left out of the comparison: a service without it, or with another value, shows no difference", () => {
    expect(diffService(withRolloutHash(spec), spec)).toEqual([]);
    expect(
      diffService(withRolloutHash(spec), {
        ...spec,
        TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate.ContainerSpec, Labels: { [ROLLOUT_HASH]: "stale" } } },
      }),
    ).toEqual([]);
  });
});
