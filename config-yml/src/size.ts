// Byte sizes as the cache's config.yml takes them (`maxsize`): an integer or decimal number with an
// optional unit, binary (KiB…TiB) or decimal (KB…TB). One parser for every side of the contract
// (the CacheSpec's validation, the renderer, the cache's reader), so a spec that validates never
// renders a config.yml the cache refuses at start (issue 10, defect 5).
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/;
const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/**
 * Bytes for a size, or undefined when it is not one the cache can use: not a size, under one byte
 * once rounded down (0B, 0.5B), or past Number.MAX_SAFE_INTEGER (8192 TiB and up), where the
 * cache's byte accounting would lose precision.
 */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const m = SIZE_PATTERN.exec(value.trim());
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * (SIZE_UNITS[m[2] ?? "B"] ?? 1));
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

export const SIZE_HINT = "a size from 1B up to below 8192TiB, such as 20GiB or 500MB";
