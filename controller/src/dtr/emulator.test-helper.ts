// Starts the project's DTR emulator (test/dtr-emulator) for the controller's unit tests. The
// emulator lives in the test package, outside this package's rootDir, so a static import would
// drag its sources into the controller's compilation (TS6059). It is loaded at run time instead
// (vitest transforms the TypeScript) and typed here by the narrow surface these tests use; the
// emulator's own tests check that surface in full.
export interface EmulatorUserSpec {
  readonly username: string;
  readonly password: string;
  readonly admin?: boolean;
  readonly tokens?: readonly string[];
}

export interface EmulatorLogEntry {
  readonly seq: number;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly user?: string;
  readonly body?: unknown;
  readonly concurrent: number;
}

export interface EmulatorHandle {
  readonly url: string;
  contentCaches(): { id: string; name: string; host: string }[];
  settings(): Record<string, string>;
  requestLog(): readonly EmulatorLogEntry[];
  clearRequestLog(): void;
  setFaults(faults: {
    down?: boolean;
    failRequests?: number;
    failStatus?: number;
    failOnly?: { method?: string; pathPrefix?: string } | undefined;
    loseAnswers?: number;
    delayMs?: number;
  }): void;
  seed: {
    contentCache(name: string, host: string): { id: string; name: string; host: string };
    userSetting(username: string, contentCacheUUID: string): void;
  };
  stop(): Promise<void>;
}

export interface EmulatorStart {
  readonly users: readonly EmulatorUserSpec[];
  /** A fixed port: a second emulator on the first one's port stands for DTR restarted (0 or absent: any). */
  readonly port?: number;
  readonly tls?: { readonly cert: string; readonly key: string };
}

export async function startEmulator(options: EmulatorStart): Promise<EmulatorHandle> {
  const modulePath = new URL("../../../test/dtr-emulator/index.ts", import.meta.url).pathname;
  const loaded = (await import(/* @vite-ignore */ modulePath)) as { startDtrEmulator: (o: object) => Promise<EmulatorHandle> };
  // No backend registry: these tests exercise only DTR's API side.
  return loaded.startDtrEmulator({ listenHost: "127.0.0.1", port: 0, backendRegistryUrl: "http://127.0.0.1:9", ...options });
}

/** API writes in the emulator's log, in order: what "nothing else touched" is asserted on. */
export function writesIn(log: readonly EmulatorLogEntry[]): EmulatorLogEntry[] {
  return log.filter((entry) => entry.method !== "GET" && entry.method !== "HEAD");
}
