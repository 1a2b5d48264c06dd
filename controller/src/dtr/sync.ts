// The seam between the controller's DTR reconciler (controller/src/dtr-reconcile) and DTR itself:
// one pass of registration + the user settings the reconciler asks for. What is owned and which
// users are due is decided by the reconciler from its own record; this side only talks to DTR.
import type { ResolvedCache, ResolvedDtr } from "@dtrcache/crds";
import type { ContentCacheRecord } from "./client.js";

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
   * The requested resets and what happened to them; a "failed" entry means the reset must be
   * retried, so the reconciler keeps that user in its record.
   */
  readonly resets?: readonly UserReset[];
  /** Registrations of this name that are not ours: reported, never deleted (issue 10, defect 10). */
  readonly foreign?: readonly ContentCacheRecord[];
}

export interface DtrApplyRequest {
  /** Registration ids this controller recorded as its own; only these are ever deleted. */
  readonly owned: readonly string[];
  /**
   * Adopt a registration of this name with exactly this host although its id is not recorded:
   * set while a create is in flight (the answer may be lost after DTR made it).
   */
  readonly adoptHost?: string;
  /** Users to point at the registration (a subset of the listed users: those due). */
  readonly assign: readonly string[];
  /** Users to reset, each only if it still points at one of our registrations. */
  readonly reset: readonly string[];
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
  /** Users that may point at the cache (the reconciler's record); each is reset only if it does. */
  readonly users: readonly string[];
  /** Registration ids recorded as ours; registrations of the name with other ids are left alone. */
  readonly owned: readonly string[];
}

export interface DtrRemovalResult {
  /** Registrations of the name that are not ours (reported, not deleted). */
  readonly foreign: readonly ContentCacheRecord[];
}

export interface DtrSync {
  /**
   * Ensure the registration (create, or delete an owned one + re-create on a host change), then
   * the requested user settings. Throws when a registration of the name is not ours and none is.
   */
  apply(cache: ResolvedCache, request: DtrApplyRequest, signal: AbortSignal): Promise<DtrCacheStatus>;
  /** Reset the users that still point at an owned registration, then delete the owned ones. Idempotent. */
  remove(removal: DtrRemoval, signal: AbortSignal): Promise<DtrRemovalResult>;
  /**
   * A fingerprint of the credential the DTR's password/token reference resolves to now, so that a
   * rotated value (a rewritten file, another secret mounted under the name) brings a fresh pass.
   * Keyed with a random per-process key: it says "changed" within this process and nothing about
   * the value, and it is never logged or put in a status. Never throws: an unreadable reference
   * has a fingerprint of its own (the pass reports the error). Optional for test doubles.
   */
  credentialFingerprint?(dtr: ResolvedDtr): Promise<string>;
}

/**
 * One cheap read of DTR's registrations, for the controller's drift check: a single list call,
 * not retried (the check runs again at its next interval, and a failure is itself news: DTR did
 * not answer).
 */
export interface DtrRegistrationLister {
  listRegistrations(dtr: ResolvedDtr, signal: AbortSignal): Promise<readonly ContentCacheRecord[]>;
}
