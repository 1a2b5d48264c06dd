import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { text } from "node:stream/consumers";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "./clock.js";
import { parseRetryAfter, UpstreamClient } from "./upstream.js";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function server(handler: (path: string) => { status: number; body?: string; delayMs?: number }): Promise<{ url: string; hits: string[] }> {
  const hits: string[] = [];
  const s = createServer((req, res) => {
    hits.push(req.url ?? "");
    const a = handler(req.url ?? "");
    setTimeout(() => {
      res.writeHead(a.status);
      res.end(a.body ?? "");
    }, a.delayMs ?? 0);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, hits };
}

describe("upstream client", () => {
  it("spreads requests round-robin over healthy upstreams", async () => {
    const a = await server(() => ({ status: 200 }));
    const b = await server(() => ({ status: 200 }));
    const c = new UpstreamClient({ urls: [a.url, b.url], concurrency: 4, clock: new ManualClock() });
    for (let i = 0; i < 4; i++) (await c.request({ method: "GET", path: "/x", headers: {} })).body.resume();
    expect([a.hits.length, b.hits.length]).toEqual([2, 2]);
    await c.close();
  });

  it("caps concurrent upstream requests", async () => {
    let active = 0;
    let peak = 0;
    const s = createServer((_req, res) => {
      active++;
      peak = Math.max(peak, active);
      setTimeout(() => {
        active--;
        res.end("ok");
      }, 20);
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const c = new UpstreamClient({ urls: [`http://127.0.0.1:${(s.address() as AddressInfo).port}`], concurrency: 3, clock: new ManualClock() });
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        const r = await c.request({ method: "GET", path: "/", headers: {} });
        await text(r.body);
      }),
    );
    expect(peak).toBeLessThanOrEqual(3);
    await c.close();
  });

  it("moves on to the next upstream on 503 and marks the busy one down for its Retry-After", async () => {
    const busy = await server(() => ({ status: 503 }));
    const fine = await server(() => ({ status: 200, body: "ok" }));
    const clock = new ManualClock();
    const c = new UpstreamClient({ urls: [busy.url, fine.url], concurrency: 4, clock });
    const r = await c.request({ method: "GET", path: "/a", headers: {} });
    expect(r.status).toBe(200);
    expect(await text(r.body)).toBe("ok");
    expect(c.health().find((h) => h.url === busy.url)?.up).toBe(false);
    await c.close();
  });

  it("reads Retry-After as seconds or as an HTTP date", () => {
    const now = Date.UTC(2026, 0, 1);
    expect(parseRetryAfter("7", now)).toBe(7000);
    expect(parseRetryAfter(new Date(now + 3000).toUTCString(), now)).toBe(3000);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it("reports no upstream reachable with a typed error", async () => {
    const c = new UpstreamClient({ urls: ["http://127.0.0.1:1"], concurrency: 1, clock: new ManualClock() });
    await expect(c.request({ method: "GET", path: "/", headers: {} })).rejects.toMatchObject({ code: "UPSTREAM_UNREACHABLE" });
    await c.close();
  });
});
