// The one place that wraps every SwarmApi call: the recording and fault-injecting wrappers only
// say what happens before a call goes through. The call list is a record keyed by SwarmCall, so
// a method added to SwarmApi does not compile until it is listed here too.
import type { SwarmApi, SwarmCall } from "./api.js";

const ALL_CALLS: Readonly<Record<SwarmCall, true>> = {
  info: true,
  listNodes: true,
  inspectNode: true,
  updateNode: true,
  listConfigs: true,
  inspectConfig: true,
  createConfig: true,
  updateConfigLabels: true,
  removeConfig: true,
  listSecrets: true,
  createSecret: true,
  removeSecret: true,
  listServices: true,
  inspectService: true,
  createService: true,
  updateService: true,
  removeService: true,
  listTasks: true,
  subscribeEvents: true,
};

/** A SwarmApi that calls `before` (which may throw to fail the call) and then the inner API. */
export function interceptSwarmApi(inner: SwarmApi, before: (call: SwarmCall, args: readonly unknown[]) => void): SwarmApi {
  const api: Partial<Record<SwarmCall, unknown>> = {};
  for (const call of Object.keys(ALL_CALLS) as SwarmCall[]) {
    const method = inner[call] as (...args: unknown[]) => Promise<unknown>;
    api[call] = async (...args: unknown[]): Promise<unknown> => {
      before(call, args);
      return method.apply(inner, args);
    };
  }
  return api as SwarmApi;
}
