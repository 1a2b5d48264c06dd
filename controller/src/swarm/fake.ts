// An in-memory Swarm behind the same interface, for unit tests of the reconciler. It mimics the
// engine behaviours the controller depends on — version checks on updates, unique names, "in use"
// on removal, label filters, defaults filled into stored service specs, scheduling against node
// labels — and nothing more. Fakes drift; the integration tests against a real engine are what
// count.
import type {
  CreateBlobRequest,
  EngineInfo,
  EventHandlers,
  EventSubscription,
  LabelFilter,
  Labels,
  NodeSpec,
  ObjectVersion,
  ServiceSpec,
  SwarmApi,
  SwarmConfig,
  SwarmEvent,
  SwarmNode,
  SwarmSecret,
  SwarmService,
  SwarmTask,
} from "./api.js";
import { stableJson } from "../reconcile/desired.js";
import { SwarmError } from "./errors.js";

interface Blob {
  id: string;
  name: string;
  labels: Record<string, string>;
  data: Buffer;
  createdAt: string;
  version: number;
}

interface Service {
  id: string;
  version: number;
  spec: ServiceSpec;
  createdAt: string;
  updatedAt: string;
  updateState?: string;
  updateStartedAt?: string;
  previousSpec?: ServiceSpec;
  /** Tasks no longer wanted (replaced by an update, failed in one), as Swarm keeps them for a while. */
  history: SwarmTask[];
  /** Set by crashAtStart: how many times the current tasks have been replaced after exiting. */
  crashes?: number;
  /** How many times an update or rollback replaced the tasks: new tasks have new ids, as in Swarm. */
  replaced?: number;
}

function matches(labels: Readonly<Record<string, string>>, filter: LabelFilter): boolean {
  return filter.labels.every((f) => {
    const at = f.indexOf("=");
    return at < 0 ? f in labels : labels[f.slice(0, at)] === f.slice(at + 1);
  });
}

/** What the engine adds to a stored spec; the planner must not see these as differences. */
function withDefaults(spec: ServiceSpec): ServiceSpec {
  const c = spec.TaskTemplate.ContainerSpec;
  return {
    ...spec,
    TaskTemplate: {
      ...spec.TaskTemplate,
      ContainerSpec: {
        ...c,
        Image: c.Image.includes("@") ? c.Image : `${c.Image}@sha256:${"0".repeat(64)}`,
        Configs: c.Configs ?? [],
        Secrets: c.Secrets ?? [],
      },
      RestartPolicy: { Delay: 5_000_000_000, MaxAttempts: 0, ...spec.TaskTemplate.RestartPolicy },
      ForceUpdate: 0,
    },
    UpdateConfig: { Delay: 0, ...spec.UpdateConfig },
    EndpointSpec: { Mode: "vip", ...spec.EndpointSpec },
  };
}

export class FakeSwarm implements SwarmApi {
  readonly nodes = new Map<string, { id: string; version: number; hostname: string; role: "manager" | "worker"; spec: NodeSpec }>();
  readonly configs = new Map<string, Blob>();
  readonly secrets = new Map<string, Blob>();
  readonly services = new Map<string, Service>();
  private readonly subscribers = new Set<EventHandlers>();
  private seq = 0;
  private tick = 0;
  manager = true;

  constructor(hostnames: readonly string[] = ["node-1"]) {
    for (const hostname of hostnames) this.addNode(hostname);
  }

  addNode(hostname: string, labels: Record<string, string> = {}): string {
    const id = `node${++this.seq}`;
    this.nodes.set(id, { id, version: 1, hostname, role: "manager", spec: { Role: "manager", Availability: "active", Labels: { ...labels } } });
    return id;
  }

  private now(): string {
    // Strictly increasing timestamps, so "newest" is well defined even within a millisecond.
    this.tick += 1;
    return new Date(Date.UTC(2026, 0, 1) + this.tick * 1000).toISOString();
  }

  private emit(event: SwarmEvent): void {
    for (const s of this.subscribers) s.onEvent(event);
  }

  /** Drops every subscriber's stream, as an engine restart does. */
  dropEventStreams(): void {
    for (const s of [...this.subscribers]) {
      this.subscribers.delete(s);
      s.onEnd(new SwarmError("UNAVAILABLE", "subscribeEvents", "connection reset"));
    }
  }

  /**
   * The last update fails and Swarm rolls it back, as the engine does it: the tasks of the failed
   * spec stay in the task history (failed), Spec is restored from PreviousSpec and UpdateStatus
   * becomes rollback_completed. `automatic` (UpdateConfig FailureAction rollback) clears
   * PreviousSpec, as swarmkit's updater does; `manual` (`docker service rollback`) swaps the two.
   */
  rollBack(serviceName: string, how: "automatic" | "manual" = "automatic"): void {
    const s = [...this.services.values()].find((x) => x.spec.Name === serviceName);
    if (!s) throw new Error(`no service ${serviceName}`);
    const previous = s.previousSpec;
    if (!previous) throw new Error(`service ${serviceName} has no previous spec to roll back to`);
    const at = this.now();
    s.history.push(
      ...this.liveTasks(s).map((t) => ({
        ...t,
        id: `${t.id}-failed${s.version}`,
        state: "failed",
        desiredState: "shutdown",
        message: "started",
        error: "task: non-zero exit (1)",
        updatedAt: at,
      })),
    );
    s.previousSpec = how === "manual" ? s.spec : undefined;
    s.spec = previous;
    s.version += 1;
    s.updatedAt = at;
    s.replaced = (s.replaced ?? 0) + 1;
    s.updateState = "rollback_completed";
  }

  /**
   * The service's tasks exit right after starting and Swarm's restart policy replaces them, as a
   * cache whose config.yml it rejects does: every listTasks sees a new task running (new id), the
   * one before it failed in the history. `false` lets the current task keep running.
   */
  crashAtStart(serviceName: string, crashing = true): void {
    const s = [...this.services.values()].find((x) => x.spec.Name === serviceName);
    if (!s) throw new Error(`no service ${serviceName}`);
    if (crashing) s.crashes = s.crashes ?? 0;
    else delete s.crashes;
  }

  /** Sets the service's UpdateStatus.State, e.g. "updating" while Swarm still monitors the new tasks. */
  setUpdateState(serviceName: string, state: string): void {
    const s = [...this.services.values()].find((x) => x.spec.Name === serviceName);
    if (!s) throw new Error(`no service ${serviceName}`);
    s.updateState = state;
  }

  info(): Promise<EngineInfo> {
    return Promise.resolve({
      engineId: "fake",
      name: "fake-engine",
      serverVersion: "fake",
      swarmState: this.manager ? "active" : "inactive",
      isManager: this.manager,
      nodeId: [...this.nodes.keys()][0] ?? "",
    });
  }

  private toNode(n: { id: string; version: number; hostname: string; role: "manager" | "worker"; spec: NodeSpec }): SwarmNode {
    return {
      id: n.id,
      version: { index: n.version },
      hostname: n.hostname,
      role: n.role,
      state: "ready",
      availability: "active",
      spec: structuredClone(n.spec),
    };
  }

  listNodes(): Promise<SwarmNode[]> {
    return Promise.resolve([...this.nodes.values()].map((n) => this.toNode(n)));
  }

  inspectNode(id: string): Promise<SwarmNode> {
    const n = this.nodes.get(id);
    return n ? Promise.resolve(this.toNode(n)) : Promise.reject(new SwarmError("NOT_FOUND", "inspectNode", `no such node ${id}`, 404));
  }

  updateNode(id: string, version: ObjectVersion, spec: NodeSpec): Promise<void> {
    const n = this.nodes.get(id);
    if (!n) return Promise.reject(new SwarmError("NOT_FOUND", "updateNode", `no such node ${id}`, 404));
    if (n.version !== version.index) return Promise.reject(new SwarmError("CONFLICT", "updateNode", "update out of sequence", 500));
    n.spec = structuredClone(spec);
    n.version += 1;
    this.emit({ type: "node", action: "update", id, labels: {} });
    return Promise.resolve();
  }

  /** Sets node labels behind the controller's back (drift). */
  setNodeLabels(hostname: string, labels: Record<string, string>): void {
    const n = [...this.nodes.values()].find((x) => x.hostname === hostname);
    if (!n) throw new Error(`no node ${hostname}`);
    n.spec = { ...n.spec, Labels: { ...labels } };
    n.version += 1;
    this.emit({ type: "node", action: "update", id: n.id, labels: {} });
  }

  private toBlob(b: Blob): SwarmConfig {
    return { id: b.id, name: b.name, labels: { ...b.labels }, createdAt: b.createdAt, version: { index: b.version } };
  }

  listConfigs(filter: LabelFilter): Promise<SwarmConfig[]> {
    return Promise.resolve([...this.configs.values()].filter((b) => matches(b.labels, filter)).map((b) => this.toBlob(b)));
  }

  inspectConfig(id: string): Promise<SwarmConfig> {
    const b = this.configs.get(id) ?? [...this.configs.values()].find((x) => x.name === id);
    return b
      ? Promise.resolve({ ...this.toBlob(b), data: Buffer.from(b.data) })
      : Promise.reject(new SwarmError("NOT_FOUND", "inspectConfig", `config ${id} not found`, 404));
  }

  private createBlob(kind: "config" | "secret", store: Map<string, Blob>, request: CreateBlobRequest): Promise<string> {
    if ([...store.values()].some((b) => b.name === request.name))
      return Promise.reject(new SwarmError("NAME_TAKEN", `create${kind}`, `${kind} ${request.name} already exists`, 409));
    const id = `${kind}${++this.seq}`;
    store.set(id, { id, name: request.name, labels: { ...request.labels }, data: Buffer.from(request.data), createdAt: this.now(), version: 1 });
    this.emit({ type: kind, action: "create", id, name: request.name, labels: {} });
    return Promise.resolve(id);
  }

  private removeBlob(kind: "config" | "secret", store: Map<string, Blob>, id: string): Promise<void> {
    const b = store.get(id);
    if (!b) return Promise.reject(new SwarmError("NOT_FOUND", `remove${kind}`, `${kind} ${id} not found`, 404));
    const used = [...this.services.values()].some((s) =>
      kind === "config"
        ? (s.spec.TaskTemplate.ContainerSpec.Configs ?? []).some((r) => r.ConfigID === id)
        : (s.spec.TaskTemplate.ContainerSpec.Secrets ?? []).some((r) => r.SecretID === id),
    );
    if (used) return Promise.reject(new SwarmError("IN_USE", `remove${kind}`, `${kind} '${b.name}' is in use by a service`, 400));
    store.delete(id);
    this.emit({ type: kind, action: "remove", id, name: b.name, labels: {} });
    return Promise.resolve();
  }

  createConfig(request: CreateBlobRequest): Promise<string> {
    return this.createBlob("config", this.configs, request);
  }

  removeConfig(id: string): Promise<void> {
    return this.removeBlob("config", this.configs, id);
  }

  updateConfigLabels(id: string, version: ObjectVersion, name: string, labels: Labels): Promise<void> {
    const b = this.configs.get(id);
    if (!b) return Promise.reject(new SwarmError("NOT_FOUND", "updateConfigLabels", `config ${id} not found`, 404));
    if (b.version !== version.index) return Promise.reject(new SwarmError("CONFLICT", "updateConfigLabels", "update out of sequence", 500));
    if (b.name !== name) return Promise.reject(new SwarmError("INVALID", "updateConfigLabels", "only updates to Labels are allowed", 400));
    b.labels = { ...labels };
    b.version += 1;
    this.emit({ type: "config", action: "update", id, name, labels: {} });
    return Promise.resolve();
  }

  listSecrets(filter: LabelFilter): Promise<SwarmSecret[]> {
    return Promise.resolve([...this.secrets.values()].filter((b) => matches(b.labels, filter)).map((b) => this.toBlob(b)));
  }

  createSecret(request: CreateBlobRequest): Promise<string> {
    return this.createBlob("secret", this.secrets, request);
  }

  removeSecret(id: string): Promise<void> {
    return this.removeBlob("secret", this.secrets, id);
  }

  /** Content of a secret, for assertions (a real engine never returns it). */
  secretData(name: string): string | undefined {
    return [...this.secrets.values()].find((b) => b.name === name)?.data.toString("utf8");
  }

  private toService(s: Service): SwarmService {
    const base = {
      id: s.id,
      version: { index: s.version },
      name: s.spec.Name,
      labels: { ...s.spec.Labels },
      spec: structuredClone(s.spec) as ServiceSpec,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
    };
    const withPrevious = s.previousSpec ? { ...base, previousSpec: structuredClone(s.previousSpec) } : base;
    return s.updateState
      ? {
          ...withPrevious,
          updateStatus: {
            state: s.updateState,
            message: s.updateState === "rollback_completed" ? "rollback completed" : "update completed",
            ...(s.updateStartedAt ? { startedAt: s.updateStartedAt } : {}),
          },
        }
      : withPrevious;
  }

  private findService(idOrName: string): Service | undefined {
    return this.services.get(idOrName) ?? [...this.services.values()].find((s) => s.spec.Name === idOrName);
  }

  private checkRefs(call: string, spec: ServiceSpec): SwarmError | undefined {
    const c = spec.TaskTemplate.ContainerSpec;
    for (const r of c.Configs ?? []) if (!this.configs.has(r.ConfigID)) return new SwarmError("INVALID", call, `config ${r.ConfigName} not found`, 400);
    for (const r of c.Secrets ?? []) if (!this.secrets.has(r.SecretID)) return new SwarmError("INVALID", call, `secret ${r.SecretName} not found`, 400);
    if (!c.Image) return new SwarmError("INVALID", call, "ContainerSpec: image reference must be provided", 400);
    return undefined;
  }

  listServices(filter: LabelFilter): Promise<SwarmService[]> {
    return Promise.resolve([...this.services.values()].filter((s) => matches(s.spec.Labels, filter)).map((s) => this.toService(s)));
  }

  inspectService(idOrName: string): Promise<SwarmService> {
    const s = this.findService(idOrName);
    return s ? Promise.resolve(this.toService(s)) : Promise.reject(new SwarmError("NOT_FOUND", "inspectService", `service ${idOrName} not found`, 404));
  }

  createService(spec: ServiceSpec): Promise<string> {
    if (this.findService(spec.Name)) return Promise.reject(new SwarmError("NAME_TAKEN", "createService", `service ${spec.Name} already exists`, 409));
    const invalid = this.checkRefs("createService", spec);
    if (invalid) return Promise.reject(invalid);
    const id = `service${++this.seq}`;
    const at = this.now();
    this.services.set(id, { id, version: 1, spec: withDefaults(structuredClone(spec)), createdAt: at, updatedAt: at, history: [] });
    this.emit({ type: "service", action: "create", id, name: spec.Name, labels: {} });
    return Promise.resolve(id);
  }

  updateService(id: string, version: ObjectVersion, spec: ServiceSpec): Promise<void> {
    const s = this.findService(id);
    if (!s) return Promise.reject(new SwarmError("NOT_FOUND", "updateService", `service ${id} not found`, 404));
    if (s.version !== version.index) return Promise.reject(new SwarmError("CONFLICT", "updateService", "update out of sequence", 500));
    const invalid = this.checkRefs("updateService", spec);
    if (invalid) return Promise.reject(invalid);
    const next = withDefaults(structuredClone(spec));
    const at = this.now();
    // Tasks are replaced only when what they run changes (TaskTemplate, ports); labels, replicas
    // and update settings are applied without touching them.
    if (stableJson({ t: s.spec.TaskTemplate, e: s.spec.EndpointSpec }) !== stableJson({ t: next.TaskTemplate, e: next.EndpointSpec })) {
      s.history.push(...this.liveTasks(s).map((t) => ({ ...t, id: `${t.id}-v${s.version}`, state: "shutdown", desiredState: "shutdown", updatedAt: at })));
      s.updatedAt = at;
      s.replaced = (s.replaced ?? 0) + 1;
    }
    s.previousSpec = s.spec;
    s.spec = next;
    s.version += 1;
    s.updateStartedAt = at;
    s.updateState = "completed";
    this.emit({ type: "service", action: "update", id, name: spec.Name, labels: {} });
    return Promise.resolve();
  }

  removeService(id: string): Promise<void> {
    const s = this.findService(id);
    if (!s) return Promise.reject(new SwarmError("NOT_FOUND", "removeService", `service ${id} not found`, 404));
    this.services.delete(s.id);
    this.emit({ type: "service", action: "remove", id: s.id, name: s.spec.Name, labels: {} });
    return Promise.resolve();
  }

  /** Live tasks are derived (each replica runs if a node satisfies the constraints, else it is pending), plus the history. */
  listTasks(serviceIdOrName: string): Promise<SwarmTask[]> {
    const s = this.findService(serviceIdOrName);
    if (s?.crashes !== undefined) {
      s.history.push(
        ...this.liveTasks(s).map((t) => ({ ...t, state: "failed", desiredState: "shutdown", error: "task: non-zero exit (1)", updatedAt: this.now() })),
      );
      s.crashes += 1;
    }
    return Promise.resolve(s ? [...this.liveTasks(s), ...s.history.map((t) => structuredClone(t))] : []);
  }

  private liveTasks(s: Service): SwarmTask[] {
    const constraints = s.spec.TaskTemplate.Placement?.Constraints ?? [];
    const fits = [...this.nodes.values()].filter((n) =>
      constraints.every((c) => {
        const m = /^node\.(labels\.(.+)|hostname) == (.*)$/.exec(c);
        if (!m) return true;
        return m[1] === "hostname" ? n.hostname === m[3] : n.spec.Labels?.[m[2] ?? ""] === m[3];
      }),
    );
    const c = s.spec.TaskTemplate.ContainerSpec;
    const replicas = s.spec.Mode?.Replicated?.Replicas ?? 1;
    return Array.from({ length: replicas }, (_, i): SwarmTask => {
      const base = {
        id: `${s.id}-task${i}${s.replaced ? `-u${s.replaced}` : ""}${s.crashes ? `-r${s.crashes}` : ""}`,
        serviceId: s.id,
        desiredState: "running",
        configNames: (c.Configs ?? []).map((r) => r.ConfigName),
        secretNames: (c.Secrets ?? []).map((r) => r.SecretName),
        containerLabels: { ...(c.Labels ?? {}) },
        updatedAt: s.updatedAt,
      };
      const node = fits[0];
      return node
        ? { ...base, nodeId: node.id, state: "running", message: "started" }
        : {
            ...base,
            state: "pending",
            message: "pending task scheduling",
            error: `no suitable node (scheduling constraints not satisfied on ${this.nodes.size} node${this.nodes.size === 1 ? "" : "s"})`,
          };
    });
  }

  subscribeEvents(handlers: EventHandlers): Promise<EventSubscription> {
    this.subscribers.add(handlers);
    return Promise.resolve({ close: () => void this.subscribers.delete(handlers) });
  }
}
