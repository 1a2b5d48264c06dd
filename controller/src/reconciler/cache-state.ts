// What the controller remembers per cache between reconciles: the status it last wrote and the
// few facts the engine does not keep (which generation the engine refused, which one this process
// pushed, which one Swarm rolled back). Written by the reconciler, read by status().
import type { CacheSpec, ResolvedCache } from "@dtrcache/crds";
import { placementOf, specGeneration } from "../reconcile/desired.js";
import type { CacheStatus } from "../status.js";

export interface CacheState {
  status: CacheStatus;
  /** A generation the engine rejected (INVALID, NAME_TAKEN): not retried until the spec changes. */
  terminalGeneration?: string;
  /** The generation this process last wrote to the service. */
  pushedGeneration?: string;
  /** The generation this process pushed and saw Swarm roll back. */
  rolledBackGeneration?: string;
}

export function nodeStatusOf(cache: ResolvedCache | undefined, labelled: boolean): CacheStatus["node"] {
  const placement = cache ? placementOf(cache) : undefined;
  return placement
    ? { ...(placement.kind === "hostname" ? { hostname: placement.hostname } : {}), label: `${placement.key}=${placement.value}`, labelled }
    : { label: "", labelled: false };
}

export class CacheStates {
  private readonly states = new Map<string, CacheState>();

  /** The state of a cache, created from the snapshot's view of it on first use. */
  of(name: string, snapshot: CacheSpec | undefined): CacheState {
    let s = this.states.get(name);
    if (!s) {
      const cache = snapshot?.caches.find((c) => c.name === name);
      s = {
        status: {
          name,
          observedGeneration: "",
          generation: cache ? specGeneration(cache) : "",
          terminating: !cache,
          conditions: [],
          node: nodeStatusOf(cache, false),
          revisions: [],
          tasks: { running: 0, desired: cache?.spec.replicas ?? 0 },
          dtr: { users: [] },
        },
      };
      this.states.set(name, s);
    }
    return s;
  }

  peek(name: string): CacheState | undefined {
    return this.states.get(name);
  }

  names(): IterableIterator<string> {
    return this.states.keys();
  }

  delete(name: string): void {
    this.states.delete(name);
  }

  /** A newly loaded spec names the cache at `generation`; a changed one may be retried. */
  specLoaded(name: string, generation: string, changed: boolean): void {
    const state = this.states.get(name);
    if (!state) return;
    state.status = { ...state.status, generation, terminating: false };
    if (changed) delete state.terminalGeneration;
  }
}
