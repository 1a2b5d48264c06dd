import { describe, expect, it } from "vitest";
import { AuthCache, ConnectionCredentials, credentialOf, type Credential, type Decision } from "./auth.js";
import { ManualClock } from "./clock.js";

const policy = { ttlMs: 30_000, outageAllowanceMs: 600_000, notFoundTtlMs: 5_000 };
const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const allow = (count: { n: number }) => async (): Promise<Decision> => (count.n++, { kind: "allow" });
const down = async (): Promise<Decision> => ({ kind: "unreachable" });
const refusal: Extract<Decision, { kind: "refuse" }> = { kind: "refuse", status: 403, headers: {}, body: Buffer.alloc(0) };

describe("authorization decisions per (credential, repository, digest)", () => {
  it("reuses an allow for exactly one triple within its TTL, then asks again", async () => {
    const clock = new ManualClock();
    const cache = new AuthCache(clock, policy);
    const probes = { n: 0 };
    const cred = credentialOf("Bearer a", "");
    await cache.authorize(cred, "repo", D1, allow(probes));
    await cache.authorize(cred, "repo", D1, allow(probes));
    expect(probes.n).toBe(1);
    clock.advance(30_001);
    await cache.authorize(cred, "repo", D1, allow(probes));
    expect(probes.n).toBe(2);
  });

  it("never shares an allow across credentials, query strings, repositories or digests", async () => {
    const cache = new AuthCache(new ManualClock(), policy);
    const probes = { n: 0 };
    await cache.authorize(credentialOf("Bearer a", ""), "repo", D1, allow(probes));
    await cache.authorize(credentialOf("Bearer b", ""), "repo", D1, allow(probes));
    await cache.authorize(credentialOf("Bearer a", "sig=1"), "repo", D1, allow(probes));
    await cache.authorize(credentialOf("Bearer a", ""), "other", D1, allow(probes));
    await cache.authorize(credentialOf("Bearer a", ""), "repo", D2, allow(probes));
    expect(probes.n).toBe(5);
    expect(credentialOf(undefined, "").key).not.toBe(credentialOf("", "x").key);
  });

  it("takes every digest a served manifest lists as allowed for that credential and repository only", () => {
    const cache = new AuthCache(new ManualClock(), policy);
    const cred = credentialOf("Bearer a", "");
    cache.allow(cred, "repo", [D1, D2]);
    expect(cache.remembered(cred, "repo", D2)).toEqual({ kind: "allow" });
    expect(cache.remembered(cred, "other", D2)).toBeUndefined();
    expect(cache.remembered(credentialOf("Bearer b", ""), "repo", D2)).toBeUndefined();
  });

  it("coalesces concurrent probes for one triple", async () => {
    const cache = new AuthCache(new ManualClock(), policy);
    let probes = 0;
    const slow = (): Promise<Decision> => new Promise((r) => setTimeout(() => (probes++, r({ kind: "allow" })), 10));
    const cred = credentialOf("c", "");
    await Promise.all(Array.from({ length: 20 }, () => cache.authorize(cred, "r", D1, slow)));
    expect(probes).toBe(1);
  });

  it("honours an allow while no upstream answers, for outageAllowanceMs after its last confirmation only", async () => {
    const clock = new ManualClock();
    const cache = new AuthCache(clock, { ...policy, ttlMs: 1000, outageAllowanceMs: 60_000 });
    const c = credentialOf("c", "");
    await cache.authorize(c, "r", D1, allow({ n: 0 }));
    clock.advance(2000);
    expect(await cache.authorize(c, "r", D1, down)).toEqual({ kind: "allow", stale: true });
    expect(await cache.authorize(c, "r", D2, down)).toEqual({ kind: "unreachable" });
    expect(await cache.authorize(credentialOf("other", ""), "r", D1, down)).toEqual({ kind: "unreachable" });
    clock.advance(60_000);
    expect(await cache.authorize(c, "r", D1, down)).toEqual({ kind: "unreachable" });
  });

  it("forgets everything a credential was allowed once the upstream refuses it, outage allowance included", async () => {
    const clock = new ManualClock();
    const cache = new AuthCache(clock, policy);
    const c = credentialOf("c", "");
    cache.allow(c, "r", [D1]);
    cache.allow(c, "s", [D2]);
    cache.refuse(c, "r", refusal);
    expect(cache.remembered(c, "r", D1)).toEqual(refusal);
    expect(cache.remembered(c, "s", D2)).toBeUndefined();
    clock.advance(30_001);
    expect(await cache.authorize(c, "r", D1, down)).toEqual({ kind: "unreachable" });
    expect(await cache.authorize(c, "s", D2, down)).toEqual({ kind: "unreachable" });
  });

  it("a 429 or other non-outage failure never unlocks the allowance", async () => {
    const clock = new ManualClock();
    const cache = new AuthCache(clock, policy);
    const c = credentialOf("c", "");
    cache.allow(c, "r", [D1]);
    clock.advance(30_001);
    const busy: Decision = { kind: "failed", status: 429, headers: { "retry-after": "1" } };
    expect(await cache.authorize(c, "r", D1, async () => busy)).toEqual(busy);
  });

  it("ends everything learned with a signed query at its `expires`, outage or not", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const cache = new AuthCache(clock, policy);
    const expires = Math.floor(clock.now() / 1000) + 10;
    const c: Credential = credentialOf(undefined, `expires=${expires}&user=u&signature=x`);
    expect(c.notAfter).toBe(expires * 1000);
    cache.allow(c, "r", [D1]);
    expect(cache.remembered(c, "r", D1)).toEqual({ kind: "allow" });
    clock.advance(10_000);
    expect(cache.remembered(c, "r", D1)).toBeUndefined();
    expect(await cache.authorize(c, "r", D1, down)).toEqual({ kind: "unreachable" });
    // learning after expiry keeps nothing
    cache.allow(c, "r", [D2]);
    expect(cache.remembered(c, "r", D2)).toBeUndefined();
  });

  it("remembers a 404 for notFoundTtlMs", async () => {
    const clock = new ManualClock();
    const cache = new AuthCache(clock, policy);
    const probes = { n: 0 };
    const nf = async (): Promise<Decision> => (probes.n++, { kind: "notfound" });
    const c = credentialOf("c", "");
    await cache.authorize(c, "r", D1, nf);
    await cache.authorize(c, "r", D1, nf);
    expect(probes.n).toBe(1);
    clock.advance(5_001);
    await cache.authorize(c, "r", D1, nf);
    expect(probes.n).toBe(2);
  });

  it("stays bounded: one credential cannot grow past a tenth, and the least recent credentials go first", () => {
    const cache = new AuthCache(new ManualClock(), { ...policy, maxEntries: 1000 });
    const flood = credentialOf(undefined, "");
    for (let i = 0; i < 5000; i++) cache.notFound(flood, "r", `sha256:${i.toString(16).padStart(64, "0")}`);
    expect(cache.size).toBeLessThanOrEqual(100);
    const first = credentialOf("first", "");
    cache.allow(first, "r", [D1]);
    for (let i = 0; i < 2000; i++) cache.allow(credentialOf(`u${i}`, ""), "r", [D1]);
    expect(cache.size).toBeLessThanOrEqual(1000);
    expect(cache.remembered(first, "r", D1)).toBeUndefined();
    expect(cache.remembered(credentialOf("u1999", ""), "r", D1)).toEqual({ kind: "allow" });
  });
});

describe("credentials remembered per connection", () => {
  it("gives each header value on a connection its own credential, equal to credentialOf's", () => {
    const creds = new ConnectionCredentials();
    const conn = {};
    const alice = creds.of(conn, "Basic YWxpY2U6cHc=", "");
    expect(alice).toEqual(credentialOf("Basic YWxpY2U6cHc=", ""));
    expect(creds.of(conn, "Basic YWxpY2U6cHc=", "")).toBe(alice);
    // A new header value or query on the same keep-alive connection is a new credential.
    expect(creds.of(conn, "Basic Ym9iOnB3", "").key).toBe(credentialOf("Basic Ym9iOnB3", "").key);
    expect(creds.of(conn, "Basic YWxpY2U6cHc=", "sig=x&expires=10")).toEqual(credentialOf("Basic YWxpY2U6cHc=", "sig=x&expires=10"));
    expect(creds.of(conn, undefined, "")).toEqual(credentialOf(undefined, ""));
    // Another connection with another header never gets the first one's.
    expect(creds.of({}, "Bearer other", "").key).toBe(credentialOf("Bearer other", "").key);
  });
});
