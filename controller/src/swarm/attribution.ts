// Which cache a Swarm write concerns, and what it was done to, in words. Shared by the observers
// that need it per cache (events, the write budget): a create names its cache by the object's
// `io.dtrcache.cache` label, a service update by its spec, a removal by id — ids are learned
// from what the controller listed, inspected or created through the same wrapper. A write whose
// cache cannot be told (node labels, an id never seen) has no cache.
import type { CreateBlobRequest, Labels, NodeSpec, ServiceSpec, SwarmBlobObject, SwarmCall, SwarmNode, SwarmService } from "./api.js";
import type { CallOutcome } from "./intercept.js";
import { CACHE, PURPOSE } from "../reconcile/labels.js";

interface Known {
  readonly name: string;
  readonly cache?: string;
  readonly purpose?: string;
}

/** The cache a write concerns (if known), and what it was done to: "service X (image Y)". */
export interface WriteTarget {
  readonly cache?: string;
  readonly what: string;
}

function known(labels: Labels, name: string): Known {
  const cache = labels[CACHE];
  const purpose = labels[PURPOSE];
  return { name, ...(cache !== undefined ? { cache } : {}), ...(purpose !== undefined ? { purpose } : {}) };
}

export class WriteAttribution {
  private readonly ids = new Map<string, Known>();

  /** Learns ids from a successful call's result (lists, inspects, creates). */
  learn(call: SwarmCall, args: readonly unknown[], outcome: CallOutcome): void {
    if (!outcome.ok) return;
    const result = outcome.result;
    if (call === "listConfigs" || call === "listSecrets") for (const o of result as SwarmBlobObject[]) this.ids.set(o.id, known(o.labels, o.name));
    else if (call === "listServices") for (const s of result as SwarmService[]) this.learnService(s);
    else if (call === "inspectService") this.learnService(result as SwarmService);
    else if (call === "listNodes") for (const n of result as SwarmNode[]) this.ids.set(n.id, { name: n.hostname });
    else if ((call === "createConfig" || call === "createSecret") && typeof result === "string") {
      const request = args[0] as CreateBlobRequest;
      this.ids.set(result, known(request.labels, request.name));
    }
  }

  /** The target of a mutating call; undefined for reads. */
  describe(call: SwarmCall, args: readonly unknown[]): WriteTarget | undefined {
    switch (call) {
      case "createConfig":
        return this.blob("config", args[0] as CreateBlobRequest);
      case "createSecret":
        return this.blob("secret", args[0] as CreateBlobRequest);
      case "removeConfig":
        return this.byId("config", args[0] as string);
      case "removeSecret":
        return this.byId("secret", args[0] as string);
      case "createService":
        return this.service(args[0] as ServiceSpec);
      case "updateService":
        return this.service(args[2] as ServiceSpec);
      case "removeService":
        return this.byId("service", args[0] as string);
      case "updateNode":
        return { what: `node ${this.ids.get(args[0] as string)?.name ?? (args[2] as NodeSpec).Name ?? (args[0] as string)}` };
      case "updateConfigLabels":
        return { what: `config ${args[2] as string}` };
      default:
        return undefined;
    }
  }

  private learnService(s: SwarmService): void {
    this.ids.set(s.id, { name: s.name, cache: s.labels[CACHE] ?? s.name });
  }

  private blob(kind: string, request: CreateBlobRequest): WriteTarget {
    const k = known(request.labels, request.name);
    return { ...(k.cache !== undefined ? { cache: k.cache } : {}), what: `${kind} ${request.name}${k.purpose !== undefined ? ` (${k.purpose})` : ""}` };
  }

  private byId(kind: string, id: string): WriteTarget {
    const k = this.ids.get(id);
    return { ...(k?.cache !== undefined ? { cache: k.cache } : {}), what: `${kind} ${k?.name ?? id}${k?.purpose !== undefined ? ` (${k.purpose})` : ""}` };
  }

  private service(spec: ServiceSpec): WriteTarget {
    return { cache: spec.Labels[CACHE] ?? spec.Name, what: `service ${spec.Name} (image ${spec.TaskTemplate.ContainerSpec.Image})` };
  }
}
