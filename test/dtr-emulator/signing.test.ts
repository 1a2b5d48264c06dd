import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { signBlobGrant, signToken, verifyBlobGrant, verifyToken } from "./signing.js";

const secret = randomBytes(32);
const grant = { repository: "team/app", digest: `sha256:${"a".repeat(64)}`, expires: 1_000_300, user: "alice" };

describe("signed blob grants", () => {
  it("verifies a grant for the same repository and digest before it expires", () => {
    const query = new URLSearchParams(signBlobGrant(secret, grant));
    expect(Object.fromEntries(query)).toEqual({ expires: "1000300", user: "alice", signature: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect(verifyBlobGrant(secret, query, grant.repository, grant.digest, 1_000_299)).toEqual({ ok: true, grant });
  });

  it("refuses a grant at or after its expiry", () => {
    const query = new URLSearchParams(signBlobGrant(secret, grant));
    expect(verifyBlobGrant(secret, query, grant.repository, grant.digest, 1_000_300)).toEqual({ ok: false, reason: "expired" });
  });

  it("refuses a grant used for another repository or digest", () => {
    const query = new URLSearchParams(signBlobGrant(secret, grant));
    expect(verifyBlobGrant(secret, query, "team/other", grant.digest, 0)).toEqual({ ok: false, reason: "bad-signature" });
    expect(verifyBlobGrant(secret, query, grant.repository, `sha256:${"b".repeat(64)}`, 0)).toEqual({ ok: false, reason: "bad-signature" });
  });

  it("refuses a tampered expiry, user or signature", () => {
    for (const [key, value] of [
      ["expires", "9999999999"],
      ["user", "bob"],
      ["signature", "A".repeat(43)],
    ] as const) {
      const query = new URLSearchParams(signBlobGrant(secret, grant));
      query.set(key, value);
      expect(verifyBlobGrant(secret, query, grant.repository, grant.digest, 0)).toEqual({ ok: false, reason: "bad-signature" });
    }
  });

  it("refuses a grant signed with another secret", () => {
    const query = new URLSearchParams(signBlobGrant(randomBytes(32), grant));
    expect(verifyBlobGrant(secret, query, grant.repository, grant.digest, 0)).toEqual({ ok: false, reason: "bad-signature" });
  });

  it("tells a missing signature from a malformed one", () => {
    expect(verifyBlobGrant(secret, new URLSearchParams(""), "r", "d", 0)).toEqual({ ok: false, reason: "missing" });
    expect(verifyBlobGrant(secret, new URLSearchParams("expires=soon&user=a&signature=x"), "r", "d", 0)).toEqual({ ok: false, reason: "malformed" });
    expect(verifyBlobGrant(secret, new URLSearchParams("signature=x"), "r", "d", 0)).toEqual({ ok: false, reason: "malformed" });
  });
});

describe("registry tokens", () => {
  const claims = { sub: "alice", aud: "dtr", access: [{ type: "repository" as const, name: "team/app", actions: ["pull"] }], iat: 100, exp: 400 };

  it("round-trips claims until expiry", () => {
    const token = signToken(secret, claims);
    expect(verifyToken(secret, token, 399)).toEqual(claims);
    expect(verifyToken(secret, token, 400)).toBeUndefined();
  });

  it("refuses a token whose payload was changed", () => {
    const token = signToken(secret, claims);
    const [, signature] = token.split(".");
    const forged = `${Buffer.from(JSON.stringify({ ...claims, sub: "admin" })).toString("base64url")}.${signature ?? ""}`;
    expect(verifyToken(secret, forged, 200)).toBeUndefined();
    expect(verifyToken(secret, "garbage", 200)).toBeUndefined();
  });
});
