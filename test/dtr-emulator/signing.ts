// HMAC signatures for the emulator's bearer tokens and for the signed blob redirects it hands to
// content caches. Real DTR's token and redirect formats are UNCONFIRMED (dtr-facts.md); these are
// the emulator's own choices, documented in README.md, and only the emulator ever verifies them.
import { createHmac, timingSafeEqual } from "node:crypto";

/** What a blob redirect vouches for: this user may read this digest of this repository until `expires`. */
export interface BlobGrant {
  readonly repository: string;
  readonly digest: string;
  /** Unix seconds. */
  readonly expires: number;
  readonly user: string;
}

export type GrantCheck =
  | { readonly ok: true; readonly grant: BlobGrant }
  | { readonly ok: false; readonly reason: "missing" | "malformed" | "bad-signature" | "expired" | "wrong-target" };

function mac(secret: Buffer, text: string): string {
  return createHmac("sha256", secret).update(text).digest("base64url");
}

function equalText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

// Fields are joined with "|" which can appear in none of them: repository names, digests and
// DTR usernames exclude it, so two different grants can never produce the same signed text.
function grantText(grant: BlobGrant): string {
  return `${grant.repository}|${grant.digest}|${grant.expires}|${grant.user}`;
}

/** The query string appended to `<cache host>/v2/<repo>/blobs/<digest>`. */
export function signBlobGrant(secret: Buffer, grant: BlobGrant): string {
  const query = new URLSearchParams({ expires: String(grant.expires), user: grant.user, signature: mac(secret, grantText(grant)) });
  return query.toString();
}

/** Checks a signed query for `repository` and `digest` at `nowSeconds`. */
export function verifyBlobGrant(secret: Buffer, query: URLSearchParams, repository: string, digest: string, nowSeconds: number): GrantCheck {
  const signature = query.get("signature");
  const expiresText = query.get("expires");
  const user = query.get("user");
  if (signature === null && expiresText === null) return { ok: false, reason: "missing" };
  if (signature === null || expiresText === null || user === null || !/^\d{1,12}$/.test(expiresText)) return { ok: false, reason: "malformed" };
  const grant: BlobGrant = { repository, digest, expires: Number(expiresText), user };
  // The path supplies repository and digest, so a signature made for another blob fails here.
  if (!equalText(signature, mac(secret, grantText(grant)))) return { ok: false, reason: "bad-signature" };
  if (grant.expires <= nowSeconds) return { ok: false, reason: "expired" };
  return { ok: true, grant };
}

/** One access entry in a registry token, as the distribution token spec shapes it. */
export interface TokenAccess {
  readonly type: "repository";
  readonly name: string;
  readonly actions: readonly string[];
}

export interface TokenClaims {
  /** Username, or "" for an anonymous token. */
  readonly sub: string;
  readonly aud: string;
  readonly access: readonly TokenAccess[];
  /** Unix seconds. */
  readonly iat: number;
  readonly exp: number;
}

/** A compact `payload.signature` token (base64url JSON + HMAC); not a JWT, and not meant to be one. */
export function signToken(secret: Buffer, claims: TokenClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `${payload}.${mac(secret, payload)}`;
}

/** The claims of a token this emulator issued, or undefined when forged, malformed or expired. */
export function verifyToken(secret: Buffer, token: string, nowSeconds: number): TokenClaims | undefined {
  const dot = token.indexOf(".");
  if (dot <= 0) return undefined;
  const payload = token.slice(0, dot);
  if (!equalText(token.slice(dot + 1), mac(secret, payload))) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (!isClaims(claims) || claims.exp <= nowSeconds) return undefined;
  return claims;
}

function isClaims(value: unknown): value is TokenClaims {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    typeof record.sub === "string" &&
    typeof record.aud === "string" &&
    typeof record.iat === "number" &&
    typeof record.exp === "number" &&
    Array.isArray(record.access)
  );
}
