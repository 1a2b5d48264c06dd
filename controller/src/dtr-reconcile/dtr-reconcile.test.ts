// The DTR reconciler through the controller, on the fake Swarm with the DTR emulator in-process
// (issue 10, defects 1, 2, 3, 4, 10 and 12).
import { loadCacheSpecFromText, type LoadResult } from "@dtrcache/crds";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createController, type Controller } from "../controller.js";
import { createDtrSync, type DtrSyncService } from "../dtr/dtr-sync.js";
import { startEmulator, writesIn, type EmulatorHandle } from "../dtr/emulator.test-helper.js";
import { staticSpecSource, type SpecSource } from "../source.js";
import { conditionOf, type CacheStatus } from "../status.js";
import { FakeSwarm } from "../swarm/fake.js";
import { EXAMPLES_DIR } from "../testing/specs.js";

const PASSWORD = "adm1n-Pa55";
const USERS = Array.from({ length: 200 }, (_, i) => `u${String(i).padStart(3, "0")}`);
let dtr: EmulatorHandle;

function specText(caches: Record<string, readonly string[]>, withDtr = true): string {
  const docs = withDtr
    ? [
        `apiVersion: cache.dtr.io/v1alpha1\nkind: DTR\nmetadata:\n  name: main\nspec:\n  url: ${dtr.url}\n  admin:\n    username: admin\n    password:\n      env: DTR_TEST_PASSWORD\n  userConcurrency: 8\n`,
      ]
    : [];
  Object.entries(caches).forEach(([name, users], i) => {
    docs.push(
      `apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata:\n  name: ${name}\nspec:\n  dtr: main\n  node:\n    hostname: node-${i + 1}\n  nodeLabel: dtr.cache.${name}=true\n  externalURL: https://${name}.example.com:${5000 + i}\n  port: ${5000 + i}\n  debugPort: ${6000 + i}\n  tls:\n    generate: true\n  users:${users.length === 0 ? " []" : users.map((u) => `\n    - ${u}`).join("")}\n`,
    );
  });
  return docs.join("---\n");
}

function load(text: string): LoadResult {
  const result = loadCacheSpecFromText(text, `${EXAMPLES_DIR}spec.yaml`, EXAMPLES_DIR);
  if (!result.ok) throw new Error(`test spec does not load: ${JSON.stringify(result.issues)}`);
  return result;
}

interface Rig {
  fake: FakeSwarm;
  source: SpecSource & { set(result: LoadResult): void };
  sync: DtrSyncService;
  controller: Controller;
}

/** Two passes: the first creates the service, the second finds it Ready and points DTR at it (make-before-break, settleMs 0). */
async function converge(c: Controller): Promise<void> {
  await c.reconcileOnce();
  await c.reconcileOnce();
}

const rigs: Rig[] = [];
function rig(initial: LoadResult, extra: { allowEmpty?: boolean; fake?: FakeSwarm; id?: string; settleMs?: number; clock?: { now(): Date } } = {}): Rig {
  const fake = extra.fake ?? new FakeSwarm(["node-1", "node-2"]);
  const source = staticSpecSource(initial);
  const sync = createDtrSync({ env: { DTR_TEST_PASSWORD: PASSWORD }, timeoutMs: 2_000, retry: { retries: 0, minTimeoutMs: 10, maxTimeoutMs: 20 } });
  const controller = createController({
    docker: fake,
    specSource: source,
    dtrSync: sync,
    id: extra.id ?? "test",
    allowEmpty: extra.allowEmpty ?? false,
    rolloutPollMs: 50,
    resyncIntervalMs: 3_600_000,
    dtrResyncMs: 3_600_000,
    settleMs: extra.settleMs ?? 0,
    ...(extra.clock ? { clock: extra.clock } : {}),
  });
  const r = { fake, source, sync, controller };
  rigs.push(r);
  return r;
}

const cacheOf = (c: Controller, name: string): CacheStatus | undefined => c.status().caches.find((x) => x.name === name);
const idOf = (name: string): string | undefined => dtr.contentCaches().find((x) => x.name === name)?.id;

/** Users whose DTR setting is not what the spec says: pointing at the wrong cache, or at none. */
function wrongUsers(expected: Record<string, readonly string[]>): string[] {
  const settings = dtr.settings();
  const wrong: string[] = [];
  for (const [cache, users] of Object.entries(expected)) for (const u of users) if (settings[u] !== idOf(cache)) wrong.push(`${u}->${settings[u] ?? "?"}`);
  return wrong;
}

/** DtrSynced=True for the current generation must be the truth: every listed user points at the cache. */
function assertTruthful(c: Controller, expected: Record<string, readonly string[]>): void {
  for (const [cache, users] of Object.entries(expected)) {
    const status = cacheOf(c, cache);
    if (!status || status.observedGeneration !== status.generation || conditionOf(status, "DtrSynced")?.status !== "True") continue;
    const settings = dtr.settings();
    const off = users.filter((u) => settings[u] !== idOf(cache));
    expect(off, `${cache} says DtrSynced=True`).toEqual([]);
  }
}

beforeAll(async () => {
  dtr = await startEmulator({
    users: [
      { username: "admin", password: PASSWORD, admin: true },
      ...USERS.map((username) => ({ username, password: "x" })),
      { username: "dave", password: "d" },
    ],
  });
});
afterAll(async () => {
  await dtr.stop();
});
beforeEach(() => {
  dtr.setFaults({ down: false, failRequests: 0, failStatus: 500, failOnly: undefined, loseAnswers: 0, delayMs: 0 });
});
afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.controller.stop();
    await r.sync.close();
  }
  const admin = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString("base64")}` };
  for (const cache of dtr.contentCaches()) await fetch(`${dtr.url}/api/v0/content_caches/${cache.id}`, { method: "DELETE", headers: admin });
  for (const user of Object.keys(dtr.settings())) dtr.seed.userSetting(user, "");
  dtr.clearRequestLog();
});

describe("DTR reconciler", () => {
  it("moves 200 users between two caches 10 times: 0 users wrong after each round, DtrSynced true only when it is (defect 1)", async () => {
    // All 200 users move from one cache to the other in one edit: one cache only resets while the
    // other only assigns, the same users in the same order — the interleaving issue 10 saw.
    const roundSpec = (round: number): Record<string, readonly string[]> =>
      round % 2 === 0 ? { "cache-a": USERS, "cache-b": [] } : { "cache-a": [], "cache-b": USERS };
    const r = rig(load(specText(roundSpec(0))));
    // A little latency per DTR call makes the two caches' passes overlap, as against a real DTR:
    // cache-a's reset of a user and cache-b's assignment of the same user interleave.
    dtr.setFaults({ delayMs: 2 });
    await r.controller.start();
    const wrongPerRound: number[] = [];
    for (let round = 0; round <= 10; round += 1) {
      const expected = roundSpec(round);
      if (round > 0) r.source.set(load(specText(expected)));
      await expect
        .poll(
          () => {
            assertTruthful(r.controller, expected);
            return ["cache-a", "cache-b"].every((n) => {
              const s = cacheOf(r.controller, n);
              return s !== undefined && s.observedGeneration === s.generation && conditionOf(s, "DtrSynced")?.status === "True";
            });
          },
          { timeout: 20_000, interval: 20 },
        )
        .toBe(true);
      await r.controller.idle();
      assertTruthful(r.controller, expected);
      wrongPerRound.push(wrongUsers(expected).length);
    }
    expect(wrongPerRound).toEqual(Array.from({ length: 11 }, () => 0));
  }, 120_000);

  it("resets a user dropped from the spec although the first DTR pass after the edit failed (defect 2)", async () => {
    const r = rig(load(specText({ "cache-a": ["u000", "u001"] })));
    await converge(r.controller);
    expect(dtr.settings()).toMatchObject({ u000: idOf("cache-a"), u001: idOf("cache-a") });
    dtr.setFaults({ down: true });
    r.source.set(load(specText({ "cache-a": ["u000"] })));
    await r.controller.reconcileOnce();
    expect(conditionOf(cacheOf(r.controller, "cache-a"), "DtrSynced")?.status).toBe("False");
    dtr.setFaults({ down: false });
    // The pass back-off (1 s), not the periodic verification (1 h here), brings it back.
    await r.controller.start();
    await expect.poll(() => dtr.settings().u001, { timeout: 10_000 }).toBe("");
    expect(dtr.settings().u000).toBe(idOf("cache-a"));
  });

  it("retries a failed user PATCH with its own back-off and says DtrSynced=False naming it until then (defects 3, 12)", async () => {
    const r = rig(load(specText({ "cache-a": ["u000", "u001"] })));
    dtr.setFaults({ failRequests: 1_000, failStatus: 500, failOnly: { method: "PATCH", pathPrefix: "/api/v0/accounts/u001" } });
    await converge(r.controller);
    const dtrCondition = conditionOf(cacheOf(r.controller, "cache-a"), "DtrSynced");
    expect(dtrCondition).toMatchObject({ status: "False", reason: "UserUpdateFailed" });
    expect(dtrCondition?.message).toContain("u001");
    expect(cacheOf(r.controller, "cache-a")?.dtr.users).toEqual([
      { username: "u000", state: "assigned" },
      { username: "u001", state: "failed" },
    ]);
    dtr.setFaults({ failRequests: 0, failOnly: undefined });
    await r.controller.start();
    await expect.poll(() => conditionOf(cacheOf(r.controller, "cache-a"), "DtrSynced")?.status, { timeout: 10_000 }).toBe("True");
    expect(dtr.settings().u001).toBe(idOf("cache-a"));
  });

  it("says DtrSynced=False/UnknownUsers naming a user DTR does not know (404 NO_SUCH_USER) (defects 3, 12)", async () => {
    const r = rig(load(specText({ "cache-a": ["u000", "zed"] })));
    await converge(r.controller);
    const dtrCondition = conditionOf(cacheOf(r.controller, "cache-a"), "DtrSynced");
    expect(dtrCondition).toMatchObject({ status: "False", reason: "UnknownUsers" });
    expect(dtrCondition?.message).toContain("zed");
  });

  it("tears the DTR side down with a spec that has no documents at all, from a fresh controller (defect 4)", async () => {
    const first = rig(load(specText({ "cache-a": ["u000", "u001"] })));
    await converge(first.controller);
    expect(dtr.contentCaches()).toHaveLength(1);
    // A new process: it never saw the DTR document; the spec file is empty.
    const second = rig(load(""), { allowEmpty: true, fake: first.fake });
    const reports = await second.controller.reconcileOnce();
    expect(reports.map((x) => [x.cache, x.mode, x.error])).toEqual([["cache-a", "teardown", undefined]]);
    expect(dtr.contentCaches()).toEqual([]);
    expect(dtr.settings()).toMatchObject({ u000: "", u001: "" });
    expect(first.fake.configs.size + first.fake.services.size).toBe(0);
  });

  it("never deletes a registration of the same name it does not own, and reports it (defect 10)", async () => {
    const theirs = dtr.seed.contentCache("cache-a", "https://other-swarm.example.com:5000");
    const r = rig(load(specText({ "cache-a": ["u000"] })), { allowEmpty: true });
    await converge(r.controller);
    expect(conditionOf(cacheOf(r.controller, "cache-a"), "DtrSynced")).toMatchObject({ status: "False", reason: "DTR_NOT_OWNED" });
    r.source.set(load(""));
    await r.controller.reconcileOnce();
    expect(dtr.contentCaches().map((c) => c.id)).toEqual([theirs.id]);
    expect(writesIn(dtr.requestLog()).filter((w) => w.method === "DELETE")).toEqual([]);
  });

  it("registers a new cache and re-points a moved one only once its new task has settled: make-before-break (defect 8)", async () => {
    let now = Date.UTC(2026, 10, 1);
    const clock = { now: () => new Date(now) };
    const r = rig(load(specText({ "cache-a": ["u000", "u001"] })), { settleMs: 10_000, clock });
    const dtrSynced = () => conditionOf(cacheOf(r.controller, "cache-a"), "DtrSynced");
    const registered = () => dtr.contentCaches().map((c) => c.host);
    await r.controller.reconcileOnce(); // creates the service
    await r.controller.reconcileOnce(); // its task runs, not yet for 10 s
    expect(registered()).toEqual([]);
    expect(dtrSynced()).toMatchObject({ status: "Unknown", reason: "WaitingForCache" });
    now += 10_000;
    await r.controller.reconcileOnce();
    expect(registered()).toEqual(["https://cache-a.example.com:5000"]);
    expect(wrongUsers({ "cache-a": ["u000", "u001"] })).toEqual([]);
    const before = idOf("cache-a");

    // Host and port change: the old registration and the users stay until the new task has settled.
    r.source.set(load(specText({ "cache-a": ["u000", "u001"] }).replaceAll("5000", "5100")));
    await r.controller.reconcileOnce(); // updates the service
    await r.controller.reconcileOnce(); // the new task runs
    now += 9_000;
    await r.controller.reconcileOnce();
    expect(registered()).toEqual(["https://cache-a.example.com:5000"]);
    expect(dtr.settings()["u000"]).toBe(before);
    expect(dtrSynced()).toMatchObject({ status: "Unknown", reason: "WaitingForCache" });
    now += 1_000;
    await r.controller.reconcileOnce();
    expect(registered()).toEqual(["https://cache-a.example.com:5100"]);
    expect(wrongUsers({ "cache-a": ["u000", "u001"] })).toEqual([]);
    expect(dtrSynced()).toMatchObject({ status: "True" });
  });
});
