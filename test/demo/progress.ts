// What the demo prints while the controller works: only what changed since the last look
// (conditions, DTR registration and users, spec load errors, a spec edit seen and applied), so
// the terminal reads like a log of the controller's progress rather than a refreshing screen.
import type { ControllerStatus } from "@dtrcache/controller";

type Cache = ControllerStatus["caches"][number];

function conditionLine(cache: Cache): Map<string, string> {
  const lines = new Map<string, string>();
  for (const c of cache.conditions) lines.set(c.type, `${c.type}=${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ""})` : ""}`);
  return lines;
}

function usersLine(cache: Cache): string {
  return cache.dtr.users.map((u) => `${u.username}:${u.state}`).join(", ");
}

/**
 * Lines describing how `next` differs from `previous` (everything, for the first look).
 * Pure, so the wording is testable without a swarm.
 */
export function describeChanges(previous: ControllerStatus | undefined, next: ControllerStatus): string[] {
  const out: string[] = [];
  const before = new Map((previous?.caches ?? []).map((c) => [c.name, c]));
  const prevErrors = previous?.spec.errors.join("\n") ?? "";
  const nextErrors = next.spec.errors.join("\n");
  if (nextErrors !== prevErrors) {
    if (next.spec.errors.length === 0) out.push("spec: the file loads again");
    else for (const e of next.spec.errors) out.push(`spec: ${e} (the last good spec stays in force; fix the file)`);
  }
  if (previous && previous.engine.reachable !== next.engine.reachable)
    out.push(next.engine.reachable ? "engine: reachable again" : `engine: unreachable${next.engine.message ? `: ${next.engine.message}` : ""}`);
  for (const cache of next.caches) {
    const old = before.get(cache.name);
    const name = cache.name;
    if (!old) out.push(`${name}: in the spec${cache.terminating ? " (being removed)" : ""}`);
    if (old && old.generation !== cache.generation && cache.generation !== "")
      out.push(`${name}: spec change seen (generation ${cache.generation.slice(0, 8)}), applying`);
    if (old && !old.terminating && cache.terminating)
      out.push(`${name}: left the spec, tearing down (users reset, DTR registration deleted, service and objects removed)`);
    const oldLines = old ? conditionLine(old) : new Map<string, string>();
    for (const [type, line] of conditionLine(cache)) if (oldLines.get(type) !== line) out.push(`${name}: ${line}`);
    if ((old?.dtr.registrationId ?? "") !== (cache.dtr.registrationId ?? "") && cache.dtr.registrationId)
      out.push(`${name}: registered with DTR as ${cache.dtr.registrationId}`);
    if ((old ? usersLine(old) : "") !== usersLine(cache) && cache.dtr.users.length > 0) out.push(`${name}: DTR users ${usersLine(cache)}`);
  }
  for (const [name] of before) if (!next.caches.some((c) => c.name === name)) out.push(`${name}: removed`);
  return out;
}
