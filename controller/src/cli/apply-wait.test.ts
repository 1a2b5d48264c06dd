// `dtrcache apply --wait`: follows the controller until every applied cache runs the revision
// written, Ready and DtrSynced; fails with the blocking reason on timeout, at once on a final
// Degraded, after a grace on a lasting one, and with exit 3 when the endpoint refuses the token.
// (Before it, `apply` had no --wait: commander refused the option with exit 2.)
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startStatusServer, type StatusServer } from "../http/status-server.js";
import { FakeSwarm } from "../swarm/fake.js";
import { runCli } from "../testing/run-cli.js";
import { runbookText } from "../testing/specs.js";
import { followApplied, waitTargets, type FollowOptions, type WaitTarget } from "./apply-wait.js";
import { CliError, EXIT } from "./exit.js";
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";
import { storeModeStatus } from "./status-fixtures.test-helper.js";
import { StatusEndpointError } from "./status-client.js";
import { setSwarmFactory } from "./swarm-factory.js";

const AT = "2026-12-07T12:00:00Z";
const cond = (type: string, status: "True" | "False" | "Unknown", reason: string, message = "") =>
  ({ type, status, reason, message, lastTransitionTime: AT }) as CacheSnapshot["conditions"][number];
const target: WaitTarget = { name: "region-asia", generation: 4, needsReload: false };

/** followApplied over a scripted sequence of answers (an Error is a failed ask), on a fake clock. */
async function follow(
  answers: readonly (RuntimeSnapshot | Error)[],
  options: Partial<FollowOptions> = {},
  targets = [target],
): Promise<{ result: string[] | CliError; progress: string[]; asked: number }> {
  let clock = 0;
  let asked = 0;
  const progress: string[] = [];
  const result = await followApplied(targets, {
    fetch: () => {
      const answer = answers[Math.min(asked, answers.length - 1)];
      asked += 1;
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer as RuntimeSnapshot);
    },
    timeoutMs: 60_000,
    baseline: { loadedAt: AT },
    progress: (line) => progress.push(line),
    now: () => clock,
    sleep: (ms) => {
      clock += ms;
      return Promise.resolve();
    },
    ...options,
  }).catch((error: unknown) => {
    if (error instanceof CliError) return error;
    throw error;
  });
  return { result, progress, asked };
}

describe("followApplied", () => {
  it("waits through an endpoint that does not answer, the old revision Ready, the new one rolling out and DTR syncing", async () => {
    const { result, progress } = await follow([
      new StatusEndpointError("cannot reach the status endpoint http://m:9090: ECONNREFUSED"),
      storeModeStatus(3, 3),
      storeModeStatus(3, 4),
      storeModeStatus(4, 4, {
        conditions: [cond("Ready", "False", "RollingOut", "Rolling out: 0/1 tasks running"), cond("Progressing", "True", "RolloutStarted")],
      }),
      // the settle countdown is one line, not one a second
      storeModeStatus(4, 4, { conditions: [cond("Ready", "False", "RollingOut", "Rolling out: 1/1 tasks running, waiting 8s to settle")] }),
      storeModeStatus(4, 4, { conditions: [cond("Ready", "False", "RollingOut", "Rolling out: 1/1 tasks running, waiting 7s to settle")] }),
      storeModeStatus(4, 4, { conditions: [cond("Ready", "True", "TasksRunning"), cond("DtrSynced", "Unknown", "Pending", "the DTR pass has not run yet")] }),
      storeModeStatus(4, 4),
    ]);
    expect(result).toEqual(["contentcache/region-asia revision 4: Ready, DtrSynced"]);
    expect(progress).toEqual([
      "(cannot reach the status endpoint http://m:9090: ECONNREFUSED; asking again)",
      "contentcache/region-asia: Applying revision 4 (running 3)",
      "contentcache/region-asia: revision 4: Ready=False RollingOut: Rolling out: 0/1 tasks running",
      "contentcache/region-asia: revision 4: Ready=False RollingOut: Rolling out: 1/1 tasks running, waiting 8s to settle",
      "contentcache/region-asia: revision 4: Ready, DtrSynced=Unknown Pending: the DTR pass has not run yet",
      "contentcache/region-asia: revision 4: Ready, DtrSynced",
    ]);
  });

  it("a later revision than the one written counts (someone applied again meanwhile)", async () => {
    expect((await follow([storeModeStatus(5, 5)])).result).toEqual(["contentcache/region-asia revision 5: Ready, DtrSynced"]);
  });

  it("times out with exit 1 and the blocking condition's reason", async () => {
    const stuck = storeModeStatus(4, 4, {
      conditions: [cond("Ready", "True", "TasksRunning"), cond("DtrSynced", "False", "UnknownUsers", "DTR has no user ghost")],
    });
    const { result } = await follow([stuck], { timeoutMs: 10_000 });
    expect(result).toBeInstanceOf(CliError);
    expect((result as CliError).exitCode).toBe(EXIT.notReady);
    expect((result as CliError).message).toBe(
      "not converged after 10 s (stored; the controller goes on): contentcache/region-asia revision 4: Ready, DtrSynced=False UnknownUsers: DTR has no user ghost",
    );
  });

  it("fails at once on a final Degraded of the new revision, after the grace on a lasting one, never on the old revision's", async () => {
    const rolledBack = storeModeStatus(4, 4, {
      conditions: [cond("Ready", "False", "RolledBack"), cond("Degraded", "True", "RolledBack", "update rolled back: task exited")],
    });
    const first = await follow([rolledBack]);
    expect((first.result as CliError).message).toBe("contentcache/region-asia revision 4: Degraded RolledBack: update rolled back: task exited");
    expect(first.asked).toBe(1);

    const failing = storeModeStatus(4, 4, { conditions: [cond("Ready", "False", "TaskFailed"), cond("Degraded", "True", "TaskFailed", "exit 1")] });
    const lasting = await follow([failing], { degradedGraceMs: 5_000, pollMs: 1_000 });
    expect((lasting.result as CliError).exitCode).toBe(EXIT.notReady);
    expect((lasting.result as CliError).message).toContain("Degraded TaskFailed: exit 1");
    expect(lasting.asked).toBe(6);

    // Degraded on revision 3 says nothing about revision 4: keep waiting, and a recovery passes
    const oldDegraded = storeModeStatus(3, 4, { conditions: [cond("Degraded", "True", "RolledBack", "old")] });
    expect((await follow([oldDegraded, oldDegraded, storeModeStatus(4, 4)])).result).toEqual(["contentcache/region-asia revision 4: Ready, DtrSynced"]);
  });

  it("a refused token ends the wait at once (exit 3); an endpoint that never answered is exit 3 at the deadline", async () => {
    const refused = await follow([new StatusEndpointError("http://m:9090 requires a bearer token", true)]);
    expect((refused.result as CliError).exitCode).toBe(EXIT.unreachable);
    expect(refused.asked).toBe(1);
    const silent = await follow([new StatusEndpointError("cannot reach the status endpoint http://m:9090: ECONNREFUSED")], { timeoutMs: 3_000 });
    expect((silent.result as CliError).exitCode).toBe(EXIT.unreachable);
    expect((silent.result as CliError).message).toBe(
      "the status endpoint did not answer within 3 s: cannot reach the status endpoint http://m:9090: ECONNREFUSED",
    );
  });

  it("a changed DTR resource: waits until the controller has loaded the spec again since the write", async () => {
    const dtrOnly: WaitTarget = { name: "region-asia", generation: 4, needsReload: true };
    const loadedAt = "2026-12-07T12:00:09Z";
    const reconciled = (at: string): RuntimeSnapshot => {
      const base = storeModeStatus(4, 4, { lastReconcile: { at, durationMs: 5, actions: 0 } });
      return { ...base, spec: { ...base.spec, loadedAt } };
    };
    // Ready and DtrSynced all along, from before the change: not enough
    const before = storeModeStatus(4, 4, { lastReconcile: { at: "2026-12-07T11:59:59Z", durationMs: 5, actions: 0 } });
    const { result, progress } = await follow([before, reconciled("2026-12-07T12:00:08Z"), reconciled("2026-12-07T12:00:10Z")], {}, [dtrOnly]);
    expect(progress).toEqual([
      "contentcache/region-asia: waiting for the controller to load the changed DTR resource",
      "contentcache/region-asia: waiting for a reconcile with the changed DTR resource",
      "contentcache/region-asia: revision 4: Ready, DtrSynced",
    ]);
    expect(result).toEqual(["contentcache/region-asia revision 4: Ready, DtrSynced"]);
  });

  it("targets: applied caches (unchanged ones too) and the caches of a changed DTR", () => {
    const results = [
      { kind: "DTR" as const, name: "dtr", action: "configured" as const, doc: undefined, base: 1, fields: [], generation: 2 },
      { kind: "ContentCache" as const, name: "b", action: "unchanged" as const, doc: undefined, base: 3, fields: [], generation: 3 },
    ];
    const spec = {
      dtrs: [],
      files: [],
      caches: [
        { name: "a", dtr: { name: "dtr" } },
        { name: "b", dtr: { name: "dtr" } },
        { name: "c", dtr: { name: "other" } },
      ],
    } as never;
    expect(waitTargets(results, spec)).toEqual([
      { name: "a", generation: 0, needsReload: true, dtrResource: expect.stringMatching(/^[0-9a-f]{16}$/) },
      { name: "b", generation: 3, needsReload: true, dtrResource: expect.stringMatching(/^[0-9a-f]{16}$/) },
    ]);
  });

  it("a rotated admin password (a DTR resource change only): waits for a DTR pass with the stored resource, not the earlier DtrSynced", async () => {
    // The controller loaded the new spec and reconciled after it, but its DtrSynced=True is from a
    // pass with the old password reference (before the fix, that ended the wait at once).
    const rotation: WaitTarget = { name: "region-asia", generation: 4, needsReload: true, dtrResource: "new0000000000000" };
    const loadedAt = "2026-12-07T12:00:09Z";
    const passedWith = (resourceHash: string, dtrSynced: ReturnType<typeof cond>): RuntimeSnapshot => {
      const base = storeModeStatus(4, 4, { lastReconcile: { at: "2026-12-07T12:00:10Z", durationMs: 5, actions: 0 } });
      const caches = base.caches.map((c) => ({
        ...c,
        dtr: { ...c.dtr, resourceHash },
        conditions: [...c.conditions.filter((x) => x.type !== "DtrSynced"), dtrSynced],
      }));
      return { ...base, spec: { ...base.spec, loadedAt }, caches };
    };
    const { result, progress } = await follow(
      [
        passedWith("old0000000000000", cond("DtrSynced", "True", "Synced")),
        // the new secret is not mounted yet where this pass ran: no proof either
        passedWith("new0000000000000", cond("DtrSynced", "False", "DTR_CREDENTIALS", "cannot read DTR admin password file")),
        passedWith("new0000000000000", cond("DtrSynced", "True", "Synced")),
      ],
      {},
      [rotation],
    );
    expect(progress).toEqual([
      "contentcache/region-asia: revision 4: Ready, waiting for a DTR pass with the stored DTR resource (DtrSynced=True is from an earlier one)",
      "contentcache/region-asia: revision 4: Ready, DtrSynced=False DTR_CREDENTIALS: cannot read DTR admin password file",
      "contentcache/region-asia: revision 4: Ready, DtrSynced",
    ]);
    expect(result).toEqual(["contentcache/region-asia revision 4: Ready, DtrSynced"]);
  });
});

describe("dtrcache apply --wait", () => {
  const examples = new URL("../../../crds/examples/", import.meta.url).pathname;
  let dir: string;
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
    dir = mkdtempSync(join(tmpdir(), "dtrcache-apply-wait-"));
    writeFileSync(join(dir, "token"), "tok-7\n");
    server = await startStatusServer(
      { provider: { snapshot: () => current, readiness: async () => ({}) }, metrics: new Registry(), bearerToken: "tok-7" },
      "127.0.0.1",
      0,
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    const swarm = new FakeSwarm();
    setSwarmFactory(() => swarm);
  });

  it("stores, then returns 0 once the controller runs the new revision Ready and DtrSynced", async () => {
    expect(await run("apply", "-f", spec("1h"))).toBe(EXIT.ok);
    current = storeModeStatus(1, 1);
    // the controller picks revision 2 up a moment after the write
    const later = setTimeout(() => (current = storeModeStatus(2, 2)), 1_200);
    try {
      expect(await run("apply", "-f", spec("2h"), "--wait", "--timeout", "20s", "--url", server.url, "--token-file", join(dir, "token"))).toBe(EXIT.ok);
    } finally {
      clearTimeout(later);
    }
    expect(out).toBe("dtr/dtr unchanged\ncontentcache/region-asia configured\ncontentcache/region-asia revision 2: Ready, DtrSynced\n");
    expect(err).toContain("contentcache/region-asia: Applying revision 2 (running 1)");
    expect(err).not.toContain("tok-7");
  }, 30_000);

  it("exits 1 with the reason when the new revision is not Ready in time (stored anyway), 3 without the token", async () => {
    expect(await run("apply", "-f", spec("1h"))).toBe(EXIT.ok);
    current = storeModeStatus(1, 2, { conditions: [cond("Ready", "False", "RollingOut", "Rolling out: 0/1 tasks running")] });
    expect(await run("apply", "-f", spec("3h"), "--wait", "--timeout", "1500ms", "--url", server.url, "--token-file", join(dir, "token"))).toBe(EXIT.notReady);
    expect(out).toContain("contentcache/region-asia configured");
    expect(err).toMatch(/not converged after 2 s \(stored; the controller goes on\): contentcache\/region-asia Applying revision 2 \(running 1\)/);
    expect(await run("apply", "-f", spec("4h"), "--wait", "--url", server.url)).toBe(EXIT.unreachable);
    expect(err).toContain("requires a bearer token");
  }, 30_000);
});
