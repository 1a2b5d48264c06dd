// Normalized view of a service spec: only the fields the controller writes, in a canonical form
// (sorted lists, defaults made explicit, image digests dropped when we asked for none). The engine
// fills in many defaults (restart delay, endpoint mode, file modes); comparing raw specs would
// see a change on every pass and write every time.
import type { ServiceSpec } from "../swarm/api.js";
import { ROLLOUT_HASH } from "./labels.js";

export type Flat = Record<string, string>;

function sortedJson(values: readonly unknown[] | undefined): string {
  return JSON.stringify([...(values ?? [])].map((v) => JSON.stringify(v)).sort());
}

function labelsJson(labels: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(Object.fromEntries(entries));
}

function withoutKey(labels: Readonly<Record<string, string>> | undefined, key: string): Record<string, string> {
  const { [key]: _dropped, ...rest } = labels ?? {};
  return rest;
}

function stripDigest(image: string, desired: string): string {
  // The CLI pins images to a digest; a spec written by hand (or by us) has none.
  const at = image.indexOf("@sha256:");
  return at >= 0 && !desired.includes("@sha256:") ? image.slice(0, at) : image;
}

/** Flattens the fields we own into path → canonical JSON text. `reference` picks digest handling. */
export function normalizeService(spec: ServiceSpec, reference?: ServiceSpec): Flat {
  const c = spec.TaskTemplate?.ContainerSpec ?? { Image: "" };
  const health = c.Healthcheck;
  const update = spec.UpdateConfig ?? {};
  const rollback = spec.RollbackConfig ?? {};
  return {
    Labels: labelsJson(spec.Labels),
    "TaskTemplate.ContainerSpec.Image": JSON.stringify(stripDigest(c.Image ?? "", reference?.TaskTemplate.ContainerSpec.Image ?? "")),
    "TaskTemplate.ContainerSpec.Command": JSON.stringify(c.Command ?? []),
    "TaskTemplate.ContainerSpec.Args": JSON.stringify(c.Args ?? []),
    "TaskTemplate.ContainerSpec.Env": JSON.stringify(c.Env ?? []),
    // The rollout hash is derived from the other fields compared here, so leaving it out loses
    // nothing, and a service created before it existed is not restarted just to add it.
    "TaskTemplate.ContainerSpec.Labels": labelsJson(withoutKey(c.Labels, ROLLOUT_HASH)),
    "TaskTemplate.ContainerSpec.Configs": sortedJson((c.Configs ?? []).map((r) => ({ name: r.ConfigName, target: r.File?.Name, mode: r.File?.Mode ?? 0o444 }))),
    "TaskTemplate.ContainerSpec.Secrets": sortedJson((c.Secrets ?? []).map((r) => ({ name: r.SecretName, target: r.File?.Name, mode: r.File?.Mode ?? 0o444 }))),
    "TaskTemplate.ContainerSpec.Mounts": sortedJson(
      (c.Mounts ?? []).map((m) => ({ type: m.Type, source: m.Source, target: m.Target, readOnly: m.ReadOnly === true })),
    ),
    "TaskTemplate.ContainerSpec.Healthcheck": JSON.stringify(
      health
        ? { test: health.Test, interval: health.Interval ?? 0, timeout: health.Timeout ?? 0, retries: health.Retries ?? 0, start: health.StartPeriod ?? 0 }
        : null,
    ),
    "TaskTemplate.Placement.Constraints": sortedJson(spec.TaskTemplate?.Placement?.Constraints),
    // 0 is Swarm's "no limit", so a service without the field compares equal to one with 0.
    "TaskTemplate.Placement.MaxReplicas": JSON.stringify(spec.TaskTemplate?.Placement?.MaxReplicas ?? 0),
    "TaskTemplate.RestartPolicy.Condition": JSON.stringify(spec.TaskTemplate?.RestartPolicy?.Condition ?? "any"),
    "Mode.Replicated.Replicas": JSON.stringify(spec.Mode?.Replicated?.Replicas ?? 1),
    UpdateConfig: JSON.stringify({
      parallelism: update.Parallelism ?? 1,
      order: update.Order ?? "stop-first",
      failureAction: update.FailureAction ?? "pause",
      monitor: update.Monitor ?? 5_000_000_000,
    }),
    RollbackConfig: JSON.stringify({ parallelism: rollback.Parallelism ?? 1, order: rollback.Order ?? "stop-first" }),
    "EndpointSpec.Ports": sortedJson(
      (spec.EndpointSpec?.Ports ?? []).map((p) => ({
        protocol: p.Protocol ?? "tcp",
        target: p.TargetPort,
        published: p.PublishedPort,
        mode: p.PublishMode ?? "ingress",
      })),
    ),
  };
}

export interface FieldDiff {
  readonly path: string;
  /** Canonical JSON of the actual value; undefined when the object does not exist. */
  readonly from?: string;
  readonly to: string;
}

export function diffService(desired: ServiceSpec, actual: ServiceSpec): FieldDiff[] {
  const want = normalizeService(desired);
  const have = normalizeService(actual, desired);
  const diffs: FieldDiff[] = [];
  for (const [path, to] of Object.entries(want)) {
    const from = have[path];
    if (from !== to) diffs.push(from === undefined ? { path, to } : { path, from, to });
  }
  return diffs;
}
