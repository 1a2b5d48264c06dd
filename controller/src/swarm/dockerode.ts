// The real SwarmApi: Engine API calls through dockerode's modem. We dial the endpoints directly
// (instead of dockerode's helper objects) so the query string and the body are exactly what the
// Engine API documents — `version` goes in the query of an update, never into the spec — and so
// every engine error is classified into a SwarmError at one place. A call made inside a
// reconcile carries that run's AbortSignal (call-signal.ts) to docker-modem's `abortSignal`, which
// hands it to the HTTP request: an aborted run closes its requests (the engine may still have
// acted on one that was already sent; the next pass observes what it did).
import type Dockerode from "dockerode";
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
import { AbortedError } from "../abort.js";
import { callSignal } from "./call-signal.js";
import { classifyEngineError, SwarmError } from "./errors.js";

interface DialOptions {
  path: string;
  method: "GET" | "POST" | "DELETE";
  options?: { _query?: Record<string, string | number>; _body?: unknown };
  statusCodes: Record<number, true | string>;
  isStream?: boolean;
  allowEmpty?: boolean;
  /** docker-modem 5 passes it to http.request and to the response body (modem.js, buildRequest). */
  abortSignal?: AbortSignal;
}

/** The one method of docker-modem we use. */
interface Modem {
  dial(options: DialOptions, callback: (error: unknown, data: unknown) => void): void;
}

type Json = Record<string, unknown>;

const OK: Record<number, true | string> = {
  200: true,
  201: true,
  204: true,
  304: true,
  400: "bad parameter",
  403: "forbidden",
  404: "not found",
  409: "conflict",
  500: "server error",
  503: "node is not part of a swarm",
};

function obj(value: unknown): Json {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : {};
}
function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}
function num(value: unknown): number {
  return typeof value === "number" ? value : 0;
}
function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
function labels(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(value))) if (typeof v === "string") out[k] = v;
  return out;
}
function version(value: unknown): ObjectVersion {
  return { index: num(obj(value)["Index"]) };
}

function engineMessage(error: unknown): { statusCode?: number; message: string } {
  const e = obj(error);
  const json = obj(e["json"]);
  const statusCode = typeof e["statusCode"] === "number" ? e["statusCode"] : undefined;
  const message = str(json["message"]) || (error instanceof Error ? error.message : String(error));
  return statusCode === undefined ? { message } : { statusCode, message };
}

function labelFilters(filter: LabelFilter): string {
  return JSON.stringify({ label: filter.labels });
}

export function toNode(raw: unknown): SwarmNode {
  const n = obj(raw);
  const spec = obj(n["Spec"]);
  const description = obj(n["Description"]);
  return {
    id: str(n["ID"]),
    version: version(n["Version"]),
    hostname: str(description["Hostname"]),
    role: str(spec["Role"]) === "manager" ? "manager" : "worker",
    state: str(obj(n["Status"])["State"]),
    availability: str(spec["Availability"]),
    spec: { ...spec, Labels: labels(spec["Labels"]) } as NodeSpec,
  };
}

function toBlob(raw: unknown): SwarmConfig {
  const c = obj(raw);
  const spec = obj(c["Spec"]);
  const data = str(spec["Data"]);
  const base = { id: str(c["ID"]), name: str(spec["Name"]), labels: labels(spec["Labels"]), createdAt: str(c["CreatedAt"]), version: version(c["Version"]) };
  return data ? { ...base, data: Buffer.from(data, "base64") } : base;
}

export function toService(raw: unknown): SwarmService {
  const s = obj(raw);
  const spec = obj(s["Spec"]) as unknown as ServiceSpec;
  const update = obj(s["UpdateStatus"]);
  const base = {
    id: str(s["ID"]),
    version: version(s["Version"]),
    name: str(obj(s["Spec"])["Name"]),
    labels: labels(obj(s["Spec"])["Labels"]),
    spec,
    createdAt: str(s["CreatedAt"]),
    updatedAt: str(s["UpdatedAt"]),
  };
  const previous = s["PreviousSpec"];
  const withPrevious = previous !== null && typeof previous === "object" ? { ...base, previousSpec: previous as ServiceSpec } : base;
  return update["State"] !== undefined
    ? {
        ...withPrevious,
        updateStatus: {
          state: str(update["State"]),
          message: str(update["Message"]),
          ...(str(update["StartedAt"]) ? { startedAt: str(update["StartedAt"]) } : {}),
        },
      }
    : withPrevious;
}

export function toTask(raw: unknown): SwarmTask {
  const t = obj(raw);
  const status = obj(t["Status"]);
  const container = obj(obj(obj(t["Spec"])["ContainerSpec"]));
  const base = {
    id: str(t["ID"]),
    serviceId: str(t["ServiceID"]),
    state: str(status["State"]),
    desiredState: str(t["DesiredState"]),
    message: str(status["Message"]),
    configNames: arr(container["Configs"]).map((c) => str(obj(c)["ConfigName"])),
    secretNames: arr(container["Secrets"]).map((c) => str(obj(c)["SecretName"])),
    containerLabels: labels(container["Labels"]),
    updatedAt: str(t["UpdatedAt"]),
  };
  const nodeId = str(t["NodeID"]);
  const err = str(status["Err"]);
  return { ...base, ...(nodeId ? { nodeId } : {}), ...(err ? { error: err } : {}) };
}

function toEvent(raw: unknown): SwarmEvent | undefined {
  const e = obj(raw);
  const type = str(e["Type"]);
  if (type !== "service" && type !== "node" && type !== "config" && type !== "secret") return undefined;
  const actor = obj(e["Actor"]);
  const attributes = labels(actor["Attributes"]);
  const name = attributes["name"];
  const base = { type, action: str(e["Action"]), id: str(actor["ID"]), labels: attributes } as const;
  return name !== undefined ? { ...base, name } : base;
}

export class DockerodeSwarmApi implements SwarmApi {
  private readonly modem: Modem;

  constructor(docker: Dockerode) {
    this.modem = docker.modem as Modem;
  }

  private dial(call: string, options: Omit<DialOptions, "statusCodes" | "abortSignal">): Promise<unknown> {
    // The event stream belongs to the runner, never to one reconcile: it takes no run's signal.
    const signal = options.isStream === true ? undefined : callSignal();
    // An aborted run sends nothing more (not even a request cancelled before its bytes leave).
    if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason));
    return new Promise((resolve, reject) => {
      this.modem.dial({ ...options, statusCodes: OK, ...(signal ? { abortSignal: signal } : {}) }, (error, data) => {
        // Cancelled by us, not an engine failure: not UNAVAILABLE (that would mark the engine down).
        if (error && signal?.aborted) reject(new AbortedError(signal.reason));
        else if (error) {
          const { statusCode, message } = engineMessage(error);
          reject(classifyEngineError(call, statusCode, message, error));
        } else resolve(data);
      });
    });
  }

  async info(): Promise<EngineInfo> {
    const raw = obj(await this.dial("info", { path: "/info", method: "GET" }));
    const swarm = obj(raw["Swarm"]);
    return {
      engineId: str(raw["ID"]),
      name: str(raw["Name"]),
      serverVersion: str(raw["ServerVersion"]),
      swarmState: str(swarm["LocalNodeState"]),
      isManager: swarm["ControlAvailable"] === true,
      nodeId: str(swarm["NodeID"]),
    };
  }

  async listNodes(): Promise<SwarmNode[]> {
    return arr(await this.dial("listNodes", { path: "/nodes", method: "GET" })).map(toNode);
  }

  async inspectNode(id: string): Promise<SwarmNode> {
    return toNode(await this.dial("inspectNode", { path: `/nodes/${encodeURIComponent(id)}`, method: "GET" }));
  }

  async updateNode(id: string, v: ObjectVersion, spec: NodeSpec): Promise<void> {
    await this.dial("updateNode", { path: `/nodes/${encodeURIComponent(id)}/update?`, method: "POST", options: { _query: { version: v.index }, _body: spec } });
  }

  async listConfigs(filter: LabelFilter): Promise<SwarmConfig[]> {
    // Listed data is dropped on purpose: callers that need content inspect the one config.
    return arr(await this.dial("listConfigs", { path: "/configs?", method: "GET", options: { _query: { filters: labelFilters(filter) } } })).map((c) => {
      const { data: _data, ...rest } = toBlob(c);
      return rest;
    });
  }

  async inspectConfig(id: string): Promise<SwarmConfig> {
    return toBlob(await this.dial("inspectConfig", { path: `/configs/${encodeURIComponent(id)}`, method: "GET" }));
  }

  async createConfig(request: CreateBlobRequest): Promise<string> {
    const body = { Name: request.name, Labels: request.labels, Data: request.data.toString("base64") };
    return str(obj(await this.dial("createConfig", { path: "/configs/create?", method: "POST", options: { _body: body } }))["ID"]);
  }

  async updateConfigLabels(id: string, v: ObjectVersion, name: string, labels: Labels): Promise<void> {
    // Swarm refuses any change but Labels, and a Data field at all ("only updates to Labels are allowed").
    await this.dial("updateConfigLabels", {
      path: `/configs/${encodeURIComponent(id)}/update?`,
      method: "POST",
      options: { _query: { version: v.index }, _body: { Name: name, Labels: labels } },
    });
  }

  async removeConfig(id: string): Promise<void> {
    await this.dial("removeConfig", { path: `/configs/${encodeURIComponent(id)}`, method: "DELETE" });
  }

  async listSecrets(filter: LabelFilter): Promise<SwarmSecret[]> {
    return arr(await this.dial("listSecrets", { path: "/secrets?", method: "GET", options: { _query: { filters: labelFilters(filter) } } })).map(toBlob);
  }

  async createSecret(request: CreateBlobRequest): Promise<string> {
    const body = { Name: request.name, Labels: request.labels, Data: request.data.toString("base64") };
    return str(obj(await this.dial("createSecret", { path: "/secrets/create?", method: "POST", options: { _body: body } }))["ID"]);
  }

  async removeSecret(id: string): Promise<void> {
    await this.dial("removeSecret", { path: `/secrets/${encodeURIComponent(id)}`, method: "DELETE" });
  }

  async listServices(filter: LabelFilter): Promise<SwarmService[]> {
    return arr(await this.dial("listServices", { path: "/services?", method: "GET", options: { _query: { filters: labelFilters(filter) } } })).map(toService);
  }

  async inspectService(idOrName: string): Promise<SwarmService> {
    return toService(await this.dial("inspectService", { path: `/services/${encodeURIComponent(idOrName)}`, method: "GET" }));
  }

  async createService(spec: ServiceSpec): Promise<string> {
    return str(obj(await this.dial("createService", { path: "/services/create?", method: "POST", options: { _body: spec } }))["ID"]);
  }

  async updateService(id: string, v: ObjectVersion, spec: ServiceSpec): Promise<void> {
    await this.dial("updateService", {
      path: `/services/${encodeURIComponent(id)}/update?`,
      method: "POST",
      options: { _query: { version: v.index }, _body: spec },
    });
  }

  async removeService(id: string): Promise<void> {
    await this.dial("removeService", { path: `/services/${encodeURIComponent(id)}`, method: "DELETE" });
  }

  async listTasks(service: string): Promise<SwarmTask[]> {
    const filters = JSON.stringify({ service: [service] });
    return arr(await this.dial("listTasks", { path: "/tasks?", method: "GET", options: { _query: { filters } } })).map(toTask);
  }

  async subscribeEvents(handlers: EventHandlers): Promise<EventSubscription> {
    const filters = JSON.stringify({ type: ["service", "node", "config", "secret"] });
    const stream = (await this.dial("subscribeEvents", {
      path: "/events?",
      method: "GET",
      isStream: true,
      options: { _query: { filters } },
    })) as NodeJS.ReadableStream & { destroy(): void };
    let buffered = "";
    let closed = false;
    let ended = false;
    const end = (error?: Error): void => {
      if (ended) return;
      ended = true;
      if (!closed) handlers.onEnd(error);
    };
    stream.on("data", (chunk: Buffer | string) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf("\n");
        if (!line) continue;
        try {
          const event = toEvent(JSON.parse(line));
          if (event) handlers.onEvent(event);
        } catch {
          // A torn line cannot happen with newline framing; a malformed one is skipped, the resync covers it.
        }
      }
    });
    stream.on("end", () => end());
    stream.on("close", () => end());
    stream.on("error", (error: Error) => end(new SwarmError("UNAVAILABLE", "subscribeEvents", `event stream: ${error.message}`, undefined, { cause: error })));
    return {
      close: () => {
        closed = true;
        stream.destroy();
      },
    };
  }
}
