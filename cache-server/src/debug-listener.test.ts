// Finding 7 of issue 9 (debug listener): /metrics and /healthz show upstream URLs and health, so
// they live on http.debug.addr, never on the registry port.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { startCacheServer, type RunningCache } from "./app.js";
import { DEFAULT_DEBUG_ADDR, parseConfig, type CacheConfig } from "./config.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { FakeUpstream } from "./testing/fake-upstream.js";
import { testConfigText } from "./testing/config-text.js";
import { httpGet } from "./testing/http-get.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function occupiedPort(): Promise<number> {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  return (holder.address() as { port: number }).port;
}

async function start(options: { debug?: CacheConfig["debug"] } = {}): Promise<{ cache: RunningCache; logs: string[] }> {
  const up = new FakeUpstream();
  await up.start();
  cleanups.push(() => up.stop());
  const root = await mkdtemp(join(tmpdir(), "cache-debug-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const parsed = parseConfig(testConfigText({ root, upstreams: [up.url] }));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  const config: CacheConfig = options.debug ? { ...parsed.config, debug: options.debug } : parsed.config;
  const logs: string[] = [];
  const logger = createLogger("info", new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) }));
  const cache = await startCacheServer({ config, logger, metrics: createMetrics(false) });
  cleanups.push(() => cache.close());
  return { cache, logs };
}

describe("debug listener (http.debug.addr)", () => {
  it("serves /metrics and /healthz; the registry port answers 404 for both, as a registry would", async () => {
    const { cache } = await start();
    if (!cache.debugUrl) throw new Error("no debug listener");
    expect(cache.debugUrl).not.toBe(cache.url);
    const metrics = await httpGet(`${cache.debugUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.body.toString()).toContain("cache_requests_total");
    const health = await httpGet(`${cache.debugUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body.toString())).toMatchObject({ ok: true, blobs: 0, unverified: 0 });
    for (const path of ["/metrics", "/healthz"]) {
      const r = await httpGet(`${cache.url}${path}`);
      expect(r.status).toBe(404);
      expect(JSON.parse(r.body.toString())).toMatchObject({ errors: [{ code: "NOT_FOUND" }] });
      expect(r.body.toString()).not.toContain("upstream");
    }
    expect((await httpGet(`${cache.debugUrl}/v2/`)).status).toBe(404);
  });

  it("defaults to loopback port 5001 when http.debug is absent", () => {
    const parsed = parseConfig(testConfigText({ root: "/tmp/x", upstreams: ["http://up:5000"] }).replace("  debug:\n    addr: 127.0.0.1:0\n", ""));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    expect(DEFAULT_DEBUG_ADDR).toBe("127.0.0.1:5001");
    expect(parsed.config.debug).toEqual({ host: "127.0.0.1", port: 5001, explicit: false });
  });

  it.each([
    [true, "fails to start"],
    [false, "runs without it, with a warning"],
  ])("when the debug address is taken and explicit=%s, it %s", async (explicit) => {
    const port = await occupiedPort();
    const started = start({ debug: { host: "127.0.0.1", port, explicit } });
    if (explicit) {
      await expect(started).rejects.toThrow(/http\.debug\.addr 127\.0\.0\.1:\d+: EADDRINUSE/);
      return;
    }
    const { cache, logs } = await started;
    expect(cache.debugUrl).toBeUndefined();
    expect(logs.join("")).toContain("debug listener not started");
    expect((await httpGet(`${cache.url}/nothing-here`)).status).toBe(404);
  });
});
