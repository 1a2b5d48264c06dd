// Token auth of the registry side; the manifest/blob proxy and the redirect flow need a real
// backend registry and are covered in test/integration/dtr-emulator-registry.test.ts.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDtrEmulator, type DtrEmulator } from "./index.js";

const basic = (user: string, secret: string): string => `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}`;

let dtr: DtrEmulator;
let now = 1_800_000_000_000;

beforeAll(async () => {
  dtr = await startDtrEmulator({
    listenHost: "127.0.0.1",
    backendRegistryUrl: "http://127.0.0.1:9",
    users: [{ username: "alice", password: "alice-pw" }],
    publicRepositories: ["library/public"],
    clock: () => now,
    service: "dtr.test",
  });
});
afterAll(async () => {
  await dtr.stop();
});

async function token(scope: string, auth?: string): Promise<{ status: number; token?: string }> {
  const response = await fetch(`${dtr.url}/auth/token?service=dtr.test&scope=${encodeURIComponent(scope)}`, {
    headers: auth === undefined ? {} : { authorization: auth },
  });
  const body = (await response.json()) as { token?: string };
  return { status: response.status, token: body.token };
}

describe("registry token auth", () => {
  it("challenges an anonymous /v2/ with a Bearer realm on the emulator's token endpoint", async () => {
    const response = await fetch(`${dtr.url}/v2/`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe(`Bearer realm="${dtr.url}/auth/token",service="dtr.test"`);
    expect(response.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    expect(await response.json()).toEqual({ errors: [{ code: "UNAUTHORIZED", message: expect.any(String), detail: null }] });
  });

  it("challenges a repository request with its pull scope", async () => {
    const response = await fetch(`${dtr.url}/v2/team/app/manifests/latest`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain(`scope="repository:team/app:pull"`);
  });

  it("issues a token that opens /v2/ for a user with the right password", async () => {
    const issued = await token("repository:team/app:pull", basic("alice", "alice-pw"));
    expect(issued.status).toBe(200);
    const response = await fetch(`${dtr.url}/v2/`, { headers: { authorization: `Bearer ${issued.token ?? ""}` } });
    expect(response.status).toBe(200);
  });

  it("refuses the token endpoint for a wrong password", async () => {
    expect((await token("repository:team/app:pull", basic("alice", "nope"))).status).toBe(401);
  });

  it("gives anonymous clients no access to a private repository", async () => {
    const issued = await token("repository:team/app:pull");
    expect(issued.status).toBe(200);
    const response = await fetch(`${dtr.url}/v2/team/app/manifests/latest`, { headers: { authorization: `Bearer ${issued.token ?? ""}` } });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain(`error="insufficient_scope"`);
  });

  it("never grants push, even to an authenticated user", async () => {
    const issued = await token("repository:team/app:pull,push", basic("alice", "alice-pw"));
    const payload = JSON.parse(Buffer.from((issued.token ?? "").split(".")[0] ?? "", "base64url").toString()) as { access: unknown };
    expect(payload.access).toEqual([{ type: "repository", name: "team/app", actions: ["pull"] }]);
  });

  it("refuses a token once the injected clock passes its expiry", async () => {
    const issued = await token("repository:team/app:pull", basic("alice", "alice-pw"));
    const auth = { authorization: `Bearer ${issued.token ?? ""}` };
    expect((await fetch(`${dtr.url}/v2/`, { headers: auth })).status).toBe(200);
    now += 301_000;
    expect((await fetch(`${dtr.url}/v2/`, { headers: auth })).status).toBe(401);
  });

  it("refuses a signed blob URL with a bad signature without needing credentials", async () => {
    const digest = `sha256:${"c".repeat(64)}`;
    const response = await fetch(`${dtr.url}/v2/team/app/blobs/${digest}?expires=${Math.floor(now / 1000) + 60}&user=alice&signature=forged`);
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ errors: [{ code: "DENIED", message: expect.any(String), detail: null }] });
  });
});

describe("TLS and /ca", () => {
  let dir: string;
  let tlsDtr: DtrEmulator;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dtr-emu-tls-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    tlsDtr = await startDtrEmulator({
      listenHost: "127.0.0.1",
      backendRegistryUrl: "http://127.0.0.1:9",
      users: [],
      tls: { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") },
    });
  });
  afterAll(async () => {
    await tlsDtr?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves its CA in PEM without auth, and that CA verifies its TLS", async () => {
    expect(tlsDtr.url.startsWith("https://")).toBe(true);
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    const ca = await request(`${tlsDtr.url}/ca`, { dispatcher: insecure });
    expect(ca.statusCode).toBe(200);
    const pem = await ca.body.text();
    expect(pem).toBe(readFileSync(join(dir, "cert.pem"), "utf8"));
    const trusted = new Agent({ connect: { ca: pem } });
    const ping = await request(`${tlsDtr.url}/_ping`, { dispatcher: trusted });
    expect(await ping.body.json()).toEqual({ Error: "", Healthy: true });
    await Promise.all([insecure.close(), trusted.close()]);
  });
});
