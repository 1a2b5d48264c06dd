// Reads the actual state of one cache: four list calls (plus one for tasks when the service
// exists). Everything is filtered by our OWNER and CACHE labels at the engine.
import type { SwarmApi } from "../swarm/api.js";
import { DTR_RECORD_PURPOSE } from "../dtr-reconcile/record.js";
import { PURPOSE, ownerFilter } from "./labels.js";
import type { ActualCache } from "./planner.js";

export async function observeCache(swarm: SwarmApi, owner: string, name: string): Promise<ActualCache> {
  const filter = ownerFilter(owner, name);
  const [listed, secrets, services] = await Promise.all([swarm.listConfigs(filter), swarm.listSecrets(filter), swarm.listServices(filter)]);
  // The DTR reconciler's record is its own: the Swarm side neither prunes nor tears it down.
  const configs = listed.filter((c) => c.labels[PURPOSE] !== DTR_RECORD_PURPOSE);
  const service = services.find((s) => s.name === name);
  const tasks = service ? await swarm.listTasks(service.id) : [];
  return service ? { name, service, configs, secrets, tasks } : { name, configs, secrets, tasks };
}

/** Names of every cache that owns an object in the Swarm. */
export async function observeOwnedCaches(swarm: SwarmApi, owner: string): Promise<Set<string>> {
  const filter = ownerFilter(owner);
  const [configs, secrets, services] = await Promise.all([swarm.listConfigs(filter), swarm.listSecrets(filter), swarm.listServices(filter)]);
  const names = new Set<string>();
  for (const o of [...configs, ...secrets, ...services]) {
    const cache = o.labels["io.dtrcache.cache"];
    if (cache) names.add(cache);
  }
  return names;
}
