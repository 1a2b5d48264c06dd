import { describe, expect, it } from "vitest";
import type { LoadResult } from "@dtrcache/crds";
import { memoryLogger } from "../logger.js";
import { staticSpecSource } from "../source.js";
import { load, runbookText } from "../testing/specs.js";
import { FakeClock } from "./fake-clock.js";
import { SpecTracker } from "./spec-tracker.js";

function tracker(initial: LoadResult, owned: string[] = []) {
  const source = staticSpecSource(initial);
  return { source, tracker: new SpecTracker({ source, clock: new FakeClock(), logger: memoryLogger(), allowEmpty: false, owned: () => owned }) };
}

const empty: LoadResult = { ok: true, spec: { dtrs: [], caches: [], files: ["empty.yaml"] } };

describe("SpecTracker", () => {
  it("hands out a frozen snapshot that a later load replaces, never changes", async () => {
    const { source, tracker: t } = tracker(load(runbookText()));
    await t.load();
    const first = t.snapshot();
    expect(Object.isFrozen(first?.caches[0]?.spec)).toBe(true);
    source.set(load(runbookText({ blobTTL: "12h" })));
    const outcome = await t.load();
    expect(t.snapshot()).not.toBe(first);
    expect(first?.caches[0]?.spec.blobTTL).not.toBe(t.snapshot()?.caches[0]?.spec.blobTTL);
    expect(outcome).toMatchObject({ loaded: true, names: ["region-asia"] });
    expect(outcome.loaded && [...outcome.changed.keys()]).toEqual(["region-asia"]);
  });

  it("reports no change when the generation is the same", async () => {
    const { source, tracker: t } = tracker(load(runbookText()));
    await t.load();
    source.set(load(runbookText()));
    const outcome = await t.load();
    expect(outcome.loaded && outcome.changed.size).toBe(0);
  });

  it("keeps the last good spec and records the errors of a bad load", async () => {
    const { source, tracker: t } = tracker(load(runbookText()));
    await t.load();
    const good = t.snapshot();
    source.set({ ok: false, issues: [{ code: "YAML_SYNTAX", file: "spec.yaml", path: "", message: "bad indentation", line: 3, column: 1 }] });
    expect(await t.load()).toEqual({ loaded: false });
    expect(t.snapshot()).toBe(good);
    expect(t.status()).toMatchObject({ loaded: true, errors: [expect.stringContaining("bad indentation")] });
  });

  it("refuses a spec without caches while caches are owned in the Swarm", async () => {
    const { tracker: t } = tracker(empty, ["region-asia"]);
    expect(await t.load()).toEqual({ loaded: false });
    expect(t.snapshot()).toBeUndefined();
    expect(t.status().errors.join()).toMatch(/refusing to remove them all/);
  });
});
