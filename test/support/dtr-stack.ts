// The shared end-to-end environment: a real backend registry (Debian's docker-registry) holding a
// sample image, the DTR emulator in front of it with three accounts, and a writer for the
// CacheSpec that points a controller at that emulator. Used by the e2e tests, the multi-node test
// and the demo. Everything listens on one address the caller chooses (the harness's hostIp, so
// that tasks in the private swarm reach it); nothing here talks to any other address.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { parseAllDocuments, type Document } from "yaml";
import { startDtrEmulator, type DtrEmulator, type RequestLogEntry } from "../dtr-emulator/index.js";
import { repoRoot } from "../harness/images.js";
import { startRegistry, type RegistryHandle } from "../harness/registry.js";
import { run } from "../harness/proc.js";
import { pushTestImage } from "../harness/testimage.js";

export interface DtrStackUser {
  readonly username: string;
  readonly password: string;
}

export interface DtrStackUsers {
  /** DTR admin: the controller registers caches and sets user settings with it. */
  readonly admin: DtrStackUser;
  /** Meant to be listed in the ContentCache's users (cache-enabled by the controller). */
  readonly alice: DtrStackUser;
  /** Never listed: pulls go straight to the emulator. */
  readonly bob: DtrStackUser;
}

export interface SampleImage {
  readonly repository: string;
  readonly tag: string;
  /** EMULATOR_HOST:PORT/repository:tag: what a docker client pulls. */
  readonly ref: string;
  /** BACKEND_HOST:PORT/repository:tag: the same image straight from the backend registry. */
  readonly backendRef: string;
  /** Manifest digest as the backend stores it (sha256:...). */
  readonly digest: string;
}

export interface StartDtrStackOptions {
  /** Created if missing; the backend registry's data and the spec files go here. stop() removes what it created. */
  readonly workDir: string;
  /** Address the backend registry and the emulator listen on (loopback or the harness's hostIp). */
  readonly hostIp: string;
  /** Engine used to build the sample image before it is pushed with skopeo (a private engine, never the default one). */
  readonly dockerHost: string;
  /** Fixed emulator port; default a free one. */
  readonly emulatorPort?: number;
  /** Sample image name; default hello/web:1. */
  readonly repository?: string;
  readonly tag?: string;
  /** Called for every request the emulator logs (the demo prints redirects as they happen). */
  readonly onRequest?: (entry: RequestLogEntry) => void;
}

export interface WriteSpecOptions {
  readonly cacheName: string;
  readonly nodeHostname: string;
  readonly port: number;
  /** spec.debugPort: where the cache's /metrics and /healthz are published (readCacheCounters reads them there). */
  readonly debugPort?: number;
  /** How clients and DTR reach the cache, e.g. http://NODE_IP:PORT (TLS is disabled in the spec). */
  readonly externalURL: string;
  /** DTR users whose setting the controller points at this cache. */
  readonly users: readonly string[];
  readonly image: string;
  /** Default dtr.cache=true; tests sharing one swarm use a label of their own. */
  readonly nodeLabel?: string;
  readonly blobTTL?: string;
  /**
   * How the admin password is referenced (never inline): `env` -> {env: DTR_ADMIN_PASSWORD}, the
   * value is in `stack.env`; `file` -> {file: <workDir>/admin-password}. Default `env`.
   */
  readonly passwordRef?: "env" | "file";
  /** Where to write; default <workDir>/cachespec.yaml. */
  readonly path?: string;
}

export interface DtrStack {
  /** The emulator currently running (a new object after startEmulator()). */
  readonly emulator: DtrEmulator;
  readonly backend: RegistryHandle;
  readonly sampleImage: SampleImage;
  readonly users: DtrStackUsers;
  /** Name of the variable the spec's {env: ...} reference names. */
  readonly passwordEnvName: string;
  /** The environment a controller needs for an env-referenced admin password ({DTR_ADMIN_PASSWORD: ...}). */
  readonly env: Readonly<Record<string, string>>;
  /** The file a file-referenced spec points at (written on first use, mode 0600). */
  readonly passwordFile: string;
  /**
   * DTR really gone: the emulator's listener is closed (connections refused), unlike the
   * emulator's `down` fault switch, which answers 503.
   */
  stopEmulator(): Promise<void>;
  /**
   * DTR back on the same address and port, with the same users and backend but a fresh state (no
   * registrations, no settings: what a DTR restored without its data looks like).
   */
  startEmulator(): Promise<DtrEmulator>;
  /**
   * Writes a CacheSpec YAML (a DTR document and one ContentCache) and returns its path. Call it
   * again with changed options to edit the spec under a running controller (written atomically);
   * the template's comments mention field names, so text substitution on the file is a trap.
   */
  writeSpec(options: WriteSpecOptions): Promise<string>;
  /** Stops the emulator and the registry and removes the stack's directories. Safe to call twice. */
  stop(): Promise<void>;
}

export const DTR_DOCUMENT_NAME = "dtr";
const PASSWORD_ENV = "DTR_ADMIN_PASSWORD";

/** The template every written spec starts from (kept valid on its own, so its comments stay true). */
export function demoSpecTemplatePath(): string {
  return join(repoRoot(), "crds", "examples", "demo.yaml");
}

const secret = (): string => randomBytes(12).toString("base64url");

export async function startDtrStack(options: StartDtrStackOptions): Promise<DtrStack> {
  await mkdir(options.workDir, { recursive: true });
  const users: DtrStackUsers = {
    admin: { username: "admin", password: secret() },
    alice: { username: "alice", password: secret() },
    bob: { username: "bob", password: secret() },
  };
  const backendDir = join(options.workDir, "backend-registry");
  let backend: RegistryHandle | undefined;
  let emulator: DtrEmulator | undefined;
  const stopAll = async (): Promise<void> => {
    const e = emulator;
    const b = backend;
    emulator = undefined;
    backend = undefined;
    // each step runs even when an earlier one failed: nothing may be left running
    const results = await Promise.allSettled([e?.stop(), b?.stop()]);
    await rm(backendDir, { recursive: true, force: true });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  };

  try {
    backend = await startRegistry({ workDir: backendDir, listenHost: options.hostIp });
    const pushed = await pushTestImage({
      dockerHost: options.dockerHost,
      registryHostPort: backend.hostPort,
      workDir: options.workDir,
      ...(options.repository ? { repository: options.repository } : {}),
      ...(options.tag ? { tag: options.tag } : {}),
    });
    const backendUrl = backend.url;
    const launch = (port: number): Promise<DtrEmulator> =>
      startDtrEmulator({
        listenHost: options.hostIp,
        port,
        backendRegistryUrl: backendUrl,
        users: [
          { username: users.admin.username, password: users.admin.password, admin: true },
          { username: users.alice.username, password: users.alice.password },
          { username: users.bob.username, password: users.bob.password },
        ],
        ...(options.onRequest ? { onRequest: options.onRequest } : {}),
      });
    emulator = await launch(options.emulatorPort ?? 0);
    const emu = emulator;
    // The first emulator's address stays the stack's address: clients and the spec keep using it.
    const emulatorPort = Number(new URL(emu.url).port);
    let current: DtrEmulator = emu;
    const sampleImage: SampleImage = {
      repository: pushed.repository,
      tag: pushed.tag,
      ref: `${emu.hostPort}/${pushed.repository}:${pushed.tag}`,
      backendRef: pushed.ref,
      digest: pushed.digest,
    };
    const passwordFile = join(options.workDir, "admin-password");
    const handle: DtrStack = {
      get emulator() {
        return current;
      },
      backend,
      sampleImage,
      users,
      passwordEnvName: PASSWORD_ENV,
      env: { [PASSWORD_ENV]: users.admin.password },
      passwordFile,
      stopEmulator: async () => {
        if (emulator === undefined) return;
        emulator = undefined;
        await current.stop();
      },
      startEmulator: async () => {
        if (emulator !== undefined) throw new Error("the emulator is already running");
        current = await launch(emulatorPort);
        emulator = current;
        return current;
      },
      writeSpec: async (spec) => {
        const ref = spec.passwordRef ?? "env";
        if (ref === "file") await writeFile(passwordFile, `${users.admin.password}\n`, { mode: 0o600 });
        const text = renderSpec(await readFile(demoSpecTemplatePath(), "utf8"), emu.url, ref === "env" ? { env: PASSWORD_ENV } : { file: passwordFile }, spec);
        const target = spec.path ?? join(options.workDir, "cachespec.yaml");
        // Write-then-rename: a watching controller never reads half a file.
        const temp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
        await writeFile(temp, text);
        await rename(temp, target);
        return target;
      },
      stop: async () => {
        await stopAll();
        await rm(passwordFile, { force: true });
      },
    };
    return handle;
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }
}

/**
 * Fills the demo template with this run's values. Editing the parsed documents (rather than
 * string substitution) keeps the template's comments and fails loudly if the template's shape
 * changes.
 */
export function renderSpec(template: string, dtrUrl: string, password: { env: string } | { file: string }, o: WriteSpecOptions): string {
  const docs = parseAllDocuments(template);
  if (!Array.isArray(docs)) throw new Error("demo.yaml: expected a multi-document YAML stream");
  const byKind = (kind: string): Document => {
    const doc = docs.find((d) => d.get("kind") === kind);
    if (!doc) throw new Error(`demo.yaml: no ${kind} document`);
    return doc;
  };
  const dtr = byKind("DTR");
  dtr.setIn(["metadata", "name"], DTR_DOCUMENT_NAME);
  dtr.setIn(["spec", "url"], dtrUrl);
  dtr.setIn(["spec", "admin", "password"], dtr.createNode(password));
  const cache = byKind("ContentCache");
  cache.setIn(["metadata", "name"], o.cacheName);
  cache.setIn(["spec", "dtr"], DTR_DOCUMENT_NAME);
  cache.setIn(["spec", "node"], cache.createNode({ hostname: o.nodeHostname }));
  cache.setIn(["spec", "nodeLabel"], o.nodeLabel ?? "dtr.cache=true");
  cache.setIn(["spec", "image"], o.image);
  cache.setIn(["spec", "port"], o.port);
  if (o.debugPort !== undefined) cache.setIn(["spec", "debugPort"], o.debugPort);
  cache.setIn(["spec", "externalURL"], o.externalURL);
  if (o.blobTTL !== undefined) cache.setIn(["spec", "blobTTL"], o.blobTTL);
  cache.setIn(["spec", "users"], cache.createNode([...o.users]));
  return docs.map((d) => d.toString()).join("");
}

// ---- clients of the stack: docker CLI pulls, the backend's manifest, the cache's own counters ----

export interface BlobRef {
  readonly digest: string;
  readonly size: number;
}

const MANIFEST_TYPES = ["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"].join(", ");

/** The config and layer blobs of the sample image, as the backend registry lists them. */
export async function sampleBlobs(stack: Pick<DtrStack, "backend" | "sampleImage">): Promise<BlobRef[]> {
  const { repository, tag } = stack.sampleImage;
  const response = await fetch(`${stack.backend.url}/v2/${repository}/manifests/${tag}`, {
    headers: { accept: MANIFEST_TYPES },
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`backend manifest ${repository}:${tag}: HTTP ${response.status}`);
  const manifest = (await response.json()) as { config: BlobRef; layers: BlobRef[] };
  return [manifest.config, ...manifest.layers].map((b) => ({ digest: b.digest, size: b.size }));
}

export interface DockerAs {
  /** docker login to the emulator as this user (password on stdin, never on the command line). */
  login(): Promise<void>;
  pull(ref: string): Promise<void>;
  /** RepoDigests of a local image ([] when absent). */
  repoDigests(ref: string): Promise<string[]>;
  /** docker rmi; absent images are fine. */
  removeImage(ref: string): Promise<void>;
}

/**
 * The docker CLI against one private engine, with its own client config directory so that logins
 * of different users (and the user's own ~/.docker) never mix.
 */
export function dockerAs(options: {
  docker: string;
  dockerHost: string;
  configDir: string;
  registryHostPort: string;
  user: DtrStackUser;
  timeoutMs?: number;
}): DockerAs {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: options.configDir, DOCKER_CONFIG: options.configDir };
  const timeoutMs = options.timeoutMs ?? 120_000;
  const docker = (args: string[], extra: { input?: string; allowFailure?: boolean } = {}) =>
    run(options.docker, ["-H", options.dockerHost, ...args], { env, timeoutMs, ...extra });
  return {
    login: async () => {
      await mkdir(options.configDir, { recursive: true });
      await docker(["login", options.registryHostPort, "-u", options.user.username, "--password-stdin"], { input: options.user.password });
    },
    pull: async (ref) => {
      await docker(["pull", "-q", ref]);
    },
    repoDigests: async (ref) => {
      const result = await docker(["image", "inspect", ref, "--format", "{{json .RepoDigests}}"], { allowFailure: true });
      return result.code === 0 ? (JSON.parse(result.stdout) as string[]) : [];
    },
    removeImage: async (ref) => {
      await docker(["image", "rm", ref], { allowFailure: true });
    },
  };
}

export interface CacheCounters {
  readonly blobHits: number;
  readonly blobMisses: number;
  readonly bytesServed: number;
  readonly bytesFetched: number;
}

/** Sum of the samples of one metric whose labels include every `want` pair. */
export function metricValue(text: string, name: string, want: Readonly<Record<string, string>> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const labels = match[3] ?? "";
    if (Object.entries(want).every(([k, v]) => labels.includes(`${k}="${v}"`))) total += Number(match[4]);
  }
  return total;
}

/**
 * The cache-server's own records: its Prometheus /metrics on the debug listener
 * (http://NODE_IP:DEBUG_PORT/metrics, published when the spec sets debugPort; never the registry port).
 */
export async function readCacheCounters(debugUrl: string): Promise<CacheCounters> {
  const response = await fetch(`${debugUrl.replace(/\/+$/, "")}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`cache metrics: HTTP ${response.status}`);
  const text = await response.text();
  return {
    blobHits: metricValue(text, "cache_requests_total", { kind: "blob", result: "hit" }),
    blobMisses: metricValue(text, "cache_requests_total", { kind: "blob", result: "miss" }),
    bytesServed: metricValue(text, "cache_bytes_served_total"),
    bytesFetched: metricValue(text, "cache_bytes_fetched_total"),
  };
}

export interface BlobTraffic {
  /** Blob GETs the emulator answered with a 307 to a cache, by digest. */
  readonly redirected: { readonly digest: string; readonly user?: string; readonly location: string }[];
  /** Blob GETs the emulator served itself to a logged-in user (no redirect). */
  readonly servedDirect: { readonly digest: string; readonly user?: string }[];
  /** Blob requests authorized by a signed redirect query: a cache filling or authorizing. */
  readonly signed: { readonly method: string; readonly digest: string; readonly status: number }[];
}

/** Classifies the emulator's blob requests for one repository. */
export function blobTraffic(log: readonly RequestLogEntry[], repository: string): BlobTraffic {
  const prefix = `/v2/${repository}/blobs/`;
  const blobs = log.filter((e) => e.path.startsWith(prefix));
  const digest = (e: RequestLogEntry): string => e.path.slice(prefix.length);
  return {
    redirected: blobs.filter((e) => e.redirected).map((e) => ({ digest: digest(e), user: e.user, location: e.location ?? "" })),
    servedDirect: blobs.filter((e) => !e.redirected && !e.signed && e.method === "GET" && e.status === 200).map((e) => ({ digest: digest(e), user: e.user })),
    signed: blobs.filter((e) => e.signed).map((e) => ({ method: e.method, digest: digest(e), status: e.status })),
  };
}
