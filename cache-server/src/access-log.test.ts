// The access log has one line per request however the response ended: a client that went away
// mid-body and a response the stall guard destroyed are logged too, with the status sent, the
// body bytes written and how it ended. Real sockets against a real server.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { AccessLog, type AccessEntry } from "./access-log.js";
import { startCacheServer, type RunningCache } from "./app.js";
import { parseConfig } from "./config.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { FakeUpstream } from "./testing/fake-upstream.js";
import { testConfigText } from "./testing/config-text.js";
import { httpGet } from "./testing/http-get.js";

interface RequestLine {
  msg: string;
  status: number;
  bytes: number;
  outcome: string;
  path: string;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function setup(optionLines = ""): Promise<{ up: FakeUpstream; cache: RunningCache; lines: () => RequestLine[]; raw: () => string }> {
  const up = new FakeUpstream();
  await up.start();
  cleanups.push(() => up.stop());
  const root = await mkdtemp(join(tmpdir(), "cache-accesslog-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const parsed = parseConfig(testConfigText({ root, upstreams: [up.url], optionLines }));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  const out: RequestLine[] = [];
  let raw = "";
  const sink = new Writable({
    write: (c: Buffer, _e, cb) => {
      raw += c.toString();
      for (const l of c.toString().split("\n")) if (l.trim()) out.push(JSON.parse(l) as RequestLine);
      cb();
    },
  });
  const cache = await startCacheServer({ config: parsed.config, logger: createLogger("info", sink), metrics: createMetrics(false) });
  cleanups.push(() => cache.close());
  return { up, cache, lines: () => out.filter((l) => l.msg === "request"), raw: () => raw };
}

async function rawSocket(cache: RunningCache): Promise<{ socket: Socket; received: () => number }> {
  const socket = connect(cache.port, "127.0.0.1");
  cleanups.push(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let n = 0;
  socket.on("data", (c: Buffer) => {
    n += c.length;
    // Stop reading past 1 MiB, so that the rest of the body cannot all reach the client's kernel
    // buffers before the test destroys the socket (it did on a fast run: outcome "complete").
    if (n > 1024 * 1024) socket.pause();
  });
  socket.on("error", () => undefined);
  return { socket, received: () => n };
}

describe("AccessLog batching", () => {
  const entry = (requestId: string): AccessEntry => ({
    requestId,
    method: "GET",
    path: "/v2/",
    status: 200,
    cache: undefined,
    bytes: 0,
    outcome: "complete",
    ms: 1,
  });

  it("hands the lines of one event-loop turn to the destination in one write, each line whole", async () => {
    const writes: string[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, cb) => (writes.push(c.toString()), cb()) });
    const log = new AccessLog(createLogger("info", sink));
    for (const id of ["a", "b", "c"]) log.write(entry(id));
    expect(writes).toEqual([]); // nothing before the end of this turn
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(1);
    const lines = (writes[0] ?? "").split("\n").filter(Boolean);
    expect(lines.map((l) => (JSON.parse(l) as { requestId: string }).requestId)).toEqual(["a", "b", "c"]);
  });

  it("flush() writes what is pending at once (shutdown), and nothing twice", async () => {
    const writes: string[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, cb) => (writes.push(c.toString()), cb()) });
    const log = new AccessLog(createLogger("info", sink));
    log.write(entry("last"));
    log.flush();
    await new Promise((r) => setImmediate(r));
    expect(writes.join("").split("\n").filter(Boolean)).toHaveLength(1);
  });
});

describe("access log", () => {
  it("never logs a credential or a signed query, and escapes what the client sent", async () => {
    const { up, cache, lines, raw } = await setup();
    const digest = up.addBlob("library/app", randomBytes(1024));
    const password = "pw-never-logged-7f3a";
    const signature = "sig-never-logged-91c2";
    const authorization = `Basic ${Buffer.from(`alice:${password}`).toString("base64")}`;
    const requestId = 'id "quoted" \\ back';
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}?sig=${signature}&expires=9999999999`, {
      headers: { authorization, "x-request-id": requestId },
    });
    await httpGet(`${cache.url}/v2/library/app/manifests/sha256:${"0".repeat(64)}?sig=${signature}`, { headers: { authorization } });
    await expect.poll(() => lines().length).toBe(2);
    expect(lines()[0]).toMatchObject({ path: `/v2/library/app/blobs/${digest}`, requestId, method: "GET", service: "cache-server", level: 30 });
    for (const secret of [password, signature, Buffer.from(`alice:${password}`).toString("base64")]) expect(raw()).not.toContain(secret);
  });

  it("logs a complete response with its body bytes and outcome complete", async () => {
    const { up, cache, lines } = await setup();
    const bytes = randomBytes(300 * 1024);
    const digest = up.addBlob("library/app", bytes);
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    await expect.poll(() => lines().length).toBe(2);
    for (const l of lines()) expect(l).toMatchObject({ status: 200, bytes: bytes.length, outcome: "complete" });
  });

  it("logs a client that went away mid-body: status 200, the bytes written so far, outcome aborted", async () => {
    const { up, cache, lines } = await setup();
    const bytes = randomBytes(32 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`); // stored: the next GET is a hit
    const { socket, received } = await rawSocket(cache);
    socket.write(`GET /v2/library/app/blobs/${digest} HTTP/1.1\r\nHost: cache\r\n\r\n`);
    await expect.poll(() => received()).toBeGreaterThan(1024 * 1024);
    socket.destroy();
    await expect.poll(() => lines().length, { timeout: 5000 }).toBe(2);
    const line = lines()[1];
    expect(line).toMatchObject({ status: 200, outcome: "aborted" });
    expect(line?.bytes).toBeGreaterThan(0);
    expect(line?.bytes).toBeLessThan(bytes.length);
  }, 20_000);

  it("logs a response the stall guard destroyed: outcome destroyed", async () => {
    const { up, cache, lines } = await setup("          stalltimeout: 300ms");
    const bytes = randomBytes(24 * 1024 * 1024);
    const digest = up.addBlob("library/app", bytes);
    await httpGet(`${cache.url}/v2/library/app/blobs/${digest}`);
    const { socket } = await rawSocket(cache);
    socket.pause(); // never reads a byte
    socket.write(`GET /v2/library/app/blobs/${digest} HTTP/1.1\r\nHost: cache\r\n\r\n`);
    await expect.poll(() => lines().length, { timeout: 8000 }).toBe(2);
    const line = lines()[1];
    expect(line).toMatchObject({ status: 200, outcome: "destroyed" });
    expect(line?.bytes).toBeLessThan(bytes.length);
  }, 20_000);
});
