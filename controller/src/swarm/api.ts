// The narrow Swarm interface: exactly the Engine API calls the reconciler makes, in domain types.
// The real adapter (dockerode.ts) maps them onto dockerode; tests use the in-memory fake
// (fake.ts); recording.ts and faulty.ts wrap any implementation. Keeping the surface this small
// is what makes "a no-op reconcile issues 0 mutating calls" checkable: every write is one of the
// methods listed in MUTATING_CALLS.

export type Labels = Readonly<Record<string, string>>;

export interface ObjectVersion {
  readonly index: number;
}

export interface SwarmNode {
  readonly id: string;
  readonly version: ObjectVersion;
  readonly hostname: string;
  readonly role: "manager" | "worker";
  readonly state: string;
  readonly availability: string;
  /** The full node spec as the engine returned it; updateNode sends it back with changed labels. */
  readonly spec: NodeSpec;
}

export interface NodeSpec {
  readonly Name?: string;
  readonly Labels?: Record<string, string>;
  readonly Role?: string;
  readonly Availability?: string;
}

/** A Swarm config or secret as listed. `data` is only present for configs that were inspected. */
export interface SwarmBlobObject {
  readonly id: string;
  readonly name: string;
  readonly labels: Labels;
  readonly createdAt: string;
  readonly version: ObjectVersion;
}

export interface SwarmConfig extends SwarmBlobObject {
  /** Content; only filled by inspectConfig (Swarm lists configs with data too, but we do not rely on it). */
  readonly data?: Buffer;
}

export type SwarmSecret = SwarmBlobObject;

export interface CreateBlobRequest {
  readonly name: string;
  readonly labels: Labels;
  readonly data: Buffer;
}

/** The part of a Swarm ServiceSpec the controller writes, in the Engine API's own field names. */
export interface FileTarget {
  readonly Name: string;
  readonly UID: string;
  readonly GID: string;
  readonly Mode: number;
}

export interface ServiceConfigRef {
  readonly File: FileTarget;
  readonly ConfigID: string;
  readonly ConfigName: string;
}

export interface ServiceSecretRef {
  readonly File: FileTarget;
  readonly SecretID: string;
  readonly SecretName: string;
}

export interface ServiceMount {
  readonly Type: "volume" | "bind";
  readonly Source: string;
  readonly Target: string;
  readonly ReadOnly?: boolean;
}

export interface HealthConfig {
  readonly Test: readonly string[];
  /** Nanoseconds, as the Engine API takes them. */
  readonly Interval?: number;
  readonly Timeout?: number;
  readonly Retries?: number;
  readonly StartPeriod?: number;
}

export interface PortConfig {
  readonly Protocol: "tcp";
  readonly TargetPort: number;
  readonly PublishedPort: number;
  readonly PublishMode: "host" | "ingress";
}

export interface ServiceSpec {
  readonly Name: string;
  readonly Labels: Record<string, string>;
  readonly TaskTemplate: {
    readonly ContainerSpec: {
      readonly Image: string;
      readonly Command?: readonly string[];
      readonly Args?: readonly string[];
      readonly Env?: readonly string[];
      readonly Labels?: Record<string, string>;
      readonly Configs?: readonly ServiceConfigRef[];
      readonly Secrets?: readonly ServiceSecretRef[];
      readonly Mounts?: readonly ServiceMount[];
      readonly Healthcheck?: HealthConfig;
    };
    readonly Placement?: { readonly Constraints?: readonly string[]; readonly MaxReplicas?: number };
    readonly RestartPolicy?: { readonly Condition?: string; readonly Delay?: number; readonly MaxAttempts?: number; readonly Window?: number };
    readonly ForceUpdate?: number;
  };
  readonly Mode?: { readonly Replicated?: { readonly Replicas?: number } };
  readonly UpdateConfig?: {
    readonly Parallelism?: number;
    readonly Order?: string;
    readonly FailureAction?: string;
    readonly Monitor?: number;
    readonly Delay?: number;
  };
  readonly RollbackConfig?: {
    readonly Parallelism?: number;
    readonly Order?: string;
    readonly FailureAction?: string;
    readonly Monitor?: number;
    readonly Delay?: number;
  };
  readonly EndpointSpec?: { readonly Mode?: string; readonly Ports?: readonly PortConfig[] };
}

export interface UpdateStatus {
  /** updating | paused | completed | rollback_started | rollback_paused | rollback_completed */
  readonly state: string;
  readonly message: string;
  /** When the update began (kept through its rollback); ISO text, absent if the engine gave none. */
  readonly startedAt?: string;
}

export interface SwarmService {
  readonly id: string;
  readonly version: ObjectVersion;
  readonly name: string;
  readonly labels: Labels;
  /** The spec as the engine returned it (defaults filled in). */
  readonly spec: ServiceSpec;
  readonly updateStatus?: UpdateStatus;
  /**
   * The spec before the last update (Engine API `PreviousSpec`), when the engine has one. A manual
   * rollback (`docker service rollback`) swaps it with Spec, so it holds the undone spec; an
   * automatic rollback (UpdateConfig FailureAction rollback) restores Spec from it and clears it.
   */
  readonly previousSpec?: ServiceSpec;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface SwarmTask {
  readonly id: string;
  readonly serviceId: string;
  readonly nodeId?: string;
  /** The task's current state: new, pending, assigned, ..., running, complete, shutdown, failed, rejected, orphaned. */
  readonly state: string;
  readonly desiredState: string;
  /** Swarm's message / error for the state, e.g. "no suitable node (scheduling constraints not satisfied on 1 node)". */
  readonly message: string;
  readonly error?: string;
  readonly configNames: readonly string[];
  readonly secretNames: readonly string[];
  /** Labels of the task's ContainerSpec: what the service's TaskTemplate said when the task was made. */
  readonly containerLabels?: Labels;
  readonly updatedAt: string;
}

export interface EngineInfo {
  readonly engineId: string;
  readonly name: string;
  readonly serverVersion: string;
  readonly swarmState: string;
  readonly isManager: boolean;
  readonly nodeId: string;
}

export interface SwarmEvent {
  readonly type: "service" | "node" | "config" | "secret";
  readonly action: string;
  readonly id: string;
  readonly name?: string;
  readonly labels: Labels;
}

export interface EventSubscription {
  /** Stops the stream; idempotent. */
  close(): void;
}

export interface EventHandlers {
  onEvent(event: SwarmEvent): void;
  /** The stream ended (engine restart, network); the caller re-subscribes with backoff. */
  onEnd(error?: Error): void;
}

/** Only label filters the engine understands: `key` (present) or `key=value`. */
export interface LabelFilter {
  readonly labels: readonly string[];
}

export interface SwarmApi {
  info(): Promise<EngineInfo>;
  listNodes(): Promise<SwarmNode[]>;
  inspectNode(id: string): Promise<SwarmNode>;
  /** Read-modify-write: sends `version`; a stale version fails with code CONFLICT. */
  updateNode(id: string, version: ObjectVersion, spec: NodeSpec): Promise<void>;

  listConfigs(filter: LabelFilter): Promise<SwarmConfig[]>;
  inspectConfig(id: string): Promise<SwarmConfig>;
  createConfig(request: CreateBlobRequest): Promise<string>;
  /**
   * Replaces a config's labels (the only part of a config Swarm lets change). Sends `version`: a
   * stale version fails with code CONFLICT, which is what makes a config usable as a lease record.
   */
  updateConfigLabels(id: string, version: ObjectVersion, name: string, labels: Labels): Promise<void>;
  removeConfig(id: string): Promise<void>;

  listSecrets(filter: LabelFilter): Promise<SwarmSecret[]>;
  createSecret(request: CreateBlobRequest): Promise<string>;
  removeSecret(id: string): Promise<void>;

  listServices(filter: LabelFilter): Promise<SwarmService[]>;
  inspectService(idOrName: string): Promise<SwarmService>;
  createService(spec: ServiceSpec): Promise<string>;
  updateService(id: string, version: ObjectVersion, spec: ServiceSpec): Promise<void>;
  removeService(id: string): Promise<void>;

  listTasks(serviceIdOrName: string): Promise<SwarmTask[]>;

  subscribeEvents(handlers: EventHandlers): Promise<EventSubscription>;
}

/** Method names that change the Swarm; the recording wrapper counts these separately. */
export const MUTATING_CALLS = [
  "updateNode",
  "createConfig",
  "updateConfigLabels",
  "removeConfig",
  "createSecret",
  "removeSecret",
  "createService",
  "updateService",
  "removeService",
] as const satisfies readonly (keyof SwarmApi)[];

export type SwarmCall = Exclude<keyof SwarmApi, never>;

export function isMutating(call: SwarmCall): boolean {
  return (MUTATING_CALLS as readonly string[]).includes(call);
}
