import { describe, expect, it } from "vitest";
import { formatIssue } from "@dtrcache/crds";
import { FakeSwarm } from "../swarm/fake.js";
import { EXAMPLES_DIR, runbookText } from "../testing/specs.js";
import { admit, writeChanges } from "./admission.js";
import { isStoreError } from "./errors.js";
import { revisionConfigName } from "./labels.js";
import { storeSpecSource } from "./source.js";
import { SpecStore } from "./store.js";

const text = (t: string, file = `${EXAMPLES_DIR}spec.yaml`) => ({ file, text: t, baseDir: EXAMPLES_DIR });

function setup(owner = "t") {
  const swarm = new FakeSwarm();
  const store = new SpecStore({ swarm, owner, who: "alice@host" });
  return { swarm, store };
}

async function apply(store: SpecStore, t: string) {
  const admitted = await admit(store, { texts: [text(t)] });
  return writeChanges(store, admitted.changes);
}

describe("SpecStore", () => {
  it("creates generation 1 per resource, then unchanged, then configured with the changed fields", async () => {
    const { swarm, store } = setup();
    expect((await apply(store, runbookText())).map((r) => `${r.kind}/${r.name} ${r.action} ${r.generation}`)).toEqual([
      "DTR/dtr created 1",
      "ContentCache/region-asia created 1",
    ]);
    expect((await apply(store, runbookText())).map((r) => r.action)).toEqual(["unchanged", "unchanged"]);
    const third = await apply(store, runbookText({ blobTTL: "1h" }));
    expect(third[1]).toMatchObject({ action: "configured", generation: 2, fields: ["spec.blobTTL"] });
    const history = await store.revisions("ContentCache", "region-asia");
    expect(history.map((r) => [r.generation, r.who, r.change])).toEqual([
      [1, "alice@host", "apply: created"],
      [2, "alice@host", "apply: spec.blobTTL"],
    ]);
    expect([...swarm.configs.values()].map((c) => c.name)).toContain(revisionConfigName("t", "ContentCache", "region-asia", 2));
    // File references are stored absolute: a controller elsewhere must find the same files.
    const cache = await store.get("ContentCache", "region-asia");
    expect((cache?.doc["spec"] as { tls: { certFile: string } }).tls.certFile).toBe(`${EXAMPLES_DIR}certs/cache.cert.pem`);
    expect((cache?.doc["metadata"] as { generation: number }).generation).toBe(2);
  });

  it("two writers based on one generation: exactly one wins, the other gets CONFLICT and writes nothing", async () => {
    const { swarm, store } = setup();
    await apply(store, runbookText());
    const other = new SpecStore({ swarm, owner: "t", who: "bob@elsewhere" });
    const a = await admit(store, { texts: [text(runbookText({ blobTTL: "1h" }))] });
    const b = await admit(other, { texts: [text(runbookText({ blobTTL: "2h" }))] });
    const results = await Promise.allSettled([writeChanges(store, a.changes), writeChanges(other, b.changes)]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((r) => r.status === "rejected");
    expect(isStoreError(rejected?.reason, "CONFLICT")).toBe(true);
    expect(String((rejected?.reason as Error).message)).toMatch(/was changed by alice@host/);
    const stored = await store.get("ContentCache", "region-asia");
    expect((stored?.doc["spec"] as { blobTTL: string }).blobTTL).toBe("1h");
    expect(await store.revisions("ContentCache", "region-asia")).toHaveLength(2);
  });

  it("a stale metadata.generation precondition is a CONFLICT before anything is written", async () => {
    const { swarm, store } = setup();
    await apply(store, runbookText());
    await apply(store, runbookText({ blobTTL: "1h" }));
    const before = swarm.configs.size;
    const stale = runbookText({ blobTTL: "3h" }).replace("name: region-asia", "name: region-asia\n  generation: 1");
    await expect(admit(store, { texts: [text(stale)] })).rejects.toMatchObject({ code: "CONFLICT" });
    expect(swarm.configs.size).toBe(before);
  });

  it("admission refuses an invalid resulting spec with file:line:col and writes nothing", async () => {
    const { swarm, store } = setup();
    await apply(store, runbookText());
    const before = swarm.configs.size;
    const error = await admit(store, { texts: [text(runbookText({ blobTTL: "one hour" }))] }).catch((e: unknown) => e);
    expect(isStoreError(error, "INVALID")).toBe(true);
    expect((error as { issues: { code: string }[] }).issues.map((i) => formatIssue(i as never))).toEqual([
      expect.stringMatching(/spec\.yaml:\d+:\d+ spec\.blobTTL: "one hour" is not a duration/),
    ]);
    // A cache alone whose DTR reference does not resolve against the store.
    const lone = runbookText().split("---")[1]?.replace("dtr: dtr", "dtr: other") ?? "";
    await expect(admit(store, { texts: [text(lone)] })).rejects.toMatchObject({
      code: "INVALID",
      issues: [expect.objectContaining({ code: "UNKNOWN_REFERENCE" })],
    });
    // Deleting the DTR a stored cache uses is refused, pointing at the stored cache.
    await expect(admit(store, { deletes: [{ kind: "DTR", name: "dtr" }] })).rejects.toMatchObject({
      code: "INVALID",
      issues: [expect.objectContaining({ file: "store:ContentCache/region-asia" })],
    });
    expect(swarm.configs.size).toBe(before);
  });

  it("delete writes a tombstone: the resource is gone, its history stays, a re-apply continues the count", async () => {
    const { store } = setup();
    await apply(store, runbookText());
    const del = await admit(store, { deletes: [{ kind: "ContentCache", name: "region-asia" }] });
    await writeChanges(store, del.changes);
    expect(await store.get("ContentCache", "region-asia")).toBeUndefined();
    expect((await store.list()).map((r) => r.name)).toEqual(["dtr"]);
    const again = await apply(store, runbookText());
    expect(again[1]).toMatchObject({ action: "created", generation: 3 });
    expect((await store.revisions("ContentCache", "region-asia")).map((r) => r.deleted)).toEqual([false, true, false]);
  });

  it("keeps the last 10 revisions per resource", async () => {
    const { store } = setup();
    for (let i = 1; i <= 13; i += 1) await apply(store, runbookText({ blobTTL: `${i}h` }));
    const kept = await store.revisions("ContentCache", "region-asia");
    expect(kept.map((r) => r.generation)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  });

  it("as a spec source: loads the stored spec, refuses a never-written store, fires on a new revision", async () => {
    const { swarm, store } = setup();
    const source = storeSpecSource(store, swarm, { debounceMs: 1, resyncMs: 60_000 });
    expect(await source.load()).toMatchObject({ ok: false, issues: [expect.objectContaining({ code: "STORE_EMPTY" })] });
    await apply(store, runbookText());
    const loaded = await source.load();
    expect(loaded.ok && loaded.spec.caches.map((c) => c.name)).toEqual(["region-asia"]);
    let fired = 0;
    const stop = await source.watch(() => (fired += 1));
    await apply(store, runbookText({ blobTTL: "2h" }));
    await new Promise((r) => setTimeout(r, 20));
    await stop();
    expect(fired).toBeGreaterThan(0);
  });

  it("long owner ids get a hashed, still deterministic config name within Swarm's 64 characters", () => {
    const name = revisionConfigName("x".repeat(60), "ContentCache", "region-asia", 7);
    expect(name.length).toBeLessThanOrEqual(64);
    expect(name).toBe(revisionConfigName("x".repeat(60), "ContentCache", "region-asia", 7));
    expect(name.endsWith("-r7")).toBe(true);
  });
});
