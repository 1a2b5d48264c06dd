// plan/diff's dry run (issue 13, item 2; issue 11, item 6): DTR actions read from DTR itself (the
// emulator) — registration create, users that will change, unknown users, a registration of the
// name that is not ours — and Swarm object names that are exactly what the apply creates.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createController } from "../controller.js";
import type { DtrSync } from "../dtr/sync.js";
import { startEmulator, type EmulatorHandle } from "../dtr/emulator.test-helper.js";
import { DtrRecordStore } from "../dtr-reconcile/record.js";
import { memoryLogger } from "../logger.js";
import { staticSpecSource } from "../source.js";
import { FakeSwarm } from "../swarm/fake.js";
import { recordSwarmApi } from "../swarm/recording.js";
import { load, runbookText } from "../testing/specs.js";
import { serverDryRun } from "./dry-run.js";
import { GENERATED } from "./plan-names.js";

let dtr: EmulatorHandle;
beforeAll(async () => {
  dtr = await startEmulator({
    users: [
      { username: "admin", password: "pw", admin: true },
      { username: "alice", password: "a" },
      { username: "bob", password: "b" },
    ],
  });
});
afterAll(async () => {
  await dtr.stop();
});

const env = { DTR_ADMIN_PASSWORD: "pw" };

function specFor(users: string[]) {
  const text = runbookText({ users }).replace(/url: https:\/\/dtr\.example\.com:443\n {2}trust:\n {4}caFile: certs\/dtr\.cert\.pem\n/, `url: ${dtr.url}\n`);
  const loaded = load(text);
  if (!loaded.ok) throw new Error("spec");
  return loaded.spec;
}

describe("dry run, DTR side read live", () => {
  it("a new cache: create the registration, point the listed users once Ready, name unknown users; writes nothing anywhere", async () => {
    const swarm = recordSwarmApi(new FakeSwarm(["node-1"]));
    dtr.clearRequestLog();
    const text = await serverDryRun(swarm, "dtrcache", specFor(["alice", "ghost"]), { env });
    expect(text).toMatch(/DTR:\nregion-asia \(apply\)\n {2}\+ create registration region-asia \(host https:\/\/dtr-cache\.example\.com\)\n/);
    expect(text).toContain("  ~ user alice: content cache (unset) -> the new registration of region-asia (once region-asia is Ready)");
    expect(text).toContain("  ! user ghost: DTR has no such user");
    expect(swarm.mutatingCalls()).toEqual([]);
    expect(dtr.requestLog().filter((e) => e.method !== "GET")).toEqual([]);
    // no user name in a request other than their own settings read
    expect(dtr.requestLog().map((e) => `${e.method} ${e.path}`)).toEqual(
      expect.arrayContaining(["GET /api/v0/content_caches", "GET /api/v0/accounts/alice/settings"]),
    );
  });

  it("warns about a registration of the name this controller did not create, and plans no create next to it", async () => {
    const foreign = dtr.seed.contentCache("region-asia", "https://elsewhere.example.com");
    try {
      const text = await serverDryRun(new FakeSwarm(["node-1"]), "dtrcache", specFor(["alice"]), { env });
      expect(text).toContain(
        `! DTR registration ${foreign.id} of region-asia (host https://elsewhere.example.com) was not created by this controller: it is never changed or deleted, and region-asia cannot be registered next to it (DTR_NOT_OWNED)`,
      );
      expect(text).not.toContain("+ create registration");
    } finally {
      const admin = dtr.contentCaches().find((c) => c.id === foreign.id);
      if (admin)
        await fetch(`${dtr.url}/api/v0/content_caches/${foreign.id}`, {
          method: "DELETE",
          headers: { authorization: `Basic ${Buffer.from("admin:pw").toString("base64")}` },
        });
    }
  });

  it("an existing cache: users already pointed are unchanged, a user that left the spec is reset, a new one pointed", async () => {
    const swarm = new FakeSwarm(["node-1"]);
    const ours = dtr.seed.contentCache("region-asia", "https://dtr-cache.example.com");
    dtr.seed.userSetting("alice", ours.id);
    dtr.seed.userSetting("bob", ours.id);
    const spec = specFor(["alice", "admin"]);
    const cacheDtr = spec.dtrs[0];
    if (!cacheDtr) throw new Error("dtr");
    await new DtrRecordStore(swarm, "dtrcache").write({
      cache: "region-asia",
      dtr: cacheDtr,
      registrationIds: [ours.id],
      host: "https://dtr-cache.example.com",
      users: ["alice", "bob"],
    });
    const text = await serverDryRun(swarm, "dtrcache", spec, { env });
    const dtrPart = text.slice(text.indexOf("DTR:"));
    expect(dtrPart).not.toContain("registration region-asia");
    expect(dtrPart).toContain(`  ~ user bob: content cache ${ours.id} -> (unset) (left the spec)`);
    expect(dtrPart).toContain(`  ~ user admin: content cache (unset) -> ${ours.id} (once region-asia is Ready)`);
    expect(dtrPart).not.toContain("user alice");
  });

  it("falls back to the controller's record, saying why, when DTR cannot be asked from here", async () => {
    const text = await serverDryRun(new FakeSwarm(["node-1"]), "dtrcache", specFor(["alice"]), { env: {} });
    expect(text).toMatch(
      / {2}\(DTR http:\/\/127\.0\.0\.1:\d+ not asked: DTR_CREDENTIALS: environment variable DTR_ADMIN_PASSWORD \(DTR admin password\) is not set; from the controller's record\)\n {2}\+ register region-asia/,
    );
  });
});

describe("dry run from an operator's shell, the password a Swarm secret", () => {
  // Before: "(DTR … not asked: DTR_CREDENTIALS: cannot read DTR admin password file
  // /run/secrets/dtr-admin-password: ENOENT; …)", an error code in a normal `diff`.
  it("says calmly that only the controller can read it, and plans from the record", async () => {
    const text = runbookText({ users: ["alice"] })
      .replace(/url: https:\/\/dtr\.example\.com:443\n {2}trust:\n {4}caFile: certs\/dtr\.cert\.pem\n/, `url: ${dtr.url}\n`)
      .replace("env: DTR_ADMIN_PASSWORD", "secret: dtrcache-test-no-such-secret");
    const loaded = load(text);
    if (!loaded.ok) throw new Error("spec");
    const out = await serverDryRun(new FakeSwarm(["node-1"]), "dtrcache", loaded.spec, { env: {} });
    expect(out).toContain(
      `  (DTR ${dtr.url} not asked from this shell: the admin password is a Swarm secret only the controller can read; the DTR actions below are from the controller's record)\n  + register region-asia`,
    );
    expect(out).not.toMatch(/DTR_CREDENTIALS|ENOENT/);
  });

  it("the same for DTR's CA as a Swarm secret the shell does not have", async () => {
    const text = runbookText({ users: ["alice"] }).replace("caFile: certs/dtr.cert.pem", "caFile: {secret: dtrcache-test-no-such-ca}");
    const loaded = load(text);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
    const swarm = new FakeSwarm(["node-1"]);
    await swarm.createSecret({ name: "dtrcache-test-no-such-ca", labels: {}, data: Buffer.from("pem") });
    const out = await serverDryRun(swarm, "dtrcache", loaded.spec, { env, dtrCa: () => Promise.resolve(undefined) });
    expect(out).toContain(
      "not asked from this shell: DTR's CA is a Swarm secret only the controller can read; the DTR actions below are from the controller's record)",
    );
    expect(out).not.toMatch(/ENOENT/);
  });
});

describe("dry run, Swarm names", () => {
  const okDtr: DtrSync = {
    apply: (cache) =>
      Promise.resolve({ registrationId: "r", host: "h", users: cache.spec.users.map((username) => ({ username, state: "assigned" as const })) }),
    remove: () => Promise.resolve({ foreign: [] }),
  };

  it("prints only names apply creates: a name covering generated material is a placeholder, every other one is created as printed", async () => {
    const swarm = new FakeSwarm(["node-1"]);
    const spec = specFor(["alice"]);
    const text = await serverDryRun(swarm, "dtrcache", spec, { env });
    const printed = [...text.matchAll(/\+ create (?:config|secret) (\S+)/g)].map((m) => m[1] ?? "");
    expect(printed).toContain(`region-asia-config-${GENERATED}`);
    expect(text).toContain(`note: region-asia-config-${GENERATED}: the name's hash covers material generated when apply runs`);
    const exact = printed.filter((n) => !n.includes(GENERATED));
    expect(exact.length).toBeGreaterThan(0);
    const controller = createController({
      docker: swarm,
      specSource: staticSpecSource({ ok: true, spec }),
      dtrSync: okDtr,
      logger: memoryLogger(),
      id: "dtrcache",
      settleMs: 0,
    });
    await controller.reconcileOnce();
    const created = new Set([...swarm.configs.values(), ...swarm.secrets.values()].map((b) => b.name));
    for (const name of exact) expect(created.has(name), name).toBe(true);
    // once it exists, every name is stable: a second dry run of a change prints real names only
    const after = await serverDryRun(swarm, "dtrcache", specFor(["alice", "bob"]), { env });
    expect(after).not.toContain(GENERATED);
  });
});
