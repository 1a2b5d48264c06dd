// What a controller from before the DTR record (record.ts) left on the service: the users it last
// assigned, in a label. Read once, when a cache has no record yet.
import { LEGACY_USERS } from "../reconcile/labels.js";

/** What an older controller recorded on the service (users label), adopted once when no record exists. */
export interface LegacyDtrLabels {
  readonly users: readonly string[];
}

/**
 * Before the record existed, the service carried the users last assigned in a label. A cache
 * without a record adopts them once (so a user dropped in the first edit after an upgrade is still
 * reset), and its registration by host (adoptHost).
 */
export function legacyDtrLabels(labels: Readonly<Record<string, string>> | undefined): LegacyDtrLabels | undefined {
  const text = labels?.[LEGACY_USERS];
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return { users: Array.isArray(parsed) ? parsed.filter((u): u is string => typeof u === "string") : [] };
  } catch {
    return undefined;
  }
}
