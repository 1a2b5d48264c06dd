// Finding 7 of issue 9 (limits): slowloris and idle connections are closed promptly, a client
// that stops reading is cut off and releases its blob, connections above the cap are refused.
// Real sockets against a real server; timings are injected through the config (hundreds of ms).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { startCacheServer, type RunningCache } from "./app.js";
import { ManualClock } from "./clock.js";
import { parseConfig } from "./config.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { FakeUpstream } from "./testing/fake-upstream.js";
import { testConfigText } from "./testing/config-text.js";
import { httpGet } from "./testing/http-get.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function setup(optionLines: string, clock?: ManualClock): Promise<{ up: FakeUpstream; cache: RunningCache }> {
  const up = new FakeUpstream();
  await up.start();
  cleanups.push(() => up.stop());
  const root = await mkdtemp(join(tmpdir(), "cache-limits-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const parsed = parseConfig(testConfigText({ root, upstreams: [up.url], optionLines }));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  const cache = await startCacheServer({ config: parsed.config, logger: quiet, clock, metrics: createMetrics(false) });
  cleanups.push(() => cache.close());
  return { up, cache };
}

/** A raw connection to the cache; `closed` resolves with the ms from connect to the server's close. */
async function rawSocket(cache: RunningCache): Promise<{ socket: Socket; closed: Promise<number>; received: () => string }> {
  const socket = connect(cache.port, "127.0.0.1");
  cleanups.push(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const opened = performance.now();
  let text = "";
  socket.on("data", (c: Buffer) => (text += c.toString("latin1")));
  socket.on("error", () => undefined);
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - opened)));
  return { socket, closed, received: () => text };
}

async function counter(cache: RunningCache, name: string): Promise<number> {
  const m = await cache.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("connection limits", () => {
  it("closes a slowloris connection (one header byte every 50 ms) after headertimeout", async () => {
    const { cache } = await setup("          headertimeout: 300ms\n          requesttimeout: 300ms");
    const { socket, closed, received } = await rawSocket(cache);
    socket.write("GET /v2/ HTTP/1.1\r\nHost: cache\r\n");
    let stop = false;
    void (async () => {
      const header = "X-Slow: " + "a".repeat(1000);
      for (let i = 0; !stop && i < header.length && !socket.destroyed; i++) {
        socket.write(header[i] ?? "a");
        await sleep(50);
      }
    })();
    const ms = await closed;
    stop = true;
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(1500);
    expect(received()).toMatch(/^HTTP\/1\.1 408|^$/);
  });

  it("closes a connection that never sends a byte after headertimeout", async () => {
    const { cache } = await setup("          headertimeout: 300ms\n          requesttimeout: 300ms");
    const { closed } = await rawSocket(cache);
    const ms = await closed;
    expect(ms).toBeLessThan(1500);
  });

  it("closes an idle keep-alive connection after idletimeout (plus Node's 1 s grace), and not before", async () => {
    const { cache } = await setup("          idletimeout: 400ms");
    const { socket, closed, received } = await rawSocket(cache);
    // Answered by the cache itself (a path outside /v2/), so no upstream timing is involved.
    socket.write("GET /nothing-here HTTP/1.1\r\nHost: cache\r\n\r\n");
    await expect.poll(() => received()).toMatch(/^HTTP\/1\.1 404/);
    const answeredAt = performance.now();
    const ms = await closed;
    const idle = performance.now() - answeredAt;
    // Node keeps a socket 1 s past the Keep-Alive timeout it advertises, so that a client reusing
    // the connection right at the advertised limit does not race the close.
    expect(idle).toBeGreaterThanOrEqual(300);
    expect(idle).toBeLessThan(400 + 1000 + 600);
    expect(ms).toBeLessThan(2500);
  });

  it("destroys a response whose client stopped reading, which releases the blob so it can expire", async () => {
    const clock = new ManualClock();
    const { up, cache } = await setup("          stalltimeout: 300ms", clock);
    // Bigger than the loopback socket buffers of both ends together, so the server's writes stall.
    const bytes = randomBytes(24 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    const warm = await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    expect(warm.body.length).toBe(bytes.length);
    const blob = cache.store.getBlob(digest);
    if (!blob) throw new Error("blob not stored");

    const { socket, closed } = await rawSocket(cache);
    socket.pause(); // never reads a byte
    socket.write(`GET /v2/library/app/blobs/${digest} HTTP/1.1\r\nHost: cache\r\n\r\n`);
    await expect.poll(() => blob.readers).toBe(1);
    const pinnedAt = performance.now();
    // 300 ms without progress, checked every 75 ms; the rest is slack for a loaded machine.
    await expect.poll(() => blob.readers, { timeout: 5000 }).toBe(0);
    expect(performance.now() - pinnedAt).toBeLessThan(4000);
    expect(await counter(cache, "cache_stalled_responses_total")).toBe(1);
    socket.resume();
    await closed;

    // Unpinned: past blobttl the sweeper removes it.
    clock.advance(25 * 3600_000);
    expect((await cache.sweepNow()).expired).toBe(1);
    expect(cache.store.getBlob(digest)).toBeUndefined();
  }, 20_000);

  it("cuts a client that stops reading a blob still being filled; the fill completes and is kept", async () => {
    const { up, cache } = await setup("          stalltimeout: 300ms");
    const bytes = randomBytes(24 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    const { socket, closed } = await rawSocket(cache);
    socket.pause();
    socket.write(`GET /v2/library/app/blobs/${digest} HTTP/1.1\r\nHost: cache\r\n\r\n`);
    await expect.poll(() => cache.store.getBlob(digest)?.size, { timeout: 10_000 }).toBe(bytes.length);
    await expect.poll(async () => counter(cache, "cache_stalled_responses_total"), { timeout: 5000 }).toBe(1);
    socket.resume();
    await closed;
    expect(cache.handler.fills.get(digest)).toBeUndefined();
  }, 20_000);

  it("refuses connections above maxconnections and accepts again once one closes", async () => {
    const { cache } = await setup("          maxconnections: 2");
    const a = await rawSocket(cache);
    const b = await rawSocket(cache);
    for (const s of [a, b]) {
      s.socket.write("GET /nothing-here HTTP/1.1\r\nHost: cache\r\n\r\n");
      await expect.poll(() => s.received()).toMatch(/^HTTP\/1\.1 404/);
    }
    const c = await rawSocket(cache);
    c.socket.write("GET /nothing-here HTTP/1.1\r\nHost: cache\r\n\r\n");
    expect(await c.closed).toBeLessThan(1000);
    expect(c.received()).toBe("");
    expect(await counter(cache, "cache_connections_refused_total")).toBe(1);
    a.socket.destroy();
    await a.closed;
    await expect.poll(async () => (await httpGet(`${cache.url}/nothing-here`).catch(() => ({ status: 0 }))).status).toBe(404);
  });
});
