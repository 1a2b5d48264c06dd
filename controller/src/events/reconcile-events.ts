// Turns the controller's reconcile reports into events (issue 11, item 7): a failed reconcile
// (its stable code and message), a finished teardown, and every change of a condition's status or
// reason — the "why" next to the Swarm writes and DTR passes. A condition whose message alone
// changes (e.g. a rollout's task count) is not an event: it would fill the ring with progress.
import type { ReconcileEvent } from "../controller.js";
import type { ControllerStatus } from "../status.js";
import type { EventRecorder } from "./recorder.js";

/**
 * A warning is a condition that says something is wrong: Degraded=True, DtrSynced=False. Ready=False
 * alone is not (a rollout is normal); when it is bad, Degraded says why.
 */
function isWarning(type: string, status: string): boolean {
  return (type === "Degraded" && status === "True") || (type === "DtrSynced" && status === "False");
}

export function reconcileEventObserver(recorder: EventRecorder, status: () => ControllerStatus): (event: ReconcileEvent) => void {
  const seen = new Map<string, string>();
  return (event) => {
    const cache = status().caches.find((c) => c.name === event.cache);
    if (event.outcome === "error") {
      const detail = cache?.lastReconcile?.error;
      recorder.record({
        cache: event.cache,
        type: "Warning",
        source: "reconcile",
        reason: "ReconcileFailed",
        message: `${event.mode} failed: ${event.errorCode ?? "UNKNOWN"}${detail !== undefined ? `: ${detail}` : ""}`,
      });
    } else if (event.mode === "teardown") {
      recorder.record({
        cache: event.cache,
        type: "Normal",
        source: "reconcile",
        reason: "TornDown",
        message: "left the spec: service, configs, secrets and DTR side removed",
      });
      for (const key of [...seen.keys()]) if (key.startsWith(`${event.cache}\n`)) seen.delete(key);
    }
    for (const condition of cache?.conditions ?? []) {
      const key = `${event.cache}\n${condition.type}`;
      const now = `${condition.status}/${condition.reason}`;
      if (seen.get(key) === now) continue;
      seen.set(key, now);
      recorder.record({
        cache: event.cache,
        type: isWarning(condition.type, condition.status) ? "Warning" : "Normal",
        source: "reconcile",
        reason: condition.reason,
        message: `${condition.type}=${condition.status}${condition.message ? `: ${condition.message}` : ""}`,
      });
    }
  };
}
