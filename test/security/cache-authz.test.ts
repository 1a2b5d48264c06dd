// The cache's authorization decisions tried from the outside, against two upstreams that really
// authorize per repository (see worlds.ts): the wrong credential, the wrong repository, no
// credential, a signed URL used for another path or after it expired, a revoked user during an
// outage. Each case reproduces a finding of the security review (issue 9) and failed before the
// per-object authorization model.
import { afterEach, describe, expect, it } from "vitest";
import { httpGet, type GotResponse } from "@dtrcache/cache-server";
import { emulatorWorld, independentWorld, SIGNED_TTL_SECONDS, type Who, type World } from "./worlds.js";

const OPTIONS = ["          authttl: 30s", "          outageallowance: 2m", "          notfoundttl: 5s"].join("\n");

let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

async function as(w: World, who: Who, path: string, opts: { method?: string; range?: string; query?: string } = {}): Promise<GotResponse> {
  const repo = /^\/v2\/(.+)\/(?:blobs|manifests)\//.exec(path)?.[1] ?? "";
  // A redirected docker client sends the signed query and no Authorization to the cache.
  const authorization = opts.query === undefined ? await w.authorization(who, repo) : undefined;
  const headers: Record<string, string> = {};
  if (authorization) headers.authorization = authorization;
  if (opts.range) headers.range = opts.range;
  if (path.includes("/manifests/")) headers.accept = "application/vnd.oci.image.manifest.v1+json";
  return httpGet(`${w.cache.url}${path}${opts.query ? `?${opts.query}` : ""}`, { method: opts.method ?? "GET", headers });
}

/** Every way of reading an object: GET, HEAD and a Range GET. None may succeed. */
async function expectNoAccess(w: World, who: Who, path: string, query?: string): Promise<void> {
  for (const opts of [{ method: "GET" }, { method: "HEAD" }, { method: "GET", range: "bytes=0-99" }]) {
    const r = await as(w, who, path, { ...opts, query });
    expect([401, 403, 404], `${who} ${opts.method}${opts.range ? " Range" : ""} ${path} answered ${r.status}`).toContain(r.status);
    expect(r.body.length === 0 || r.body.toString().includes('"errors"')).toBe(true);
  }
}

describe.each([
  ["independent upstream", independentWorld],
  ["DTR emulator", emulatorWorld],
])("cache authorization against the %s", (_name, start) => {
  it("serves a cached private blob to no one the upstream would refuse, through any repository name", async () => {
    const w = (world = await start(OPTIONS));
    const { P1, O, privateManifest, publicManifest } = w.digests;
    // alice fills P1 and the private manifest into the cache.
    expect((await as(w, "alice", `/v2/team/private/blobs/${P1}`)).status).toBe(200);
    expect((await as(w, "alice", `/v2/team/private/manifests/${privateManifest}`)).status).toBe(200);

    // bob: refused on the private repository, allowed his own, and the private blob is not
    // reachable through his repository's name.
    expect([401, 403]).toContain((await as(w, "bob", `/v2/team/private/blobs/${P1}`)).status);
    expect((await as(w, "bob", `/v2/team/other/blobs/${O}`)).status).toBe(200);
    await expectNoAccess(w, "bob", `/v2/team/other/blobs/${P1}`);
    await expectNoAccess(w, "bob", `/v2/team/other/manifests/${privateManifest}`);

    // anonymous: the public repository works, the private objects are not reachable through it.
    expect((await as(w, "anon", `/v2/pub/open/manifests/latest`)).status).toBe(200);
    expect((await as(w, "anon", `/v2/pub/open/manifests/${publicManifest}`)).status).toBe(200);
    await expectNoAccess(w, "anon", `/v2/pub/open/blobs/${P1}`);
    await expectNoAccess(w, "anon", `/v2/pub/open/manifests/${privateManifest}`);
    await expectNoAccess(w, "anon", `/v2/team/private/blobs/${P1}`);

    // alice still gets her bytes, all three ways.
    expect((await as(w, "alice", `/v2/team/private/blobs/${P1}`, { method: "HEAD" })).status).toBe(200);
    expect((await as(w, "alice", `/v2/team/private/blobs/${P1}`, { range: "bytes=0-9" })).status).toBe(206);
  });

  it("never lets a refused credential share an allowed one's tag revalidation", async () => {
    const w = (world = await start(OPTIONS));
    for (const who of ["alice", "bob", "anon"] as const) await w.authorization(who, "team/private");
    expect((await as(w, "alice", "/v2/team/private/manifests/v1")).status).toBe(200);
    w.slow(50); // round trips overlap: requests arriving during one share the next (coalesce.ts)
    for (let round = 0; round < 3; round++) {
      const asked = (["alice", "bob", "anon", "alice", "bob", "anon"] as const).map(async (who) => ({
        who,
        r: await as(w, who, "/v2/team/private/manifests/v1"),
      }));
      for (const { who, r } of await Promise.all(asked)) {
        if (who === "alice") expect(r.status).toBe(200);
        else expect([401, 403], `${who} got the private tag's manifest`).toContain(r.status);
      }
    }
  });

  it("binds a signed URL to its own path: not another digest, not another repository", async () => {
    const w = (world = await start(OPTIONS));
    const { P1, P2, U } = w.digests;
    // Both private blobs are cached (alice), as is the public layer (anonymous, through the manifest).
    expect((await as(w, "alice", `/v2/team/private/blobs/${P2}`)).status).toBe(200);
    expect((await as(w, "anon", `/v2/pub/open/blobs/${U}`)).status).toBe(200);
    const q = await w.signedQuery(P1);
    const first = await as(w, "anon", `/v2/team/private/blobs/${P1}`, { query: q });
    expect(first.status).toBe(200);
    const before = w.upstreamBlobRequests();
    // Its own retries and Range requests reuse the one decision.
    expect((await as(w, "anon", `/v2/team/private/blobs/${P1}`, { query: q, range: "bytes=10-19" })).status).toBe(206);
    expect((await as(w, "anon", `/v2/team/private/blobs/${P1}`, { query: q, method: "HEAD" })).status).toBe(200);
    expect(w.upstreamBlobRequests()).toBe(before);
    // The same signed query opens nothing else, cached or not.
    await expectNoAccess(w, "anon", `/v2/team/private/blobs/${P2}`, q);
    await expectNoAccess(w, "anon", `/v2/pub/open/blobs/${P1}`, q);
    await expectNoAccess(w, "anon", `/v2/team/other/blobs/${P1}`, q);
  });

  it("stops honouring a signed URL at its expiry, even within authttl", async () => {
    const w = (world = await start(OPTIONS));
    const { P1 } = w.digests;
    const q = await w.signedQuery(P1);
    expect((await as(w, "anon", `/v2/team/private/blobs/${P1}`, { query: q })).status).toBe(200);
    w.clock.advance((SIGNED_TTL_SECONDS + 1) * 1000); // past `expires`, well within authttl (30 s)
    await expectNoAccess(w, "anon", `/v2/team/private/blobs/${P1}`, q);
    // ...and an outage does not bring it back.
    w.outage("503");
    await expectNoAccess(w, "anon", `/v2/team/private/blobs/${P1}`, q);
  });

  it("keeps a revocation through an upstream outage (503 and connection resets)", async () => {
    const w = (world = await start(OPTIONS));
    const { P1, P2 } = w.digests;
    expect((await as(w, "alice", `/v2/team/private/blobs/${P1}`)).status).toBe(200);
    expect((await as(w, "alice", `/v2/team/private/blobs/${P2}`)).status).toBe(200);
    w.revoke("alice", "team/private");
    w.clock.advance(31_000); // past authttl: the cache asks again and hears the refusal
    expect([401, 403]).toContain((await as(w, "alice", `/v2/team/private/blobs/${P1}`)).status);
    for (const kind of ["503", "reset"] as const) {
      w.outage(kind);
      w.clock.advance(31_000); // the remembered refusal has aged out too: only the outage answers now
      for (const digest of [P1, P2]) {
        const r = await as(w, "alice", `/v2/team/private/blobs/${digest}`);
        expect(r.status, `revoked alice during a ${kind} outage`).not.toBe(200);
      }
    }
  });

  it("bounds the outage allowance by outageallowance, not blobttl", async () => {
    const w = (world = await start(OPTIONS));
    const { P1 } = w.digests;
    expect((await as(w, "alice", `/v2/team/private/blobs/${P1}`)).status).toBe(200);
    await w.authorization("bob", "team/private"); // bob's client has its token before the outage
    w.outage("reset");
    w.clock.advance(60_000); // past authttl, within the 2m allowance: served, marked as such
    const during = await as(w, "alice", `/v2/team/private/blobs/${P1}`);
    expect(during.status).toBe(200);
    w.clock.advance(61_000); // past the allowance (well within blobttl: 24h)
    expect((await as(w, "alice", `/v2/team/private/blobs/${P1}`)).status).toBe(503);
    // someone never allowed gets nothing at any point of the outage
    expect((await as(w, "bob", `/v2/team/private/blobs/${P1}`)).status).not.toBe(200);
  });

  it("remembers an upstream 404 briefly, per credential and repository", async () => {
    const w = (world = await start(OPTIONS));
    const unknown = `sha256:${"ab".repeat(32)}`;
    const before = w.upstreamBlobRequests();
    for (let i = 0; i < 5; i++) expect((await as(w, "bob", `/v2/team/other/blobs/${unknown}`)).status).toBe(404);
    expect(w.upstreamBlobRequests() - before).toBe(1);
    w.clock.advance(6_000);
    expect((await as(w, "bob", `/v2/team/other/blobs/${unknown}`)).status).toBe(404);
    expect(w.upstreamBlobRequests() - before).toBe(2);
  });
});
