// Observes the controller's Swarm writes and records each one as an event of the cache it
// concerns (issue 11, item 7). A wrapper around the SwarmApi, so every write the reconciler,
// teardown or the DTR record makes is seen without touching them; reads are not recorded.
//
// A write names its cache directly (create: the object's `io.dtrcache.cache` label; service
// update: the spec) or by id (removes). Ids are learned from what the controller listed or
// created, so a removal is attributed as well; an id never seen goes to the controller-wide
// events. Messages carry object names only, never data.
import type { CreateBlobRequest, Labels, NodeSpec, ServiceSpec, SwarmApi, SwarmBlobObject, SwarmCall, SwarmNode, SwarmService } from "../swarm/api.js";
import { SwarmError } from "../swarm/errors.js";
import { interceptSwarmApi, type CallOutcome } from "../swarm/intercept.js";
import { CACHE, PURPOSE } from "../reconcile/labels.js";
import type { EventRecorder } from "./recorder.js";

interface Known {
  readonly name: string;
  readonly cache?: string;
  readonly purpose?: string;
}

/** The cache a write concerns, and what it was done to. */
interface Described {
  readonly cache?: string;
  readonly what: string;
}

/** Per write: the reasons (done, failed) and the verb (past, present) in the message. */
const WRITES: Partial<Record<SwarmCall, { readonly done: string; readonly failed: string; readonly past: string; readonly verb: string }>> = {
  createConfig: { done: "ConfigCreated", failed: "ConfigCreateFailed", past: "created", verb: "create" },
  removeConfig: { done: "ConfigRemoved", failed: "ConfigRemoveFailed", past: "removed", verb: "remove" },
  createSecret: { done: "SecretCreated", failed: "SecretCreateFailed", past: "created", verb: "create" },
  removeSecret: { done: "SecretRemoved", failed: "SecretRemoveFailed", past: "removed", verb: "remove" },
  createService: { done: "ServiceCreated", failed: "ServiceCreateFailed", past: "created", verb: "create" },
  updateService: { done: "ServiceUpdated", failed: "ServiceUpdateFailed", past: "updated", verb: "update" },
  removeService: { done: "ServiceRemoved", failed: "ServiceRemoveFailed", past: "removed", verb: "remove" },
  updateNode: { done: "NodeLabelsUpdated", failed: "NodeLabelsUpdateFailed", past: "updated labels of", verb: "update labels of" },
  updateConfigLabels: { done: "ConfigLabelsUpdated", failed: "ConfigLabelsUpdateFailed", past: "updated labels of", verb: "update labels of" },
};

function known(labels: Labels, name: string): Known {
  const cache = labels[CACHE];
  const purpose = labels[PURPOSE];
  return { name, ...(cache !== undefined ? { cache } : {}), ...(purpose !== undefined ? { purpose } : {}) };
}

function errorText(error: unknown): string {
  if (error instanceof SwarmError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/** A SwarmApi that records every write (and its failure) in `recorder`. */
export function recordSwarmEvents(inner: SwarmApi, recorder: EventRecorder): SwarmApi {
  const ids = new Map<string, Known>();
  const learnBlobs = (list: readonly SwarmBlobObject[]): void => list.forEach((o) => ids.set(o.id, known(o.labels, o.name)));
  const learnService = (s: SwarmService): void => {
    ids.set(s.id, { name: s.name, cache: s.labels[CACHE] ?? s.name });
  };

  const blob = (kind: string, request: CreateBlobRequest): Described => {
    const k = known(request.labels, request.name);
    return { ...(k.cache !== undefined ? { cache: k.cache } : {}), what: `${kind} ${request.name}${k.purpose !== undefined ? ` (${k.purpose})` : ""}` };
  };
  const byId = (kind: string, id: string): Described => {
    const k = ids.get(id);
    return { ...(k?.cache !== undefined ? { cache: k.cache } : {}), what: `${kind} ${k?.name ?? id}${k?.purpose !== undefined ? ` (${k.purpose})` : ""}` };
  };
  const service = (spec: ServiceSpec): Described => ({ cache: spec.Labels[CACHE] ?? spec.Name, what: `service ${spec.Name} (image ${spec.TaskTemplate.ContainerSpec.Image})` });

  const describe = (call: SwarmCall, args: readonly unknown[]): Described | undefined => {
    switch (call) {
      case "createConfig":
        return blob("config", args[0] as CreateBlobRequest);
      case "createSecret":
        return blob("secret", args[0] as CreateBlobRequest);
      case "removeConfig":
        return byId("config", args[0] as string);
      case "removeSecret":
        return byId("secret", args[0] as string);
      case "createService":
        return service(args[0] as ServiceSpec);
      case "updateService":
        return service(args[2] as ServiceSpec);
      case "removeService":
        return byId("service", args[0] as string);
      case "updateNode": {
        const node = ids.get(args[0] as string);
        return { what: `node ${node?.name ?? (args[2] as NodeSpec).Name ?? (args[0] as string)}` };
      }
      case "updateConfigLabels":
        return { what: `config ${args[2] as string}` };
      default:
        return undefined;
    }
  };

  const observe = (call: SwarmCall, args: readonly unknown[], outcome: CallOutcome): void => {
    if (outcome.ok) {
      const result = outcome.result;
      if (call === "listConfigs" || call === "listSecrets") learnBlobs(result as SwarmBlobObject[]);
      else if (call === "listServices") (result as SwarmService[]).forEach(learnService);
      else if (call === "inspectService") learnService(result as SwarmService);
      else if (call === "listNodes") (result as SwarmNode[]).forEach((n) => ids.set(n.id, { name: n.hostname }));
      else if ((call === "createConfig" || call === "createSecret") && typeof result === "string") ids.set(result, known((args[0] as CreateBlobRequest).labels, (args[0] as CreateBlobRequest).name));
    }
    const write = WRITES[call];
    const described = write === undefined ? undefined : describe(call, args);
    if (write === undefined || described === undefined) return;
    const scope = described.cache !== undefined ? { cache: described.cache } : {};
    if (outcome.ok) recorder.record({ ...scope, type: "Normal", source: "swarm", reason: write.done, message: `${write.past} ${described.what}` });
    else recorder.record({ ...scope, type: "Warning", source: "swarm", reason: write.failed, message: `${write.verb} ${described.what} failed: ${errorText(outcome.error)}` });
  };

  return interceptSwarmApi(inner, () => undefined, observe);
}
