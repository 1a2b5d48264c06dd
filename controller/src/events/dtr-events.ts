// Observes the controller's DTR passes (registration + user settings, and teardown) and records
// each as an event of its cache (issue 11, item 7). A wrapper around the DtrSync seam, so the DTR
// reconciler is unchanged. Messages carry ids, hosts, user names and DTR's error codes — DtrError
// messages never carry credentials (dtr/errors.ts).
import { describeDtrFailure } from "../dtr/dtr-sync.js";
import type { DtrApplyRequest, DtrCacheStatus, DtrRemoval, DtrSync } from "../dtr/sync.js";
import type { EventRecorder } from "./recorder.js";

/** At most this many user names per list in a message; the rest is counted. */
const NAMES_SHOWN = 5;

function names(list: readonly string[]): string {
  const shown = list.slice(0, NAMES_SHOWN).join(", ");
  return list.length > NAMES_SHOWN ? `${shown} and ${list.length - NAMES_SHOWN} more` : shown;
}

function applySummary(request: DtrApplyRequest, result: DtrCacheStatus): { warning: boolean; message: string } {
  const requested = new Set(request.assign);
  const touched = result.users.filter((u) => requested.has(u.username));
  const assigned = touched.filter((u) => u.state === "assigned").length;
  const failed = touched.filter((u) => u.state === "failed").map((u) => u.username);
  const unknown = touched.filter((u) => u.state === "unknown-user").map((u) => u.username);
  const resets = result.resets ?? [];
  const reset = resets.filter((r) => r.state === "reset").map((r) => r.username);
  const resetFailed = resets.filter((r) => r.state === "failed").map((r) => r.username);
  const parts = [result.registrationId !== undefined ? `registration ${result.registrationId} (host ${result.host ?? "?"})` : "not registered"];
  if (request.assign.length > 0) parts.push(`${assigned}/${request.assign.length} users assigned`);
  if (failed.length > 0) parts.push(`failed: ${names(failed)}`);
  if (unknown.length > 0) parts.push(`unknown users: ${names(unknown)}`);
  if (reset.length > 0) parts.push(`reset: ${names(reset)}`);
  if (resetFailed.length > 0) parts.push(`reset failed: ${names(resetFailed)}`);
  if ((result.foreign ?? []).length > 0) parts.push(`${result.foreign?.length ?? 0} registration(s) of this name not ours (left alone)`);
  return { warning: failed.length + unknown.length + resetFailed.length + (result.foreign ?? []).length > 0, message: parts.join("; ") };
}

/** A DtrSync that records each pass and its failure in `recorder`. */
export function recordDtrEvents(inner: DtrSync, recorder: EventRecorder): DtrSync {
  const failed = (cache: string, reason: string, error: unknown): void => {
    const failure = describeDtrFailure(error);
    recorder.record({ cache, type: "Warning", source: "dtr", reason, message: `${failure.reason}: ${failure.message}` });
  };
  return {
    async apply(cache, request, signal) {
      try {
        const result = await inner.apply(cache, request, signal);
        const summary = applySummary(request, result);
        recorder.record({
          cache: cache.name,
          type: summary.warning ? "Warning" : "Normal",
          source: "dtr",
          reason: summary.warning ? "DtrPartiallySynced" : "DtrSynced",
          message: summary.message,
        });
        return result;
      } catch (error) {
        failed(cache.name, "DtrSyncFailed", error);
        throw error;
      }
    },
    async remove(removal: DtrRemoval, signal) {
      try {
        const result = await inner.remove(removal, signal);
        const foreign = result.foreign.length > 0 ? `; ${result.foreign.length} registration(s) of this name not ours (left alone)` : "";
        recorder.record({
          cache: removal.cacheName,
          type: "Normal",
          source: "dtr",
          reason: "DtrRemoved",
          message: `registrations ${removal.owned.join(", ") || "(none recorded)"} deleted; ${removal.users.length} recorded user(s) reset where they pointed here${foreign}`,
        });
        return result;
      } catch (error) {
        failed(removal.cacheName, "DtrRemoveFailed", error);
        throw error;
      }
    },
  };
}
