// The path DTR users really send a cache (issue 12): every blob request comes redirected by DTR
// with its own signed, expiring query, so every new URL costs the cache one authorization round
// trip to DTR before it serves bytes it already has. Measured on a warm cache whose upstream is
// the DTR emulator (fronting the bench's docker-registry) with an emulated 20 ms DTR round trip:
// req/s and latency for requests that each bring a new signed URL, against plain hits that reuse
// one remembered URL, and DTR calls per request.
import { request } from "node:http";
import { join } from "node:path";
import { freePort } from "../../harness/index.js";
import { startDtrEmulator } from "../../dtr-emulator/index.js";
import { startCacheProcess } from "../../support/index.js";
import { percentile } from "./measure.js";

export interface DtrPathResult {
  readonly requests: number;
  readonly newUrlRps: number;
  readonly newUrlP50Ms: number;
  readonly newUrlP95Ms: number;
  readonly plainP50Ms: number;
  readonly plainP95Ms: number;
  readonly dtrCallsPerRequest: number;
  readonly dtrRoundTripMs: number;
  readonly clients: number;
}

const CLIENTS = 16;
const URLS = 400;
const DTR_DELAY_MS = 20;

function get(url: string): Promise<{ ms: number; status: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0 }));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

/** Runs `urls` through CLIENTS concurrent clients; every answer must be 200. */
async function drive(urls: readonly string[]): Promise<{ ms: number[]; seconds: number }> {
  const ms: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < urls.length) {
        const url = urls[next++] ?? "";
        const r = await get(url);
        if (r.status !== 200) throw new Error(`redirected request answered ${r.status}`);
        ms.push(r.ms);
      }
    }),
  );
  return { ms, seconds: (performance.now() - t0) / 1000 };
}

export async function measureDtrPath(workDir: string, registryUrl: string, repo: string, digest: string): Promise<DtrPathResult> {
  // DTR signs (repository, digest, expires, user) with `expires` in whole seconds: URLs handed out
  // within one second would be identical, one credential. The emulator's clock steps one second per
  // redirect, so every client gets a URL of its own, as it would over a real pull's lifetime.
  let redirects = 0;
  const dtr = await startDtrEmulator({
    listenHost: "127.0.0.1",
    backendRegistryUrl: registryUrl,
    users: [{ username: "carol", password: "c-pw" }],
    redirectHead: true,
    bearerOnly: true,
    clock: () => Date.now() + redirects * 1000,
    redirectTtlSeconds: 3600,
    tokenTtlSeconds: 7200,
  });
  const port = await freePort("127.0.0.1");
  const cache = await startCacheProcess({ workDir: join(workDir, "dtr-path"), upstreams: [dtr.url], port, httpHost: `http://127.0.0.1:${port}` });
  try {
    dtr.seed.userSetting("carol", dtr.seed.contentCache("bench-edge", cache.url).id);
    const auth = `Basic ${Buffer.from("carol:c-pw").toString("base64")}`;
    const tokenAnswer = await fetch(`${dtr.url}/auth/token?service=dtr&scope=repository:${repo}:pull`, { headers: { authorization: auth } });
    const bearer = ((await tokenAnswer.json()) as { token: string }).token;
    // One signed URL per client request, as DTR hands them out (collected before DTR slows down).
    const urls: string[] = [];
    for (let i = 0; i < URLS; i++) {
      const r = await fetch(`${dtr.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: `Bearer ${bearer}` }, redirect: "manual" });
      const location = r.headers.get("location");
      if (r.status !== 307 || !location) throw new Error(`DTR answered ${r.status} instead of a redirect`);
      urls.push(location);
      redirects++;
    }
    // Warm: the first URL fills the blob; it is then the "plain hit" URL (decision remembered).
    const warm = urls.shift() ?? "";
    if ((await get(warm)).status !== 200) throw new Error("warm-up failed");
    dtr.setFaults({ delayMs: DTR_DELAY_MS });
    const plain = await drive(Array.from({ length: URLS }, () => warm));
    if (new Set(urls).size !== urls.length) throw new Error("signed URLs repeat: the bench would measure one credential");
    const before = dtr.requestLog().length;
    const fresh = await drive(urls);
    const dtrCalls = dtr.requestLog().length - before;
    return {
      requests: urls.length,
      newUrlRps: urls.length / fresh.seconds,
      newUrlP50Ms: percentile(fresh.ms, 50),
      newUrlP95Ms: percentile(fresh.ms, 95),
      plainP50Ms: percentile(plain.ms, 50),
      plainP95Ms: percentile(plain.ms, 95),
      dtrCallsPerRequest: dtrCalls / urls.length,
      dtrRoundTripMs: DTR_DELAY_MS,
      clients: CLIENTS,
    };
  } finally {
    await cache.stop();
    await dtr.stop();
  }
}
