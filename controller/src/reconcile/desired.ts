// Desired state for one cache: the pure part. Given the resolved cache and its materials (rendered
// config text, TLS material, CA bundle) it names every Swarm object by content hash and builds the
// service spec. No I/O here; materials.ts gathers the inputs.
import { createHash } from "node:crypto";
import type { ResolvedCache } from "@dtrcache/crds";
import type { ExternalMount } from "./pem-sources.js";
import type { HealthConfig, PortConfig, ServiceConfigRef, ServiceMount, ServiceSecretRef, ServiceSpec } from "../swarm/api.js";
import { CACHE, CONFIG_REF, HASH, OWNER, PUBLIC_CERT, PURPOSE, ROLLOUT_HASH, TLS_HOST, TLS_PAIR, type BlobPurpose } from "./labels.js";

/** In-container paths: the runbook's names, shared with the renderer (crds CONTAINER_PATHS). */
export interface ContainerPaths {
  readonly config: string;
  readonly cacheCert: string;
  readonly cacheKey: string;
  readonly caBundle: string;
}

export interface DesiredBlob {
  readonly kind: "config" | "secret";
  readonly purpose: BlobPurpose;
  readonly name: string;
  /** sha256 of the content, hex. */
  readonly hash: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Absolute path inside the container. */
  readonly target: string;
  /** Content to create the object with; absent for a generated secret that exists and is reused. */
  readonly data?: Buffer;
}

export type NodePlacement =
  | { readonly kind: "hostname"; readonly hostname: string; readonly key: string; readonly value: string }
  | { readonly kind: "existing"; readonly key: string; readonly value: string };

export interface DesiredCache {
  readonly name: string;
  /** Hash of the normalized spec: the status's observedGeneration. */
  readonly generation: string;
  readonly placement: NodePlacement;
  readonly blobs: readonly DesiredBlob[];
  /** Service spec with config/secret references by name; ids are filled in when applying. */
  readonly service: ServiceSpec;
  readonly users: readonly string[];
}

/** How the service's container is run; the image decides what it supports. */
export interface ContainerOptions {
  /** Entry point; the runbook's `/start.sh /config.yml` by default. */
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  /** Extra environment, e.g. PORT for images that read it. */
  readonly env?: readonly string[];
  /** A health check only when the image can run it (a FROM-scratch image has no shell). */
  readonly healthcheck?: HealthConfig;
}

export type TlsMaterial =
  | { readonly kind: "none" }
  | { readonly kind: "files"; readonly certPem: string; readonly keyPem: string }
  /** Freshly generated: both secrets are created. */
  | { readonly kind: "generated"; readonly host: string; readonly pair: string; readonly certPem: string; readonly keyPem: string }
  /**
   * Swarm objects named by the spec ({secret}/{config}): those are in `CacheMaterials.external`;
   * a half given as a file is here as PEM and becomes our own secret.
   */
  | { readonly kind: "referenced"; readonly mounts: readonly ExternalMount[]; readonly certPem?: string; readonly keyPem?: string }
  /** Generated earlier and still present in Swarm: reused by name (secrets cannot be read back). */
  | {
      readonly kind: "reused";
      readonly host: string;
      readonly pair: string;
      readonly certPem: string;
      readonly cert: ExistingBlob;
      readonly key: ExistingBlob;
    };

export interface ExistingBlob {
  readonly name: string;
  readonly hash: string;
}

export interface CacheMaterials {
  readonly configYaml: string;
  readonly tls: TlsMaterial;
  /** Concatenated PEM: DTR CA + extra CA files + upstream caches' certificates; undefined = none. */
  readonly caBundle?: string;
  /** Existing Swarm objects the spec names, mounted by id; never created, changed or pruned by us. */
  readonly external?: readonly ExternalMount[];
}

export const ROLLOUT_MONITOR_NS = 3_000_000_000;

export function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

export function blobName(cache: string, purpose: BlobPurpose, hash: string): string {
  return `${cache}-${purpose}-${hash.slice(0, 8)}`;
}

/** Stable JSON: keys sorted, so the generation hash does not depend on key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function specGeneration(cache: ResolvedCache): string {
  return sha256(stableJson({ spec: cache.spec, upstreams: cache.upstreamUrls, dtr: cache.dtr.spec.url, dtrName: cache.dtr.name })).slice(0, 16);
}

export function placementOf(cache: ResolvedCache): NodePlacement {
  const node = cache.spec.node;
  if ("hostname" in node) {
    const [key = "", value = ""] = splitLabel(cache.spec.nodeLabel);
    return { kind: "hostname", hostname: node.hostname, key, value };
  }
  const [key = "", value = ""] = splitLabel(node.existingLabel);
  return { kind: "existing", key, value };
}

function splitLabel(text: string): [string, string] {
  const at = text.indexOf("=");
  return [text.slice(0, at), text.slice(at + 1)];
}

function blob(
  owner: string,
  cache: string,
  kind: "config" | "secret",
  purpose: BlobPurpose,
  target: string,
  data: Buffer,
  extra: Record<string, string> = {},
): DesiredBlob {
  const hash = sha256(data);
  return {
    kind,
    purpose,
    name: blobName(cache, purpose, hash),
    hash,
    target,
    data,
    labels: { [OWNER]: owner, [CACHE]: cache, [PURPOSE]: purpose, [HASH]: hash, ...extra },
  };
}

function fileTarget(name: string): { Name: string; UID: string; GID: string; Mode: number } {
  return { Name: name, UID: "0", GID: "0", Mode: 0o444 };
}

export function buildDesired(owner: string, cache: ResolvedCache, materials: CacheMaterials, paths: ContainerPaths, container: ContainerOptions): DesiredCache {
  const name = cache.name;
  const blobs: DesiredBlob[] = [blob(owner, name, "config", "config", paths.config, Buffer.from(materials.configYaml))];
  const tls = materials.tls;
  if (tls.kind === "files") {
    blobs.push(blob(owner, name, "secret", "cert", paths.cacheCert, Buffer.from(tls.certPem)));
    blobs.push(blob(owner, name, "secret", "key", paths.cacheKey, Buffer.from(tls.keyPem)));
  } else if (tls.kind === "referenced") {
    if (tls.certPem !== undefined) blobs.push(blob(owner, name, "secret", "cert", paths.cacheCert, Buffer.from(tls.certPem)));
    if (tls.keyPem !== undefined) blobs.push(blob(owner, name, "secret", "key", paths.cacheKey, Buffer.from(tls.keyPem)));
  } else if (tls.kind === "generated") {
    const pub = { [TLS_HOST]: tls.host, [TLS_PAIR]: tls.pair };
    blobs.push(
      blob(owner, name, "secret", "cert", paths.cacheCert, Buffer.from(tls.certPem), { ...pub, [PUBLIC_CERT]: Buffer.from(tls.certPem).toString("base64") }),
    );
    blobs.push(blob(owner, name, "secret", "key", paths.cacheKey, Buffer.from(tls.keyPem), pub));
  } else if (tls.kind === "reused") {
    const pub = { [TLS_HOST]: tls.host, [TLS_PAIR]: tls.pair };
    const base = { kind: "secret" as const };
    blobs.push({
      ...base,
      purpose: "cert",
      name: tls.cert.name,
      hash: tls.cert.hash,
      target: paths.cacheCert,
      labels: { [OWNER]: owner, [CACHE]: name, [PURPOSE]: "cert", [HASH]: tls.cert.hash, ...pub, [PUBLIC_CERT]: Buffer.from(tls.certPem).toString("base64") },
    });
    blobs.push({
      ...base,
      purpose: "key",
      name: tls.key.name,
      hash: tls.key.hash,
      target: paths.cacheKey,
      labels: { [OWNER]: owner, [CACHE]: name, [PURPOSE]: "key", [HASH]: tls.key.hash, ...pub },
    });
  }
  if (materials.caBundle !== undefined) blobs.push(blob(owner, name, "secret", "ca", paths.caBundle, Buffer.from(materials.caBundle)));

  const placement = placementOf(cache);
  const constraints = [`node.labels.${placement.key} == ${placement.value}`];
  // Several caches may share the runbook's default label on different nodes; the hostname keeps
  // each one on its own node.
  if (placement.kind === "hostname") constraints.push(`node.hostname == ${placement.hostname}`);

  const external = materials.external ?? [];
  const configRefs: ServiceConfigRef[] = [
    ...blobs.filter((b) => b.kind === "config").map((b) => ({ File: fileTarget(b.target), ConfigID: "", ConfigName: b.name })),
    ...external.filter((m) => m.kind === "config").map((m) => ({ File: fileTarget(m.target), ConfigID: m.id, ConfigName: m.name })),
  ];
  const secretRefs: ServiceSecretRef[] = [
    ...blobs.filter((b) => b.kind === "secret").map((b) => ({ File: fileTarget(b.target), SecretID: "", SecretName: b.name })),
    ...external.filter((m) => m.kind === "secret").map((m) => ({ File: fileTarget(m.target), SecretID: m.id, SecretName: m.name })),
  ];
  const storage = cache.spec.storage;
  const mounts: ServiceMount[] = storage.volume
    ? [{ Type: "volume", Source: storage.volume, Target: storage.path }]
    : storage.bind
      ? [{ Type: "bind", Source: storage.bind, Target: storage.path }]
      : [];
  const users = [...cache.spec.users].sort();

  const unhashed: ServiceSpec = {
    Name: name,
    Labels: { [OWNER]: owner, [CACHE]: name, [PURPOSE]: "service", [CONFIG_REF]: blobs[0]?.name ?? "" },
    TaskTemplate: {
      ContainerSpec: {
        Image: cache.spec.image,
        Command: [...(container.command ?? ["/start.sh", paths.config])],
        ...(container.args ? { Args: [...container.args] } : {}),
        Env: [`PORT=${cache.spec.port}`, ...(container.env ?? [])],
        Labels: { [OWNER]: owner, [CACHE]: name },
        Configs: configRefs,
        Secrets: secretRefs,
        Mounts: mounts,
        ...(container.healthcheck ? { Healthcheck: container.healthcheck } : {}),
      },
      Placement: placementSpec(cache, constraints),
      RestartPolicy: { Condition: "on-failure" },
    },
    Mode: { Replicated: { Replicas: cache.spec.replicas } },
    // stop-first: a host-mode published port cannot be bound by two tasks on one node at once.
    UpdateConfig: { Parallelism: 1, Order: "stop-first", FailureAction: "rollback", Monitor: ROLLOUT_MONITOR_NS },
    RollbackConfig: { Parallelism: 1, Order: "stop-first" },
    EndpointSpec: { Ports: publishedPorts(cache) },
  };
  const service = withRolloutHash(unhashed);
  return { name, generation: specGeneration(cache), placement, blobs, service, users };
}

/**
 * Several replicas are the HA topology: one task per labelled node, so that losing a node loses one
 * replica, never two (Swarm would otherwise pack them wherever it likes, e.g. both on one node of
 * an ingress-published cache). One replica keeps the spec it always had, so running single caches
 * are not rolled by this field.
 */
function placementSpec(cache: ResolvedCache, constraints: readonly string[]): { Constraints: string[]; MaxReplicas?: number } {
  return cache.spec.replicas > 1 ? { Constraints: [...constraints], MaxReplicas: 1 } : { Constraints: [...constraints] };
}

/**
 * The registry port and, when the spec asks for one, the debug listener's (/metrics, /healthz),
 * published the same way. Without debugPort the service spec is exactly what it was before the
 * field existed, so running caches are not rolled.
 */
function publishedPorts(cache: ResolvedCache): PortConfig[] {
  const publish = (port: number): PortConfig => ({ Protocol: "tcp", TargetPort: port, PublishedPort: port, PublishMode: cache.spec.publishMode });
  return cache.spec.debugPort === undefined ? [publish(cache.spec.port)] : [publish(cache.spec.port), publish(cache.spec.debugPort)];
}

/** The ROLLOUT_HASH of a spec: TaskTemplate (our hash label left out) and EndpointSpec. */
export function rolloutHash(spec: ServiceSpec): string {
  const container = spec.TaskTemplate.ContainerSpec;
  const { [ROLLOUT_HASH]: _own, ...labels } = container.Labels ?? {};
  return sha256(stableJson({ template: { ...spec.TaskTemplate, ContainerSpec: { ...container, Labels: labels } }, endpoint: spec.EndpointSpec ?? null }));
}

/** The spec with its ROLLOUT_HASH label set in ContainerSpec.Labels (never in the service's Labels). */
export function withRolloutHash(spec: ServiceSpec): ServiceSpec {
  const container = spec.TaskTemplate.ContainerSpec;
  return {
    ...spec,
    TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { ...container, Labels: { ...(container.Labels ?? {}), [ROLLOUT_HASH]: rolloutHash(spec) } } },
  };
}
