// TLS checks that name the runbook's three failure causes before a user meets them in a pull:
//   1. clients do not trust the cache's certificate (self-signed / generated, or expired),
//   2. the cache does not trust its upstream (wrong or missing CA bundle),
//   3. the registered host is not a name in the cache's certificate.
// Certificate checks are pure; the upstream probe opens one TLS connection and sends nothing.
import { checkCertificates } from "@dtrcache/crds";
import { isIP } from "node:net";
import { connect, rootCertificates } from "node:tls";
import { hostOf } from "./host.js";

export type TlsFindingReason =
  "HostnameMismatch" | "CertificateSelfSigned" | "CertificateExpired" | "CertificateNotYetValid" | "UpstreamUntrusted" | "UpstreamUnreachable" | "NotChecked";

export interface TlsFinding {
  readonly reason: TlsFindingReason;
  /** Blocking findings break pulls; the others are advice (a self-signed certificate works once clients trust it). */
  readonly blocking: boolean;
  readonly message: string;
}

/** Checks the cache's own certificate (leaf first, intermediates appended) against the URL DTR will redirect clients to. */
export function checkCacheCertificate(certificatePem: string, externalURL: string, now: Date): TlsFinding[] {
  // The loader's own PEM check: the certificates of the bundle in file order, leaf first.
  const parsed = checkCertificates(certificatePem);
  const leaf = parsed.ok ? parsed.certificates[0] : undefined;
  if (leaf === undefined) return [{ reason: "HostnameMismatch", blocking: true, message: "the cache certificate file holds no certificate" }];
  const findings: TlsFinding[] = [];
  const host = hostOf(externalURL);
  const matches = isIP(host) ? leaf.checkIP(host) !== undefined : leaf.checkHost(host) !== undefined;
  if (!matches) {
    findings.push({
      reason: "HostnameMismatch",
      blocking: true,
      message: `externalURL host "${host}" is not a name in the cache certificate (it names ${leaf.subjectAltName ?? leaf.subject})`,
    });
  }
  if (now.getTime() > Date.parse(leaf.validTo)) {
    findings.push({ reason: "CertificateExpired", blocking: true, message: `the cache certificate expired on ${leaf.validTo}` });
  } else if (now.getTime() < Date.parse(leaf.validFrom)) {
    findings.push({ reason: "CertificateNotYetValid", blocking: true, message: `the cache certificate is valid only from ${leaf.validFrom}` });
  }
  if (leaf.issuer === leaf.subject && leaf.verify(leaf.publicKey)) {
    findings.push({
      reason: "CertificateSelfSigned",
      blocking: false,
      message: `the cache certificate is self-signed: docker clients must trust it (copy it to /etc/docker/certs.d/${new URL(externalURL).host}/ca.crt on each client)`,
    });
  }
  return findings;
}

/**
 * Opens a TLS connection to an https upstream with exactly the trust the cache will have (system
 * roots plus the CA bundle given to it) and reports whether the upstream's certificate verifies.
 * Plain http upstreams need no trust and yield no finding.
 */
export async function probeUpstreamTrust(upstreamURL: string, caBundlePem: string | undefined, timeoutMs: number): Promise<TlsFinding | undefined> {
  const url = new URL(upstreamURL);
  if (url.protocol !== "https:") return undefined;
  const port = Number(url.port || 443);
  const host = hostOf(url);
  const ca = caBundlePem ? [...rootCertificates, caBundlePem] : [...rootCertificates];
  return new Promise((resolve) => {
    const socket = connect({ host, port, servername: isIP(host) ? undefined : host, ca, rejectUnauthorized: false, timeout: timeoutMs });
    const finish = (finding: TlsFinding | undefined): void => {
      socket.destroy();
      resolve(finding);
    };
    socket.once("secureConnect", () => {
      if (socket.authorized) return finish(undefined);
      const why = String(socket.authorizationError ?? "not verified");
      finish({ reason: "UpstreamUntrusted", blocking: true, message: `the cache would not trust ${url.host}: ${why} (check trust.caFile / extraCAFiles)` });
    });
    socket.once("timeout", () =>
      finish({ reason: "UpstreamUnreachable", blocking: false, message: `no TLS handshake with ${url.host} within ${timeoutMs} ms` }),
    );
    socket.once("error", (error: NodeJS.ErrnoException) =>
      finish({ reason: "UpstreamUnreachable", blocking: false, message: `cannot reach ${url.host}: ${error.code ?? error.message}` }),
    );
  });
}
