import { describe, expect, it } from "vitest";
import { parseDuration } from "./duration.js";

describe("parseDuration", () => {
  it.each([
    ["24h", 86_400_000],
    ["90m", 5_400_000],
    ["30s", 30_000],
    ["250ms", 250],
    ["1500us", 1],
    ["5000000ns", 5],
    ["2000000", 2],
    [1_000_000_000, 1000],
  ])("reads %s as %d ms", (input, ms) => {
    expect(parseDuration(input)?.milliseconds).toBe(ms);
  });

  it.each(["24 hours", "1d", "-5m", "1.5h", "", "h", "24H"])("rejects %j", (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });
});
