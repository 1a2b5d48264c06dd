// The spec tracker: the one holder of "the spec in force". It loads from the source, keeps the last
// good spec when a load fails or an accidentally empty spec would remove every cache, and answers
// with frozen snapshots. A reconcile takes one snapshot when it begins and reads nothing else, so
// an edit loaded meanwhile is the next reconcile's business (issue 10, defect 7).
import { formatIssue, type CacheSpec, type LoadResult } from "@dtrcache/crds";
import type { Logger } from "../logger.js";
import { specGeneration } from "../reconcile/desired.js";
import type { SpecSource } from "../source.js";
import type { SpecStatus } from "../status.js";
import type { Clock } from "./clock.js";

export interface SpecTrackerOptions {
  readonly source: SpecSource;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Accept a spec without caches even though caches exist (tears them all down). */
  readonly allowEmpty: boolean;
  /** Caches owned in the Swarm now; an empty spec is refused while there are any. */
  readonly owned: () => Iterable<string>;
}

export type LoadOutcome =
  | { readonly loaded: false }
  | {
      readonly loaded: true;
      /** Every cache the new spec, the previous one or the Swarm names: each needs a look. */
      readonly names: readonly string[];
      /** Caches whose generation differs from the previous spec's (new ones included). */
      readonly changed: ReadonlyMap<string, string>;
    };

/** Freezes a loaded spec all the way down (plain data from the loader: objects and arrays). */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value) && !ArrayBuffer.isView(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class SpecTracker {
  private current: CacheSpec | undefined;
  private state: SpecStatus;

  constructor(private readonly options: SpecTrackerOptions) {
    this.state = { path: options.source.description, loaded: false, files: [], errors: [] };
  }

  /** The spec in force, frozen; undefined until one has loaded (a loaded spec is never unloaded). */
  snapshot(): CacheSpec | undefined {
    return this.current;
  }

  /** The validation state of the latest load: errors of a refused one, files of the good one. */
  status(): SpecStatus {
    return this.state;
  }

  /** The generation of a cache in the spec in force (undefined when the spec does not name it). */
  generation(name: string): string | undefined {
    const cache = this.current?.caches.find((c) => c.name === name);
    return cache ? specGeneration(cache) : undefined;
  }

  /** Loads the source; a bad or refused spec keeps the last good one. */
  async load(): Promise<LoadOutcome> {
    let result: LoadResult;
    try {
      result = await this.options.source.load();
    } catch (error) {
      result = { ok: false, issues: [{ code: "FILE_UNREADABLE", file: this.options.source.description, path: "", message: errorMessage(error) }] };
    }
    const log = this.options.logger;
    if (!result.ok) {
      const errors = result.issues.map(formatIssue);
      this.state = { ...this.state, errors };
      log.error({ errors, kept: this.state.loaded ? "last good spec" : "nothing" }, "spec rejected; nothing changes");
      return { loaded: false };
    }
    const next = result.spec;
    const owned = [...this.options.owned()];
    const existing = new Set([...(this.current?.caches.map((c) => c.name) ?? []), ...owned]);
    if (next.caches.length === 0 && existing.size > 0 && !this.options.allowEmpty) {
      const message = `${this.options.source.description}: the spec has no ContentCache but ${existing.size} cache(s) exist (${[...existing].sort().join(", ")}); refusing to remove them all — pass --allow-empty (dtrcache run/reconcile/plan) to do that on purpose`;
      this.state = { ...this.state, errors: [message] };
      log.error({ caches: [...existing] }, "empty spec refused");
      return { loaded: false };
    }
    const previous = new Map((this.current?.caches ?? []).map((c) => [c.name, specGeneration(c)]));
    // Frozen: a reconcile holds this object as its snapshot while the next load replaces it.
    this.current = deepFreeze(next);
    this.state = { path: this.options.source.description, loaded: true, files: next.files, loadedAt: this.options.clock.now().toISOString(), errors: [] };
    const changed = new Map<string, string>();
    for (const c of next.caches) {
      const generation = specGeneration(c);
      if (previous.get(c.name) !== generation) changed.set(c.name, generation);
    }
    log.info({ caches: next.caches.length, files: next.files.length }, "spec loaded");
    return { loaded: true, names: [...new Set([...previous.keys(), ...next.caches.map((c) => c.name), ...owned])], changed };
  }
}
