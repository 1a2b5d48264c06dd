import { Counter, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { startStatusServer, type StatusProvider, type StatusServer } from "./status-server.js";

interface FakeCache {
  name: string;
  ready: boolean;
}

function provider(caches: FakeCache[], engineOk = true): StatusProvider<FakeCache> {
  return {
    snapshot: () => ({ caches }),
    readiness: async () => ({ specLoaded: { ok: true }, engineReachable: engineOk ? { ok: true } : { ok: false, message: "connect ENOENT" } }),
  };
}

let server: StatusServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(p: StatusProvider<FakeCache>, bearerToken?: string): Promise<string> {
  const metrics = new Registry();
  new Counter({ name: "dtrcache_test_total", help: "test counter", registers: [metrics] }).inc(3);
  server = await startStatusServer({ provider: p, metrics, bearerToken }, "127.0.0.1", 0);
  return server.url;
}

describe("status endpoint", () => {
  it("serves every cache and one cache by name", async () => {
    const url = await start(
      provider([
        { name: "region-asia", ready: true },
        { name: "region-eu", ready: false },
      ]),
    );
    const all = await fetch(`${url}/status`);
    expect(all.status).toBe(200);
    expect(await all.json()).toEqual({
      caches: [
        { name: "region-asia", ready: true },
        { name: "region-eu", ready: false },
      ],
    });
    const one = await fetch(`${url}/status/region-eu`);
    expect(await one.json()).toEqual({ name: "region-eu", ready: false });
    expect((await fetch(`${url}/status/nope`)).status).toBe(404);
  });

  it("answers readyz with 503 and the failing check when the engine is unreachable", async () => {
    const url = await start(provider([], false));
    const response = await fetch(`${url}/readyz`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ ready: false, checks: { engineReachable: { ok: false, message: "connect ENOENT" } } });
  });

  it("serves Prometheus metrics from the given registry", async () => {
    const url = await start(provider([]));
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toContain("dtrcache_test_total 3");
  });

  it("is read-only", async () => {
    const url = await start(provider([]));
    const response = await fetch(`${url}/status`, { method: "POST", body: "{}" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
  });

  it("requires the bearer token when one is configured, except for healthz", async () => {
    const url = await start(provider([{ name: "a", ready: true }]), "s3cret-token");
    expect((await fetch(`${url}/status`)).status).toBe(401);
    expect((await fetch(`${url}/status`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    const ok = await fetch(`${url}/status`, { headers: { authorization: "Bearer s3cret-token" } });
    expect(ok.status).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const denied = await (await fetch(`${url}/metrics`)).text();
    expect(denied).not.toContain("s3cret-token");
  });
});
