import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dtrSpecSchema } from "@dtrcache/crds";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DtrClient } from "./client.js";
import { startEmulator, writesIn, type EmulatorHandle } from "./emulator.test-helper.js";
import { readSecretRef } from "./secret.js";
import { establishTrust } from "./trust.js";
import { memoryLogger, type LogEntry, type Logger } from "../logger.js";

const signal = (): AbortSignal => AbortSignal.timeout(20_000);
const fast = { retries: 1, minTimeoutMs: 5, maxTimeoutMs: 10 };

function recordingLogger(): { logger: Logger; entries: LogEntry[] } {
  const logger = memoryLogger();
  return { logger, entries: logger.entries };
}

describe("DtrClient over plain HTTP", () => {
  let dtr: EmulatorHandle;
  beforeAll(async () => {
    dtr = await startEmulator({
      users: [
        { username: "admin", password: "pw", admin: true, tokens: ["tok-123"] },
        { username: "alice", password: "alice-pw" },
      ],
    });
  });
  afterAll(async () => {
    await dtr.stop();
  });

  it("authenticates with an access token in place of the password", async () => {
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "tok-123", retry: fast });
    const created = await client.createContentCache("by-token", "https://c:443", signal());
    expect(await client.listContentCaches(signal())).toContainEqual(created);
    await client.deleteContentCache(created.id, signal());
  });

  it("maps a non-admin's write to DTR_FORBIDDEN with DTR's code", async () => {
    const client = new DtrClient({ url: dtr.url, username: "alice", password: "alice-pw", retry: fast });
    const failure = await client.createContentCache("x", "https://c:443", signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_FORBIDDEN", status: 403, dtrCode: "NOT_AUTHORIZED", retryable: false });
  });

  it("maps NO_SUCH_USER to DTR_NOT_FOUND carrying DTR's code", async () => {
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "pw", retry: fast });
    const failure = await client.getUserContentCache("ghost", signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_NOT_FOUND", status: 404, dtrCode: "NO_SUCH_USER", retryable: false });
  });

  it("maps INVALID_USER_SETTINGS to DTR_BAD_REQUEST", async () => {
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "pw", retry: fast });
    const failure = await client.setUserContentCache("alice", "no-such-id", signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_BAD_REQUEST", status: 400, dtrCode: "INVALID_USER_SETTINGS" });
  });

  it("does not retry a failed POST itself, so a lost answer cannot create a duplicate", async () => {
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "pw", retry: { retries: 3, minTimeoutMs: 5, maxTimeoutMs: 10 } });
    dtr.clearRequestLog();
    dtr.setFaults({ failRequests: 5, failOnly: { method: "POST" } });
    const failure = await client.createContentCache("once", "https://c:443", signal()).catch((error: unknown) => error);
    dtr.setFaults({ failRequests: 0, failOnly: undefined });
    expect(failure).toMatchObject({ code: "DTR_UNAVAILABLE", retryable: true });
    expect(writesIn(dtr.requestLog())).toHaveLength(1);
  });

  it("reports a refused connection as retryable DTR_UNAVAILABLE", async () => {
    const client = new DtrClient({ url: "http://127.0.0.1:9", username: "admin", password: "pw", retry: fast });
    const failure = await client.listContentCaches(signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_UNAVAILABLE", retryable: true });
    expect((failure as Error).message).not.toContain("pw");
  });

  it("stops at once when the caller aborts", async () => {
    dtr.setFaults({ delayMs: 2_000 });
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "pw", retry: { retries: 5, minTimeoutMs: 5, maxTimeoutMs: 10 } });
    const controller = new AbortController();
    const pending = client.listContentCaches(controller.signal).catch((error: unknown) => error);
    setTimeout(() => controller.abort(new Error("reconcile cancelled")), 50);
    const failure = await pending;
    dtr.setFaults({ delayMs: 0 });
    expect((failure as Error).message).toBe("reconcile cancelled");
  });
});

describe("admin secret references", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "dtr-secret-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a password file without its trailing newline", async () => {
    writeFileSync(join(dir, "pw"), "from-file\n");
    expect(await readSecretRef({ file: join(dir, "pw") })).toBe("from-file");
  });

  it("names the file, never its content, when it cannot be used", async () => {
    writeFileSync(join(dir, "empty"), "\n");
    await expect(readSecretRef({ file: join(dir, "empty") })).rejects.toMatchObject({
      code: "DTR_CREDENTIALS",
      message: expect.stringContaining(join(dir, "empty")),
    });
    await expect(readSecretRef({ file: join(dir, "missing") })).rejects.toMatchObject({ code: "DTR_CREDENTIALS", message: expect.stringContaining("ENOENT") });
  });

  it("reads an environment variable", async () => {
    expect(await readSecretRef({ env: "DTR_PW" }, { DTR_PW: "from-env" })).toBe("from-env");
  });
});

describe("trusting DTR's TLS certificate", () => {
  let dir: string;
  let dtr: EmulatorHandle;
  let caFile: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dtr-trust-"));
    caFile = join(dir, "cert.pem");
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
        caFile,
      ],
      { stdio: "ignore" },
    );
    dtr = await startEmulator({
      users: [{ username: "admin", password: "pw", admin: true }],
      tls: { cert: readFileSync(caFile, "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") },
    });
  });
  afterAll(async () => {
    await dtr?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const spec = (trust: object) => dtrSpecSchema.parse({ url: dtr.url, trust, admin: { username: "admin", password: { env: "X" } } });

  it("trusts DTR through a CA file", async () => {
    const { logger, entries } = recordingLogger();
    const trust = await establishTrust(spec({ caFile }), logger);
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "pw", dispatcher: trust.dispatcher, retry: fast });
    expect(await client.listContentCaches(signal())).toEqual([]);
    expect(entries).toEqual([]);
    await trust.close();
  });

  it("fetches /ca on request with a loud trust-on-first-use warning naming the fingerprint", async () => {
    const { logger, entries } = recordingLogger();
    const trust = await establishTrust(spec({ fetchCA: true }), logger);
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "pw", dispatcher: trust.dispatcher, retry: fast });
    expect(await client.listContentCaches(signal())).toEqual([]);
    expect(trust.caPem).toBe(readFileSync(caFile, "utf8"));
    expect(entries).toEqual([
      {
        level: "warn",
        fields: { dtr: dtr.url, caFingerprintSha256: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/) },
        message: expect.stringContaining("TRUST ON FIRST USE"),
      },
    ]);
    await trust.close();
  });

  it("refuses DTR's certificate with neither a CA file nor fetchCA", async () => {
    const trust = await establishTrust(spec({}), recordingLogger().logger);
    const client = new DtrClient({ url: dtr.url, username: "admin", password: "pw", dispatcher: trust.dispatcher, retry: { retries: 0 } });
    const failure = await client.listContentCaches(signal()).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "DTR_TRUST", retryable: false });
    expect((failure as Error).message).toContain("not trusted");
    await trust.close();
  });
});
