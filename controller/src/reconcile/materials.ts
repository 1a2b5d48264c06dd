// Gathers what the pure desired-state builder needs, with I/O: TLS and CA files, the DTR CA from
// its provider, the http.secret read back from our current config (so it never changes under
// running replicas), generated certificates reused while their secrets exist, and the certificates
// of upstream caches a chained cache must trust.
import { readFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { parse } from "yaml";
import { CONTAINER_PATHS, type CacheSpec, type PemSource, type ResolvedCache, type ResolvedDtr } from "@dtrcache/crds";
import type { SwarmApi, SwarmSecret } from "../swarm/api.js";
import { ControllerError } from "../errors.js";
import type { CacheMaterials, TlsMaterial } from "./desired.js";
import { CONFIG_REF, HASH, PUBLIC_CERT, PURPOSE, TLS_HOST, TLS_PAIR, ownerFilter } from "./labels.js";
import type { ActualCache } from "./planner.js";
import { generateSelfSigned } from "./selfsigned.js";
import { describeSource, PemSources, type ExternalMount } from "./pem-sources.js";
import { hostOf } from "../tls/host.js";

/** Returns DTR's CA (PEM) for `trust.fetchCA`; the DTR side implements it. undefined = none. */
export type DtrCaProvider = (dtr: ResolvedDtr, signal: AbortSignal) => Promise<string | undefined>;

export interface MaterialDeps {
  readonly swarm: SwarmApi;
  readonly owner: string;
  readonly render: (cache: ResolvedCache, options: { httpSecret: string; caBundle: boolean }) => string;
  readonly generateHttpSecret: () => string;
  readonly dtrCa?: DtrCaProvider;
  readonly now: () => Date;
  /** config name → http.secret read from it; spares an inspect call on every pass. */
  readonly httpSecrets: Map<string, string>;
  readonly readText?: (path: string) => Promise<string>;
}

const readText = (path: string): Promise<string> => readFile(path, "utf8");

// One reader per engine connection (deps are rebuilt on every pass): config contents are kept by id.
const sourcesBySwarm = new WeakMap<SwarmApi, PemSources>();
function sourcesOf(deps: MaterialDeps): PemSources {
  if (deps.readText) return new PemSources(deps.swarm, deps.readText);
  let sources = sourcesBySwarm.get(deps.swarm);
  if (!sources) sourcesBySwarm.set(deps.swarm, (sources = new PemSources(deps.swarm, readText)));
  return sources;
}

/** PEM the controller must read (a file or a config); a Swarm secret here cannot be used. */
async function readMaterial(deps: MaterialDeps, source: PemSource, field: string, why: string): Promise<string> {
  const read = await sourcesOf(deps).read(source, field);
  if (read.readable) return read.pem;
  throw new ControllerError(
    "MATERIAL_UNREADABLE",
    `${field}: ${describeSource(source)} cannot be read by the controller (${why}); reference the certificate as {config: NAME} or a file`,
  );
}

async function httpSecretFor(deps: MaterialDeps, actual: ActualCache): Promise<string> {
  const referenced = actual.service?.labels[CONFIG_REF];
  const newestFirst = [...actual.configs].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  const candidate = actual.configs.find((c) => c.name === referenced) ?? newestFirst[0];
  if (!candidate) return deps.generateHttpSecret();
  const known = deps.httpSecrets.get(candidate.name);
  if (known !== undefined) return known;
  const inspected = await deps.swarm.inspectConfig(candidate.id);
  let secret: unknown;
  try {
    const doc = parse(inspected.data?.toString("utf8") ?? "") as { http?: { secret?: unknown } } | null;
    secret = doc?.http?.secret;
  } catch {
    secret = undefined;
  }
  const value = typeof secret === "string" && secret.length > 0 ? secret : deps.generateHttpSecret();
  deps.httpSecrets.set(candidate.name, value);
  return value;
}

/** A generated pair still present in Swarm, preferring the one the service mounts. */
function findGeneratedPair(
  secrets: readonly SwarmSecret[],
  host: string,
  mounted: ReadonlySet<string>,
): { cert: SwarmSecret; key: SwarmSecret; pair: string } | undefined {
  const certs = secrets.filter((s) => s.labels[PURPOSE] === "cert" && s.labels[TLS_HOST] === host && s.labels[PUBLIC_CERT] && s.labels[TLS_PAIR]);
  const pairs = certs
    .map((cert) => ({
      cert,
      key: secrets.find((s) => s.labels[PURPOSE] === "key" && s.labels[TLS_PAIR] === cert.labels[TLS_PAIR]),
      pair: cert.labels[TLS_PAIR] ?? "",
    }))
    .filter((p): p is { cert: SwarmSecret; key: SwarmSecret; pair: string } => p.key !== undefined)
    .sort((a, b) =>
      mounted.has(a.cert.name) === mounted.has(b.cert.name) ? (a.cert.createdAt < b.cert.createdAt ? 1 : -1) : mounted.has(a.cert.name) ? -1 : 1,
    );
  return pairs[0];
}

async function tlsFor(deps: MaterialDeps, cache: ResolvedCache, actual: ActualCache): Promise<TlsMaterial> {
  const tls = cache.spec.tls;
  if ("disabled" in tls) return { kind: "none" };
  if ("certFile" in tls) {
    if (typeof tls.certFile === "string" && typeof tls.keyFile === "string") {
      return {
        kind: "files",
        certPem: await readMaterial(deps, tls.certFile, "spec.tls.certFile", ""),
        keyPem: await readMaterial(deps, tls.keyFile, "spec.tls.keyFile", ""),
      };
    }
    // Swarm references are mounted as they are (a secret cannot be read, and copying a config
    // would only duplicate it); a file half still becomes our own secret.
    const sources = sourcesOf(deps);
    const half = async (source: PemSource, target: string, field: string): Promise<{ pem?: string; mount?: ExternalMount }> => {
      if (typeof source === "string") return { pem: await readMaterial(deps, source, field, "") };
      return { mount: await sources.mount(source, target, field) };
    };
    const cert = await half(tls.certFile, CONTAINER_PATHS.cacheCert, "spec.tls.certFile");
    const key = await half(tls.keyFile, CONTAINER_PATHS.cacheKey, "spec.tls.keyFile");
    return {
      kind: "referenced",
      mounts: [cert.mount, key.mount].filter((m) => m !== undefined),
      ...(cert.pem !== undefined ? { certPem: cert.pem } : {}),
      ...(key.pem !== undefined ? { keyPem: key.pem } : {}),
    };
  }
  const host = hostOf(cache.spec.externalURL);
  const mounted = new Set((actual.service?.spec.TaskTemplate.ContainerSpec.Secrets ?? []).map((s) => s.SecretName));
  const found = findGeneratedPair(actual.secrets, host, mounted);
  if (found) {
    const certPem = Buffer.from(found.cert.labels[PUBLIC_CERT] ?? "", "base64").toString("utf8");
    return {
      kind: "reused",
      host,
      pair: found.pair,
      certPem,
      cert: { name: found.cert.name, hash: found.cert.labels[HASH] ?? "" },
      key: { name: found.key.name, hash: found.key.labels[HASH] ?? "" },
    };
  }
  // Only when our secret is gone (or the host changed): a new pair means clients must trust it anew.
  const generated = await generateSelfSigned(host, deps.now());
  return { kind: "generated", host, pair: randomBytes(4).toString("hex"), ...generated };
}

async function upstreamCert(deps: MaterialDeps, upstream: ResolvedCache): Promise<string | undefined> {
  const tls = upstream.spec.tls;
  if ("disabled" in tls) return undefined;
  if ("certFile" in tls)
    return readMaterial(
      deps,
      tls.certFile,
      `upstream cache ${upstream.name} spec.tls.certFile`,
      "a chained cache's CA bundle needs its upstream's certificate",
    );
  const certPem = await generatedCertificateOf(deps.swarm, deps.owner, upstream);
  if (certPem === undefined)
    throw new ControllerError("UPSTREAM_CERT_PENDING", `upstream cache ${upstream.name} has no generated certificate yet; retrying after it is reconciled`);
  return certPem;
}

/** The public certificate of a cache's generated TLS pair, when the pair exists in Swarm. */
export async function generatedCertificateOf(swarm: SwarmApi, owner: string, cache: ResolvedCache): Promise<string | undefined> {
  const secrets = await swarm.listSecrets(ownerFilter(owner, cache.name));
  const found = findGeneratedPair(secrets, hostOf(cache.spec.externalURL), new Set());
  return found ? Buffer.from(found.cert.labels[PUBLIC_CERT] ?? "", "base64").toString("utf8") : undefined;
}

/** The cache's CA bundle: PEM we assemble into our own secret, or one referenced secret mounted as it is. */
type CaBundle = { readonly pem: string } | { readonly mount: ExternalMount } | undefined;

async function caBundleFor(deps: MaterialDeps, cache: ResolvedCache, spec: CacheSpec, signal: AbortSignal): Promise<CaBundle> {
  const parts: string[] = [];
  // A secret cannot be read, so it cannot be combined with anything: it may only be the whole bundle.
  const secrets: { source: Exclude<PemSource, string>; field: string }[] = [];
  const sources = sourcesOf(deps);
  const add = async (source: PemSource, field: string): Promise<void> => {
    const read = await sources.read(source, field);
    if (read.readable) parts.push(read.pem);
    else if (typeof source !== "string") secrets.push({ source, field });
  };
  const trust = cache.dtr.spec.trust;
  if (trust.caFile) await add(trust.caFile, `DTR ${cache.dtr.name} spec.trust.caFile`);
  else if (trust.fetchCA && deps.dtrCa) {
    const fetched = await deps.dtrCa(cache.dtr, signal);
    if (fetched) parts.push(fetched);
  }
  for (const [i, file] of cache.spec.extraCAFiles.entries()) await add(file, `spec.extraCAFiles[${i}]`);
  for (const up of cache.spec.upstreams) {
    if (typeof up === "string") continue;
    const upstream = spec.caches.find((c) => c.name === up.cache);
    if (!upstream) continue;
    const pem = await upstreamCert(deps, upstream);
    if (pem) parts.push(pem);
  }
  const text = parts.map((p) => p.trim()).filter((p) => p.length > 0);
  const [only, ...more] = secrets;
  if (only) {
    if (more.length > 0 || text.length > 0) {
      throw new ControllerError(
        "MATERIAL_UNREADABLE",
        `${only.field}: ${describeSource(only.source)} cannot be combined with the cache's other CA material (the controller cannot read a secret); reference it as {config: NAME}`,
      );
    }
    return { mount: await sources.mount(only.source, CONTAINER_PATHS.caBundle, only.field) };
  }
  return text.length > 0 ? { pem: `${text.join("\n")}\n` } : undefined;
}

export async function gatherMaterials(
  deps: MaterialDeps,
  cache: ResolvedCache,
  spec: CacheSpec,
  actual: ActualCache,
  signal: AbortSignal,
): Promise<CacheMaterials> {
  const httpSecret = await httpSecretFor(deps, actual);
  const tls = await tlsFor(deps, cache, actual);
  const ca = await caBundleFor(deps, cache, spec, signal);
  const configYaml = deps.render(cache, { httpSecret, caBundle: ca !== undefined });
  const external = [...(tls.kind === "referenced" ? tls.mounts : []), ...(ca && "mount" in ca ? [ca.mount] : [])];
  return { configYaml, tls, ...(ca && "pem" in ca ? { caBundle: ca.pem } : {}), ...(external.length > 0 ? { external } : {}) };
}
