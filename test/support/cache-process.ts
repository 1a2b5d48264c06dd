// Runs the compiled cache server as its own process (`node cache-server/dist/main.js config.yml`),
// the way the image runs it, so tests can SIGKILL it and so the harness engine can reach it on
// the harness subnet. Always stopped by the caller (stop() in afterAll / finally).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, openSync, closeSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { withRuntimeEnv } from "@dtrcache/cache-server";

function findMain(): string {
  // Works both from test/support (vitest, sources) and test/dist/support (compiled bench).
  for (const rel of ["../../cache-server/dist/main.js", "../../../cache-server/dist/main.js"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error("cache-server/dist/main.js is missing: run `npx tsc -b cache-server` first");
}

export interface CacheProcessOptions {
  readonly workDir: string;
  readonly upstreams: readonly string[];
  readonly listenHost?: string;
  readonly port: number;
  /** Port of the debug listener (/metrics, /healthz) on listenHost; a free one when absent. */
  readonly debugPort?: number;
  /** Defaults to <workDir>/root */
  readonly rootDirectory?: string;
  readonly blobttl?: string;
  /** Extra lines under the downstream options, e.g. "servestale: false". */
  readonly extraOptions?: readonly string[];
  readonly logLevel?: string;
  /** `http.host`: the cache's external URL (DTR redirects to it; the cache recognizes it). */
  readonly httpHost?: string;
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] for profiling. */
  readonly nodeArgs?: readonly string[];
  /**
   * The `workers` option; 1 unless given, so these tests keep their single process (kill() and
   * stop() address that one pid; the cluster has tests of its own).
   */
  readonly workers?: number;
}

export interface CacheProcess {
  readonly url: string;
  readonly hostPort: string;
  /** The debug listener: /metrics and /healthz are served there, not on `url`. */
  readonly debugUrl: string;
  readonly rootDirectory: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  metrics(): Promise<string>;
  /** SIGKILL, no cleanup: the crash test. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export function renderCacheConfig(o: CacheProcessOptions, root: string): string {
  const q = (v: string): string => JSON.stringify(v);
  const host = o.listenHost ?? "127.0.0.1";
  return [
    "version: 0.1",
    "log:",
    `  level: ${o.logLevel ?? "info"}`,
    "storage:",
    "  delete:",
    "    enabled: true",
    "  filesystem:",
    `    rootdirectory: ${q(root)}`,
    "http:",
    `  addr: ${q(`${host}:${o.port}`)}`,
    "  secret: test-secret-not-logged",
    ...(o.httpHost ? [`  host: ${q(o.httpHost)}`] : []),
    ...(o.debugPort !== undefined ? ["  debug:", `    addr: ${q(`${host}:${o.debugPort}`)}`] : []),
    "middleware:",
    "  registry:",
    "    - name: downstream",
    "      options:",
    `        blobttl: ${o.blobttl ?? "24h"}`,
    "        upstreams:",
    ...o.upstreams.map((u) => `          - ${q(u)}`),
    `        workers: ${o.workers ?? 1}`,
    ...(o.extraOptions ?? []).map((l) => `        ${l}`),
    "",
  ].join("\n");
}

/** A port nothing listens on right now (the kernel's pick for port 0). */
async function freeTcpPort(host: string): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once("error", reject).listen(0, host, () => resolve()));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export async function startCacheProcess(options: CacheProcessOptions): Promise<CacheProcess> {
  const main = findMain();
  const o: CacheProcessOptions = { ...options, debugPort: options.debugPort ?? (await freeTcpPort(options.listenHost ?? "127.0.0.1")) };
  const root = o.rootDirectory ?? join(o.workDir, "root");
  await mkdir(o.workDir, { recursive: true });
  const configFile = join(o.workDir, "config.yml");
  await writeFile(configFile, renderCacheConfig(o, root));
  const logFile = join(o.workDir, "cache.log");
  const fd = openSync(logFile, "a");
  // The environment the image sets (runtime-env.ts), so tests and benchmarks run what ships.
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), main, configFile], { stdio: ["ignore", fd, fd], env: withRuntimeEnv(process.env) });
  closeSync(fd);
  const hostPort = `${o.listenHost ?? "127.0.0.1"}:${o.port}`;
  const url = `http://${hostPort}`;
  const debugUrl = `http://${o.listenHost ?? "127.0.0.1"}:${o.debugPort}`;
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) throw new Error(`cache-server exited at start: ${(await readFile(logFile, "utf8")).slice(-2000)}`);
    try {
      // /healthz answers once the registry port listens (the debug listener starts after it).
      const r = await fetch(`${debugUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error("cache-server did not answer /healthz within 15 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (exited) return;
    child.kill(sig);
    await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
    if (!exited) {
      child.kill("SIGKILL");
      await exit;
    }
  };
  return {
    url,
    hostPort,
    debugUrl,
    rootDirectory: root,
    logFile,
    child,
    async metrics() {
      const r = await fetch(`${debugUrl}/metrics`);
      return r.text();
    },
    kill: () => signal("SIGKILL"),
    stop: () => signal("SIGTERM"),
  };
}

/** Reads one counter (summing its label sets) from Prometheus text. */
export function metricValue(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}
