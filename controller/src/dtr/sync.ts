// The seam between the Swarm reconciler and the DTR side (registration + user settings).
// The reconciler calls `apply` after the Swarm objects are in place and `remove` before it tears
// the service down; a failure here marks the cache's DTR condition Degraded but never stops the
// Swarm side from converging.
import type { ResolvedCache, ResolvedDtr } from "@dtrcache/crds";

export interface UserAssignment {
  readonly username: string;
  /** "assigned" when the user's ContentCacheUUID is this cache's id. */
  readonly state: "assigned" | "unknown-user" | "failed";
  readonly message?: string;
}

export interface DtrCacheStatus {
  /** The id DTR gave the registration, when registered. */
  readonly registrationId?: string;
  /** The host registered with DTR (the cache's externalURL). */
  readonly host?: string;
  readonly users: readonly UserAssignment[];
  /**
   * Users dropped from the list since the last pass (previousUsers minus users) and what happened
   * to them. Optional so that older producers stay valid; a "failed" entry means the reset must be
   * retried, so the caller should keep passing that user in previousUsers.
   */
  readonly resets?: readonly UserReset[];
}

export interface UserReset {
  readonly username: string;
  /** "reset": cleared; "not-ours": points elsewhere, left alone; "unknown-user": no such user. */
  readonly state: "reset" | "not-ours" | "unknown-user" | "failed";
  readonly message?: string;
}

/** What the controller needs to undo a cache that has left the spec. */
export interface DtrRemoval {
  readonly cacheName: string;
  readonly dtr: ResolvedDtr;
  /** Users last assigned to the cache; each is reset only if it still points at the cache. */
  readonly users: readonly string[];
}

export interface DtrSync {
  /** Ensure the registration (create, or delete + re-create on a host change) and user settings. */
  apply(cache: ResolvedCache, previousUsers: readonly string[], signal: AbortSignal): Promise<DtrCacheStatus>;
  /** Reset the users that still point at the cache, then delete the registration. Idempotent. */
  remove(removal: DtrRemoval, signal: AbortSignal): Promise<void>;
}
