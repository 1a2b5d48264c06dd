// Applies a plan, one action at a time, in plan order, logging each outcome. Configs and secrets
// are created before the service refers to them; old revisions are removed only after the plan
// saw the rollout converge. Errors carry their SwarmError code up to the queue, which decides
// between retry-now (CONFLICT), back-off (UNAVAILABLE, IN_USE) and stop (INVALID).
import type { ServiceSpec, SwarmApi } from "../swarm/api.js";
import { isSwarmError } from "../swarm/errors.js";
import type { Logger } from "../logger.js";
import type { DesiredCache } from "./desired.js";
import { ROLLOUT_HASH, nodeLabelMarker } from "./labels.js";
import type { FieldDiff } from "./normalize.js";
import type { Action, ActualCache, Plan } from "./planner.js";

export interface ApplyOutcome {
  readonly action: Action;
  readonly result: "done" | "skipped";
  readonly note?: string;
}

/** Attempts of a read-modify-write on a node before the conflict goes to the queue. */
const NODE_WRITE_ATTEMPTS = 5;

async function writeNodeLabel(swarm: SwarmApi, owner: string, nodeId: string, change: { key: string; value?: string }): Promise<"done" | "skipped"> {
  for (let attempt = 1; ; attempt += 1) {
    const node = await swarm.inspectNode(nodeId);
    const labels = { ...(node.spec.Labels ?? {}) };
    const marker = nodeLabelMarker(change.key);
    if (change.value !== undefined) {
      if (labels[change.key] === change.value) return "skipped";
      labels[change.key] = change.value;
      labels[marker] = owner;
    } else {
      // Only a label we set (marker is ours) is ever removed.
      if (labels[marker] !== owner) return "skipped";
      delete labels[change.key];
      delete labels[marker];
    }
    try {
      await swarm.updateNode(node.id, node.version, { ...node.spec, Labels: labels });
      return "done";
    } catch (error) {
      if (!isSwarmError(error, "CONFLICT") || attempt >= NODE_WRITE_ATTEMPTS) throw error;
    }
  }
}

/** The desired service spec with config/secret ids filled in from the objects that now exist. */
export function resolveReferences(spec: ServiceSpec, ids: ReadonlyMap<string, string>): ServiceSpec {
  const c = spec.TaskTemplate.ContainerSpec;
  return {
    ...spec,
    TaskTemplate: {
      ...spec.TaskTemplate,
      ContainerSpec: {
        ...c,
        Configs: (c.Configs ?? []).map((r) => ({ ...r, ConfigID: ids.get(r.ConfigName) ?? r.ConfigID })),
        Secrets: (c.Secrets ?? []).map((r) => ({ ...r, SecretID: ids.get(r.SecretName) ?? r.SecretID })),
      },
    },
  };
}

/**
 * When nothing that replaces tasks differs, the service keeps its own ROLLOUT_HASH label (or its
 * absence, for a service written before the label existed): the label alone never changes a
 * TaskTemplate, so it never restarts a task.
 */
export function keepRolloutHash(spec: ServiceSpec, actual: ServiceSpec | undefined, diffs: readonly FieldDiff[]): ServiceSpec {
  if (!actual || diffs.some((d) => d.path.startsWith("TaskTemplate.") || d.path.startsWith("EndpointSpec."))) return spec;
  const { [ROLLOUT_HASH]: _desired, ...labels } = spec.TaskTemplate.ContainerSpec.Labels ?? {};
  const had = actual.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH];
  const kept = had === undefined ? labels : { ...labels, [ROLLOUT_HASH]: had };
  return { ...spec, TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate.ContainerSpec, Labels: kept } } };
}

export async function applyPlan(
  swarm: SwarmApi,
  owner: string,
  plan: Plan,
  desired: DesiredCache | undefined,
  actual: ActualCache,
  logger: Logger,
): Promise<ApplyOutcome[]> {
  const ids = new Map<string, string>();
  for (const o of [...actual.configs, ...actual.secrets]) ids.set(o.name, o.id);
  const outcomes: ApplyOutcome[] = [];
  const done = (action: Action, result: "done" | "skipped", note?: string): void => {
    outcomes.push(note === undefined ? { action, result } : { action, result, note });
    logger.info({ action: action.type, target: targetOf(action), result, ...(note ? { note } : {}) }, "action applied");
  };

  for (const action of plan.actions) {
    switch (action.type) {
      case "label-node":
        done(action, await writeNodeLabel(swarm, owner, action.nodeId, { key: action.key, value: action.value }));
        break;
      case "unlabel-node":
        done(action, await writeNodeLabel(swarm, owner, action.nodeId, { key: action.key }));
        break;
      case "create-blob": {
        const { blob } = action;
        if (!blob.data) throw new Error(`internal: ${blob.name} must be created but has no content`);
        try {
          const request = { name: blob.name, labels: blob.labels, data: blob.data };
          ids.set(blob.name, blob.kind === "config" ? await swarm.createConfig(request) : await swarm.createSecret(request));
          done(action, "done");
        } catch (error) {
          // Same name = same content hash: an earlier run (maybe killed mid-way) created it.
          if (!isSwarmError(error, "NAME_TAKEN")) throw error;
          const found =
            blob.kind === "config"
              ? await swarm.listConfigs({ labels: [`io.dtrcache.hash=${blob.hash}`] })
              : await swarm.listSecrets({ labels: [`io.dtrcache.hash=${blob.hash}`] });
          const match = found.find((o) => o.name === blob.name);
          if (!match) throw error;
          ids.set(blob.name, match.id);
          done(action, "skipped", "already exists");
        }
        break;
      }
      case "create-service":
        if (!desired) throw new Error("internal: create-service without a desired state");
        await swarm.createService(resolveReferences(desired.service, ids));
        done(action, "done");
        break;
      case "update-service":
        if (!desired) throw new Error("internal: update-service without a desired state");
        await swarm.updateService(
          action.serviceId,
          action.version,
          keepRolloutHash(resolveReferences(desired.service, ids), actual.service?.spec, action.diffs),
        );
        done(action, "done", action.diffs.map((d) => d.path).join(", "));
        break;
      case "remove-service":
        try {
          await swarm.removeService(action.serviceId);
          done(action, "done");
        } catch (error) {
          if (!isSwarmError(error, "NOT_FOUND")) throw error;
          done(action, "skipped", "already gone");
        }
        break;
      case "remove-blob":
        try {
          if (action.kind === "config") await swarm.removeConfig(action.id);
          else await swarm.removeSecret(action.id);
          done(action, "done");
        } catch (error) {
          // "in use" is normal: a task still holds it, or a rollback may need it; next pass retries.
          if (isSwarmError(error, "NOT_FOUND")) done(action, "skipped", "already gone");
          else if (isSwarmError(error, "IN_USE")) done(action, "skipped", "in use");
          else throw error;
        }
        break;
    }
  }
  return outcomes;
}

export function targetOf(action: Action): string {
  switch (action.type) {
    case "label-node":
      return `${action.hostname} ${action.key}=${action.value}`;
    case "unlabel-node":
      return `${action.hostname} ${action.key}`;
    case "create-blob":
      return action.blob.name;
    case "create-service":
      return action.name;
    case "update-service":
      return action.serviceId;
    case "remove-service":
      return action.name;
    case "remove-blob":
      return action.name;
  }
}
