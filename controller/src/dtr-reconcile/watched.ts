// What the DTR drift check (drift.ts) reads from the DTR reconciler: per DTR, the registrations
// its last full passes confirmed; and which failures mean that DTR did not answer at all.
import type { ResolvedDtr } from "@dtrcache/crds";

/** A registration DTR confirmed in this cache's last full pass: what the drift check compares its list with. */
export interface ConfirmedRegistration {
  readonly cache: string;
  readonly registrationId: string;
  readonly host: string;
}

/** One DTR the reconciler talks to, and the registrations it confirmed there. */
export interface WatchedDtr {
  /** The DTR's origin: outages are tracked per DTR, not per cache. */
  readonly key: string;
  readonly dtr: ResolvedDtr;
  readonly confirmed: readonly ConfirmedRegistration[];
}

/** Failures that say DTR itself did not answer (as opposed to refusing a request). */
export const OUTAGE_CODES = new Set(["DTR_UNAVAILABLE", "DTR_TIMEOUT"]);

export function dtrKey(dtr: ResolvedDtr): string {
  try {
    return new URL(dtr.spec.url).origin;
  } catch {
    return dtr.spec.url;
  }
}
