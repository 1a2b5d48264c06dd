// What a DTR pass depends on besides the cache's own spec generation (which covers only DTR's URL
// and name): the rest of the DTR resource — the admin's name, the password/token reference, the
// trust setting, the user concurrency — and the credential the reference resolves to. A change of
// either must bring a fresh full pass at once, or DtrSynced keeps describing a pass made with the
// old credential for up to the verification interval (60 s) and `apply --wait` cannot tell whether
// a rotated password works.
//
// The resource's hash is public (the resource holds references only, never a value) and goes into
// the cache's status, where `apply --wait` compares it with the resource it stored. The credential's
// fingerprint never leaves the process (see DtrSync.credentialFingerprint).
import type { ResolvedDtr } from "@dtrcache/crds";
import { sha256, stableJson } from "../reconcile/desired.js";

/** Short hash of a DTR resource as resolved (references, not secret values); the same in the CLI and the controller. */
export function dtrResourceHash(dtr: ResolvedDtr): string {
  return sha256(stableJson({ name: dtr.name, spec: dtr.spec })).slice(0, 16);
}
