// Shared by the controller's integration tests and its benchmark: spec files on disk that mirror
// the runbook example for the harness's node, a bundled controller process, and helpers that read
// the Swarm through the controller's own narrow API.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { labels, type SwarmApi, type SwarmConfig, type SwarmSecret } from "@dtrcache/controller";

/** The repository root, found from this file (works from test/bench and from test/dist/bench). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth += 1) {
    if (existsSync(join(dir, "crds", "examples", "runbook.yaml"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("crds/examples/runbook.yaml not found above test/bench/controller");
}
const ROOT = findRoot();
export const EXAMPLES = join(ROOT, "crds", "examples");

export interface RunbookVariant {
  readonly cache: string;
  readonly hostname: string;
  readonly nodeLabel: string;
  readonly port: number;
  readonly image: string;
  readonly blobTTL?: string;
  /** Certificate/key file names inside the spec directory. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** The runbook example with the harness's node, a free port and a local image, as YAML text. */
export async function runbookVariant(v: RunbookVariant): Promise<string> {
  let text = await readFile(join(EXAMPLES, "runbook.yaml"), "utf8");
  const swap = (from: string, to: string): void => {
    if (!text.includes(from)) throw new Error(`runbook.yaml no longer contains ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  };
  swap("name: region-asia", `name: ${v.cache}`);
  swap("hostname: asia-node-1", `hostname: ${v.hostname}`);
  swap("nodeLabel: dtr.cache=true", `nodeLabel: ${v.nodeLabel}`);
  swap("image: docker/dtr-content-cache:2.6.5", `image: ${v.image}`);
  swap("port: 443", `port: ${v.port}`);
  swap("externalURL: https://dtr-cache.example.com", `externalURL: https://dtr-cache.example.com:${v.port}`);
  if (v.blobTTL) swap("blobTTL: 24h", `blobTTL: ${v.blobTTL}`);
  if (v.certFile) swap("certFile: certs/cache.cert.pem", `certFile: ${v.certFile}`);
  if (v.keyFile) swap("keyFile: certs/cache.key.pem", `keyFile: ${v.keyFile}`);
  return text;
}

/** Copies the example certificates next to the spec (so the spec directory is self-contained). */
export async function prepareSpecDir(dir: string): Promise<void> {
  await mkdir(join(dir, "certs"), { recursive: true });
  for (const f of ["cache.cert.pem", "cache.key.pem", "dtr.cert.pem"]) await copyFile(join(EXAMPLES, "certs", f), join(dir, "certs", f));
}

/** Writes a file the way editors do: to a temp name, then rename over (one change event). */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.tmp-${process.pid}`;
  await writeFile(temp, text);
  await rename(temp, file);
}

export interface OwnedObjects {
  readonly configs: SwarmConfig[];
  readonly secrets: SwarmSecret[];
  readonly services: string[];
}

export async function ownedObjects(api: SwarmApi, owner: string, cache?: string): Promise<OwnedObjects> {
  const filter = labels.ownerFilter(owner, cache);
  const [configs, secrets, services] = await Promise.all([api.listConfigs(filter), api.listSecrets(filter), api.listServices(filter)]);
  return { configs, secrets, services: services.map((s) => s.name) };
}

/** Removes everything an owner left behind (test cleanup; the controller's teardown is tested separately). */
export async function removeOwned(api: SwarmApi, owner: string): Promise<void> {
  const filter = labels.ownerFilter(owner);
  for (const s of await api.listServices(filter)) await api.removeService(s.id).catch(() => undefined);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const [configs, secrets] = await Promise.all([api.listConfigs(filter), api.listSecrets(filter)]);
    if (configs.length + secrets.length === 0) break;
    for (const c of configs) await api.removeConfig(c.id).catch(() => undefined);
    for (const s of secrets) await api.removeSecret(s.id).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  for (const node of await api.listNodes()) {
    const l = { ...(node.spec.Labels ?? {}) };
    const mine = Object.entries(l).filter(([k, v]) => k.startsWith(labels.NODE_LABEL_MARKER_PREFIX) && v === owner);
    if (mine.length === 0) continue;
    for (const [marker] of mine) {
      delete l[marker];
      delete l[marker.slice(labels.NODE_LABEL_MARKER_PREFIX.length)];
    }
    await api.updateNode(node.id, node.version, { ...node.spec, Labels: l }).catch(() => undefined);
  }
}

/** Bundles the runner (sources, not a stale build) so a child process can run it with plain node. */
export async function bundleRunner(outDir: string): Promise<string> {
  const { build } = await import("esbuild");
  // The bundle must live inside the repository so its external imports resolve from node_modules.
  const outfile = join(ROOT, "test", "dist", "bench", "controller", `run-controller.${process.pid}.mjs`);
  await build({
    entryPoints: [join(ROOT, "test", "bench", "controller", "run-controller.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    // the bundle runs on this very Node (process.execPath below)
    target: `node${process.versions.node.split(".")[0]}`,
    outfile,
    packages: "external",
    alias: { "@dtrcache/controller": join(ROOT, "controller", "src", "index.ts"), "@dtrcache/crds": join(ROOT, "crds", "src", "index.ts") },
    logLevel: "warning",
  });
  await mkdir(outDir, { recursive: true });
  return outfile;
}

export interface ControllerProcess {
  readonly child: ChildProcess;
  /** Log lines (parsed JSON) seen so far. */
  readonly lines: Record<string, unknown>[];
  waitForLine(predicate: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export function spawnController(bundle: string, env: { dockerHost: string; spec: string; owner: string; allowEmpty?: boolean }): ControllerProcess {
  const child = spawn(process.execPath, [bundle], {
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      DOCKER_HOST: env.dockerHost,
      DTRCACHE_SPEC: env.spec,
      DTRCACHE_OWNER: env.owner,
      ...(env.allowEmpty ? { DTRCACHE_ALLOW_EMPTY: "1" } : {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let buffered = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf("\n");
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
      for (const w of waiters) w();
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    lines,
    waitForLine(predicate, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = lines.find(predicate);
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching controller log line within ${timeoutMs} ms; last: ${JSON.stringify(lines.slice(-5))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
