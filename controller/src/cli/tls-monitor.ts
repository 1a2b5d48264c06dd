// Runs the TLS checks for every cache in the spec: at start, whenever the loaded spec changes, and
// every few minutes (certificates expire and upstreams change their certificates on their own).
// Findings never block reconciling; they explain why pulls would fail.
import type { CacheSpec, PemSource, ResolvedCache } from "@dtrcache/crds";
import type { Logger as PinoLogger } from "pino";
import type { DtrCaProvider } from "../reconcile/materials.js";
import { describeSource, PemSources } from "../reconcile/pem-sources.js";

const filesOnly = new PemSources(undefined);
import { checkCacheCertificate, probeUpstreamTrust, type TlsFinding } from "../tls/checks.js";
import type { TlsCheckResult } from "./snapshot.js";

export interface TlsMonitor {
  /** Checks the controller's current spec now, whenever it changes, and every few minutes. */
  start(source: { spec(): CacheSpec | undefined }): void;
  findings(): ReadonlyMap<string, TlsCheckResult>;
  /** One pass over a loaded spec (also used by `apply` before it returns). */
  checkSpec(spec: CacheSpec): Promise<void>;
  stop(): void;
}

const RECHECK_MS = 5 * 60_000;
const SPEC_POLL_MS = 2_000;
const PROBE_TIMEOUT_MS = 3_000;

export interface TlsMonitorDeps {
  readonly dtrCa: DtrCaProvider;
  /** The public certificate of a cache's generated pair (undefined while it does not exist yet). */
  readonly generatedCertificate?: (cache: ResolvedCache) => Promise<string | undefined>;
  readonly logger: PinoLogger;
  /** Reads files and Swarm configs (default: files only); a Swarm secret is reported as not checked. */
  readonly pemSources?: PemSources;
}

/** The PEM of a source, or undefined (with a NotChecked finding) when it is a Swarm secret. */
async function readOrNote(source: PemSource, field: string, deps: TlsMonitorDeps, findings: TlsFinding[]): Promise<string | undefined> {
  const read = await (deps.pemSources ?? filesOnly).read(source, field);
  if (read.readable) return read.pem;
  findings.push({
    reason: "NotChecked",
    blocking: false,
    message: `${field} is ${describeSource(source)}, which the controller cannot read: not checked (a {config: NAME} reference is checked)`,
  });
  return undefined;
}

/** The certificate a chained cache's upstream cache presents, as the controller puts it in the bundle. */
async function upstreamCacheCertificate(upstream: ResolvedCache, deps: TlsMonitorDeps, findings: TlsFinding[]): Promise<string | undefined> {
  const tls = upstream.spec.tls;
  if ("certFile" in tls) return readOrNote(tls.certFile, `upstream cache ${upstream.name} tls.certFile`, deps, findings);
  if ("generate" in tls) return deps.generatedCertificate?.(upstream);
  return undefined;
}

async function checkCache(cache: ResolvedCache, spec: CacheSpec, deps: TlsMonitorDeps): Promise<TlsFinding[]> {
  const findings: TlsFinding[] = [];
  const tls = cache.spec.tls;
  if ("certFile" in tls) {
    const pem = await readOrNote(tls.certFile, "tls.certFile", deps, findings);
    if (pem !== undefined) findings.push(...checkCacheCertificate(pem, cache.spec.externalURL, new Date()));
  } else if ("generate" in tls) {
    findings.push({
      reason: "CertificateSelfSigned",
      blocking: false,
      message: `tls.generate: the controller's self-signed certificate; docker clients must trust it in /etc/docker/certs.d/${new URL(cache.spec.externalURL).host}/ca.crt`,
    });
  }
  // The bundle the cache gets for its upstreams, built as the controller builds it: DTR's CA,
  // extraCAFiles, and the certificate of every upstream cache it chains through.
  // A part the controller cannot read (a Swarm secret) leaves the bundle incomplete: then the
  // upstream probe would report a false UpstreamUntrusted, so it is skipped and says so.
  const unread = findings.length;
  const parts = [await deps.dtrCa(cache.dtr, AbortSignal.timeout(PROBE_TIMEOUT_MS)).catch(() => undefined)];
  for (const [i, file] of cache.spec.extraCAFiles.entries()) parts.push(await readOrNote(file, `extraCAFiles[${i}]`, deps, findings).catch(() => undefined));
  for (const upstream of spec.caches.filter((c) => c.name !== cache.name && cache.upstreamUrls.includes(c.spec.externalURL))) {
    parts.push(await upstreamCacheCertificate(upstream, deps, findings).catch(() => undefined));
  }
  const caFile = cache.dtr.spec.trust.caFile;
  const caUnreadable = caFile !== undefined && typeof caFile === "object" && "secret" in caFile && parts[0] === undefined;
  if (caUnreadable)
    findings.push({
      reason: "NotChecked",
      blocking: false,
      message: `trust.caFile of DTR ${cache.dtr.name} is ${describeSource(caFile)}, which the controller cannot read: the cache's trust in its upstreams is not checked`,
    });
  if (caUnreadable || findings.length > unread) return findings;
  const bundle = parts.filter((p): p is string => p !== undefined).join("\n") || undefined;
  for (const upstream of cache.upstreamUrls) {
    const finding = await probeUpstreamTrust(upstream, bundle, PROBE_TIMEOUT_MS);
    if (finding) findings.push(finding);
  }
  return findings;
}

export function createTlsMonitor(deps: TlsMonitorDeps): TlsMonitor {
  let results = new Map<string, TlsCheckResult>();
  const timers: NodeJS.Timeout[] = [];
  let running: Promise<void> | undefined;

  const checkSpec = async (spec: CacheSpec): Promise<void> => {
    const next = new Map<string, TlsCheckResult>();
    for (const cache of spec.caches) {
      try {
        const findings = await checkCache(cache, spec, deps);
        next.set(cache.name, {
          checkedAt: new Date().toISOString(),
          findings,
          plainHttp: "disabled" in cache.spec.tls,
          plainUpstreams: cache.upstreamUrls.filter((u) => u.startsWith("http:")),
          upstreamCount: cache.upstreamUrls.length,
        });
        for (const f of findings.filter((x) => x.blocking)) deps.logger.warn({ cache: cache.name, reason: f.reason, detail: f.message }, "TLS check failed");
      } catch (error) {
        deps.logger.warn({ cache: cache.name, err: error instanceof Error ? error.message : String(error) }, "TLS check could not run");
      }
    }
    results = next;
  };

  return {
    start(source) {
      // Each good load is a new spec object; the one checked last is remembered only once its
      // check starts, so a change that arrives during a check is picked up by the next poll.
      let checked: CacheSpec | undefined;
      const run = (force: boolean): void => {
        const spec = source.spec();
        if (spec === undefined || running || (!force && spec === checked)) return;
        checked = spec;
        running = checkSpec(spec)
          .catch(() => undefined)
          .finally(() => {
            running = undefined;
          });
      };
      run(true);
      timers.push(setInterval(() => run(false), SPEC_POLL_MS).unref(), setInterval(() => run(true), RECHECK_MS).unref());
    },
    findings: () => results,
    checkSpec,
    stop() {
      for (const t of timers) clearInterval(t);
      timers.length = 0;
    },
  };
}
