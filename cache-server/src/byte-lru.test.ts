import { describe, expect, it } from "vitest";
import { ByteLru } from "./byte-lru.js";

const lru = (max: number, maxEntry = max): ByteLru<Buffer> => new ByteLru<Buffer>(max, maxEntry, (b) => b.length);

describe("ByteLru", () => {
  it("evicts the least recently used values once the bytes exceed the bound", () => {
    const m = lru(10);
    m.set("a", Buffer.alloc(4));
    m.set("b", Buffer.alloc(4));
    expect(m.get("a")?.length).toBe(4); // a is now the most recent
    m.set("c", Buffer.alloc(4)); // 12 > 10: b goes
    expect(m.get("b")).toBeUndefined();
    expect(m.get("a")).toBeDefined();
    expect(m.get("c")).toBeDefined();
    expect(m.bytes).toBe(8);
    expect(m.size).toBe(2);
  });

  it("never keeps a value larger than the entry bound, and flushes nothing for it", () => {
    const m = lru(100, 10);
    m.set("small", Buffer.alloc(10));
    m.set("big", Buffer.alloc(11));
    expect(m.get("big")).toBeUndefined();
    expect(m.get("small")).toBeDefined();
    expect(m.admits(10)).toBe(true);
    expect(m.admits(11)).toBe(false);
  });

  it("keeps the first value for a key and counts deletes", () => {
    const m = lru(100);
    const first = Buffer.alloc(5, 1);
    m.set("k", first);
    m.set("k", Buffer.alloc(7, 2));
    expect(m.get("k")).toBe(first);
    expect(m.bytes).toBe(5);
    m.delete("k");
    m.delete("k");
    expect(m.bytes).toBe(0);
    expect(m.get("k")).toBeUndefined();
  });
});
