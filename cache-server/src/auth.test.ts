import { describe, expect, it } from "vitest";
import { AuthCache, credentialKey, type Decision } from "./auth.js";
import { ManualClock } from "./clock.js";

describe("authorization decisions", () => {
  it("reuses a decision per (credential, repository) within its TTL, then asks again", async () => {
    const clock = new ManualClock();
    const cache = new AuthCache(clock, 30_000, 3600_000);
    let probes = 0;
    const allow = async (): Promise<Decision> => (probes++, { kind: "allow" });
    const cred = credentialKey("Bearer a", "");
    await cache.authorize(cred, "repo", allow);
    await cache.authorize(cred, "repo", allow);
    expect(probes).toBe(1);
    clock.advance(30_001);
    await cache.authorize(cred, "repo", allow);
    expect(probes).toBe(2);
  });

  it("never shares a decision across credentials, query strings or repositories", async () => {
    const cache = new AuthCache(new ManualClock(), 30_000, 0);
    let probes = 0;
    const allow = async (): Promise<Decision> => (probes++, { kind: "allow" });
    await cache.authorize(credentialKey("Bearer a", ""), "repo", allow);
    await cache.authorize(credentialKey("Bearer b", ""), "repo", allow);
    await cache.authorize(credentialKey("Bearer a", "sig=1"), "repo", allow);
    await cache.authorize(credentialKey("Bearer a", ""), "other", allow);
    expect(probes).toBe(4);
    expect(credentialKey(undefined, "")).not.toBe(credentialKey("", "x"));
  });

  it("coalesces concurrent probes for one key", async () => {
    const cache = new AuthCache(new ManualClock(), 30_000, 0);
    let probes = 0;
    const slow = (): Promise<Decision> => new Promise((r) => setTimeout(() => (probes++, r({ kind: "allow" })), 10));
    await Promise.all(Array.from({ length: 20 }, () => cache.authorize("c", "r", slow)));
    expect(probes).toBe(1);
  });

  it("allows a previously allowed credential while the upstream is unreachable, within the stale window only", async () => {
    const clock = new ManualClock();
    const cache = new AuthCache(clock, 1000, 60_000);
    await cache.authorize("c", "r", async () => ({ kind: "allow" }));
    clock.advance(2000);
    const down = async (): Promise<Decision> => ({ kind: "unreachable" });
    expect(await cache.authorize("c", "r", down)).toEqual({ kind: "allow", stale: true });
    expect(await cache.authorize("other", "r", down)).toEqual({ kind: "unreachable" });
    clock.advance(60_000);
    expect(await cache.authorize("c", "r", down)).toEqual({ kind: "unreachable" });
  });

  it("does not remember a not-found answer", async () => {
    const cache = new AuthCache(new ManualClock(), 30_000, 0);
    let probes = 0;
    const nf = async (): Promise<Decision> => (probes++, { kind: "notfound" });
    await cache.authorize("c", "r", nf);
    await cache.authorize("c", "r", nf);
    expect(probes).toBe(2);
  });
});
