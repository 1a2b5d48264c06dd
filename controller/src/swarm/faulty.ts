// Wraps any SwarmApi and fails chosen calls on purpose: the queue's conflict, transient and
// terminal paths are tested with it, against the fake and against a real engine alike.
import type { SwarmApi, SwarmCall } from "./api.js";
import { SwarmError, type SwarmErrorCode } from "./errors.js";
import { interceptSwarmApi } from "./intercept.js";

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
  const api = interceptSwarmApi(inner, (call) => {
    const fault = faults.find((f) => f.call === call && f.times > 0);
    if (fault) {
      fault.times -= 1;
      throw new SwarmError(fault.code, call, `${call}: ${fault.message ?? `injected ${fault.code}`}`);
    }
  });
  return {
    ...api,
    inject: (fault) => {
      faults.push({ ...fault, times: fault.times ?? 1 });
    },
    clear: () => {
      faults.length = 0;
    },
  };
}
