import { describe, expect, it } from "vitest";
import { parseSize } from "./size.js";

describe("parseSize (the cache's maxsize, shared by validation and the cache)", () => {
  it("reads binary and decimal units and bare byte counts", () => {
    expect(parseSize("20GiB")).toBe(20 * 1024 ** 3);
    expect(parseSize("1.5GiB")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("500MB")).toBe(500e6);
    expect(parseSize("1B")).toBe(1);
    expect(parseSize(1234)).toBe(1234);
  });

  it("refuses sizes the cache cannot use: under one byte, or past a safe integer", () => {
    for (const bad of ["0B", "0.5B", "0", 0, "8192TiB", "9000TiB", "-1", "1 PiB", "", "GiB", 1.5]) expect(parseSize(bad), String(bad)).toBeUndefined();
    expect(parseSize("8191TiB")).toBe(8191 * 1024 ** 4);
  });
});
