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

/** How a call ended, for `after`: its result, or the error it threw (rethrown unchanged). */
export type CallOutcome = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: unknown };

/**
 * A SwarmApi that calls `before` (which may throw to fail the call), then the inner API, then
 * `after` with the outcome (observers such as the event recorder; it must not throw).
 */
export function interceptSwarmApi(
  inner: SwarmApi,
  before: (call: SwarmCall, args: readonly unknown[]) => void,
  after?: (call: SwarmCall, args: readonly unknown[], outcome: CallOutcome) => void,
): SwarmApi {
  const api: Partial<Record<SwarmCall, unknown>> = {};
  for (const call of Object.keys(ALL_CALLS) as SwarmCall[]) {
    const method = inner[call] as (...args: unknown[]) => Promise<unknown>;
    api[call] = async (...args: unknown[]): Promise<unknown> => {
      before(call, args);
      if (!after) return method.apply(inner, args);
      try {
        const result = await method.apply(inner, args);
        after(call, args, { ok: true, result });
        return result;
      } catch (error) {
        after(call, args, { ok: false, error });
        throw error;
      }
    };
  }
  return api as SwarmApi;
}
