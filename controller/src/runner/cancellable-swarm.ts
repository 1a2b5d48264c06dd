// The SwarmApi seen by one reconcile: every call settles, or rejects with AbortedError as soon as
// the run's signal aborts (a stopping controller past its grace period). The Engine API calls take
// no signal of their own here, so the request may still complete in the engine; the reconcile has
// let go of it, and the next pass observes whatever it did.
import type { SwarmApi } from "../swarm/api.js";
import { abortable } from "./clock.js";

export function cancellableSwarm(swarm: SwarmApi, signal: AbortSignal): SwarmApi {
  return new Proxy(swarm, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      // The event stream is the runner's, not a reconcile's: it stays as it is.
      if (prop === "subscribeEvents") return (value as (...a: unknown[]) => unknown).bind(target);
      return (...args: unknown[]): unknown => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        return result instanceof Promise ? abortable(result, signal) : result;
      };
    },
  });
}
