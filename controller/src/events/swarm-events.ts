// Observes the controller's Swarm writes and records each one as an event of the cache it
// concerns (issue 11, item 7). A wrapper around the SwarmApi, so every write the reconciler,
// teardown or the DTR record makes is seen without touching them; reads are not recorded.
//
// A write names its cache directly (create: the object's `io.dtrcache.cache` label; service
// update: the spec) or by id (removes). Ids are learned from what the controller listed or
// created, so a removal is attributed as well; an id never seen goes to the controller-wide
// events. Messages carry object names only, never data.
import type { SwarmApi, SwarmCall } from "../swarm/api.js";
import { WriteAttribution } from "../swarm/attribution.js";
import { SwarmError } from "../swarm/errors.js";
import { interceptSwarmApi, type CallOutcome } from "../swarm/intercept.js";
import type { EventRecorder } from "./recorder.js";

/** Per write: the reasons (done, failed) and the verb (past, present) in the message. */
const WRITES: Partial<Record<SwarmCall, { readonly done: string; readonly failed: string; readonly past: string; readonly verb: string }>> = {
  createConfig: { done: "ConfigCreated", failed: "ConfigCreateFailed", past: "created", verb: "create" },
  removeConfig: { done: "ConfigRemoved", failed: "ConfigRemoveFailed", past: "removed", verb: "remove" },
  createSecret: { done: "SecretCreated", failed: "SecretCreateFailed", past: "created", verb: "create" },
  removeSecret: { done: "SecretRemoved", failed: "SecretRemoveFailed", past: "removed", verb: "remove" },
  createService: { done: "ServiceCreated", failed: "ServiceCreateFailed", past: "created", verb: "create" },
  updateService: { done: "ServiceUpdated", failed: "ServiceUpdateFailed", past: "updated", verb: "update" },
  removeService: { done: "ServiceRemoved", failed: "ServiceRemoveFailed", past: "removed", verb: "remove" },
  updateNode: { done: "NodeLabelsUpdated", failed: "NodeLabelsUpdateFailed", past: "updated labels of", verb: "update labels of" },
  updateConfigLabels: { done: "ConfigLabelsUpdated", failed: "ConfigLabelsUpdateFailed", past: "updated labels of", verb: "update labels of" },
};

function errorText(error: unknown): string {
  if (error instanceof SwarmError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/** A SwarmApi that records every write (and its failure) in `recorder`. */
export function recordSwarmEvents(inner: SwarmApi, recorder: EventRecorder): SwarmApi {
  const attribution = new WriteAttribution();
  const observe = (call: SwarmCall, args: readonly unknown[], outcome: CallOutcome): void => {
    attribution.learn(call, args, outcome);
    const write = WRITES[call];
    const described = write === undefined ? undefined : attribution.describe(call, args);
    if (write === undefined || described === undefined) return;
    const scope = described.cache !== undefined ? { cache: described.cache } : {};
    if (outcome.ok) recorder.record({ ...scope, type: "Normal", source: "swarm", reason: write.done, message: `${write.past} ${described.what}` });
    else
      recorder.record({
        ...scope,
        type: "Warning",
        source: "swarm",
        reason: write.failed,
        message: `${write.verb} ${described.what} failed: ${errorText(outcome.error)}`,
      });
  };
  return interceptSwarmApi(inner, () => undefined, observe);
}
