// Did Swarm roll back the very spec we want? Decided from what the engine keeps, so the answer is
// the same after a controller restart. After an automatic rollback (FailureAction rollback) Swarm
// restores Spec from PreviousSpec and clears PreviousSpec, so the service itself no longer says
// what was tried; the tasks of the failed update do: each keeps the ContainerSpec it was made from,
// ROLLOUT_HASH label included. A manual rollback (`docker service rollback`) swaps Spec and
// PreviousSpec, so there PreviousSpec names the undone spec. Pure; unit-tested on plain data.
import type { SwarmService, SwarmTask } from "../swarm/api.js";
import { ROLLOUT_HASH } from "./labels.js";

const ROLLED_BACK_STATES = new Set(["rollback_completed", "rollback_paused"]);

/**
 * True when the service's last update was rolled back and that update was to the spec whose
 * ROLLOUT_HASH is `wanted`: pushing it again would only fail the same way.
 */
export function rolledBackTo(service: SwarmService | undefined, tasks: readonly SwarmTask[], wanted: string): boolean {
  const status = service?.updateStatus;
  if (!service || !status || !ROLLED_BACK_STATES.has(status.state)) return false;
  // What runs is what we want (the spec was edited back): nothing is held.
  if (service.spec.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH] === wanted) return false;
  if (service.previousSpec?.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH] === wanted) return true;
  // Only tasks touched since the rolled-back update began count: an older task of an earlier spec
  // that happens to equal `wanted` says nothing about this rollback.
  const since = status.startedAt ? Date.parse(status.startedAt) : Number.NaN;
  return tasks.some(
    (t) => t.desiredState !== "running" && t.containerLabels?.[ROLLOUT_HASH] === wanted && (Number.isNaN(since) || Date.parse(t.updatedAt) >= since),
  );
}
