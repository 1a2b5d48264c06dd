// What per-object authorization costs (issue 9): the cache serves a cached blob only to a
// credential the upstream allowed for that (repository, digest), remembering the upstream's answer
// for `authttl`. Two figures, measured against our own cache process in the same run:
// - upstream authorization calls per request while wrk hammers one warm blob with one credential
//   (the remembered decision: expected ≈ 0, one HEAD per authttl window);
// - hit latency when every request brings a credential the cache has not seen (a docker client's
//   new token, or DTR's new signed URL per redirect: one upstream HEAD each) against a remembered one.
import { request } from "node:http";
import { readAccessLog, type RegistryHandle } from "../../harness/index.js";
import { wrk } from "./wrk.js";
import { percentile } from "./measure.js";

export interface AuthzCost {
  readonly wrkRequests: number;
  readonly upstreamHeads: number;
  readonly rememberedP50Ms: number;
  readonly rememberedP95Ms: number;
  readonly newCredentialP50Ms: number;
  readonly newCredentialP95Ms: number;
  readonly newCredentialHeadsPerRequest: number;
}

const SAMPLES = 300;

function timedGet(url: string, headers: Record<string, string>): Promise<{ ms: number; status: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    request(url, { headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0 }));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

async function heads(upstream: RegistryHandle, digest: string): Promise<number> {
  return (await readAccessLog(upstream.logFile)).filter((e) => e.method === "HEAD" && e.path.includes(digest)).length;
}

/** `path` names a warm blob of `digest` on the cache at `cacheUrl`. */
export async function measureAuthzCost(cacheUrl: string, upstream: RegistryHandle, path: string, digest: string, seconds: number): Promise<AuthzCost> {
  const url = `${cacheUrl}${path}`;
  const remembered = { authorization: "Basic YmVuY2g6cmVtZW1iZXJlZA==" };
  await timedGet(url, remembered); // learn the decision for this credential

  const headsBefore = await heads(upstream, digest);
  const run = await wrk(url, { connections: 16, seconds, headers: remembered });
  const upstreamHeads = (await heads(upstream, digest)) - headsBefore;

  const rememberedMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) rememberedMs.push((await timedGet(url, remembered)).ms);
  const fresh: number[] = [];
  const before = await heads(upstream, digest);
  for (let i = 0; i < SAMPLES; i++) {
    const r = await timedGet(url, { authorization: `Basic ${Buffer.from(`bench:${i}-${Date.now()}`).toString("base64")}` });
    if (r.status !== 200) throw new Error(`new-credential hit answered ${r.status}`);
    fresh.push(r.ms);
  }
  const freshHeads = (await heads(upstream, digest)) - before;
  return {
    wrkRequests: run.requests,
    upstreamHeads,
    rememberedP50Ms: percentile(rememberedMs, 50),
    rememberedP95Ms: percentile(rememberedMs, 95),
    newCredentialP50Ms: percentile(fresh, 50),
    newCredentialP95Ms: percentile(fresh, 95),
    newCredentialHeadsPerRequest: freshHeads / SAMPLES,
  };
}
