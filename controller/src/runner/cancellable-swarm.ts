// The SwarmApi seen by one reconcile: every call settles, or rejects with AbortedError as soon as
// the run's signal aborts (a stopping controller past its grace period, or one that lost its
// lease). A call asked for after the abort is not made at all. The signal also goes with the call
// (swarm/call-signal.ts), so the real adapter cancels the HTTP request; whether the engine had
// already acted on it is unknown, and the next pass observes whatever it did.
import type { SwarmApi } from "../swarm/api.js";
import { withCallSignal } from "../swarm/call-signal.js";
import { abortable, AbortedError } from "../abort.js";

export function cancellableSwarm(swarm: SwarmApi, signal: AbortSignal): SwarmApi {
  return new Proxy(swarm, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      // The event stream is the runner's, not a reconcile's: it stays as it is.
      if (prop === "subscribeEvents") return (value as (...a: unknown[]) => unknown).bind(target);
      return (...args: unknown[]): unknown => {
        if (signal.aborted) return Promise.reject(new AbortedError(signal.reason));
        const result = withCallSignal(signal, () => (value as (...a: unknown[]) => unknown).apply(target, args));
        return result instanceof Promise ? abortable(result, signal) : result;
      };
    },
  });
}
