// Two upstreams with real per-repository authorization behind one cache, as the security tests
// see them: the independent AuthzUpstream (basic auth, its own signed queries) and the project's
// DTR emulator (bearer tokens from /auth/token, signed 307 redirects, a backend registry).
// Each world holds the same content:
//   team/private  readable by alice (and carol): blobs P1, P2, image `v1` (layers P1, P2)
//   team/other    readable by bob: blob O
//   pub/open      public: image `latest` (layer U)
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import {
  createLogger,
  createMetrics,
  FakeUpstream,
  ManualClock,
  parseConfig,
  startCacheServer,
  testConfigText,
  type RunningCache,
} from "@dtrcache/cache-server";
import { startDtrEmulator, type DtrEmulator } from "../dtr-emulator/index.js";
import { AuthzUpstream } from "./authz-upstream.js";

export type Who = "alice" | "bob" | "carol" | "anon";

export interface World {
  readonly name: string;
  readonly clock: ManualClock;
  readonly cache: RunningCache;
  readonly digests: {
    readonly P1: string;
    readonly P2: string;
    readonly O: string;
    readonly U: string;
    readonly privateManifest: string;
    readonly publicManifest: string;
  };
  /** The Authorization header `who` sends to the cache for `repo` (undefined: none). */
  authorization(who: Who, repo: string): Promise<string | undefined>;
  /** The signed query an upstream hands `carol` for a blob of team/private (via a real redirect where there is one). */
  signedQuery(digest: string): Promise<string>;
  /** Upstream requests for blobs so far (GET and HEAD), to count authorization round trips. */
  upstreamBlobRequests(): number;
  revoke(who: Who, repo: string): void;
  outage(kind: "none" | "503" | "reset"): void;
  /** Makes every upstream answer take this long. */
  slow(ms: number): void;
  stop(): Promise<void>;
}

const quiet = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }));
export const SIGNED_TTL_SECONDS = 20;

async function startCache(upstreamUrl: string, clock: ManualClock, optionLines: string): Promise<{ cache: RunningCache; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "cache-authz-"));
  const parsed = parseConfig(testConfigText({ root, upstreams: [upstreamUrl], optionLines }));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("; "));
  const cache = await startCacheServer({ config: parsed.config, logger: quiet, clock, metrics: createMetrics(false) });
  return {
    cache,
    cleanup: async () => {
      await cache.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

const layer = (): Buffer => randomBytes(64 * 1024 + Math.floor(Math.random() * 1024));

export async function independentWorld(optionLines: string): Promise<World> {
  const clock = new ManualClock(Date.now());
  const up = new AuthzUpstream(() => clock.now());
  await up.start();
  const creds = { alice: up.addUser("alice", "a-pw"), bob: up.addUser("bob", "b-pw"), carol: up.addUser("carol", "c-pw") };
  up.repository("team/private", { readers: ["alice", "carol"] });
  up.repository("team/other", { readers: ["bob"] });
  up.repository("pub/open", { public: true });
  const P1 = up.pushBlob("team/private", layer());
  const P2 = up.pushBlob("team/private", layer());
  const privateManifest = up.pushImage("team/private", "v1", [P1, P2]);
  const O = up.pushBlob("team/other", layer());
  const U = up.pushBlob("pub/open", layer());
  const publicManifest = up.pushImage("pub/open", "latest", [U]);
  const { cache, cleanup } = await startCache(up.url, clock, optionLines);
  return {
    name: "independent upstream",
    clock,
    cache,
    digests: { P1, P2, O, U, privateManifest, publicManifest },
    authorization: async (who) => (who === "anon" ? undefined : creds[who]),
    signedQuery: async (digest) => up.signedQuery("team/private", digest, "carol", SIGNED_TTL_SECONDS),
    upstreamBlobRequests: () => up.log.filter((r) => r.path.includes("/blobs/")).length,
    revoke: (who, repo) => up.setReaders(repo, repo === "team/private" ? ["alice", "carol"].filter((u) => u !== who) : []),
    outage: (kind) => (up.outage = kind),
    slow: (ms) => (up.delayMs = ms),
    stop: async () => {
      await cleanup();
      await up.stop();
    },
  };
}

export async function emulatorWorld(optionLines: string): Promise<World> {
  const clock = new ManualClock(Date.now());
  const backend = new FakeUpstream();
  await backend.start();
  const P1 = backend.addBlob("team/private", layer());
  const P2 = backend.addBlob("team/private", layer());
  const privateManifest = backend.addManifest("team/private", "v1", imageManifest([P1, P2]));
  const O = backend.addBlob("team/other", layer());
  const U = backend.addBlob("pub/open", layer());
  const publicManifest = backend.addManifest("pub/open", "latest", imageManifest([U]));
  const dtr: DtrEmulator = await startDtrEmulator({
    listenHost: "127.0.0.1",
    backendRegistryUrl: backend.url,
    users: [
      { username: "alice", password: "a-pw" },
      { username: "bob", password: "b-pw" },
      { username: "carol", password: "c-pw" },
    ],
    publicRepositories: ["pub/open"],
    repositoryReaders: { "team/private": ["alice", "carol"], "team/other": ["bob"] },
    clock: () => clock.now(),
    redirectTtlSeconds: SIGNED_TTL_SECONDS,
  });
  const { cache, cleanup } = await startCache(dtr.url, clock, optionLines);
  // carol pulls through the cache the DTR way: DTR redirects her blob requests to it.
  dtr.seed.userSetting("carol", dtr.seed.contentCache("edge", cache.url).id);
  const passwords: Record<Exclude<Who, "anon">, string> = { alice: "a-pw", bob: "b-pw", carol: "c-pw" };
  // One token per (user, repository), as a docker client keeps it for a pull: it is the
  // credential the cache sees, and it stays valid (300 s) across the tests' clock moves.
  const tokens = new Map<string, string>();
  const token = async (who: Who, repo: string): Promise<string> => {
    const known = tokens.get(`${who} ${repo}`);
    if (known !== undefined) return known;
    const headers: Record<string, string> = who === "anon" ? {} : { authorization: `Basic ${Buffer.from(`${who}:${passwords[who]}`).toString("base64")}` };
    const r = await fetch(`${dtr.url}/auth/token?service=dtr&scope=repository:${repo}:pull`, { headers });
    const issued = ((await r.json()) as { token: string }).token;
    tokens.set(`${who} ${repo}`, issued);
    return issued;
  };
  return {
    name: "DTR emulator",
    clock,
    cache,
    digests: { P1, P2, O, U, privateManifest, publicManifest },
    authorization: async (who, repo) => `Bearer ${await token(who, repo)}`,
    signedQuery: async (digest) => {
      const r = await fetch(`${dtr.url}/v2/team/private/blobs/${digest}`, {
        headers: { authorization: `Bearer ${await token("carol", "team/private")}` },
        redirect: "manual",
      });
      const location = r.headers.get("location");
      if (r.status !== 307 || !location) throw new Error(`expected DTR's 307 for carol, got ${r.status}`);
      return new URL(location).search.slice(1);
    },
    upstreamBlobRequests: () => dtr.requestLog().filter((r) => r.path.includes("/blobs/")).length,
    revoke: (who, repo) => dtr.seed.repositoryReaders(repo, repo === "team/private" ? ["alice", "carol"].filter((u) => u !== who) : []),
    slow: (ms) => dtr.setFaults({ delayMs: ms }),
    outage: (kind) =>
      dtr.setFaults(
        kind === "503" ? { down: true, loseAnswers: 0 } : kind === "reset" ? { down: false, loseAnswers: 1_000_000 } : { down: false, loseAnswers: 0 },
      ),
    stop: async () => {
      await cleanup();
      await dtr.stop();
      await backend.stop();
    },
  };
}

function imageManifest(layers: readonly string[]): Buffer {
  const config = { mediaType: "application/vnd.oci.image.config.v1+json", digest: layers[0], size: 1 };
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: layers.map((digest) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size: 1 })),
    }),
  );
}
