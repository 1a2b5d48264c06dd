// The store verbs end to end on the in-memory swarm: what they print, their exit codes, and that
// refused changes write nothing.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { EventRecorder } from "../events/recorder.js";
import { startStatusServer } from "../http/status-server.js";
import { FakeSwarm } from "../swarm/fake.js";
import { runCli } from "../testing/run-cli.js";
import { runbookText } from "../testing/specs.js";
import { EXIT } from "./main.js";
import { setSwarmFactory } from "./store-commands.js";

const examples = new URL("../../../crds/examples/", import.meta.url).pathname;
let dir: string;
let swarm: FakeSwarm;
let out: string;
let err: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dtrcache-store-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  swarm = new FakeSwarm();
  setSwarmFactory(() => swarm);
});

async function run(...args: string[]): Promise<number> {
  out = "";
  err = "";
  const result = await runCli(...args);
  ({ out, err } = result);
  return result.code;
}

function spec(text: string, name = "spec.yaml"): string {
  const file = join(dir, name);
  // Relative certificate paths resolve against the spec's directory: point them at the examples.
  writeFileSync(file, text.replaceAll("certs/", `${examples}certs/`));
  return file;
}

describe("dtrcache store verbs", () => {
  it("apply prints created / unchanged / configured; get, history, rollback, delete", async () => {
    expect(await run("apply", "-f", spec(runbookText()))).toBe(EXIT.ok);
    expect(out).toBe("dtr/dtr created\ncontentcache/region-asia created\n");
    expect(await run("apply", "-f", spec(runbookText()))).toBe(EXIT.ok);
    expect(out).toBe("dtr/dtr unchanged\ncontentcache/region-asia unchanged\n");
    expect(await run("apply", "-f", spec(runbookText({ blobTTL: "1h" })))).toBe(EXIT.ok);
    expect(out).toContain("contentcache/region-asia configured");
    expect(await run("get")).toBe(EXIT.ok);
    expect(out).toMatch(/ContentCache\s+region-asia\s+2\s/);
    expect(await run("get", "cc", "region-asia", "-o", "yaml")).toBe(EXIT.ok);
    expect(out).toContain("blobTTL: 1h");
    expect(out).toContain("generation: 2");
    expect(await run("history", "region-asia")).toBe(EXIT.ok);
    expect(out).toMatch(/2\s+\S+\s+\S+\s+apply: spec\.blobTTL/);
    expect(await run("rollback", "region-asia")).toBe(EXIT.ok);
    expect(out).toContain("rolled back to revision 1 (now generation 3)");
    expect(await run("get", "region-asia", "-o", "json")).toBe(EXIT.ok);
    expect(JSON.parse(out).spec.blobTTL).toBe("24h");
    expect(await run("describe", "region-asia")).toBe(EXIT.ok);
    expect(out).toContain("Last change:  rollback to r1");
    expect(await run("delete", "dtr", "--kind", "dtr")).toBe(EXIT.invalid);
    expect(err).toContain("store:ContentCache/region-asia");
    expect(await run("delete", "region-asia")).toBe(EXIT.ok);
    expect(out).toBe("contentcache/region-asia deleted\n");
    expect(await run("get", "region-asia")).toBe(EXIT.notReady);
  });

  it("describe shows the cache's conditions and its last N events from the status endpoint, with the bearer token", async () => {
    await run("apply", "-f", spec(runbookText()));
    const events = new EventRecorder();
    for (let i = 1; i <= 12; i += 1)
      events.record({ cache: "region-asia", type: "Normal", source: "swarm", reason: "ServiceUpdated", message: `updated service region-asia #${i}` });
    events.record({ cache: "region-asia", type: "Warning", source: "dtr", reason: "DtrSyncFailed", message: "DTR_UNAVAILABLE: connect ECONNREFUSED" });
    events.record({ cache: "other", type: "Normal", source: "swarm", reason: "ServiceCreated", message: "created service other" });
    const conditions = [{ type: "Ready", status: "True", reason: "TasksRunning", message: "1/1 tasks running", lastTransitionTime: new Date().toISOString() }];
    const server = await startStatusServer(
      {
        provider: {
          snapshot: () => ({ caches: [{ name: "region-asia", conditions, tasks: { running: 2, desired: 2, nodes: ["node-2", "node-3"] } }] }),
          readiness: () => Promise.resolve({}),
        },
        metrics: new Registry(),
        events: (cache, limit) => events.list(cache, limit),
        bearerToken: "tok-9",
      },
      "127.0.0.1",
      0,
    );
    try {
      const tokenFile = join(dir, "status-token");
      writeFileSync(tokenFile, "tok-9\n");
      expect(await run("describe", "region-asia", "--url", server.url, "--token-file", tokenFile, "--events", "3")).toBe(EXIT.ok);
      expect(out).toContain("  Ready=True TasksRunning: 1/1 tasks running");
      expect(out).toContain("Tasks:        2/2 running on node-2, node-3");
      expect(out).toMatch(/Events:\n\s+TYPE\s+REASON\s+AGE\s+FROM\s+MESSAGE\n/);
      expect(out).toContain("updated service region-asia #11");
      expect(out).toContain("updated service region-asia #12");
      expect(out).not.toContain("#10");
      expect(out).toMatch(/Warning\s+DtrSyncFailed\s+\d+s\s+dtr\s+DTR_UNAVAILABLE: connect ECONNREFUSED/);
      expect(out).not.toContain("created service other");
      expect(out).not.toContain("tok-9");
      // Without the token the endpoint refuses: describe still prints the stored resource.
      expect(await run("describe", "region-asia", "--url", server.url)).toBe(EXIT.ok);
      expect(out).toMatch(/Conditions:\s+\(status endpoint .* requires a bearer token/);
    } finally {
      await server.close();
    }
  });

  it("diff -f shows the store diff, then the Swarm and DTR actions the controller would take, and warns about a same-name service it does not own; writes nothing", async () => {
    await run("apply", "-f", spec(runbookText()));
    const before = (await swarm.listConfigs({ labels: [] })).length;
    expect(await run("diff", "-f", spec(runbookText({ blobTTL: "1h", users: ["admin", "bob"] })))).toBe(EXIT.ok);
    if (process.env["SHOW_DIFF"]) console.log(out);
    expect(out).toMatch(/-\s*blobTTL: 24h/);
    expect(out).toMatch(/Swarm:\nregion-asia \(apply\)\n( {2}\+ .*\n)+/);
    expect(out).toContain("+ create service region-asia");
    // DTR is asked live when the password reference can be read here; this shell has no
    // DTR_ADMIN_PASSWORD, so the lines come from the controller's record and say so
    expect(out).toMatch(
      /DTR:\nregion-asia \(apply\)\n {2}\(DTR https:\/\/dtr\.example\.com:443 not asked: DTR_CREDENTIALS: .*; from the controller's record\)\n {2}\+ register region-asia with https:\/\/dtr\.example\.com:443 as host https:\/\/dtr-cache\.example\.com\n {2}\+ point admin, bob at region-asia/,
    );
    // the config's name covers the generated http.secret: a placeholder, not a name apply never creates
    expect(out).toContain("+ create config region-asia-config-<generated>");
    expect((await swarm.listConfigs({ labels: [] })).length).toBe(before);
    expect(swarm.services.size).toBe(0);

    await swarm.createService({
      Name: "region-asia",
      Labels: { "io.dtrcache.owner": "someone-else" },
      TaskTemplate: { ContainerSpec: { Image: "x" } },
    } as never);
    expect(await run("diff", "-f", spec(runbookText()))).toBe(EXIT.ok);
    expect(out).toContain("! service region-asia exists and is owned by id someone-else: it is never touched");
  });

  it("refused changes exit 2 (invalid) or 4 (conflict) and write nothing", async () => {
    await run("apply", "-f", spec(runbookText()));
    const before = swarm.configs.size;
    expect(await run("apply", "-f", spec(runbookText({ blobTTL: "one hour" })))).toBe(EXIT.invalid);
    expect(err).toMatch(/spec\.yaml:\d+:\d+ spec\.blobTTL: "one hour" is not a duration/);
    expect(await run("apply", "-f", spec(runbookText().replace("env: DTR_ADMIN_PASSWORD", "secret: dtr-admin-password")))).toBe(EXIT.invalid);
    expect(err).toMatch(/spec\.yaml:15:\d+ spec\.admin\.password\.secret: Swarm secret "dtr-admin-password" does not exist/);
    expect(await run("apply", "-f", spec(runbookText({ blobTTL: "2h" }).replace("name: region-asia", "name: region-asia\n  generation: 7")))).toBe(
      EXIT.conflict,
    );
    expect(swarm.configs.size).toBe(before);
    // The same secret reference is admitted once the secret exists.
    await swarm.createSecret({ name: "dtr-admin-password", labels: {}, data: Buffer.from("x") });
    expect(await run("apply", "-f", spec(runbookText().replace("env: DTR_ADMIN_PASSWORD", "secret: dtr-admin-password")))).toBe(EXIT.ok);
    expect(out).toContain("dtr/dtr configured");
  });

  it("edit: an invalid result reopens with the error as a comment; the fixed one is stored", async () => {
    await run("apply", "-f", spec(runbookText()));
    // A scripted editor: first save breaks blobTTL, the second (seeing the error comment) fixes it.
    const editor = join(dir, "editor.sh");
    writeFileSync(
      editor,
      `#!/bin/sh\nif grep -q 'refused' "$1"; then sed -i 's/blobTTL: .*/blobTTL: 2h/' "$1"; else sed -i 's/blobTTL: .*/blobTTL: soon/' "$1"; fi\n`,
    );
    chmodSync(editor, 0o755);
    process.env["DTRCACHE_EDITOR"] = editor;
    try {
      expect(await run("edit", "region-asia")).toBe(EXIT.ok);
      expect(out).toContain("contentcache/region-asia configured");
      expect(await run("get", "region-asia", "-o", "json")).toBe(EXIT.ok);
      expect(JSON.parse(out).spec.blobTTL).toBe("2h");
      // An editor that keeps saving the same invalid text: abandoned with exit 2, nothing written.
      writeFileSync(editor, `#!/bin/sh\nsed -i 's/blobTTL: .*/blobTTL: never/' "$1"\n`);
      const before = swarm.configs.size;
      expect(await run("edit", "region-asia")).toBe(EXIT.invalid);
      expect(err).toContain('"never" is not a duration');
      expect(swarm.configs.size).toBe(before);
    } finally {
      delete process.env["DTRCACHE_EDITOR"];
    }
  });
});
