// Runs the cache server in a child process, built from the TypeScript sources with esbuild (so,
// like every unit test, it never runs a stale build). A crash of the cache (an uncaught exception,
// an abort) ends the child, not the test runner, and is reported through `exited`.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The last few KiB the child wrote to stderr (the uncaught exception, when it crashed). */
  readonly stderr: string;
}

export interface ChildCache {
  readonly url: string;
  readonly pid: number;
  /** Settles when the child is gone, for any reason (stop() included). */
  readonly exited: Promise<ChildExit>;
  /** SIGTERM (clean close), SIGKILL after 5 s. */
  stop(): Promise<ChildExit>;
}

const STDERR_KEPT = 8 * 1024;
const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

/**
 * Bundles testing/cache-child.ts (or, with `entry: "main"`, the real entry file main.ts, for
 * tests of the cluster primary) and its imports (the workspace's config-yml from source too) into `outDir`.
 */
export async function bundleChildCache(outDir: string, entry: "cache-child" | "main" = "cache-child"): Promise<string> {
  const { build } = await import("esbuild");
  const outfile = join(outDir, `${entry}.cjs`);
  await build({
    entryPoints: [here(entry === "main" ? "../main.ts" : "./cache-child.ts")],
    outfile,
    bundle: true,
    platform: "node",
    // CommonJS output: bundled dependencies may call require() for built-ins, and nothing in the
    // cache server needs import.meta.
    format: "cjs",
    target: `node${process.versions.node.split(".")[0]}`,
    alias: { "@dtrcache/config-yml": here("../../../config-yml/src/index.ts") },
    logLevel: "warning",
  });
  return outfile;
}

/** Starts the bundled cache with `configFile` and resolves once it listens. */
export async function startChildCache(bundle: string, configFile: string): Promise<ChildCache> {
  const child = spawn(process.execPath, [bundle, configFile], { stdio: ["ignore", "ignore", "pipe", "ipc"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (stderr = (stderr + s).slice(-STDERR_KEPT)));
  // After "exit" stderr may still be draining: wait for its end too. (Not the child's "close"
  // event: it never comes once the IPC channel has been disconnected, as it is below.)
  const stderrEnded = new Promise((resolve) => child.stderr?.once("close", resolve));
  const exited = new Promise<ChildExit>((resolve) => child.once("exit", (code, signal) => void stderrEnded.then(() => resolve({ code, signal, stderr }))));
  const url = await new Promise<string>((resolve, reject) => {
    child.once("message", (m: { url?: string }) => (m.url ? resolve(m.url) : reject(new Error("cache child sent no URL"))));
    void exited.then((e) => reject(new Error(`cache child exited at start (${e.code ?? e.signal}): ${e.stderr}`)));
  });
  // Only the start-up message is expected: a lingering IPC channel would keep the parent alive.
  child.disconnect();
  const pid = child.pid ?? 0;
  return {
    url,
    pid,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited.finally(() => clearTimeout(timer));
      }
      return exited;
    },
  };
}
