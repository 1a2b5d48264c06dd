// The send path's memory per download (issue 12, "bounded memory"): a fast client must not turn
// chunks into garbage, and a client that stops reading must not make the process queue its data.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CHUNK, pooledBuffers } from "./chunk-writer.js";
import { sendFile } from "./stream.js";

const MiB = 1024 * 1024;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  while (cleanups.length) await cleanups.pop()?.();
});

/** A server that sends `file` with sendFile and hands each response to `onResponse`. */
async function fileServer(
  bytes: Buffer,
  onResponse: (res: ServerResponse) => void = () => undefined,
): Promise<{ url: string; done: Promise<{ sent: number; complete: boolean }>[] }> {
  const dir = await mkdtemp(join(tmpdir(), "stream-test-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "blob");
  await writeFile(file, bytes);
  const done: Promise<{ sent: number; complete: boolean }>[] = [];
  const server: Server = createServer((_req, res) => {
    onResponse(res);
    res.writeHead(200, { "Content-Length": String(bytes.length) });
    done.push(
      (async () => {
        const fh = await open(file, "r");
        try {
          return await sendFile(res, fh, 0, bytes.length);
        } finally {
          await fh.close();
        }
      })(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  cleanups.push(async () => server.closeAllConnections());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, done };
}

function download(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve(Buffer.concat(parts)));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

describe("sendFile", () => {
  it("reuses pooled buffers across downloads instead of allocating per request or per chunk", async () => {
    // Before the fix: a fresh buffer of the body's size per small download (1 MiB per request of
    // bench:cache's 1 MiB case) and a fresh 256 KiB buffer for every chunk the kernel took at once
    // (write() === true) of a large one. Dead buffers pile up until V8's next GC (~60-90 MiB
    // measured under bench:cache) and glibc keeps the pages: the peak RSS regression.
    const { url: smallUrl, done: smallDone } = await fileServer(randomBytes(MiB));
    const large = randomBytes(16 * MiB);
    const { url: largeUrl, done: largeDone } = await fileServer(large);
    const slow = vi.spyOn(Buffer, "allocUnsafeSlow");
    const unsafe = vi.spyOn(Buffer, "allocUnsafe");
    for (let i = 0; i < 20; i++) expect((await download(smallUrl)).length).toBe(MiB);
    expect(
      createHash("sha256")
        .update(await download(largeUrl))
        .digest("hex"),
    ).toBe(createHash("sha256").update(large).digest("hex"));
    for (const d of [...smallDone, ...largeDone]) expect((await d).complete).toBe(true);
    const big = [...slow.mock.calls, ...unsafe.mock.calls].filter(([n]) => n >= CHUNK);
    // Two for the first download; every later one reuses them.
    expect(big.length).toBeLessThanOrEqual(2);
    expect(pooledBuffers()).toBeGreaterThanOrEqual(2);
  });

  it("queues at most two chunks in the process for a client that stops reading", async () => {
    const bytes = randomBytes(64 * MiB);
    let response: ServerResponse | undefined;
    const { url, done } = await fileServer(bytes, (res) => (response = res));
    const hash = createHash("sha256");
    let received = 0;
    let client: IncomingMessage | undefined;
    let stalled!: () => void;
    const isStalled = new Promise<void>((r) => (stalled = r));
    const body = new Promise<void>((resolve, reject) => {
      request(url, (res) => {
        client = res;
        res.on("data", (c: Buffer) => {
          hash.update(c);
          received += c.length;
          // Stop reading after the first bytes: everything else waits in the kernel or in us.
          if (received >= 256 * 1024 && received - c.length < 256 * 1024) {
            res.pause();
            stalled();
          }
        });
        res.on("end", resolve);
        res.on("error", reject);
      })
        .on("error", reject)
        .end();
    });
    await isStalled;
    // Let the server run into the stall.
    await new Promise((r) => setTimeout(r, 1000));
    if (!response || !client) throw new Error("no response seen");
    // Bytes waiting in user space: the response's and its socket's queues. The kernel's socket
    // buffers hold a few MiB; writes without back-pressure would queue the other ~55 MiB here.
    const queued = response.writableLength + (response.socket?.writableLength ?? 0);
    expect(queued).toBeLessThanOrEqual(2 * CHUNK);
    expect(received).toBeLessThan(bytes.length);
    // The stalled download is still running, and completes once the client reads again.
    expect(await Promise.race([done[0], new Promise((r) => setTimeout(() => r("running"), 10))])).toBe("running");
    client.resume();
    await body;
    expect(received).toBe(bytes.length);
    expect(hash.digest("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(await done[0]).toEqual({ sent: bytes.length, complete: true });
  });
});
