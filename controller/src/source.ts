// Spec sources. A source loads the whole CacheSpec (file or directory) and tells the controller
// when it may have changed. Watching is debounced: editors write in several steps (truncate,
// write, rename) and a half-written file must not be loaded as "the spec".
import { stat } from "node:fs/promises";
import path from "node:path";
import { watch, type FSWatcher } from "chokidar";
import { loadCacheSpec, type LoadResult } from "@dtrcache/crds";

export interface SpecSource {
  /** Where the spec comes from, for status and logs. */
  readonly description: string;
  load(): Promise<LoadResult>;
  /** Calls onChange (debounced) when the spec may have changed; returns the stop function. */
  watch(onChange: () => void): Promise<() => Promise<void>>;
}

export interface FileSourceOptions {
  readonly debounceMs?: number;
}

/** A spec file, or a directory of *.yaml / *.yml files, watched with chokidar. */
export function fileSpecSource(specPath: string, options: FileSourceOptions = {}): SpecSource {
  const absolute = path.resolve(specPath);
  const debounceMs = options.debounceMs ?? 150;
  return {
    description: absolute,
    load: () => loadCacheSpec(absolute),
    async watch(onChange) {
      // Watch the parent of a file too, so a rename-over (atomic save) or a delete-and-recreate
      // is seen; a directory is watched one level deep.
      let isDir = false;
      try {
        isDir = (await stat(absolute)).isDirectory();
      } catch {
        isDir = false;
      }
      const root = isDir ? absolute : path.dirname(absolute);
      const relevant = (p: string): boolean => (isDir ? p === absolute || (path.dirname(p) === absolute && /\.ya?ml$/i.test(p)) : p === absolute || p === root);
      const watcher: FSWatcher = watch(root, { ignoreInitial: true, depth: 0, ignored: (p: string) => !relevant(p) && p !== root });
      let timer: NodeJS.Timeout | undefined;
      const fire = (p: string): void => {
        if (!relevant(p) || p === root) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          timer = undefined;
          onChange();
        }, debounceMs);
      };
      watcher.on("add", fire).on("change", fire).on("unlink", fire);
      await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
      return async () => {
        if (timer) clearTimeout(timer);
        await watcher.close();
      };
    },
  };
}

/** A spec held in memory (tests, the bench, or a CLI `plan` on a given result). */
export function staticSpecSource(initial: LoadResult, description = "memory"): SpecSource & { set(result: LoadResult): void } {
  let current = initial;
  const listeners = new Set<() => void>();
  return {
    description,
    load: () => Promise.resolve(current),
    watch(onChange) {
      listeners.add(onChange);
      return Promise.resolve(() => {
        listeners.delete(onChange);
        return Promise.resolve();
      });
    },
    set(result) {
      current = result;
      for (const l of listeners) l();
    },
  };
}
