// Faster DTR drift detection (issue 10, defect 9), through the controller on the fake Swarm with the
// DTR emulator in-process, time on a FakeClock. Before the drift check, DTR was looked at again
// only by the periodic verification (60 s) that the resync (30 s) happens to run: a registration
// deleted by hand came back after 60-90 s, and DTR restored from a backup between two such
// verifications was noticed only if the backup lacked the registration.
import { loadCacheSpecFromText, type LoadResult } from "@dtrcache/crds";
import { afterEach, describe, expect, it } from "vitest";
import { startEmulator, type EmulatorHandle } from "../dtr/emulator.test-helper.js";
import { conditionOf } from "../status.js";
import { FakeSwarm } from "../swarm/fake.js";
import { startDtrRig, stopDtrRigs, type DtrRig } from "../testing/dtr-rig.js";
import { EXAMPLES_DIR } from "../testing/specs.js";
import { DEFAULT_DTR_CHECK_MS } from "./drift.js";

const PASSWORD = "adm1n-Pa55";
const USERS = [{ username: "admin", password: PASSWORD, admin: true }, ...["u000", "u001", "u002", "u003"].map((username) => ({ username, password: "x" }))];
const ADMIN = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString("base64")}` };

function spec(url: string, caches: Record<string, readonly string[]>): LoadResult {
  const docs = [
    `apiVersion: cache.dtr.io/v1alpha1\nkind: DTR\nmetadata:\n  name: main\nspec:\n  url: ${url}\n  admin:\n    username: admin\n    password:\n      env: DTR_TEST_PASSWORD\n`,
  ];
  Object.entries(caches).forEach(([name, users], i) => {
    docs.push(
      `apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata:\n  name: ${name}\nspec:\n  dtr: main\n  node:\n    hostname: node-${i + 1}\n  nodeLabel: dtr.cache.${name}=true\n  externalURL: https://${name}.example.com:${5000 + i}\n  port: ${5000 + i}\n  debugPort: ${6000 + i}\n  tls:\n    generate: true\n  users: [${users.join(", ")}]\n`,
    );
  });
  const result = loadCacheSpecFromText(docs.join("---\n"), `${EXAMPLES_DIR}spec.yaml`, EXAMPLES_DIR);
  if (!result.ok) throw new Error(`test spec does not load: ${JSON.stringify(result.issues)}`);
  return result;
}

const emulators: EmulatorHandle[] = [];
afterEach(async () => {
  await stopDtrRigs();
  for (const e of emulators.splice(0)) await e.stop();
});

async function emulator(port?: number): Promise<EmulatorHandle> {
  const e = await startEmulator({ users: USERS, ...(port !== undefined ? { port } : {}) });
  emulators.push(e);
  return e;
}

/**
 * A controller on the production intervals (resync 30 s, DTR verification 60 s, drift check
 * 10 s), converged and started: the caches are registered, their users assigned, the loop runs.
 */
const startedRig = (dtr: EmulatorHandle, caches: Record<string, readonly string[]>): Promise<DtrRig> =>
  startDtrRig({ spec: spec(dtr.url, caches), swarm: new FakeSwarm(["node-1", "node-2"]), id: "drift", env: { DTR_TEST_PASSWORD: PASSWORD } });

const registration = (dtr: EmulatorHandle, name: string) => dtr.contentCaches().find((c) => c.name === name);

/** The listed users of each cache that do not point at its registration. */
function wrongUsers(dtr: EmulatorHandle, caches: Record<string, readonly string[]>): string[] {
  const settings = dtr.settings();
  return Object.entries(caches).flatMap(([name, users]) =>
    users.filter((u) => settings[u] === undefined || settings[u] !== registration(dtr, name)?.id).map((u) => `${name}:${u}`),
  );
}

function dtrSynced(r: DtrRig, name: string): string | undefined {
  return conditionOf(
    r.controller.status().caches.find((c) => c.name === name),
    "DtrSynced",
  )?.status;
}

/** Real time allowed for the one reconcile the check queues (a few local HTTP calls). */
const ONE_PASS = { timeout: 5_000, interval: 10 };

describe("DTR drift check", () => {
  it("restores a registration deleted by hand within one check interval (10 s) plus one pass, not 60-90 s", async () => {
    const dtr = await emulator();
    const caches = { "cache-a": ["u000", "u001"] };
    const r = await startedRig(dtr, caches);
    const before = registration(dtr, "cache-a");
    expect(before?.host).toBe("https://cache-a.example.com:5000");
    expect(wrongUsers(dtr, caches)).toEqual([]);

    await fetch(`${dtr.url}/api/v0/content_caches/${before?.id ?? ""}`, { method: "DELETE", headers: ADMIN });
    expect(registration(dtr, "cache-a")).toBeUndefined();
    // Just short of the interval nothing has looked yet.
    r.clock.advance(DEFAULT_DTR_CHECK_MS - 1);
    await r.controller.idle();
    expect(registration(dtr, "cache-a")).toBeUndefined();
    r.clock.advance(1);
    await expect.poll(() => registration(dtr, "cache-a")?.host, ONE_PASS).toBe("https://cache-a.example.com:5000");
    expect(r.logger.entries.find((e) => e.message.startsWith("DTR drift"))?.fields).toMatchObject({
      cache: "cache-a",
      reason: `registration ${before?.id ?? ""} is no longer in DTR's list`,
    });
    // Users pointed at the new registration in the same pass.
    await expect.poll(() => wrongUsers(dtr, caches), ONE_PASS).toEqual([]);
    await r.controller.idle();
    expect(dtrSynced(r, "cache-a")).toBe("True");
  });

  it("restores registration and user settings after DTR restarted empty between two checks, unseen by any call", async () => {
    const first = await emulator();
    const port = Number(new URL(first.url).port);
    const caches = { "cache-a": ["u000", "u001"] };
    const r = await startedRig(first, caches);
    expect(wrongUsers(first, caches)).toEqual([]);
    r.clock.advance(DEFAULT_DTR_CHECK_MS);
    await r.controller.idle();

    // DTR goes away and comes back empty (a restore from an old backup, a rebuilt DTR) between checks.
    await first.stop();
    emulators.splice(emulators.indexOf(first), 1);
    const second = await emulator(port);
    expect(second.url).toBe(first.url);
    expect(second.contentCaches()).toEqual([]);
    // Ten real seconds between checks outlive undici's 4 s keep-alive, so the next check opens a
    // new connection; time here is fake, so the idle connections are dropped as that timeout would.
    // (A pooled connection the restart cut would fail the check instead: an outage, whose end
    // verifies in full as well — the next test.)
    await r.sync.close();

    r.clock.advance(DEFAULT_DTR_CHECK_MS);
    await r.controller.idle();
    console.log(
      "after check",
      JSON.stringify(r.logger.entries.filter((e) => e.level !== "debug").slice(-6)),
      second.contentCaches(),
      second.requestLog().map((e) => `${e.method} ${e.path} ${e.status}`),
      JSON.stringify(r.controller.status().caches.map((c) => c.conditions)),
    );
    await expect.poll(() => registration(second, "cache-a")?.host, ONE_PASS).toBe("https://cache-a.example.com:5000");
    await expect.poll(() => wrongUsers(second, caches), ONE_PASS).toEqual([]);
    await r.controller.idle();
    expect(dtrSynced(r, "cache-a")).toBe("True");
  });

  it("verifies every cache in full once DTR answers the check again after an outage: user settings lost, registration kept", async () => {
    const dtr = await emulator();
    const caches = { "cache-a": ["u000", "u001"], "cache-b": ["u002"] };
    const r = await startedRig(dtr, caches);
    expect(wrongUsers(dtr, caches)).toEqual([]);

    dtr.setFaults({ down: true });
    r.clock.advance(DEFAULT_DTR_CHECK_MS);
    await r.controller.idle();
    // While it was away, DTR was restored from a backup that has both registrations but none of
    // the user settings: its list looks exactly as before.
    for (const u of ["u000", "u001", "u002"]) dtr.seed.userSetting(u, "");
    dtr.setFaults({ down: false });
    expect(wrongUsers(dtr, caches)).toHaveLength(3);

    r.clock.advance(DEFAULT_DTR_CHECK_MS);
    await expect.poll(() => wrongUsers(dtr, caches), ONE_PASS).toEqual([]);
  });

  it("an outage seen by a cache's own pass re-verifies the other caches on that DTR when the pass succeeds again", async () => {
    const dtr = await emulator();
    const caches = { "cache-a": ["u000"], "cache-b": ["u002"] };
    const r = await startedRig(dtr, caches);
    expect(wrongUsers(dtr, caches)).toEqual([]);

    // An edit of cache-a's users meets DTR down: its pass fails and is retried with back-off (1 s).
    dtr.setFaults({ down: true });
    const edited = { "cache-a": ["u000", "u001"], "cache-b": ["u002"] };
    r.source.set(spec(dtr.url, edited));
    await expect.poll(() => dtrSynced(r, "cache-a"), ONE_PASS).toBe("False");
    await r.controller.idle();
    dtr.seed.userSetting("u002", "");
    dtr.setFaults({ down: false });

    // Well before the drift check's interval: cache-a's retry reaches DTR, and cache-b follows.
    r.clock.advance(1_000);
    await expect.poll(() => wrongUsers(dtr, edited), ONE_PASS).toEqual([]);
  });
});
