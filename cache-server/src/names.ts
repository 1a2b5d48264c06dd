// Strict validation of everything from the URL that can reach the file system. Names follow the
// distribution reference grammar (path components of lower-case alphanumerics joined by one of
// `.`, `_`, `__` or runs of `-`, separated by `/`); digests are sha256 only because the store is
// keyed by sha256. Anything else is rejected before a path is built, so `..`, `%2e`, empty
// components and absolute paths never get near the disk.

import { createHash } from "node:crypto";

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME = 255;

export function isValidName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME) return false;
  return name.split("/").every((c) => COMPONENT.test(c));
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function isValidDigest(digest: string): boolean {
  return DIGEST.test(digest);
}

/** The content digest of bytes, as registries name blobs and manifests (`sha256:<hex>`). */
export function digestOf(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** The 64 hex characters of a validated digest. */
export function digestHex(digest: string): string {
  if (!isValidDigest(digest)) throw new Error(`not a sha256 digest: ${JSON.stringify(digest.slice(0, 80))}`);
  return digest.slice(7);
}

export type Route =
  | { kind: "base" }
  | { kind: "manifest"; name: string; reference: string; byDigest: boolean }
  | { kind: "blob"; name: string; digest: string }
  | { kind: "tags"; name: string }
  | { kind: "invalid"; code: "NAME_INVALID" | "DIGEST_INVALID" | "TAG_INVALID" | "NOT_FOUND"; detail: string }
  | { kind: "unsupported"; detail: string };

/**
 * Maps a raw request path (before any percent-decoding: an encoded `/` or `.` is simply not in
 * the grammar) to a registry route.
 */
export function parseRegistryPath(path: string): Route {
  if (path === "/v2/" || path === "/v2") return { kind: "base" };
  if (!path.startsWith("/v2/")) return { kind: "invalid", code: "NOT_FOUND", detail: "not a registry path" };
  const rest = path.slice(4);
  const m = /^(.+)\/(manifests|blobs|tags)\/(.+)$/.exec(rest);
  if (!m) {
    if (/^(.+)\/blobs\/uploads\/?$/.test(rest)) return { kind: "unsupported", detail: "this cache is read-only" };
    return { kind: "invalid", code: "NOT_FOUND", detail: "not a registry path" };
  }
  const [, name = "", kind, ref = ""] = m;
  if (kind === "blobs" && ref.startsWith("uploads")) return { kind: "unsupported", detail: "this cache is read-only" };
  if (!isValidName(name)) return { kind: "invalid", code: "NAME_INVALID", detail: "repository name does not match the reference grammar" };
  if (kind === "tags") return ref === "list" ? { kind: "tags", name } : { kind: "invalid", code: "NOT_FOUND", detail: "not a registry path" };
  if (kind === "blobs") {
    if (!isValidDigest(ref)) return { kind: "invalid", code: "DIGEST_INVALID", detail: "digest must be sha256:<64 lower-case hex>" };
    return { kind: "blob", name, digest: ref };
  }
  if (ref.startsWith("sha256:") || ref.includes(":")) {
    if (!isValidDigest(ref)) return { kind: "invalid", code: "DIGEST_INVALID", detail: "digest must be sha256:<64 lower-case hex>" };
    return { kind: "manifest", name, reference: ref, byDigest: true };
  }
  if (!isValidTag(ref)) return { kind: "invalid", code: "TAG_INVALID", detail: "tag does not match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}" };
  return { kind: "manifest", name, reference: ref, byDigest: false };
}
