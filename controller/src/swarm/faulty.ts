// Wraps any SwarmApi and fails chosen calls on purpose: the queue's conflict, transient and
// terminal paths are tested with it, against the fake and against a real engine alike.
import type { SwarmApi, SwarmCall } from "./api.js";
import { SwarmError, type SwarmErrorCode } from "./errors.js";

export interface Fault {
  readonly call: SwarmCall;
  readonly code: SwarmErrorCode;
  /** How many calls fail before the fault clears; Infinity = until removed. */
  times: number;
  readonly message?: string;
}

export interface FaultySwarmApi extends SwarmApi {
  inject(fault: Omit<Fault, "times"> & { times?: number }): void;
  clear(): void;
}

export function faultySwarmApi(inner: SwarmApi): FaultySwarmApi {
  const faults: Fault[] = [];
  const wrap = <K extends SwarmCall>(call: K): SwarmApi[K] => {
    const method = inner[call] as (...args: unknown[]) => Promise<unknown>;
    const wrapped = async (...args: unknown[]): Promise<unknown> => {
      const fault = faults.find((f) => f.call === call && f.times > 0);
      if (fault) {
        fault.times -= 1;
        throw new SwarmError(fault.code, call, `${call}: ${fault.message ?? `injected ${fault.code}`}`);
      }
      return method.apply(inner, args);
    };
    return wrapped as SwarmApi[K];
  };
  return {
    info: wrap("info"),
    listNodes: wrap("listNodes"),
    inspectNode: wrap("inspectNode"),
    updateNode: wrap("updateNode"),
    listConfigs: wrap("listConfigs"),
    inspectConfig: wrap("inspectConfig"),
    createConfig: wrap("createConfig"),
    removeConfig: wrap("removeConfig"),
    listSecrets: wrap("listSecrets"),
    createSecret: wrap("createSecret"),
    removeSecret: wrap("removeSecret"),
    listServices: wrap("listServices"),
    inspectService: wrap("inspectService"),
    createService: wrap("createService"),
    updateService: wrap("updateService"),
    removeService: wrap("removeService"),
    listTasks: wrap("listTasks"),
    subscribeEvents: wrap("subscribeEvents"),
    inject: (fault) => {
      faults.push({ ...fault, times: fault.times ?? 1 });
    },
    clear: () => {
      faults.length = 0;
    },
  };
}
