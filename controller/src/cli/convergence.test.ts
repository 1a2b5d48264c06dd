// `status` right after an apply (issue 13/11 follow-up): the previous revision's Ready is not the
// stored spec's. Before convergence.ts, `statusProblem` looked at Ready alone and `status` exited 0
// with revision 3 running and revision 4 stored; these tests fail on that code.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startStatusServer, type StatusServer } from "../http/status-server.js";
import { FakeSwarm } from "../swarm/fake.js";
import { runCli } from "../testing/run-cli.js";
import { runbookText } from "../testing/specs.js";
import { pendingLines, statusProblem, withStoreHeads } from "./convergence.js";
import { EXIT } from "./main.js";
import type { RuntimeSnapshot } from "./snapshot.js";
import { storeModeStatus } from "./status-fixtures.test-helper.js";
import { setSwarmFactory } from "./swarm-factory.js";

const examples = new URL("../../../crds/examples/", import.meta.url).pathname;

describe("statusProblem and the pending lines", () => {
  it("a cache Ready on revision 3 while revision 4 is stored is not converged", () => {
    const behind = storeModeStatus(3, 4);
    expect(statusProblem(behind)).toBe("not converged: region-asia applying revision 4 (running 3)");
    expect(pendingLines(behind)).toEqual(["  region-asia: Applying revision 4 (running 3)"]);
    expect(statusProblem(storeModeStatus(4, 4))).toBeUndefined();
    expect(pendingLines(storeModeStatus(4, 4))).toEqual([]);
    expect(statusProblem(storeModeStatus(undefined, 1))).toBe("not converged: region-asia applying revision 1 (none reconciled yet)");
  });

  it("a loaded spec not yet reconciled (hashes differ) is not converged either, in file mode too", () => {
    const fileMode = storeModeStatus(4, 4, { observedGeneration: "aaaaaaaa11", generation: "bbbbbbbb22", spec: { state: "Valid" } });
    expect(pendingLines(fileMode)).toEqual(["  region-asia: Applying a changed spec (running aaaaaaa, loaded bbbbbbb)"]);
    expect(statusProblem(fileMode)).toMatch(/^not converged: region-asia applying a changed spec/);
    expect(pendingLines(storeModeStatus(4, 4, { observedGeneration: "a", generation: "b" }))).toEqual([
      "  region-asia: Applying revision 4 with a changed DTR resource",
    ]);
  });

  it("the store's heads raise the stored revision the controller has not loaded yet, never lower it; file mode untouched", () => {
    expect(withStoreHeads(storeModeStatus(3, 3), new Map([["region-asia", 4]])).caches[0]?.spec?.storedGeneration).toBe(4);
    expect(withStoreHeads(storeModeStatus(5, 5), new Map([["region-asia", 4]])).caches[0]?.spec?.storedGeneration).toBe(5);
    const fileMode = storeModeStatus(3, 3, { spec: { state: "Valid" } });
    expect(withStoreHeads(fileMode, new Map([["region-asia", 9]])).caches[0]?.spec?.storedGeneration).toBeUndefined();
  });

  it("a standby judges nothing; a rejected spec and a not-Ready cache are still named", () => {
    expect(statusProblem({ ...storeModeStatus(3, 4), lease: { role: "standby", identity: "b", holder: "a", since: "2026-12-07T00:00:00Z" } })).toBeUndefined();
    const notReady = storeModeStatus(4, 4, {
      conditions: [{ type: "Ready", status: "False", reason: "RollingOut", message: "", lastTransitionTime: "2026-12-07T12:00:00Z" }],
    });
    expect(statusProblem(notReady)).toBe("not Ready: region-asia");
  });
});

describe("dtrcache status right after an apply", () => {
  let dir: string;
  let swarm: FakeSwarm;
  let server: StatusServer;
  let current: RuntimeSnapshot;
  let out = "";
  let err = "";

  async function run(...args: string[]): Promise<number> {
    out = "";
    err = "";
    const result = await runCli(...args);
    ({ out, err } = result);
    return result.code;
  }

  const spec = (ttl: string): string => {
    const file = join(dir, `spec-${ttl}.yaml`);
    writeFileSync(file, runbookText({ blobTTL: ttl }).replaceAll("certs/", `${examples}certs/`));
    return file;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dtrcache-converge-"));
    server = await startStatusServer({ provider: { snapshot: () => current, readiness: async () => ({}) }, metrics: new Registry() }, "127.0.0.1", 0);
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    swarm = new FakeSwarm();
    setSwarmFactory(() => swarm);
  });

  it("exits 1 saying 'Applying revision 4 (running 3)' while the controller still reports revision 3 of 3, Ready", async () => {
    for (const ttl of ["1h", "2h", "3h"]) expect(await run("apply", "-f", spec(ttl))).toBe(EXIT.ok);
    current = storeModeStatus(3, 3);
    expect(await run("status", "--url", server.url)).toBe(EXIT.ok);
    // the operator applies revision 4; the controller has not loaded it yet
    expect(await run("apply", "-f", spec("4h"))).toBe(EXIT.ok);
    expect(await run("status", "--url", server.url)).toBe(EXIT.notReady);
    expect(out).toMatch(/region-asia\s+True\s+1\/1\s+node-1.*\s3\/4\s/);
    expect(out).toContain("  region-asia: Applying revision 4 (running 3)");
    expect(err).toContain("not converged: region-asia applying revision 4 (running 3)");
    expect(await run("status", "region-asia", "--url", server.url)).toBe(EXIT.notReady);
    // loaded, reconciling: the controller's own numbers say so
    current = storeModeStatus(3, 4);
    expect(await run("status", "--url", server.url)).toBe(EXIT.notReady);
    current = storeModeStatus(4, 4);
    expect(await run("status", "--url", server.url)).toBe(EXIT.ok);
    expect(out).not.toContain("Applying");
  });

  it("without an engine to read the store from, judges by the controller's numbers alone", async () => {
    setSwarmFactory(() => {
      throw new Error("no engine here");
    });
    current = storeModeStatus(4, 4);
    expect(await run("status", "--url", server.url)).toBe(EXIT.ok);
    current = storeModeStatus(3, 4);
    expect(await run("status", "--url", server.url)).toBe(EXIT.notReady);
  });
});
