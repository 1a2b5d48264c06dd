import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startDtrEmulator, type DtrEmulator } from "./index.js";

const basic = (user: string, secret: string): string => `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}`;
const ADMIN = basic("admin", "admin-pw");
const ALICE = basic("alice", "alice-pw");

let dtr: DtrEmulator;

async function call(method: string, path: string, auth?: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
  const headers: Record<string, string> = {};
  if (auth !== undefined) headers.authorization = auth;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${dtr.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

beforeAll(async () => {
  dtr = await startDtrEmulator({
    listenHost: "127.0.0.1",
    backendRegistryUrl: "http://127.0.0.1:9",
    users: [
      { username: "admin", password: "admin-pw", admin: true, tokens: ["admin-token-1"] },
      { username: "alice", password: "alice-pw", tokens: ["alice-token"] },
      { username: "bob", password: "bob-pw" },
    ],
  });
});
afterAll(async () => {
  await dtr.stop();
});
beforeEach(() => {
  dtr.setFaults({ down: false, failRequests: 0, failStatus: 500, failOnly: undefined, loseAnswers: 0, delayMs: 0 });
  dtr.seed.userSetting("alice", "");
});

describe("content caches", () => {
  it("creates a registration with 201 and answers {id, name, host} with a UUID id", async () => {
    const created = await call("POST", "/api/v0/content_caches", ADMIN, { name: "region-asia", host: "https://cache.asia:443" });
    expect(created.status).toBe(201);
    const body = created.json as { id: string; name: string; host: string };
    expect(Object.keys(body).sort()).toEqual(["host", "id", "name"]);
    expect(body).toMatchObject({ name: "region-asia", host: "https://cache.asia:443" });
    expect(body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const one = await call("GET", `/api/v0/content_caches/${body.id}`, ADMIN);
    expect(one.status).toBe(200);
    expect(one.json).toEqual(body);
  });

  it("lists registrations as a bare array to any authenticated user", async () => {
    const listed = await call("GET", "/api/v0/content_caches", ALICE);
    expect(listed.status).toBe(200);
    expect(Array.isArray(listed.json)).toBe(true);
    expect(listed.json).toEqual(dtr.contentCaches());
  });

  it("accepts plain http hosts", async () => {
    const created = await call("POST", "/api/v0/content_caches", ADMIN, { name: "plain", host: "http://cache:5000" });
    expect(created.status).toBe(201);
  });

  it.each([
    ["an extra field", { name: "x", host: "https://c:443", id: "mine" }],
    ["a missing host", { name: "x" }],
    ["a missing name", { host: "https://c:443" }],
    ["an empty name", { name: "", host: "https://c:443" }],
    ["a host that is not a URL", { name: "x", host: "cache:443" }],
    ["an array body", [{ name: "x", host: "https://c:443" }]],
    ["invalid JSON", "{name:"],
  ])("refuses a POST with %s with 400 in DTR's error shape", async (_label, body) => {
    const before = dtr.contentCaches().length;
    const answer = await call("POST", "/api/v0/content_caches", ADMIN, body);
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ errors: [{ code: "INVALID_CONTENT_CACHE", message: expect.any(String) }] });
    expect(dtr.contentCaches()).toHaveLength(before);
  });

  it("refuses writes from a non-admin with 403 NOT_AUTHORIZED", async () => {
    const post = await call("POST", "/api/v0/content_caches", ALICE, { name: "x", host: "https://c:443" });
    expect(post.status).toBe(403);
    expect(post.json).toEqual({ errors: [{ code: "NOT_AUTHORIZED", message: expect.any(String) }] });
    const [existing] = dtr.contentCaches();
    const del = await call("DELETE", `/api/v0/content_caches/${existing?.id ?? "none"}`, ALICE);
    expect(del.status).toBe(403);
    expect(dtr.contentCaches().some((cache) => cache.id === existing?.id)).toBe(true);
  });

  it("answers 404 NO_SUCH_CONTENT_CACHE for an unknown id", async () => {
    const answer = await call("GET", "/api/v0/content_caches/0b8e0e5e-0000-4000-8000-000000000000", ADMIN);
    expect(answer.status).toBe(404);
    expect(answer.json).toEqual({ errors: [{ code: "NO_SUCH_CONTENT_CACHE", message: expect.any(String) }] });
  });

  it("deletes with 204, and answers 204 again when the registration is already gone", async () => {
    const created = dtr.seed.contentCache("doomed", "https://doomed:443");
    const first = await call("DELETE", `/api/v0/content_caches/${created.id}`, ADMIN);
    expect(first.status).toBe(204);
    expect(first.text).toBe("");
    expect(dtr.contentCaches().some((cache) => cache.id === created.id)).toBe(false);
    const again = await call("DELETE", `/api/v0/content_caches/${created.id}`, ADMIN);
    expect(again.status).toBe(204);
  });
});

describe("authentication", () => {
  it("answers 401 NOT_AUTHENTICATED without credentials or with a wrong password", async () => {
    for (const auth of [undefined, basic("admin", "wrong"), basic("nobody", "x"), "Bearer abc"]) {
      const answer = await call("GET", "/api/v0/content_caches", auth);
      expect(answer.status).toBe(401);
      expect(answer.json).toEqual({ errors: [{ code: "NOT_AUTHENTICATED", message: expect.any(String) }] });
    }
  });

  it("accepts an access token in place of the password", async () => {
    const answer = await call("POST", "/api/v0/content_caches", basic("admin", "admin-token-1"), { name: "by-token", host: "https://t:443" });
    expect(answer.status).toBe(201);
    const mine = await call("GET", "/api/v0/accounts/alice/settings", basic("alice", "alice-token"));
    expect(mine.status).toBe(200);
  });

  it("records the authenticated user and the write body in the request log", async () => {
    dtr.clearRequestLog();
    await call("POST", "/api/v0/content_caches", ADMIN, { name: "logged", host: "https://l:443" });
    await call("GET", "/api/v0/content_caches", basic("admin", "wrong"));
    expect(dtr.requestLog()).toEqual([
      expect.objectContaining({
        seq: 1,
        method: "POST",
        path: "/api/v0/content_caches",
        status: 201,
        user: "admin",
        body: { name: "logged", host: "https://l:443" },
        redirected: false,
      }),
      expect.objectContaining({ seq: 2, method: "GET", status: 401, user: undefined }),
    ]);
  });
});

describe("user settings", () => {
  it("answers GET with a capital-C ContentCacheUUID, empty when unset", async () => {
    dtr.seed.userSetting("bob", "");
    const answer = await call("GET", "/api/v0/accounts/bob/settings", ADMIN);
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ ContentCacheUUID: "" });
  });

  it.each(["contentCacheUUID", "ContentCacheUUID", "CONTENTCACHEUUID"])("accepts PATCH with the key spelled %s", async (key) => {
    const cache = dtr.seed.contentCache(`spelling-${key}`, "https://s:443");
    const answer = await call("PATCH", "/api/v0/accounts/bob/settings", ADMIN, { [key]: cache.id });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ ContentCacheUUID: cache.id });
    expect((await call("GET", "/api/v0/accounts/bob/settings", ADMIN)).json).toEqual({ ContentCacheUUID: cache.id });
  });

  it("clears the setting with an empty string", async () => {
    const cache = dtr.seed.contentCache("to-clear", "https://c:443");
    dtr.seed.userSetting("bob", cache.id);
    const answer = await call("PATCH", "/api/v0/accounts/bob/settings", ADMIN, { contentCacheUUID: "" });
    expect(answer.status).toBe(200);
    expect(dtr.settings().bob).toBe("");
  });

  it("refuses an unknown cache id or a bad body with 400 INVALID_USER_SETTINGS and changes nothing", async () => {
    dtr.seed.userSetting("bob", "");
    for (const body of [{ contentCacheUUID: "0b8e0e5e-0000-4000-8000-000000000000" }, { contentCacheUUID: 42 }, "not json", [1]]) {
      const answer = await call("PATCH", "/api/v0/accounts/bob/settings", ADMIN, body);
      expect(answer.status).toBe(400);
      expect(answer.json).toEqual({ errors: [{ code: "INVALID_USER_SETTINGS", message: expect.any(String) }] });
    }
    expect(dtr.settings().bob).toBe("");
  });

  it("answers 404 NO_SUCH_USER for an unknown user on GET and PATCH", async () => {
    for (const method of ["GET", "PATCH"]) {
      const answer = await call(method, "/api/v0/accounts/nobody/settings", ADMIN, method === "PATCH" ? { contentCacheUUID: "" } : undefined);
      expect(answer.status).toBe(404);
      expect(answer.json).toEqual({ errors: [{ code: "NO_SUCH_USER", message: expect.any(String) }] });
    }
  });

  it("lets a user change their own setting but not another user's", async () => {
    const cache = dtr.seed.contentCache("self-service", "https://c:443");
    const own = await call("PATCH", "/api/v0/accounts/alice/settings", ALICE, { contentCacheUUID: cache.id });
    expect(own.status).toBe(200);
    dtr.seed.userSetting("bob", "");
    const other = await call("PATCH", "/api/v0/accounts/bob/settings", ALICE, { contentCacheUUID: cache.id });
    expect(other.status).toBe(403);
    expect(other.json).toEqual({ errors: [{ code: "NOT_AUTHORIZED", message: expect.any(String) }] });
    expect(dtr.settings().bob).toBe("");
  });
});

describe("health, CA and faults", () => {
  it("answers /_ping without auth", async () => {
    const answer = await call("GET", "/_ping");
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ Error: "", Healthy: true });
  });

  it("answers 503 everywhere while switched down, /_ping included", async () => {
    dtr.setFaults({ down: true });
    expect((await call("GET", "/_ping")).status).toBe(503);
    expect((await call("GET", "/_ping")).json).toMatchObject({ Healthy: false });
    expect((await call("GET", "/api/v0/content_caches", ADMIN)).status).toBe(503);
    dtr.setFaults({ down: false });
    expect((await call("GET", "/api/v0/content_caches", ADMIN)).status).toBe(200);
  });

  it("fails exactly the next N requests with the chosen status", async () => {
    dtr.setFaults({ failRequests: 2, failStatus: 502 });
    expect((await call("GET", "/api/v0/content_caches", ADMIN)).status).toBe(502);
    expect((await call("GET", "/api/v0/content_caches", ADMIN)).status).toBe(502);
    expect((await call("GET", "/api/v0/content_caches", ADMIN)).status).toBe(200);
  });

  it("carries out a request whose answer it then loses", async () => {
    dtr.setFaults({ loseAnswers: 1, failOnly: { method: "POST" } });
    const before = dtr.contentCaches().length;
    await expect(call("POST", "/api/v0/content_caches", ADMIN, { name: "lost", host: "https://l:443" })).rejects.toThrow();
    expect(dtr.contentCaches()).toHaveLength(before + 1);
    expect((await call("GET", "/api/v0/content_caches", ADMIN)).status).toBe(200);
  });

  it("has no /ca when it runs without TLS", async () => {
    expect((await call("GET", "/ca")).status).toBe(404);
  });
});
