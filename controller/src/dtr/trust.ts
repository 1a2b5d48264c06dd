// How the controller trusts DTR's TLS certificate: a CA file, DTR's /ca fetched without
// verification (trust on first use, like the runbook's `curl -sk`; logged loudly), or the
// system's roots. Returns an undici dispatcher the client sends every request through.
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Agent, request, type Dispatcher } from "undici";
import type { DtrSpec } from "@dtrcache/crds";
import { DtrTrustError } from "./errors.js";
import type { Logger } from "../logger.js";

export interface DtrTrust {
  readonly dispatcher: Dispatcher;
  /** The PEM the dispatcher trusts, when not the system roots (also handed to caches). */
  readonly caPem?: string;
  close(): Promise<void>;
}

export interface TrustOptions {
  readonly timeoutMs?: number;
  /** Reads a Swarm config by name (trust.caFile {config: NAME}); without it such a CA cannot be used. */
  readonly readConfig?: (name: string) => Promise<string>;
}

/**
 * DTR's CA as the controller reads it: a file; a Swarm secret where the controller's own service
 * mounts it (/run/secrets/NAME, as for the admin password — the cache gets it mounted anyway);
 * a Swarm config through the Engine API.
 */
async function readCaFile(caFile: NonNullable<DtrSpec["trust"]["caFile"]>, options: TrustOptions): Promise<string> {
  if (typeof caFile === "object" && "config" in caFile) {
    if (!options.readConfig) throw new DtrTrustError(`DTR's CA is Swarm config ${caFile.config}, and this controller has no engine to read it from`, false);
    try {
      return await options.readConfig(caFile.config);
    } catch (error) {
      throw new DtrTrustError(`cannot read DTR's CA from Swarm config ${caFile.config}: ${error instanceof Error ? error.message : String(error)}`, true, {
        cause: error,
      });
    }
  }
  const file = typeof caFile === "string" ? caFile : `/run/secrets/${caFile.secret}`;
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if (typeof caFile === "string") throw new DtrTrustError(`cannot read DTR CA file ${caFile}`, false, { cause: error });
    throw new DtrTrustError(
      `DTR's CA is Swarm secret ${caFile.secret}, which this controller cannot read (its service does not mount it at ${file}); mount it into the controller's service, or reference the CA as {config: NAME}`,
      false,
      { cause: error },
    );
  }
}

export async function establishTrust(spec: DtrSpec, logger: Logger, options: TrustOptions = {}): Promise<DtrTrust> {
  const url = new URL(spec.url);
  if (url.protocol === "http:") return wrap(new Agent());
  if (spec.trust.caFile !== undefined) {
    const pem = await readCaFile(spec.trust.caFile, options);
    return wrap(new Agent({ connect: { ca: pem } }), pem);
  }
  if (spec.trust.fetchCA) {
    const pem = await fetchCa(url, options.timeoutMs ?? 10_000);
    const fingerprint = fingerprintOf(pem);
    // Deliberately loud: whoever sits between the controller and DTR right now can substitute
    // their own CA. The fingerprint lets an operator compare it with DTR's real one.
    logger.warn(
      { dtr: url.origin, caFingerprintSha256: fingerprint },
      "TRUST ON FIRST USE: fetched DTR's CA from /ca WITHOUT verifying TLS; compare the fingerprint with DTR's certificate, or set trust.caFile",
    );
    return wrap(new Agent({ connect: { ca: pem } }), pem);
  }
  return wrap(new Agent());
}

function wrap(agent: Agent, caPem?: string): DtrTrust {
  return { dispatcher: agent, caPem, close: () => agent.close() };
}

async function fetchCa(url: URL, timeoutMs: number): Promise<string> {
  const insecure = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    const answer = await request(new URL("/ca", url), { dispatcher: insecure, signal: AbortSignal.timeout(timeoutMs) });
    const text = await answer.body.text();
    if (answer.statusCode !== 200) throw new DtrTrustError(`GET ${url.origin}/ca answered ${answer.statusCode}`, answer.statusCode >= 500);
    if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new DtrTrustError(`GET ${url.origin}/ca did not return a PEM certificate`, false);
    return text;
  } catch (error) {
    if (error instanceof DtrTrustError) throw error;
    throw new DtrTrustError(`cannot fetch DTR's CA from ${url.origin}/ca`, true, { cause: error });
  } finally {
    await insecure.close();
  }
}

function fingerprintOf(pem: string): string {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    throw new DtrTrustError("DTR's /ca returned a certificate that does not parse", false);
  }
}
