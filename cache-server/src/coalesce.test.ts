import { describe, expect, it } from "vitest";
import { Batcher } from "./coalesce.js";

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("tag revalidation batching", () => {
  it("runs one round trip for a lone request", async () => {
    const b = new Batcher<number>();
    let calls = 0;
    expect(await b.run("k", async () => ++calls)).toBe(1);
    expect(calls).toBe(1);
  });

  it("never lets a request join a round trip that started before it arrived", async () => {
    const b = new Batcher<string>();
    const first = deferred<string>();
    const second = deferred<string>();
    const answers = [first, second];
    let calls = 0;
    const fn = (): Promise<string> => answers[calls++]?.promise ?? Promise.resolve("extra");
    const early = b.run("tag", fn);
    // These arrive while round trip 1 is in flight: they must wait for round trip 2.
    let joined = 0;
    const late = [b.run("tag", fn, () => joined++), b.run("tag", fn, () => joined++), b.run("tag", fn, () => joined++)];
    expect(calls).toBe(1);
    first.resolve("old");
    expect(await early).toBe("old");
    await Promise.resolve();
    second.resolve("new");
    expect(await Promise.all(late)).toEqual(["new", "new", "new"]);
    expect(calls).toBe(2);
    expect(joined).toBe(2);
  });

  it("keeps keys apart", async () => {
    const b = new Batcher<string>();
    const results = await Promise.all([b.run("a", async () => "A"), b.run("b", async () => "B")]);
    expect(results).toEqual(["A", "B"]);
  });

  it("starts the next round trip even when the previous one failed", async () => {
    const b = new Batcher<string>();
    const failing = b.run("k", () => Promise.reject(new Error("down")));
    const next = b.run("k", async () => "ok");
    await expect(failing).rejects.toThrow("down");
    expect(await next).toBe("ok");
  });
});
