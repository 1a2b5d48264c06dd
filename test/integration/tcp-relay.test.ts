// The L4 relay the HA test uses as its load balancer and slow link (test/support/tcp-relay.ts),
// checked on its own against real HTTP servers on loopback (no engine needed; it lives with the
// integration tests because the unit project does not cover test/support).
import { get, createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

interface Backend {
  readonly port: number;
  healthy: boolean;
  /** Bytes the root path answers with; cut after `cutAfter` bytes when set. */
  body: Buffer;
  cutAfter?: number;
  readonly server: Server;
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function backend(name: string): Promise<Backend> {
  const b: Backend = { port: 0, healthy: true, body: Buffer.from(name), server: createServer() } as Backend;
  b.server.on("request", (req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(b.healthy ? 200 : 503).end();
      return;
    }
    res.writeHead(200, { "content-length": String(b.body.length) });
    if (b.cutAfter === undefined) {
      res.end(b.body);
      return;
    }
    res.write(b.body.subarray(0, b.cutAfter), () => res.socket?.destroy());
  });
  await new Promise<void>((resolve) => b.server.listen(0, "127.0.0.1", resolve));
  const address = b.server.address();
  Object.assign(b, { port: typeof address === "object" && address ? address.port : 0 });
  open.push({
    close: () =>
      new Promise<void>((resolve) => {
        b.server.closeAllConnections();
        b.server.close(() => resolve());
      }),
  });
  return b;
}

async function relay(options: Parameters<typeof startTcpRelay>[0]): Promise<TcpRelay> {
  const r = await startTcpRelay(options);
  open.push({ close: () => r.stop() });
  return r;
}

/** One GET on a fresh connection (no keep-alive: every request is a new connection to route). */
function fetchOnce(url: string): Promise<{ body: string; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ body: Buffer.concat(chunks).toString(), complete: res.complete }));
      res.on("error", () => resolve({ body: Buffer.concat(chunks).toString(), complete: false }));
      res.on("aborted", () => resolve({ body: Buffer.concat(chunks).toString(), complete: false }));
    });
    req.on("error", reject);
  });
}

const on = (b: Backend, health = true) => ({ host: "127.0.0.1", port: b.port, ...(health ? { healthUrl: `http://127.0.0.1:${b.port}/healthz` } : {}) });

describe("the test's TCP relay", () => {
  it("sends new connections to the preferred backend while its health check passes, and to the other once it fails", async () => {
    const [a, b] = [await backend("a"), await backend("b")];
    const r = await relay({ listenHost: "127.0.0.1", backends: [on(a), on(b)], policy: { kind: "prefer", index: 0 }, healthIntervalMs: 50 });
    await expect.poll(() => r.stats().map((s) => s.healthy)).toEqual([true, true]);
    expect((await fetchOnce(r.url)).body).toBe("a");
    a.healthy = false;
    await expect.poll(() => r.stats()[0]?.healthy).toBe(false);
    expect((await fetchOnce(r.url)).body).toBe("b");
    a.healthy = true;
    await expect.poll(() => r.stats()[0]?.healthy).toBe(true);
    expect((await fetchOnce(r.url)).body).toBe("a");
    expect(r.stats().map((s) => s.connections)).toEqual([2, 1]);
  });

  it("retries a refused connect on the next backend", async () => {
    const [a, b] = [await backend("a"), await backend("b")];
    const r = await relay({ listenHost: "127.0.0.1", backends: [on(a, false), on(b, false)], policy: { kind: "prefer", index: 0 } });
    await new Promise<void>((resolve) => a.server.close(() => resolve()));
    expect((await fetchOnce(r.url)).body).toBe("b");
    expect(r.stats()[0]?.failedConnects).toBe(1);
  });

  it("cuts the client's connection when the backend's is cut in the middle of a response", async () => {
    const a = await backend("a");
    a.body = Buffer.alloc(256 * 1024, 1);
    a.cutAfter = 64 * 1024;
    const r = await relay({ listenHost: "127.0.0.1", backends: [on(a, false)] });
    const result = await fetchOnce(r.url);
    expect(result.complete).toBe(false);
    expect(result.body.length).toBeLessThan(a.body.length);
  });

  it("holds what a backend sends to the byte rate it is given, and to none once it is lifted", async () => {
    const a = await backend("a");
    a.body = Buffer.alloc(512 * 1024, 1);
    const r = await relay({ listenHost: "127.0.0.1", backends: [on(a, false)], rateBytesPerSecond: 1024 * 1024 });
    let t = Date.now();
    expect((await fetchOnce(r.url)).body.length).toBe(a.body.length);
    expect(Date.now() - t).toBeGreaterThanOrEqual(400);
    r.setRate(undefined);
    t = Date.now();
    expect((await fetchOnce(r.url)).body.length).toBe(a.body.length);
    expect(Date.now() - t).toBeLessThan(400);
    expect(r.stats()[0]?.bytesFromBackend).toBeGreaterThan(2 * a.body.length);
  });
});
