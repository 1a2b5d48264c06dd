import { describe, expect, it } from "vitest";
import type { ServiceSpec, SwarmNode } from "../swarm/api.js";
import { diffService } from "./normalize.js";
import { planNodeLabelGc, rolloutOf, labelUseKey } from "./planner.js";

const spec: ServiceSpec = {
  Name: "c",
  Labels: { a: "1" },
  TaskTemplate: {
    ContainerSpec: { Image: "img:1", Command: ["/start.sh", "/config.yml"], Env: ["PORT=1"], Configs: [{ File: { Name: "/config.yml", UID: "0", GID: "0", Mode: 0o444 }, ConfigID: "", ConfigName: "c-config-1" }] },
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
        ContainerSpec: { ...spec.TaskTemplate.ContainerSpec, Image: `img:1@sha256:${"a".repeat(64)}`, Configs: [{ File: { Name: "/config.yml", UID: "0", GID: "0", Mode: 0o444 }, ConfigID: "xyz", ConfigName: "c-config-1" }] },
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
    expect(diffService(changed, spec)).toEqual([{ path: "EndpointSpec.Ports", from: expect.stringContaining('\\"published\\":1'), to: expect.stringContaining('\\"published\\":2') }]);
  });
});

describe("planner pieces", () => {
  const node = (labels: Record<string, string>): SwarmNode => ({ id: "n1", version: { index: 1 }, hostname: "h", role: "manager", state: "ready", availability: "active", spec: { Labels: labels } });

  it("removes only node labels carrying this owner's marker and no longer used", () => {
    const nodes = [node({ "a": "true", "io.dtrcache.node-label.a": "me", "b": "true", "io.dtrcache.node-label.b": "other", "c": "true" })];
    expect(planNodeLabelGc(nodes, { owner: "me", labelsInUse: new Set(), keepRevisions: 2 })).toEqual([{ type: "unlabel-node", nodeId: "n1", hostname: "h", key: "a" }]);
    expect(planNodeLabelGc(nodes, { owner: "me", labelsInUse: new Set([labelUseKey("h", "a")]), keepRevisions: 2 })).toEqual([]);
  });

  it("reads the rollout from UpdateStatus first, then from tasks", () => {
    const service = { id: "s", version: { index: 1 }, name: "c", labels: {}, spec, createdAt: "", updatedAt: "" };
    const task = (state: string, desiredState = "running") => ({ id: state, serviceId: "s", state, desiredState, message: "", configNames: [], secretNames: [], updatedAt: "" });
    expect(rolloutOf(undefined, [], 1)).toBe("absent");
    expect(rolloutOf({ ...service, updateStatus: { state: "updating", message: "" } }, [], 1)).toBe("updating");
    expect(rolloutOf({ ...service, updateStatus: { state: "rollback_completed", message: "" } }, [], 1)).toBe("rolled-back");
    expect(rolloutOf(service, [task("running")], 1)).toBe("converged");
    expect(rolloutOf(service, [task("running"), task("running", "shutdown")], 1)).toBe("starting");
    expect(rolloutOf(service, [task("pending")], 1)).toBe("starting");
  });
});
