// Wraps any SwarmApi and counts calls, mutating ones apart. Tests and the benchmark use it to
// show that a reconcile with nothing to do issues zero writes.
import { isMutating, type SwarmApi, type SwarmCall } from "./api.js";
import { interceptSwarmApi } from "./intercept.js";

export interface CallRecord {
  readonly call: SwarmCall;
  readonly mutating: boolean;
  /** First argument when it names an object (id, name) — never content. */
  readonly target?: string;
}

export interface RecordingSwarmApi extends SwarmApi {
  readonly calls: readonly CallRecord[];
  counts(): { total: number; mutating: number };
  mutatingCalls(): CallRecord[];
  reset(): void;
}

function targetOf(args: readonly unknown[]): string | undefined {
  const first = args[0];
  if (typeof first === "string") return first;
  if (first !== null && typeof first === "object") {
    const named = first as { name?: unknown; Name?: unknown };
    if (typeof named.name === "string") return named.name;
    if (typeof named.Name === "string") return named.Name;
  }
  return undefined;
}

export function recordSwarmApi(inner: SwarmApi): RecordingSwarmApi {
  const calls: CallRecord[] = [];
  const api = interceptSwarmApi(inner, (call, args) => {
    const target = targetOf(args);
    calls.push(target === undefined ? { call, mutating: isMutating(call) } : { call, mutating: isMutating(call), target });
  });
  return {
    ...api,
    get calls() {
      return calls;
    },
    counts: () => ({ total: calls.length, mutating: calls.filter((c) => c.mutating).length }),
    mutatingCalls: () => calls.filter((c) => c.mutating),
    reset: () => {
      calls.length = 0;
    },
  };
}
