// The duration syntax of the registry's config.yml (`blobttl: 24h`): one integer followed by one
// unit out of ns, us, ms, s, m, h. A bare integer counts nanoseconds, as the registry reads it.
// The one parser of the contract: the CacheSpec's validation (`spec.blobTTL`), the renderer and the
// cache's reader all use it, so all three accept exactly the same strings.

const NANOS_PER_UNIT = {
  ns: 1n,
  us: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
} as const;

export type DurationUnit = keyof typeof NANOS_PER_UNIT;

const DURATION_PATTERN = /^(\d+)(ns|us|ms|s|m|h)?$/;

export interface Duration {
  /** The text as written, e.g. "24h". */
  readonly text: string;
  /** Whole milliseconds (nanosecond inputs are rounded down). */
  readonly milliseconds: number;
}

/** Returns the parsed duration, or undefined when the text is not in the accepted syntax. */
export function parseDuration(text: string | number): Duration | undefined {
  const raw = typeof text === "number" ? String(text) : text.trim();
  const match = DURATION_PATTERN.exec(raw);
  if (!match) return undefined;
  const [, digits, unit] = match;
  const nanos = BigInt(digits ?? "0") * NANOS_PER_UNIT[(unit ?? "ns") as DurationUnit];
  const milliseconds = Number(nanos / 1_000_000n);
  if (!Number.isSafeInteger(milliseconds)) return undefined;
  return { text: raw, milliseconds };
}

export const DURATION_HINT = "use an integer with a unit, e.g. 24h, 90m, 30s";
