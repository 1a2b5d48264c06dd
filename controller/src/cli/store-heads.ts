// The newest stored revision of each ContentCache, for `status`: the controller learns of a
// revision only when it loads it, so right after an `apply` its own numbers still say "3 of 3"
// while the store holds 4. Best effort: a shell that cannot reach the engine (only the status
// URL) gets undefined and `status` judges by the controller's numbers alone.
import { SpecStore } from "../store/store.js";
import { openSwarm } from "./swarm-factory.js";

export async function storedCacheGenerations(owner: string, timeoutMs = 3_000): Promise<Map<string, number> | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    const read = (async () => {
      const heads = await new SpecStore({ swarm: openSwarm(), owner }).heads("ContentCache");
      return new Map(heads.filter((r) => !r.deleted).map((r) => [r.name, r.generation]));
    })().catch(() => undefined);
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
