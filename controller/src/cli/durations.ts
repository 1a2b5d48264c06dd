// Durations as operators type them on the command line: 90s, 5m, 500ms (a bare number is seconds).
import { InvalidArgumentError } from "commander";

export function parseTimeout(value: string): number {
  const match = /^(\d+)(ms|s|m)?$/.exec(value);
  if (!match) throw new InvalidArgumentError("expected a duration such as 90s or 5m");
  const n = Number(match[1]);
  return match[2] === "ms" ? n : match[2] === "m" ? n * 60_000 : n * 1000;
}
