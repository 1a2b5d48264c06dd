// The server-side part of `dtrcache diff -f` (issue 11, item 6): what the controller would do in
// the swarm and in DTR once the admitted change is stored. Nothing is written: the Swarm side is
// the controller's own planner (`plan()`, the same one every reconcile uses) over the resulting
// spec; the DTR side is read from the controller's DTR record (what DTR confirmed: our
// registration, its host, the users that may point at it) against the spec — DTR itself is not
// asked, so a change made in DTR by hand shows up only when the controller verifies it. Objects
// of a cache's name that another owner id (or nobody) owns are warned about: the controller
// never touches them, so the cache cannot be created next to them.
import type { CacheSpec, ResolvedCache } from "@dtrcache/crds";
import { createController } from "../controller.js";
import { DtrRecordStore, type DtrRecord } from "../dtr-reconcile/record.js";
import { silentLogger } from "../logger.js";
import { OWNER } from "../reconcile/labels.js";
import { staticSpecSource } from "../source.js";
import type { SwarmApi } from "../swarm/api.js";
import { formatPlans } from "./format.js";

function dtrLines(cache: ResolvedCache | undefined, name: string, record: DtrRecord | undefined): string[] {
  if (cache === undefined) {
    if (!record) return [];
    const users = record.users.length > 0 ? `; reset ${record.users.join(", ")} where they still point here` : "";
    return [`  - delete registration${record.registrationIds.length === 1 ? "" : "s"} ${record.registrationIds.join(", ") || "(none recorded)"} of ${name}${users}`];
  }
  const host = cache.spec.externalURL;
  const lines: string[] = [];
  const recordedUsers = new Set(record?.users ?? []);
  if (!record || record.registrationIds.length === 0) lines.push(`  + register ${name} with ${cache.dtr.spec.url} as host ${host}`);
  else if (record.host !== host) lines.push(`  ~ move registration ${record.registrationIds[0] ?? ""} from host ${record.host ?? "?"} to ${host} (new registration, then the old one deleted)`);
  const assign = cache.spec.users.filter((u) => !recordedUsers.has(u));
  const reset = [...recordedUsers].filter((u) => !cache.spec.users.includes(u));
  if (assign.length > 0) lines.push(`  + point ${assign.join(", ")} at ${name}`);
  if (reset.length > 0) lines.push(`  - reset ${reset.join(", ")} (where they still point at ${name})`);
  return lines.length > 0 ? lines : ["  no changes (as recorded; the controller verifies DTR itself every minute)"];
}

/** Swarm objects named like a cache of the spec but owned by another id or by nobody. */
async function foreignWarnings(swarm: SwarmApi, owner: string, spec: CacheSpec): Promise<string[]> {
  const names = new Set(spec.caches.map((c) => c.name));
  const services = await swarm.listServices({ labels: [] });
  return services
    .filter((s) => names.has(s.name) && s.labels[OWNER] !== owner)
    .map((s) => `! service ${s.name} exists and is ${s.labels[OWNER] !== undefined ? `owned by id ${s.labels[OWNER]}` : "not owned by any dtrcache controller"}: it is never touched, so cache ${s.name} cannot be created next to it`);
}

/** What storing `spec` would make the controller of `owner` do, in the swarm and in DTR. */
export async function serverDryRun(swarm: SwarmApi, owner: string, spec: CacheSpec): Promise<string> {
  // allowEmpty: in the store a delete is explicit, as for the in-cluster controller.
  const controller = createController({ docker: swarm, specSource: staticSpecSource({ ok: true, spec }), logger: silentLogger, id: owner, allowEmpty: true });
  const plans = await controller.plan();
  const records = new DtrRecordStore(swarm, owner);
  const dtr: string[] = [];
  for (const plan of plans) {
    const cache = spec.caches.find((c) => c.name === plan.cache);
    dtr.push(`${plan.cache} (${plan.mode})`, ...dtrLines(cache, plan.cache, await records.read(plan.cache)));
  }
  return ["Swarm:", formatPlans(plans), "DTR:", ...(dtr.length > 0 ? dtr : ["nothing to do"]), ...(await foreignWarnings(swarm, owner, spec))].join("\n");
}
