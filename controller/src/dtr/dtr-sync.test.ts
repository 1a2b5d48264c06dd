import { Writable } from "node:stream";
import { contentCacheSpecSchema, dtrSpecSchema, type ResolvedCache, type ResolvedDtr } from "@dtrcache/crds";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createDtrSync, describeDtrFailure, summarizeDtrStatus, type DtrSyncService } from "./dtr-sync.js";
import { DtrError } from "./errors.js";
import type { DtrCacheStatus, DtrRemoval, DtrRemovalResult } from "./sync.js";
import { startEmulator, writesIn, type EmulatorHandle } from "./emulator.test-helper.js";

const ADMIN_PASSWORD = "s3cr3t-Admin-Pa55word";
const source = { file: "/spec/caches.yaml", documentIndex: 0, line: 1, column: 1 };

let dtr: EmulatorHandle;
let sync: DtrSyncService;
let logText: string;
const signal = (): AbortSignal => AbortSignal.timeout(30_000);

function dtrResource(passwordEnv = "DTR_ADMIN_PASSWORD"): ResolvedDtr {
  return {
    name: "main",
    spec: dtrSpecSchema.parse({ url: dtr.url, admin: { username: "admin", password: { env: passwordEnv } }, userConcurrency: 2 }),
    source,
  };
}

function cacheResource(name: string, externalURL: string, users: string[], dtrSpec = dtrResource()): ResolvedCache {
  const spec = contentCacheSpecSchema.parse({ node: { hostname: "node-1" }, externalURL, users });
  return { name, spec, dtr: dtrSpec, upstreamUrls: [dtr.url], source };
}

function makeSync(env: NodeJS.ProcessEnv = { DTR_ADMIN_PASSWORD: ADMIN_PASSWORD }, timeoutMs = 2_000): DtrSyncService {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logText += chunk.toString();
      done();
    },
  });
  return createDtrSync({ logger: pino({ level: "debug" }, sink), env, timeoutMs, retry: { retries: 2, minTimeoutMs: 10, maxTimeoutMs: 50 } });
}

beforeAll(async () => {
  dtr = await startEmulator({
    users: [
      { username: "admin", password: ADMIN_PASSWORD, admin: true },
      { username: "alice", password: "a" },
      { username: "bob", password: "b" },
      { username: "carol", password: "c" },
      { username: "dave", password: "d" },
    ],
  });
});
afterAll(async () => {
  await dtr.stop();
});
beforeEach(() => {
  logText = "";
  dtr.setFaults({ down: false, failRequests: 0, failStatus: 500, failOnly: undefined, loseAnswers: 0, delayMs: 0 });
  sync = makeSync();
});
afterEach(async () => {
  await sync.close();
  // Each test starts from a DTR with no registrations and no settings.
  for (const user of Object.keys(dtr.settings())) dtr.seed.userSetting(user, "");
  dtr.clearRequestLog();
});

async function clearRegistrations(): Promise<void> {
  const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64")}` };
  for (const cache of dtr.contentCaches()) await fetch(`${dtr.url}/api/v0/content_caches/${cache.id}`, { method: "DELETE", headers: admin });
  dtr.clearRequestLog();
}
beforeEach(clearRegistrations);

// What the controller's DTR reconciler records: the registration ids a pass confirmed as ours.
const owned = new Map<string, string[]>();
beforeEach(() => owned.clear());

/** One pass for every listed user and the given resets, remembering the id like the reconciler's record. */
async function applyAll(cache: ResolvedCache, reset: readonly string[], passSignal: AbortSignal): Promise<DtrCacheStatus> {
  const status = await sync.apply(cache, { owned: owned.get(cache.name) ?? [], assign: cache.spec.users, reset }, passSignal);
  if (status.registrationId !== undefined) owned.set(cache.name, [status.registrationId]);
  return status;
}

function removeAll(removal: Omit<DtrRemoval, "owned">, passSignal: AbortSignal): Promise<DtrRemovalResult> {
  return sync.remove({ ...removal, owned: owned.get(removal.cacheName) ?? [] }, passSignal);
}

describe("registration", () => {
  it("creates the registration with 201 and the exact body {name, host}", async () => {
    const status = await applyAll(cacheResource("region-asia", "https://cache.asia:443", []), [], signal());
    const posts = dtr.requestLog().filter((entry) => entry.method === "POST");
    expect(posts).toEqual([
      expect.objectContaining({ path: "/api/v0/content_caches", status: 201, user: "admin", body: { name: "region-asia", host: "https://cache.asia:443" } }),
    ]);
    expect(Object.keys(posts[0]?.body as object).sort()).toEqual(["host", "name"]);
    expect(dtr.contentCaches()).toEqual([{ id: status.registrationId, name: "region-asia", host: "https://cache.asia:443" }]);
    expect(status).toMatchObject({ host: "https://cache.asia:443", users: [] });
  });

  it("writes nothing on a pass where DTR already matches the spec", async () => {
    const cache = cacheResource("region-asia", "https://cache.asia:443", ["alice", "bob"]);
    const first = await applyAll(cache, [], signal());
    dtr.clearRequestLog();
    const second = await applyAll(cache, ["alice", "bob"], signal());
    expect(second.registrationId).toBe(first.registrationId);
    expect(writesIn(dtr.requestLog())).toEqual([]);
  });

  it("re-creates the registration when the host changes and re-points every listed user to the new id", async () => {
    const first = await applyAll(cacheResource("region-asia", "https://old.asia:443", ["alice", "bob", "carol"]), [], signal());
    expect(dtr.settings()).toMatchObject({ alice: first.registrationId, bob: first.registrationId, carol: first.registrationId });
    dtr.clearRequestLog();

    // carol leaves the list in the same edit: she still points at the old id, which is ours.
    const second = await applyAll(cacheResource("region-asia", "http://new.asia:5000", ["alice", "bob"]), ["alice", "bob", "carol"], signal());
    expect(second.registrationId).not.toBe(first.registrationId);
    expect(dtr.contentCaches()).toEqual([{ id: second.registrationId, name: "region-asia", host: "http://new.asia:5000" }]);
    expect(dtr.settings()).toMatchObject({ alice: second.registrationId, bob: second.registrationId, carol: "" });
    const writes = writesIn(dtr.requestLog()).map((entry) => `${entry.method} ${entry.path}`);
    expect(writes.slice(0, 2)).toEqual([`DELETE /api/v0/content_caches/${first.registrationId ?? ""}`, "POST /api/v0/content_caches"]);
    expect(second.resets).toEqual([{ username: "carol", state: "reset" }]);
  });

  it("adopts a registration whose create succeeded although the answer was lost, instead of creating a duplicate", async () => {
    dtr.setFaults({ loseAnswers: 1, failOnly: { method: "POST" } });
    const status = await applyAll(cacheResource("region-asia", "https://cache.asia:443", ["alice"]), [], signal());
    expect(dtr.contentCaches()).toEqual([{ id: status.registrationId, name: "region-asia", host: "https://cache.asia:443" }]);
    expect(dtr.requestLog().filter((entry) => entry.method === "POST")).toHaveLength(1);
    expect(dtr.settings().alice).toBe(status.registrationId);
  });

  it("deletes its own duplicate registrations of its name and keeps the one with the right host", async () => {
    const keep = dtr.seed.contentCache("dup", "https://dup:443");
    const extra = dtr.seed.contentCache("dup", "https://dup-old:443");
    const other = dtr.seed.contentCache("someone-else", "https://other:443");
    owned.set("dup", [keep.id, extra.id]);
    const status = await applyAll(cacheResource("dup", "https://dup:443", []), [], signal());
    expect(status.registrationId).toBe(keep.id);
    expect(
      dtr
        .contentCaches()
        .map((entry) => entry.id)
        .sort(),
    ).toEqual([keep.id, other.id].sort());
    expect(writesIn(dtr.requestLog()).map((entry) => entry.path)).toEqual([`/api/v0/content_caches/${extra.id}`]);
  });

  it("reports a registration of its name it does not own and never deletes it (issue 10, defect 10)", async () => {
    const theirs = dtr.seed.contentCache("region-eu", "https://other-swarm.eu:443");
    const failure = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice"]), [], signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_NOT_OWNED" });
    expect((failure as Error).message).toContain(theirs.id);
    expect(writesIn(dtr.requestLog())).toEqual([]);
    const removed = await removeAll({ cacheName: "region-eu", dtr: dtrResource(), users: ["alice"] }, signal());
    expect(removed.foreign.map((entry) => entry.id)).toEqual([theirs.id]);
    expect(dtr.contentCaches().map((entry) => entry.id)).toEqual([theirs.id]);
    expect(writesIn(dtr.requestLog())).toEqual([]);
  });
});

describe("user settings", () => {
  it("points the listed users at the cache and reports an unknown user without failing the others", async () => {
    const status = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice", "ghost", "bob"]), [], signal());
    expect(status.users).toEqual([
      { username: "alice", state: "assigned" },
      { username: "ghost", state: "unknown-user", message: "DTR has no user named ghost" },
      { username: "bob", state: "assigned" },
    ]);
    expect(dtr.settings()).toMatchObject({ alice: status.registrationId, bob: status.registrationId });
    const patches = dtr.requestLog().filter((entry) => entry.method === "PATCH");
    expect(patches.map((entry) => entry.body)).toEqual([{ contentCacheUUID: status.registrationId }, { contentCacheUUID: status.registrationId }]);
    expect(summarizeDtrStatus(status)).toMatchObject({ synced: false, reason: "UnknownUsers", retryable: false });
  });

  it("resets users removed from the list only when they still point at this cache", async () => {
    const elsewhere = dtr.seed.contentCache("region-us", "https://cache.us:443");
    const first = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice", "carol", "dave"]), [], signal());
    // dave has since been pointed at another cache by someone else.
    dtr.seed.userSetting("dave", elsewhere.id);
    dtr.clearRequestLog();

    const second = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice"]), ["alice", "carol", "dave", "ghost"], signal());
    expect(second.resets).toEqual([
      { username: "carol", state: "reset" },
      { username: "dave", state: "not-ours" },
      { username: "ghost", state: "unknown-user" },
    ]);
    expect(dtr.settings()).toMatchObject({ alice: first.registrationId, carol: "", dave: elsewhere.id });
    expect(writesIn(dtr.requestLog())).toEqual([
      expect.objectContaining({ method: "PATCH", path: "/api/v0/accounts/carol/settings", body: { contentCacheUUID: "" } }),
    ]);
    expect(summarizeDtrStatus(second)).toMatchObject({ synced: true, reason: "Synced" });
  });

  it("keeps at most userConcurrency user calls in flight, and uses them", async () => {
    // A small delay makes calls overlap; the emulator records how many were in flight.
    dtr.setFaults({ delayMs: 30 });
    const status = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice", "bob", "carol", "dave"]), [], signal());
    expect(status.users.every((user) => user.state === "assigned")).toBe(true);
    const userCalls = dtr.requestLog().filter((entry) => entry.path.startsWith("/api/v0/accounts/"));
    expect(userCalls).toHaveLength(8);
    expect(Math.max(...userCalls.map((entry) => entry.concurrent))).toBe(2);
  });
});

describe("removal", () => {
  it("resets the users first, then deletes the registration", async () => {
    const applied = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice", "bob"]), [], signal());
    dtr.clearRequestLog();
    await removeAll({ cacheName: "region-eu", dtr: dtrResource(), users: ["alice", "bob"] }, signal());
    const writes = writesIn(dtr.requestLog());
    expect(writes.map((entry) => `${entry.method} ${entry.path}`)).toEqual([
      expect.stringMatching(/^PATCH \/api\/v0\/accounts\/(alice|bob)\/settings$/),
      expect.stringMatching(/^PATCH \/api\/v0\/accounts\/(alice|bob)\/settings$/),
      `DELETE /api/v0/content_caches/${applied.registrationId ?? ""}`,
    ]);
    const deleteSeq = writes[2]?.seq ?? 0;
    expect(writes.slice(0, 2).every((entry) => entry.seq < deleteSeq)).toBe(true);
    expect(dtr.contentCaches()).toEqual([]);
    expect(dtr.settings()).toMatchObject({ alice: "", bob: "" });
  });

  it("is idempotent when the registration is already gone", async () => {
    await removeAll({ cacheName: "never-registered", dtr: dtrResource(), users: ["alice"] }, signal());
    expect(writesIn(dtr.requestLog())).toEqual([]);
  });

  it("keeps the registration when a user cannot be reset, so a later pass can finish", async () => {
    const applied = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice"]), [], signal());
    dtr.clearRequestLog();
    dtr.setFaults({ failRequests: 1_000, failOnly: { method: "PATCH" } });
    const failure = await removeAll({ cacheName: "region-eu", dtr: dtrResource(), users: ["alice"] }, signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_USERS_NOT_RESET", retryable: true });
    expect((failure as Error).message).toContain("alice");
    expect(dtr.requestLog().some((entry) => entry.method === "DELETE")).toBe(false);
    expect(dtr.contentCaches().map((entry) => entry.id)).toEqual([applied.registrationId]);

    dtr.setFaults({ failRequests: 0, failOnly: undefined });
    await removeAll({ cacheName: "region-eu", dtr: dtrResource(), users: ["alice"] }, signal());
    expect(dtr.contentCaches()).toEqual([]);
    expect(dtr.settings().alice).toBe("");
  });
});

describe("failures", () => {
  it("turns persistent 500s into a retryable DTR_UNAVAILABLE error, then converges when DTR recovers", async () => {
    dtr.setFaults({ failRequests: 1_000 });
    const cache = cacheResource("region-eu", "https://cache.eu:443", ["alice"]);
    const failure = await applyAll(cache, [], signal()).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DtrError);
    expect(failure).toMatchObject({ code: "DTR_UNAVAILABLE", retryable: true, status: 500 });
    expect(describeDtrFailure(failure)).toMatchObject({ reason: "DTR_UNAVAILABLE", retryable: true });
    // 1 attempt + 2 retries of the list call, and no writes at all.
    expect(dtr.requestLog().filter((entry) => entry.path === "/api/v0/content_caches")).toHaveLength(3);
    dtr.setFaults({ failRequests: 0 });
    const status = await applyAll(cache, [], signal());
    expect(summarizeDtrStatus(status).synced).toBe(true);
    expect(dtr.settings().alice).toBe(status.registrationId);
  });

  it("rides out a short burst of 500s within one pass", async () => {
    dtr.setFaults({ failRequests: 2 });
    const status = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice"]), [], signal());
    expect(status.users).toEqual([{ username: "alice", state: "assigned" }]);
    expect(
      dtr
        .requestLog()
        .slice(0, 2)
        .map((entry) => entry.status),
    ).toEqual([500, 500]);
  });

  it("turns a DTR that does not answer in time into a retryable DTR_TIMEOUT error, then converges", async () => {
    await sync.close();
    sync = makeSync(undefined, 100);
    dtr.setFaults({ delayMs: 400 });
    const cache = cacheResource("region-eu", "https://cache.eu:443", ["alice"]);
    const failure = await applyAll(cache, [], signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_TIMEOUT", retryable: true });
    dtr.setFaults({ delayMs: 0 });
    // The delayed requests still arrive late; wait for them so they do not count as writes.
    await expect.poll(() => dtr.requestLog().length, { timeout: 5_000 }).toBeGreaterThanOrEqual(3);
    const status = await applyAll(cache, [], signal());
    expect(dtr.contentCaches()).toEqual([{ id: status.registrationId, name: "region-eu", host: "https://cache.eu:443" }]);
  });

  it("reports 503 from a DTR that is down as retryable DTR_UNAVAILABLE", async () => {
    dtr.setFaults({ down: true });
    const failure = await applyAll(cacheResource("region-eu", "https://cache.eu:443", []), [], signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_UNAVAILABLE", retryable: true, status: 503 });
  });

  it("fails with a clear DTR_UNAUTHENTICATED error on a wrong admin password and writes nothing", async () => {
    await sync.close();
    sync = makeSync({ DTR_ADMIN_PASSWORD: "not-the-password" });
    const failure = await applyAll(cacheResource("region-eu", "https://cache.eu:443", ["alice"]), ["bob"], signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_UNAUTHENTICATED", retryable: false, status: 401, dtrCode: "NOT_AUTHENTICATED" });
    expect((failure as Error).message).toContain("check the DTR admin username and password/token");
    expect(dtr.requestLog()).toEqual([expect.objectContaining({ method: "GET", path: "/api/v0/content_caches", status: 401 })]);
    expect(dtr.contentCaches()).toEqual([]);
  });

  it("names the unset environment variable when the admin password is missing", async () => {
    await sync.close();
    sync = makeSync({});
    const failure = await applyAll(cacheResource("region-eu", "https://cache.eu:443", []), [], signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_CREDENTIALS", retryable: false });
    expect((failure as Error).message).toContain("DTR_ADMIN_PASSWORD");
    expect(dtr.requestLog()).toEqual([]);
  });

  it("never puts the admin password in logs, statuses or error messages", async () => {
    const captured: string[] = [];
    const cache = cacheResource("region-eu", "https://cache.eu:443", ["alice", "ghost"]);
    captured.push(JSON.stringify(await applyAll(cache, ["bob"], signal())));
    dtr.setFaults({ failRequests: 1_000 });
    const failure = await applyAll(cache, [], signal()).catch((error: unknown) => error);
    captured.push(String(failure), (failure as Error).stack ?? "", JSON.stringify(describeDtrFailure(failure)));
    dtr.setFaults({ failRequests: 0 });
    await removeAll({ cacheName: "region-eu", dtr: dtrResource(), users: ["alice"] }, signal());
    captured.push(logText);
    expect(logText).toContain("DTR registration created");
    const everything = captured.join("\n");
    expect(everything).not.toContain(ADMIN_PASSWORD);
    expect(everything).not.toContain(Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64"));
  });
});
