// Referenced files must exist and hold PEM of the kind their field promises, so a typo in a path
// or a swapped cert/key fails at load time instead of as a TLS error inside a running cache.
// Swarm references ({secret}/{config}) are names, not files: admission checks that they exist in
// the swarm (controller/src/store/references.ts), so they are skipped here.
import type { KeyObject, X509Certificate } from "node:crypto";
import { formatPath, makeIssue, quote } from "./issues.js";
import type { SpecIssue } from "./model.js";
import { checkCertificates, checkPrivateKey, type FileReader } from "./pem.js";
import type { ContentCacheSpec, DtrSpec } from "./schema.js";
import type { Normalized } from "./normalize.js";

type Expect = "certificates" | "private-key";

interface FileRef {
  readonly path: readonly PropertyKey[];
  readonly written: string;
  readonly absolute: string;
  readonly expect: Expect;
}

export function checkDtrFiles(dtr: Normalized<DtrSpec>, read: FileReader): SpecIssue[] {
  const { caFile } = dtr.spec.trust;
  const written = dtr.written.trust.caFile;
  if (typeof caFile !== "string" || typeof written !== "string") return [];
  return checkRefs(dtr, [{ path: ["spec", "trust", "caFile"], written, absolute: caFile, expect: "certificates" }], read).issues;
}

export function checkCacheFiles(cache: Normalized<ContentCacheSpec>, read: FileReader): SpecIssue[] {
  const refs: FileRef[] = [];
  const { tls } = cache.spec;
  const writtenTls = cache.written.tls;
  if ("certFile" in tls && "certFile" in writtenTls) {
    if (typeof tls.certFile === "string" && typeof writtenTls.certFile === "string")
      refs.push({ path: ["spec", "tls", "certFile"], written: writtenTls.certFile, absolute: tls.certFile, expect: "certificates" });
    if (typeof tls.keyFile === "string" && typeof writtenTls.keyFile === "string")
      refs.push({ path: ["spec", "tls", "keyFile"], written: writtenTls.keyFile, absolute: tls.keyFile, expect: "private-key" });
  }
  cache.spec.extraCAFiles.forEach((absolute, index) => {
    const written = cache.written.extraCAFiles[index];
    if (typeof absolute === "string")
      refs.push({ path: ["spec", "extraCAFiles", index], written: typeof written === "string" ? written : absolute, absolute, expect: "certificates" });
  });
  const { issues, certificate, key } = checkRefs(cache, refs, read);
  // Both halves parse: they must also belong together, or the cache would fail its TLS handshake.
  if (certificate && key && "keyFile" in writtenTls && typeof writtenTls.keyFile === "string" && !certificate.checkPrivateKey(key)) {
    const message = `${quote(writtenTls.keyFile)} is not the private key of the certificate in tls.certFile`;
    issues.push(makeIssue("KEY_MISMATCH", cache.source.file, "spec.tls.keyFile", message, cache.source.locate(["spec", "tls", "keyFile"])));
  }
  return issues;
}

interface RefsResult {
  readonly issues: SpecIssue[];
  /** The leaf certificate of tls.certFile and the tls.keyFile key, when both were good. */
  readonly certificate: X509Certificate | undefined;
  readonly key: KeyObject | undefined;
}

function checkRefs(owner: Normalized<unknown>, refs: readonly FileRef[], read: FileReader): RefsResult {
  const issues: SpecIssue[] = [];
  let certificate: X509Certificate | undefined;
  let key: KeyObject | undefined;
  for (const ref of refs) {
    const at = owner.source.locate(ref.path);
    const fieldPath = formatPath(ref.path);
    const result = read(ref.absolute);
    if (!result.ok) {
      const where = ref.written === ref.absolute ? "" : ` (looked for ${ref.absolute})`;
      if (result.reason === "unreadable")
        issues.push(makeIssue("FILE_UNREADABLE", owner.source.file, fieldPath, `${quote(ref.written)} cannot be read${where}`, at));
      else
        issues.push(
          makeIssue(
            "FILE_NOT_FOUND",
            owner.source.file,
            fieldPath,
            `${quote(ref.written)} ${result.reason === "is-directory" ? "is a directory, not a file" : "does not exist"}${where}`,
            at,
          ),
        );
      continue;
    }
    if (ref.expect === "certificates") {
      const checked = checkCertificates(result.text);
      if (!checked.ok) issues.push(makeIssue("WRONG_PEM_KIND", owner.source.file, fieldPath, `${quote(ref.written)} ${checked.reason}`, at));
      else if (ref.path.includes("certFile")) certificate = checked.certificates[0];
    } else {
      const checked = checkPrivateKey(result.text);
      if (!checked.ok) issues.push(makeIssue("WRONG_PEM_KIND", owner.source.file, fieldPath, `${quote(ref.written)} ${checked.reason}`, at));
      else key = checked.key;
    }
  }
  return { issues, certificate, key };
}
