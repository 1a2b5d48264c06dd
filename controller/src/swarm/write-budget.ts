// A bound on the controller's own Swarm writes per cache (issue 11, item 5: "a controller whose
// own writes keep being undone backs off and reports Degraded … Contended instead of writing in a
// loop"). Independent of the lease: a person, a script or a controller with another owner id can
// undo our writes as well. A healthy rollout makes a handful of writes per cache (config, secrets,
// service update, pruning); a fight makes thousands a minute (3,180 service updates in 60 s in
// the issue). So each cache gets `maxWrites` per sliding `windowMs`; a write beyond it is refused
// before it reaches the engine with ControllerError CONTENDED (retryable: the work queue backs the
// cache off exponentially, up to a minute), and the failure surfaces as Degraded with the message
// naming the count. Writes with no cache (node labels) are not limited. Every write that went
// out is counted per cache for /metrics.
import type { SwarmApi } from "./api.js";
import { isMutating } from "./api.js";
import { WriteAttribution } from "./attribution.js";
import { interceptSwarmApi } from "./intercept.js";
import { ControllerError } from "../errors.js";

export interface WriteBudgetOptions {
  /** Writes allowed per cache per window (default 30). */
  readonly maxWrites?: number;
  readonly windowMs?: number;
  readonly now?: () => number;
  /** Called for each write that went to the engine (whatever its outcome), and each refused one. */
  readonly onWrite?: (cache: string, refused: boolean) => void;
}

export function budgetSwarmWrites(inner: SwarmApi, options: WriteBudgetOptions = {}): SwarmApi {
  const maxWrites = options.maxWrites ?? 30;
  const windowMs = options.windowMs ?? 60_000;
  const now = options.now ?? Date.now;
  const attribution = new WriteAttribution();
  const recent = new Map<string, number[]>();
  return interceptSwarmApi(
    inner,
    (call, args) => {
      if (!isMutating(call)) return;
      const cache = attribution.describe(call, args)?.cache;
      if (cache === undefined) return;
      const at = now();
      const times = (recent.get(cache) ?? []).filter((t) => t > at - windowMs);
      if (times.length >= maxWrites) {
        recent.set(cache, times);
        options.onWrite?.(cache, true);
        throw new ControllerError(
          "CONTENDED",
          `Contended: ${times.length} Swarm writes for cache ${cache} in the last ${Math.round(windowMs / 1000)} s — its objects keep changing under the controller (another controller, a person or a script undoing its writes?); backing off instead of writing in a loop`,
        );
      }
      times.push(at);
      recent.set(cache, times);
      options.onWrite?.(cache, false);
    },
    (call, args, outcome) => attribution.learn(call, args, outcome),
  );
}
