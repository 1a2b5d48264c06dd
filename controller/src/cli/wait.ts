// Waits for `apply` to converge, printing a line whenever a cache's conditions change, so the
// user sees Progressing → Ready (or the reason it is stuck) as it happens.
import type { RuntimeSnapshot } from "./snapshot.js";

export interface ConvergenceOutcome {
  readonly converged: boolean;
  /** Why not, when not converged: each unready cache's blocking condition. */
  readonly reason: string;
}

const POLL_MS = 500;

function summary(status: RuntimeSnapshot): Map<string, string> {
  return new Map(
    status.caches.map((c) => [
      c.name,
      c.conditions.map((x) => `${x.type}=${x.status}${x.status === "True" && x.type !== "Degraded" ? "" : ` (${x.reason})`}`).join(" "),
    ]),
  );
}

function unready(status: RuntimeSnapshot): string[] {
  const reasons: string[] = [];
  if (!status.spec.loaded) reasons.push(`spec not loaded: ${status.spec.errors.join("; ")}`);
  for (const cache of status.caches) {
    if (cache.terminating) {
      reasons.push(`${cache.name}: still being removed`);
      continue;
    }
    const ready = cache.conditions.find((c) => c.type === "Ready");
    const dtr = cache.conditions.find((c) => c.type === "DtrSynced");
    if (ready?.status !== "True" || cache.observedGeneration !== cache.generation)
      reasons.push(`${cache.name}: ${ready ? `${ready.reason}: ${ready.message}` : "not reconciled yet"}`);
    // DTR must say True: False names failed or unknown users, Unknown means its pass has not run
    // for this spec yet. Only a controller without a DTR client (NotConfigured) is exempt.
    else if (dtr && dtr.status !== "True" && dtr.reason !== "NotConfigured") reasons.push(`${cache.name}: DTR ${dtr.reason}: ${dtr.message}`);
  }
  return reasons;
}

export async function waitForConvergence(snapshot: () => RuntimeSnapshot, timeoutMs: number, progress: (line: string) => void): Promise<ConvergenceOutcome> {
  const deadline = Date.now() + timeoutMs;
  let previous = new Map<string, string>();
  for (;;) {
    const status = snapshot();
    const now = summary(status);
    for (const [name, line] of now) if (previous.get(name) !== line) progress(`${name}: ${line || "waiting for the first reconcile"}`);
    previous = now;
    const reasons = unready(status);
    if (reasons.length === 0) return { converged: true, reason: "" };
    if (Date.now() >= deadline) return { converged: false, reason: reasons.join("; ") };
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
