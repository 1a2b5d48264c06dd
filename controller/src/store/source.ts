// The store as the controller's spec source (`dtrcache run` without -f): load() reads the newest
// revision of every resource; watch() follows Docker's config events (any revision written by any
// `apply`/`edit`/`delete`) plus a periodic resync that catches a lost event. The controller keeps
// its last good spec when a load fails, as with files.
import { loadCacheSpecFromTexts, type LoadResult } from "@dtrcache/crds";
import type { SpecSource } from "../source.js";
import type { EventSubscription, SwarmApi, SwarmEvent } from "../swarm/api.js";
import { storedText } from "./admission.js";
import { STORE, STORE_FORMAT, STORE_OWNER } from "./labels.js";
import type { SpecStore } from "./store.js";

export interface StoreSourceOptions {
  readonly debounceMs?: number;
  /** Re-read the revision list this often and fire on any difference (default 10 s). */
  readonly resyncMs?: number;
}

/**
 * Every revision's name starts so (labels.ts revisionConfigName): a cheap first filter. Other
 * configs share it — the lease (dtrcache-lease-<owner>, relabelled on every renewal) — so what
 * decides is the revision's labels.
 */
const NAME_PREFIX = "dtrcache-";

/**
 * Decides whether a config event concerns a spec revision of this owner, by the config's store
 * labels. Docker's config events carry only the name, so a config is inspected once, the first
 * time an event names its id, and the verdict kept: the lease's renewals (one event every 2 s)
 * then cost nothing and never reload the spec.
 */
export class RevisionEventFilter {
  /** Config id -> whether it is one of our revisions. */
  private readonly known = new Map<string, boolean>();

  constructor(
    private readonly swarm: SwarmApi,
    private readonly owner: string,
  ) {}

  /** Ids the caller already knows are revisions (the heads it listed). */
  remember(ids: Iterable<string>): void {
    for (const id of ids) this.known.set(id, true);
  }

  private ours(labels: Readonly<Record<string, string>>): boolean {
    return labels[STORE] === STORE_FORMAT && labels[STORE_OWNER] === this.owner;
  }

  async concerns(event: SwarmEvent): Promise<boolean> {
    if (event.type !== "config" || !(event.name ?? "").startsWith(NAME_PREFIX)) return false;
    if (STORE in event.labels) return this.ours(event.labels);
    const verdict = this.known.get(event.id);
    if (event.action === "remove") {
      this.known.delete(event.id);
      // A removed config cannot be inspected; only a revision we had seen can matter.
      return verdict === true;
    }
    if (verdict !== undefined) return verdict;
    try {
      const revision = this.ours((await this.swarm.inspectConfig(event.id)).labels);
      this.known.set(event.id, revision);
      return revision;
    } catch {
      // Gone already, or the engine did not answer: reloading once is the safe side.
      return true;
    }
  }
}

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
        return {
          ok: false,
          issues: [
            {
              code: "STORE_EMPTY",
              file: description,
              path: "",
              message: `holds no resources yet; store a spec with \`dtrcache apply -f FILE --id ${store.owner}\``,
            },
          ],
        };
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
      const filter = new RevisionEventFilter(swarm, store.owner);
      const fingerprint = async (): Promise<string> => {
        const heads = await store.heads();
        filter.remember(heads.map((r) => r.configId));
        return heads
          .map((r) => `${r.configId}:${r.generation}`)
          .sort()
          .join(",");
      };
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
              void filter.concerns(event).then((yes) => {
                if (yes) fire();
              });
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
