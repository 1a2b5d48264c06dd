// The store as the controller's spec source (`dtrcache run` without -f): load() reads the newest
// revision of every resource; watch() follows Docker's config events (any revision written by any
// `apply`/`edit`/`delete`) plus a periodic resync that catches a lost event. The controller keeps
// its last good spec when a load fails, as with files.
import { loadCacheSpecFromTexts, type LoadResult } from "@dtrcache/crds";
import type { SpecSource } from "../source.js";
import type { EventSubscription, SwarmApi } from "../swarm/api.js";
import { storedText } from "./admission.js";
import type { SpecStore } from "./store.js";

export interface StoreSourceOptions {
  readonly debounceMs?: number;
  /** Re-read the revision list this often and fire on any difference (default 10 s). */
  readonly resyncMs?: number;
}

const NAME_PREFIX = "dtrcache-";

export function storeSpecSource(store: SpecStore, swarm: SwarmApi, options: StoreSourceOptions = {}): SpecSource {
  const description = `swarm store (owner ${store.owner})`;
  return {
    description,
    async load(): Promise<LoadResult> {
      const heads = await store.heads();
      // A store that was never written is not an empty spec: read as one, it would tear down
      // every cache of a controller switched from a file to the store before the first apply.
      // A spec emptied by `delete` leaves tombstones, so it reads as empty on purpose.
      if (heads.length === 0) {
        return { ok: false, issues: [{ code: "STORE_EMPTY", file: description, path: "", message: `holds no resources yet; store a spec with \`dtrcache apply -f FILE --id ${store.owner}\`` }] };
      }
      const live = await Promise.all(heads.filter((r) => !r.deleted).map((r) => store.read(r)));
      return loadCacheSpecFromTexts(live.map(storedText));
    },
    async watch(onChange) {
      const debounceMs = options.debounceMs ?? 100;
      let timer: NodeJS.Timeout | undefined;
      let stopped = false;
      const fire = (): void => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          timer = undefined;
          if (!stopped) onChange();
        }, debounceMs);
      };
      const fingerprint = async (): Promise<string> => (await store.heads()).map((r) => `${r.configId}:${r.generation}`).sort().join(",");
      let last = await fingerprint().catch(() => "");
      const resync = setInterval(() => {
        void fingerprint().then(
          (now) => {
            if (now !== last) {
              last = now;
              fire();
            }
          },
          () => undefined,
        );
      }, options.resyncMs ?? 10_000);
      resync.unref?.();

      let subscription: EventSubscription | undefined;
      let retry: NodeJS.Timeout | undefined;
      let backoff = 250;
      const subscribe = async (): Promise<void> => {
        try {
          subscription = await swarm.subscribeEvents({
            onEvent: (event) => {
              if (event.type === "config" && (event.name ?? "").startsWith(NAME_PREFIX)) fire();
            },
            onEnd: () => {
              subscription = undefined;
              if (!stopped) schedule();
            },
          });
          backoff = 250;
        } catch {
          schedule();
        }
      };
      const schedule = (): void => {
        retry = setTimeout(() => {
          // Events may have been missed while the stream was down.
          fire();
          void subscribe();
        }, backoff);
        backoff = Math.min(backoff * 2, 10_000);
      };
      await subscribe();
      return () => {
        stopped = true;
        clearInterval(resync);
        if (timer) clearTimeout(timer);
        if (retry) clearTimeout(retry);
        subscription?.close();
        return Promise.resolve();
      };
    },
  };
}
