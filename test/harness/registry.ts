import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HarnessError } from "./errors.js";
import { freePort } from "./ports.js";
import { isAlive, tail, waitFor } from "./proc.js";
import { forgetProcess, recordProcess } from "./tracked.js";

/** Debian's build of the reference registry (distribution 2.8). */
export const REGISTRY_BINARY = "/usr/bin/docker-registry";

export interface AccessLogEntry {
  method: string;
  /** Request target as sent, including the query string. */
  path: string;
  status: number;
}

export interface RegistryHandle {
  /** http(s)://HOST:PORT */
  url: string;
  /** HOST:PORT, as used in image references. */
  hostPort: string;
  dataDir: string;
  /** The registry's own access log (combined log format on its stdout); readable from any process. */
  logFile: string;
  /** The registry's application log (stderr). */
  errorLogFile: string;
  pid: number;
  /** Requests the registry itself logged, oldest first. */
  accessLog(): Promise<AccessLogEntry[]>;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  /** Directory for config, data and logs; created when missing and left in place by stop(). */
  workDir: string;
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Default: a free port. */
  port?: number;
  /** Pull-through (proxy) mode towards this upstream, e.g. the benchmark peer. The upstream must be up. */
  proxyRemoteUrl?: string;
  proxyUsername?: string;
  proxyPassword?: string;
  /** Serve TLS with these PEM files instead of plain HTTP. */
  tls?: { certFile: string; keyFile: string };
  /** Require bearer tokens from a token service (the registry's `auth.token` section); /v2/ then answers 401. */
  tokenAuth?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Default 15 s. */
  startTimeoutMs?: number;
}

// "HOST - USER [DATE] "METHOD TARGET PROTO" STATUS SIZE "REFERER" "UA"" (gorilla's combined log)
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) /;

/** Parses the registry's access log text; lines that are not access-log lines are skipped. */
export function parseAccessLog(text: string): AccessLogEntry[] {
  const entries: AccessLogEntry[] = [];
  for (const line of text.split("\n")) {
    const match = ACCESS_LINE.exec(line);
    if (match?.[1] && match[2] && match[3]) entries.push({ method: match[1], path: match[2], status: Number(match[3]) });
  }
  return entries;
}

export async function readAccessLog(logFile: string): Promise<AccessLogEntry[]> {
  try {
    return parseAccessLog(await readFile(logFile, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

function renderConfig(options: StartRegistryOptions, addr: string, dataDir: string): string {
  // Written by hand rather than with a YAML library: the shape is fixed and values are quoted JSON
  // strings, which are valid YAML scalars.
  const q = (value: string): string => JSON.stringify(value);
  const lines = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  formatter: text",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${q(dataDir)}`,
    "  delete:",
    "    enabled: true",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    `  addr: ${q(addr)}`,
  ];
  if (options.tls) {
    lines.push("  tls:", `    certificate: ${q(options.tls.certFile)}`, `    key: ${q(options.tls.keyFile)}`);
  }
  if (options.tokenAuth) {
    const t = options.tokenAuth;
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${q(t.realm)}`,
      `    service: ${q(t.service)}`,
      `    issuer: ${q(t.issuer)}`,
      `    rootcertbundle: ${q(t.rootCertBundle)}`,
    );
  }
  if (options.proxyRemoteUrl) {
    lines.push("proxy:", `  remoteurl: ${q(options.proxyRemoteUrl)}`);
    if (options.proxyUsername !== undefined) lines.push(`  username: ${q(options.proxyUsername)}`);
    if (options.proxyPassword !== undefined) lines.push(`  password: ${q(options.proxyPassword)}`);
  }
  return `${lines.join("\n")}\n`;
}

async function answers(url: string, expected: number): Promise<true | undefined> {
  const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
  await response.arrayBuffer();
  // 200 when open, 401 when token auth is configured
  return response.status === expected ? true : undefined;
}

/** Starts `docker-registry serve` on a free (or given) port and waits until /v2/ answers. */
export async function startRegistry(options: StartRegistryOptions): Promise<RegistryHandle> {
  const host = options.listenHost ?? "127.0.0.1";
  const dataDir = join(options.workDir, "data");
  const logFile = join(options.workDir, "access.log");
  const errorLogFile = join(options.workDir, "registry.log");
  await mkdir(dataDir, { recursive: true });
  // A free port can be taken between probing and binding; try a few ports before giving up.
  const attempts = options.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port ?? (await freePort(host));
    const hostPort = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    const url = `${options.tls ? "https" : "http"}://${hostPort}`;
    const configFile = join(options.workDir, "config.yml");
    await writeFile(configFile, renderConfig(options, hostPort, dataDir), { mode: 0o600 });
    const out = openSync(logFile, "a");
    const err = openSync(errorLogFile, "a");
    const child = spawn(REGISTRY_BINARY, ["serve", configFile], { stdio: ["ignore", out, err], detached: true });
    closeSync(out);
    closeSync(err);
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new HarnessError("PROCESS_EXITED", `${REGISTRY_BINARY} did not start`);
    await recordProcess(pid, "registry");
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null && isAlive(pid)) {
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
      await forgetProcess(pid);
    };
    try {
      await waitFor(
        `registry on ${url}`,
        async () => {
          if (child.exitCode !== null || child.signalCode !== null) {
            throw new HarnessError("PROCESS_EXITED", `docker-registry exited: ${await tail(errorLogFile, 5)}`);
          }
          if (options.tls) {
            // no CA to verify with here; a bound port and a live process are enough
            return (await tail(errorLogFile, 50)).includes(`listening on ${hostPort}`) ? true : undefined;
          }
          return await answers(url, options.tokenAuth ? 401 : 200);
        },
        options.startTimeoutMs ?? 15_000,
      );
    } catch (error) {
      await stop();
      lastError = error;
      continue;
    }
    return { url, hostPort, dataDir, logFile, errorLogFile, pid, accessLog: () => readAccessLog(logFile), stop };
  }
  throw lastError instanceof Error ? lastError : new HarnessError("PROCESS_EXITED", "docker-registry did not start");
}
