import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCacheServer, type RunningCache } from "./app.js";
import { parseConfig } from "./config.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { testConfigText } from "./testing/config-text.js";
import { digestOf, FakeUpstream } from "./testing/fake-upstream.js";

const quiet = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }));
let dir = "";
const stops: (() => Promise<void>)[] = [];

function config(root: string, upstream: string, httpLines = "", optionLines = ""): string {
  return testConfigText({ root, upstreams: [upstream], httpLines, optionLines });
}

async function start(text: string): Promise<RunningCache> {
  const parsed = parseConfig(text);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const c = await startCacheServer({ config: parsed.config, logger: quiet, metrics: createMetrics(false) });
  stops.push(() => c.close());
  return c;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cache-chain-"));
  // A certificate for 127.0.0.1 from the openssl CLI: the edge cache trusts it only via `cas`.
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=parent-cache",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
});
afterAll(async () => {
  while (stops.length) await stops.pop()?.();
  await rm(dir, { recursive: true, force: true });
});

describe("chained caches over TLS", () => {
  it("serves through a parent cache on TLS trusted via cas, relaying the origin's challenge and fetching once", async () => {
    const origin = new FakeUpstream();
    await origin.start();
    stops.push(() => origin.stop());
    origin.token = "t0ken";
    const bytes = randomBytes(2 * 1024 * 1024);
    const digest = origin.addBlob("team/app", bytes);

    const tls = `  tls:\n    certificate: ${join(dir, "cert.pem")}\n    key: ${join(dir, "key.pem")}`;
    const parent = await start(config(join(dir, "parent"), origin.url, tls));
    expect(parent.url.startsWith("https://")).toBe(true);
    const edge = await start(config(join(dir, "edge"), parent.url, "", `          cas:\n            - ${join(dir, "cert.pem")}\n`));

    const anon = await request(`${edge.url}/v2/team/app/blobs/${digest}`);
    expect(anon.statusCode).toBe(401);
    expect(anon.headers["www-authenticate"]).toContain(`realm="${origin.url}/token"`);
    await anon.body.dump();

    for (let i = 0; i < 3; i++) {
      const r = await request(`${edge.url}/v2/team/app/blobs/${digest}`, { headers: { authorization: "Bearer t0ken" } });
      expect(r.statusCode).toBe(200);
      expect(digestOf(Buffer.from(await r.body.arrayBuffer()))).toBe(digest);
    }
    // One authorized GET reached the origin (plus the refused anonymous one).
    expect(origin.requests.filter((r) => r.method === "GET" && r.path.includes(digest) && r.authorization === "Bearer t0ken")).toHaveLength(1);
  });

  it("refuses an upstream whose certificate is not in cas or the default roots", async () => {
    const origin = new FakeUpstream();
    await origin.start();
    stops.push(() => origin.stop());
    const digest = origin.addBlob("team/app", randomBytes(1000));
    const tls = `  tls:\n    certificate: ${join(dir, "cert.pem")}\n    key: ${join(dir, "key.pem")}`;
    const parent = await start(config(join(dir, "parent2"), origin.url, tls));
    const edge = await start(config(join(dir, "edge2"), parent.url));
    const r = await request(`${edge.url}/v2/team/app/blobs/${digest}`, { dispatcher: new Agent() });
    expect(r.statusCode).toBe(503);
    await r.body.dump();
  });
});
