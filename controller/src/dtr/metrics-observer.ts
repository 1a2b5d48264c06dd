// What the DTR client reports about each HTTP request it sends (dtr/metrics.ts counts it). Kept
// apart from the registry so the client depends on this small seam only, not on prom-client.
import { isDtrError } from "./errors.js";

/** The endpoints the client calls, as route templates. */
export type DtrRoute = "/api/v0/content_caches" | "/api/v0/content_caches/{id}" | "/api/v0/accounts/{user}/settings";

/** One HTTP request (one attempt: a retried call is several). */
export interface DtrRequestOutcome {
  readonly method: string;
  readonly route: DtrRoute;
  /** The answer's status, or undefined when none came (network error, timeout, trust refused). */
  readonly status?: number;
  /** The DtrError code when the request failed (an unexpected status, or no answer). */
  readonly errorCode?: string;
  readonly durationSeconds: number;
}

export type DtrRequestObserver = (outcome: DtrRequestOutcome) => void;

/** "2xx".."5xx", or "none" when no answer came. */
export function statusClass(status: number | undefined): string {
  return status === undefined ? "none" : `${Math.floor(status / 100)}xx`;
}

/** The code to count for a failed request: a DtrError's own code, else UNKNOWN. */
export function requestErrorCode(error: unknown): string {
  return isDtrError(error) ? error.code : "UNKNOWN";
}
