import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { startStatusServer, type StatusServer } from "../http/status-server.js";
import { EXIT, main } from "./main.js";
import type { RuntimeSnapshot } from "./snapshot.js";

const examples = new URL("../../../crds/examples/", import.meta.url).pathname;

let dir: string;
let out: string[];
let err: string[];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dtrcache-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(() => vi.restoreAllMocks());

async function run(...args: string[]): Promise<number> {
  out = [];
  err = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
  try {
    return await main(["node", "dtrcache", ...args]);
  } finally {
    vi.restoreAllMocks();
  }
}

const readyStatus: RuntimeSnapshot = {
  controllerId: "dtrcache",
  engine: { reachable: true, manager: true },
  spec: { path: "/etc/dtrcache/spec.yaml", loaded: true, files: ["/etc/dtrcache/spec.yaml"], errors: [] },
  caches: [
    {
      name: "region-asia",
      observedGeneration: "abc",
      generation: "abc",
      terminating: false,
      conditions: [
        { type: "Ready", status: "True", reason: "TasksRunning", message: "1/1 tasks running", lastTransitionTime: "2026-11-26T12:00:00Z" },
        { type: "DtrSynced", status: "False", reason: "DtrUnavailable", message: "DTR answered 503", lastTransitionTime: "2026-11-26T12:00:00Z" },
      ],
      node: { hostname: "node-1", label: "dtr.cache=true", labelled: true },
      revisions: [],
      tasks: { running: 1, desired: 1 },
      dtr: { registrationId: "0b5e0d6c-2c55-4d47-9a3c-4f8e1b9b2a10", users: [{ username: "alice", state: "assigned" }, { username: "mallory", state: "unknown-user" }] },
    },
  ],
};

describe("dtrcache validate", () => {
  it("accepts the runbook example and exits 0", async () => {
    expect(await run("validate", "-f", join(examples, "runbook.yaml"))).toBe(EXIT.ok);
    expect(out.join("")).toContain("valid (1 DTR, 1 cache: region-asia)");
  });

  it("exits 2 and prints file:line:col path: message for each mistake", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata: {name: x}\nspec:\n  node: {hostname: n1}\n  externalURL: https://c.example\n  blobTTL: 24 hours\n");
    expect(await run("validate", "-f", bad)).toBe(EXIT.invalid);
    expect(err.join("")).toContain('bad.yaml:7:12 spec.blobTTL: "24 hours" is not a duration (use e.g. 24h)');
  });

  it("exits 2 on an unknown option, printing usage", async () => {
    expect(await run("validate", "--nope")).toBe(EXIT.invalid);
  });
});

describe("dtrcache plan/apply without an engine", () => {
  it("exits 3 with a clear message when DOCKER_HOST is not set", async () => {
    const saved = process.env["DOCKER_HOST"];
    delete process.env["DOCKER_HOST"];
    try {
      expect(await run("plan", "-f", join(examples, "runbook.yaml"))).toBe(EXIT.unreachable);
      expect(err.join("")).toContain("DOCKER_HOST is not set");
    } finally {
      if (saved !== undefined) process.env["DOCKER_HOST"] = saved;
    }
  });
});

describe("dtrcache status", () => {
  let server: StatusServer;
  beforeAll(async () => {
    server = await startStatusServer({ provider: { snapshot: () => readyStatus, readiness: async () => ({}) }, metrics: new Registry(), bearerToken: "tok-123" }, "127.0.0.1", 0);
  });
  afterAll(() => server.close());

  it("prints a table with readiness, tasks, DTR id and why a condition is not met", async () => {
    process.env["DTRCACHE_STATUS_TOKEN"] = "tok-123";
    try {
      expect(await run("status", "--url", server.url)).toBe(EXIT.ok);
    } finally {
      delete process.env["DTRCACHE_STATUS_TOKEN"];
    }
    const text = out.join("");
    expect(text).toMatch(/NAME\s+READY\s+TASKS\s+NODE\s+DTR ID\s+USERS\s+DTR\s+TLS/);
    expect(text).toMatch(/region-asia\s+True\s+1\/1\s+node-1\s+0b5e0d6c…\s+1\/2\s+False/);
    expect(text).toContain("region-asia: DtrSynced=False DtrUnavailable: DTR answered 503");
    expect(text).toContain("region-asia: user mallory: unknown-user");
  });

  it("prints one cache as json or yaml", async () => {
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "tok-123\n");
    expect(await run("status", "region-asia", "--url", server.url, "--token-file", tokenFile, "-o", "json")).toBe(EXIT.ok);
    expect(JSON.parse(out.join(""))).toMatchObject({ name: "region-asia", tasks: { running: 1 } });
    expect(await run("status", "--url", server.url, "--token-file", tokenFile, "-o", "yaml")).toBe(EXIT.ok);
    expect(parse(out.join(""))).toMatchObject({ caches: [{ name: "region-asia" }] });
  });

  it("exits 3 without the token and 2 for an unknown cache", async () => {
    expect(await run("status", "--url", server.url)).toBe(EXIT.unreachable);
    expect(err.join("")).toContain("requires a bearer token");
    process.env["DTRCACHE_STATUS_TOKEN"] = "tok-123";
    try {
      expect(await run("status", "nope", "--url", server.url)).toBe(EXIT.invalid);
    } finally {
      delete process.env["DTRCACHE_STATUS_TOKEN"];
    }
  });
});
