// A store-mode status snapshot for the CLI's tests: one cache, region-asia, Ready and DtrSynced,
// reconciled at store revision `observed` of `stored`.
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";

export function storeModeStatus(observed: number | undefined, stored: number, overrides: Partial<CacheSnapshot> = {}): RuntimeSnapshot {
  const at = "2026-12-07T12:00:00Z";
  return {
    controllerId: "dtrcache",
    engine: { reachable: true, manager: true },
    spec: { path: "swarm store (owner dtrcache)", loaded: true, files: [], loadedAt: at, errors: [] },
    caches: [
      {
        name: "region-asia",
        observedGeneration: "h3",
        generation: "h3",
        terminating: false,
        conditions: [
          { type: "Ready", status: "True", reason: "TasksRunning", message: "1/1 tasks running", lastTransitionTime: at },
          { type: "Degraded", status: "False", reason: "AsExpected", message: "", lastTransitionTime: at },
          { type: "DtrSynced", status: "True", reason: "Synced", message: "", lastTransitionTime: at },
        ],
        node: { hostname: "node-1", label: "dtr.cache=true", labelled: true },
        revisions: [],
        tasks: { running: 1, desired: 1, nodes: ["node-1"] },
        dtr: { registrationId: "r-1", users: [{ username: "alice", state: "assigned" }] },
        spec: { state: "Valid", storedGeneration: stored, ...(observed !== undefined ? { observedStoreGeneration: observed } : {}), since: at },
        ...overrides,
      },
    ],
  };
}
