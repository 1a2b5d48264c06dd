// The write fence: once closed, the controller's Swarm writes and DTR passes are refused before
// they leave the process. A controller that lost its lease closes it at the moment the loss is
// known (issue 10/11 follow-up: before, it kept writing through stop()'s grace period while the
// new leader may already write). Aborting the runs in hand stops the calls they are waiting for;
// the fence covers what an aborted run might still start on its way out — a write through a
// SwarmApi the run's signal does not reach (the DTR record), or a call begun between the loss and
// the abort reaching that run's next await.
import { isMutating, type SwarmApi } from "../swarm/api.js";
import { interceptSwarmApi } from "../swarm/intercept.js";
import type { DtrSync } from "../dtr/sync.js";
import { AbortedError } from "../abort.js";

export class WriteFence {
  private reason: Error | undefined;

  get closed(): boolean {
    return this.reason !== undefined;
  }

  /** Closes for good; `reason` is what every refused call rejects with (as an AbortedError's cause). */
  close(reason: Error): void {
    this.reason ??= reason;
  }

  /** Throws AbortedError when closed: the caller is a run that has been stopped. */
  check(): void {
    if (this.reason !== undefined) throw new AbortedError(this.reason);
  }
}

/** The SwarmApi with its mutating calls refused once the fence is closed (reads still go out). */
export function fencedSwarm(inner: SwarmApi, fence: WriteFence): SwarmApi {
  return interceptSwarmApi(inner, (call) => {
    if (isMutating(call)) fence.check();
  });
}

/** The DtrSync with its passes refused once the fence is closed; other members are kept as they are. */
export function fencedDtrSync<S extends DtrSync>(inner: S, fence: WriteFence): S {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      const fn = value as (...a: unknown[]) => unknown;
      if (prop !== "apply" && prop !== "remove") return fn.bind(target);
      return (...args: unknown[]): unknown => {
        if (fence.closed) return Promise.reject(new AbortedError(new Error("the controller stopped writing")));
        return fn.apply(target, args);
      };
    },
  });
}
