// Self-signed certificates for `tls: {generate: true}`. node:crypto can make keys and sign, but
// cannot assemble an X.509 certificate, hence @peculiar/x509 (which needs the Reflect polyfill
// loaded first). ECDSA P-256: small, fast to make, accepted by Go's and Node's TLS stacks.
import "reflect-metadata";
import { webcrypto, createPrivateKey } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface GeneratedPair {
  readonly certPem: string;
  /** PKCS#8 PEM; goes only into a Swarm secret, never into logs, labels or status. */
  readonly keyPem: string;
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const VALIDITY_DAYS = 825;

export async function generateSelfSigned(host: string, now: Date): Promise<GeneratedPair> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const serial = Buffer.from(webcrypto.getRandomValues(new Uint8Array(12)))
    .toString("hex")
    .replace(/^[89a-f]/, "1");
  const san = isIP(host) ? { type: "ip" as const, value: host } : { type: "dns" as const, value: host };
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: `CN=${host.replace(/[,=+<>#;"\\]/g, "")}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + VALIDITY_DAYS * 86_400_000),
    keys: keys as unknown as x509.X509CertificateCreateSelfSignedParams["keys"],
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.SubjectAlternativeNameExtension([san]),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }).export({ format: "pem", type: "pkcs8" }).toString();
  return { certPem: cert.toString("pem") + "\n", keyPem };
}
