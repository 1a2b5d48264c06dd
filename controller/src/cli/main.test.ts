import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { startStatusServer, type StatusServer } from "../http/status-server.js";
import { createLogger, defaultLogFormat, formatTextLine, textDestination } from "./logger.js";
import { buildProgram, EXIT, main, statusProblem } from "./main.js";
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
      dtr: {
        registrationId: "0b5e0d6c-2c55-4d47-9a3c-4f8e1b9b2a10",
        users: [
          { username: "alice", state: "assigned" },
          { username: "mallory", state: "unknown-user" },
        ],
      },
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
    writeFileSync(
      bad,
      "apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata: {name: x}\nspec:\n  node: {hostname: n1}\n  externalURL: https://c.example\n  blobTTL: 24 hours\n",
    );
    expect(await run("validate", "-f", bad)).toBe(EXIT.invalid);
    expect(err.join("")).toContain('bad.yaml:7:12 spec.blobTTL: "24 hours" is not a duration (use e.g. 24h)');
  });

  it("exits 2 on an unknown option, printing usage", async () => {
    expect(await run("validate", "--nope")).toBe(EXIT.invalid);
  });
});

describe("dtrcache plan/apply without an engine", () => {
  it("exits 3 naming the engine when DOCKER_HOST names one that does not answer", async () => {
    // never unset here: that would be the machine's own engine (/var/run/docker.sock)
    const saved = process.env["DOCKER_HOST"];
    process.env["DOCKER_HOST"] = `unix://${join(dir, "no-engine.sock")}`;
    try {
      expect(await run("plan", "-f", join(examples, "runbook.yaml"))).toBe(EXIT.unreachable);
      expect(err.join("")).toContain("no-engine.sock");
    } finally {
      if (saved !== undefined) process.env["DOCKER_HOST"] = saved;
    }
  });
});

describe("dtrcache status", () => {
  let server: StatusServer;
  beforeAll(async () => {
    server = await startStatusServer(
      { provider: { snapshot: () => readyStatus, readiness: async () => ({}) }, metrics: new Registry(), bearerToken: "tok-123" },
      "127.0.0.1",
      0,
    );
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

describe("dtrcache status exit codes", () => {
  const rejected: RuntimeSnapshot = { ...readyStatus, spec: { ...readyStatus.spec, errors: ['spec.yaml:7:12 spec.blobTTL: "one hour" is not a duration'] } };
  const notReady: RuntimeSnapshot = {
    ...readyStatus,
    caches: readyStatus.caches.map((c) => ({
      ...c,
      conditions: c.conditions.map((x) => (x.type === "Ready" ? { ...x, status: "False" as const, reason: "TasksNotRunning" } : x)),
    })),
  };
  let current = readyStatus;
  let server: StatusServer;
  beforeAll(async () => {
    server = await startStatusServer({ provider: { snapshot: () => current, readiness: async () => ({}) }, metrics: new Registry() }, "127.0.0.1", 0);
  });
  afterAll(() => server.close());

  it("exits 0 when every cache is Ready, 1 when the spec is rejected or a cache is not Ready (table still printed)", async () => {
    current = readyStatus;
    expect(await run("status", "--url", server.url)).toBe(EXIT.ok);
    current = rejected;
    expect(await run("status", "--url", server.url)).toBe(EXIT.notReady);
    expect(out.join("")).toContain("region-asia");
    expect(err.join("")).toContain("the spec is rejected");
    current = notReady;
    expect(await run("status", "--url", server.url, "-o", "json")).toBe(EXIT.notReady);
    expect(err.join("")).toContain("not Ready: region-asia");
    expect(statusProblem(readyStatus)).toBeUndefined();
    // a standby replica judges nothing: it does not reconcile
    expect(statusProblem({ ...notReady, lease: { role: "standby", identity: "b", holder: "a", since: "2026-11-28T00:00:00Z" } })).toBeUndefined();
  });
});

describe("dtrcache --help", () => {
  it("shows durations and addresses as an operator types them", async () => {
    expect(await run("reconcile", "--help")).toBe(EXIT.ok);
    const help = (): string => out.join("").replace(/\s+/g, " ");
    const reconcile = help();
    expect(reconcile).toContain("(default: 5m)");
    expect(reconcile).not.toContain("300000");
    expect(await run("run", "--help")).toBe(EXIT.ok);
    const runHelp = help();
    expect(runHelp).toContain("(default: 0.0.0.0:9090)");
    expect(runHelp).toContain("(default: 10s)");
    expect(runHelp).not.toMatch(/"host"|\[object Object\]/);
    expect(await run("status", "--help")).toBe(EXIT.ok);
    expect(help()).toContain("(default: 2s)");
  });

  it("states the log level each verb really uses (run: info, reconcile: warn)", async () => {
    expect(await run("run", "--help")).toBe(EXIT.ok);
    expect(out.join("").replace(/\s+/g, " ")).toMatch(/--log-level <level> log level \(choices: [^)]*, default: "info"\)/);
    expect(await run("reconcile", "--help")).toBe(EXIT.ok);
    expect(out.join("").replace(/\s+/g, " ")).toMatch(/--log-level <level> log level \(choices: [^)]*, default: "warn"\)/);
    const program = buildProgram();
    const runCommand = program.commands.find((c) => c.name() === "run");
    expect(runCommand?.options.find((o) => o.long === "--log-level")?.defaultValue).toBe("info");
  });

  it("offers --log-format text|json on run and reconcile", async () => {
    for (const verb of ["run", "reconcile"]) {
      expect(await run(verb, "--help")).toBe(EXIT.ok);
      expect(out.join("").replace(/\s+/g, " ")).toMatch(
        /--log-format <format> .*default: text when stderr is a terminal, else json \(choices: "text", "json"\)/,
      );
    }
  });
});

describe("log format", () => {
  it("text: time, level name, message and fields; json: pino lines", () => {
    const json: string[] = [];
    createLogger("info", { write: (t: string) => void json.push(t) }, "json").info({ cache: "region-asia", writes: 2 }, "reconciled");
    expect(json.join("")).toMatch(/^\{"level":30/);
    const text: string[] = [];
    createLogger("info", { write: (t: string) => void text.push(t) }, "text").info({ cache: "region-asia", writes: 2 }, "reconciled");
    expect(text.join("")).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}reconciled cache=region-asia writes=2\n$/);
    expect(textDestination).toBeTypeOf("function");
    expect(formatTextLine('{"level":50,"time":0,"msg":"failed","err":"a b"}')).toBe('1970-01-01T00:00:00.000Z ERROR failed err="a b"\n');
    expect(defaultLogFormat(true)).toBe("text");
    expect(defaultLogFormat(false)).toBe("json");
  });
});
