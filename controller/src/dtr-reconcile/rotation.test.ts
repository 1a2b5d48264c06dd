// A rotated DTR admin credential is tried at once (issue 10/11/13 follow-up). The cache's spec
// generation covers only DTR's URL and name, so before this a changed password reference (the
// runbook's rotation: `password: {secret: dtr-admin-password.2}`) or a rewritten password file
// left DtrSynced on the last pass's result until the 60 s verification: `apply --wait` could not
// show that the new credential works. Fake Swarm, the DTR emulator in-process, time on a FakeClock
// that is not advanced past the verification interval.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCacheSpecFromText, type LoadResult } from "@dtrcache/crds";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type EmulatorHandle } from "../dtr/emulator.test-helper.js";
import { conditionOf } from "../status.js";
import { FakeSwarm } from "../swarm/fake.js";
import { startDtrRig, stopDtrRigs, type DtrRig } from "../testing/dtr-rig.js";
import { EXAMPLES_DIR } from "../testing/specs.js";
import { dtrResourceHash } from "./inputs.js";

const PASSWORD = "r0tated-Pa55";
let dtr: EmulatorHandle;
let dir: string;

function spec(passwordFile: string): LoadResult {
  const text = [
    `apiVersion: cache.dtr.io/v1alpha1\nkind: DTR\nmetadata:\n  name: main\nspec:\n  url: ${dtr.url}\n  admin:\n    username: admin\n    password:\n      file: ${passwordFile}\n`,
    `apiVersion: cache.dtr.io/v1alpha1\nkind: ContentCache\nmetadata:\n  name: cache-a\nspec:\n  dtr: main\n  node:\n    hostname: node-1\n  nodeLabel: dtr.cache.cache-a=true\n  externalURL: https://cache-a.example.com:5000\n  port: 5000\n  tls:\n    generate: true\n  users: [u000, u001]\n`,
  ].join("---\n");
  const result = loadCacheSpecFromText(text, `${EXAMPLES_DIR}spec.yaml`, EXAMPLES_DIR);
  if (!result.ok) throw new Error(`test spec does not load: ${JSON.stringify(result.issues)}`);
  return result;
}

function passwordFile(name: string, value: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${value}\n`);
  return file;
}

/** A controller on the production intervals (resync 30 s, DTR verification 60 s), drift check off, converged and started. */
const startedRig = (initial: LoadResult, swarm = new FakeSwarm(["node-1"])): Promise<DtrRig> =>
  startDtrRig({ spec: initial, swarm, id: "rotation", dtrCheckMs: 0 });

const cacheStatus = (r: DtrRig) => r.controller.status().caches.find((c) => c.name === "cache-a");
const dtrSynced = (r: DtrRig) => conditionOf(cacheStatus(r), "DtrSynced");
/** Real time allowed for the one reconcile a change queues (a few local HTTP calls). */
const ONE_PASS = { timeout: 5_000, interval: 10 };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dtrcache-rotation-"));
  dtr = await startEmulator({
    users: [{ username: "admin", password: PASSWORD, admin: true }, ...["u000", "u001"].map((username) => ({ username, password: "x" }))],
  });
});
afterAll(async () => {
  await dtr.stop();
});
afterEach(stopDtrRigs);

describe("DTR credential rotation", () => {
  it("a changed password reference brings a DTR pass at once, and the status names the DTR resource it ran with", async () => {
    // The old reference holds a password DTR no longer accepts (DTR's password was changed first).
    const r = await startedRig(spec(passwordFile("old", "0ld-Pa55")));
    expect(dtrSynced(r)).toMatchObject({ status: "False", reason: "DTR_UNAUTHENTICATED" });
    const before = cacheStatus(r)?.dtr.resourceHash;
    expect(before).toBeDefined();

    const rotated = spec(passwordFile("new", PASSWORD));
    r.source.set(rotated);
    // No clock advance: before the fix the failed pass's back-off (the 60 s verification, 401 is
    // not retried) held the new reference back and DtrSynced stayed False.
    await expect.poll(() => dtrSynced(r)?.status, ONE_PASS).toBe("True");
    const resource = rotated.ok ? rotated.spec.dtrs[0] : undefined;
    expect(cacheStatus(r)?.dtr.resourceHash).toBe(resource ? dtrResourceHash(resource) : "none");
    expect(cacheStatus(r)?.dtr.resourceHash).not.toBe(before);
    expect(r.logger.entries.some((e) => e.message.includes("admin credential changed"))).toBe(true);
  });

  it("a password file rewritten in place is tried at the next look (the 30 s resync), not at the 60 s verification", async () => {
    const file = passwordFile("in-place", "0ld-Pa55");
    const r = await startedRig(spec(file));
    expect(dtrSynced(r)).toMatchObject({ status: "False", reason: "DTR_UNAUTHENTICATED" });
    writeFileSync(file, `${PASSWORD}\n`);
    r.clock.advance(30_000);
    await expect.poll(() => dtrSynced(r)?.status, ONE_PASS).toBe("True");
    expect(dtr.settings()).toMatchObject({ u000: expect.any(String), u001: expect.any(String) });
  });

  it("never puts the password, or a hash a log reader could test guesses against, in status or logs", async () => {
    const r = await startedRig(spec(passwordFile("secret", PASSWORD)));
    expect(dtrSynced(r)?.status).toBe("True");
    const visible = JSON.stringify(r.controller.status()) + JSON.stringify(r.logger.entries);
    expect(visible).not.toContain(PASSWORD);
    const { createHash } = await import("node:crypto");
    for (const value of [PASSWORD, `value:${PASSWORD}`]) expect(visible).not.toContain(createHash("sha256").update(value).digest("hex").slice(0, 16));
  });

  it("a restarted controller with other credential material reports its own pass, not the earlier result", async () => {
    // Holds before the change too (a new process has no earlier pass): kept so that it stays so.
    const file = passwordFile("restart", PASSWORD);
    const fake = new FakeSwarm(["node-1"]);
    const first = await startedRig(spec(file), fake);
    expect(dtrSynced(first)?.status).toBe("True");
    await first.controller.stop();
    writeFileSync(file, "0ld-Pa55\n");
    const second = await startedRig(spec(file), fake);
    expect(dtrSynced(second)).toMatchObject({ status: "False", reason: "DTR_UNAUTHENTICATED" });
  });
});
