// The DtrSync implementation: DTR's content cache registration as an external resource
// reconciled by name, and the per-user Content Cache setting. Whole-pass failures (DTR down,
// credentials refused) throw typed DtrErrors; per-user outcomes are reported in the status so one
// unknown user never fails the others. The caller maps both onto the cache's DTR condition.
import { createHash, createHmac, randomBytes } from "node:crypto";
import type { ResolvedCache, ResolvedDtr } from "@dtrcache/crds";
import { mapBounded } from "./bounded.js";
import { DtrClient, type ContentCacheRecord, type RetryPolicy } from "./client.js";
import { DtrError, isDtrError } from "./errors.js";
import { KeyedLock } from "./keyed-lock.js";
import { silentLogger, type Logger } from "../logger.js";
import type { DtrRequestObserver } from "./metrics-observer.js";
import { readSecretRef } from "./secret.js";
import type { DtrApplyRequest, DtrCacheStatus, DtrRegistrationLister, DtrRemoval, DtrRemovalResult, DtrSync, UserAssignment, UserReset } from "./sync.js";
import { establishTrust, type DtrTrust } from "./trust.js";

export interface DtrSyncOptions {
  readonly logger?: Logger;
  /** Where {env: NAME} secret references are looked up. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  /** Reads a Swarm config's content by name, for `trust.caFile: {config: NAME}` (the engine's API). */
  readonly readConfig?: (name: string) => Promise<string>;
  /** Told about every HTTP request to DTR (the controller's metrics, dtr/metrics.ts). */
  readonly observer?: DtrRequestObserver;
}

export interface DtrSyncService extends DtrSync, DtrRegistrationLister {
  /**
   * The CA the controller trusts DTR with, for the caches' CA bundle: the CA file's PEM, or the
   * one fetched from /ca (fetched once and shared with the API client, so trust-on-first-use
   * happens once per process), or undefined for system roots and plain http.
   */
  caPem(dtr: ResolvedDtr): Promise<string | undefined>;
  /** Closes the connection pools kept per DTR. */
  close(): Promise<void>;
}

/** Registration hosts compare without a trailing slash; DTR stores what it was given. */
function sameHost(a: string, b: string): boolean {
  return a.replace(/\/+$/, "") === b.replace(/\/+$/, "");
}

export function createDtrSync(options: DtrSyncOptions = {}): DtrSyncService {
  const logger = options.logger ?? silentLogger;
  // One trust (connection pool, fetched CA) per DTR and trust setting; the password is read
  // again on every pass so a rotated secret file takes effect without a restart.
  const trusts = new Map<string, Promise<DtrTrust>>();
  // One "GET then PATCH" per (DTR, user) at a time across every cache this process reconciles.
  const userLock = new KeyedLock();
  const locked = <T>(dtr: ResolvedDtr, username: string, work: () => Promise<T>): Promise<T> => userLock.run(`${dtr.spec.url}\n${username}`, work);

  const trustFor = (dtr: ResolvedDtr): Promise<DtrTrust> => {
    const key = createHash("sha256")
      .update(JSON.stringify([dtr.name, dtr.spec.url, dtr.spec.trust]))
      .digest("hex");
    let trust = trusts.get(key);
    if (trust === undefined) {
      trust = establishTrust(dtr.spec, logger, { timeoutMs: options.timeoutMs, ...(options.readConfig ? { readConfig: options.readConfig } : {}) });
      // A failed CA fetch must not be remembered: the next pass tries again.
      trust.catch(() => trusts.delete(key));
      trusts.set(key, trust);
    }
    return trust;
  };

  // The key of credentialFingerprint: random per process, so a fingerprint is no offline oracle
  // for the password (a plain hash of a short password could be brute-forced).
  const fingerprintKey = randomBytes(32);

  const clientFor = async (dtr: ResolvedDtr, retry: Partial<RetryPolicy> | undefined = options.retry): Promise<DtrClient> => {
    const password = await readSecretRef(dtr.spec.admin.password, options.env);
    const trust = await trustFor(dtr);
    return new DtrClient({
      url: dtr.spec.url,
      username: dtr.spec.admin.username,
      password,
      dispatcher: trust.dispatcher,
      timeoutMs: options.timeoutMs,
      retry,
      logger,
      ...(options.observer ? { observer: options.observer } : {}),
    });
  };

  return {
    async apply(cache: ResolvedCache, request: DtrApplyRequest, signal: AbortSignal): Promise<DtrCacheStatus> {
      const client = await clientFor(cache.dtr);
      const host = cache.spec.externalURL;
      const log = { cache: cache.name, dtr: cache.dtr.name };
      const { registration, formerIds, foreign } = await ensureRegistration(client, cache.name, host, request, signal, logger, log);
      const ours = new Set([registration.id, ...formerIds, ...request.owned]);
      const concurrency = cache.dtr.spec.userConcurrency;
      const listed = new Set(cache.spec.users);
      // Resets first: a user this cache drops is never re-pointed by this cache in the same pass.
      const dropped = [...new Set(request.reset)].filter((username) => !listed.has(username));
      const resets = await mapBounded(dropped, concurrency, (username) =>
        locked(cache.dtr, username, () => resetUser(client, username, ours, signal, logger, log)),
      );
      const assign = [...new Set(request.assign)].filter((username) => listed.has(username));
      const users = await mapBounded(assign, concurrency, (username) =>
        locked(cache.dtr, username, () => assignUser(client, username, registration.id, signal, logger, log)),
      );
      return { registrationId: registration.id, host: registration.host, users, resets, foreign };
    },

    async listRegistrations(dtr: ResolvedDtr, signal: AbortSignal): Promise<readonly ContentCacheRecord[]> {
      // No retries: a retried list would hide the short outage the drift check is there to see.
      const client = await clientFor(dtr, { ...options.retry, retries: 0 });
      return client.listContentCaches(signal);
    },

    async credentialFingerprint(dtr: ResolvedDtr): Promise<string> {
      let material: string;
      try {
        material = `value:${await readSecretRef(dtr.spec.admin.password, options.env)}`;
      } catch (error) {
        // The error's message names the reference, never a value.
        material = `unreadable:${error instanceof Error ? error.message : String(error)}`;
      }
      return createHmac("sha256", fingerprintKey).update(material).digest("hex").slice(0, 16);
    },

    async caPem(dtr: ResolvedDtr): Promise<string | undefined> {
      return (await trustFor(dtr)).caPem;
    },

    async remove(removal: DtrRemoval, signal: AbortSignal): Promise<DtrRemovalResult> {
      const client = await clientFor(removal.dtr);
      const log = { cache: removal.cacheName, dtr: removal.dtr.name };
      const owned = new Set(removal.owned);
      const named = (await client.listContentCaches(signal)).filter((entry) => entry.name === removal.cacheName);
      const registrations = named.filter((entry) => owned.has(entry.id));
      const foreign = named.filter((entry) => !owned.has(entry.id));
      for (const entry of foreign) logger.warn({ ...log, registrationId: entry.id, host: entry.host }, "DTR registration of this name is not ours; left alone");
      // Users first: deleting the registration first would leave them pointing at an id that no
      // longer exists, and their reset could then never tell "ours" from "someone else's". Users
      // are checked against every recorded id, also one already deleted by hand.
      if (owned.size > 0) {
        const resets = await mapBounded([...new Set(removal.users)], removal.dtr.spec.userConcurrency, (username) =>
          locked(removal.dtr, username, () => resetUser(client, username, owned, signal, logger, log)),
        );
        const failed = resets.filter((reset) => reset.state === "failed");
        if (failed.length > 0) {
          throw new DtrError(
            "DTR_USERS_NOT_RESET",
            `could not reset ${failed.length} user(s) of cache ${removal.cacheName}: ${failed.map((reset) => `${reset.username} (${reset.message ?? "failed"})`).join(", ")}; registration kept until they are reset`,
            true,
          );
        }
      }
      for (const entry of registrations) {
        await client.deleteContentCache(entry.id, signal);
        logger.info({ ...log, registrationId: entry.id }, "DTR registration deleted");
      }
      return { foreign };
    },

    async close(): Promise<void> {
      const all = [...trusts.values()];
      trusts.clear();
      await Promise.all(
        all.map(async (trust) =>
          (
            await trust.then(
              (value) => value,
              () => undefined,
            )
          )?.close(),
        ),
      );
    },
  };
}

interface Registration {
  readonly registration: ContentCacheRecord;
  /** Owned ids this cache was registered under before this pass (deleted now); users on them are ours. */
  readonly formerIds: readonly string[];
  /** Registrations of this name that are not ours. */
  readonly foreign: readonly ContentCacheRecord[];
}

/**
 * List; of the registrations of this name, only recorded ones (or the one being created, see
 * adoptHost) are ours. Keep one of ours whose host matches, delete our others (a host change, or
 * duplicates), create when none is left. A registration of the name that is not ours is never
 * deleted: another controller (another swarm) may use the same cache name. While one exists and
 * none of ours does, nothing is created (DTR's name uniqueness is UNCONFIRMED) and the pass fails
 * with DTR_NOT_OWNED so the condition names it.
 */
async function ensureRegistration(
  client: DtrClient,
  name: string,
  host: string,
  request: DtrApplyRequest,
  signal: AbortSignal,
  logger: Logger,
  log: object,
): Promise<Registration> {
  const owned = new Set(request.owned);
  const named = (await client.listContentCaches(signal)).filter((entry) => entry.name === name);
  const isOurs = (entry: ContentCacheRecord): boolean => owned.has(entry.id) || (request.adoptHost !== undefined && sameHost(entry.host, request.adoptHost));
  const mine = named.filter(isOurs);
  const foreign = named.filter((entry) => !isOurs(entry));
  const keep = mine.find((entry) => sameHost(entry.host, host));
  const stale = mine.filter((entry) => entry !== keep);
  for (const entry of stale) {
    await client.deleteContentCache(entry.id, signal);
    logger.info({ ...log, registrationId: entry.id, oldHost: entry.host, host }, "DTR registration deleted (host changed or duplicate)");
  }
  const formerIds = stale.map((entry) => entry.id);
  if (keep !== undefined) return { registration: keep, formerIds, foreign };
  if (foreign.length > 0) {
    throw new DtrError(
      "DTR_NOT_OWNED",
      `DTR already has a content cache named ${name} that this controller did not create (${foreign.map((entry) => `${entry.id} ${entry.host}`).join(", ")}); left alone — rename the cache or remove that registration`,
      false,
    );
  }
  try {
    const created = await client.createContentCache(name, host, signal);
    logger.info({ ...log, registrationId: created.id, host }, "DTR registration created");
    return { registration: created, formerIds, foreign };
  } catch (error) {
    // The POST may have succeeded even though its answer was lost; adopt it rather than
    // leaving a duplicate behind. Only a transient failure can hide a success.
    if (!isDtrError(error) || !error.retryable || signal.aborted) throw error;
    let again: ContentCacheRecord | undefined;
    try {
      again = (await client.listContentCaches(signal)).find((entry) => entry.name === name && sameHost(entry.host, host));
    } catch {
      again = undefined;
    }
    if (again === undefined) throw error;
    logger.info({ ...log, registrationId: again.id, host }, "DTR registration adopted after an unanswered create");
    return { registration: again, formerIds, foreign };
  }
}

function describe(error: unknown): string {
  if (isDtrError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : "unexpected failure";
}

function isNoSuchUser(error: unknown): boolean {
  return isDtrError(error) && error.code === "DTR_NOT_FOUND" && (error.dtrCode === "NO_SUCH_USER" || error.dtrCode === undefined);
}

/** Abort and whole-DTR failures (credentials refused, DTR down) end the pass; others are per user. */
function rethrowIfPassWide(error: unknown, signal: AbortSignal): void {
  if (signal.aborted) throw error;
  if (isDtrError(error) && (error.code === "DTR_UNAUTHENTICATED" || error.code === "DTR_FORBIDDEN")) throw error;
}

async function assignUser(client: DtrClient, username: string, id: string, signal: AbortSignal, logger: Logger, log: object): Promise<UserAssignment> {
  try {
    const current = await client.getUserContentCache(username, signal);
    if (current !== id) {
      await client.setUserContentCache(username, id, signal);
      logger.info({ ...log, user: username, registrationId: id, previous: current }, "DTR user pointed at cache");
    }
    return { username, state: "assigned" };
  } catch (error) {
    rethrowIfPassWide(error, signal);
    if (isNoSuchUser(error)) {
      logger.warn({ ...log, user: username }, "DTR user does not exist");
      return { username, state: "unknown-user", message: `DTR has no user named ${username}` };
    }
    logger.warn({ ...log, user: username, code: isDtrError(error) ? error.code : undefined }, "DTR user setting failed");
    return { username, state: "failed", message: describe(error) };
  }
}

async function resetUser(client: DtrClient, username: string, ours: ReadonlySet<string>, signal: AbortSignal, logger: Logger, log: object): Promise<UserReset> {
  try {
    const current = await client.getUserContentCache(username, signal);
    // Someone (the user, another cache's spec) re-pointed this user since: leave them alone.
    if (!ours.has(current)) return { username, state: "not-ours" };
    await client.setUserContentCache(username, "", signal);
    logger.info({ ...log, user: username, previous: current }, "DTR user reset");
    return { username, state: "reset" };
  } catch (error) {
    rethrowIfPassWide(error, signal);
    if (isNoSuchUser(error)) return { username, state: "unknown-user" };
    return { username, state: "failed", message: describe(error) };
  }
}

/** What the caller's DTR condition should say about a finished pass. */
export interface DtrSyncSummary {
  readonly synced: boolean;
  /** CamelCase condition reason. */
  readonly reason: "Synced" | "UnknownUsers" | "UserUpdateFailed" | "UserResetFailed";
  readonly message: string;
  /** Whether another pass can help without a spec change. */
  readonly retryable: boolean;
}

export function summarizeDtrStatus(status: DtrCacheStatus): DtrSyncSummary {
  const failed = status.users.filter((user) => user.state === "failed");
  const unknown = status.users.filter((user) => user.state === "unknown-user");
  const resetFailed = (status.resets ?? []).filter((reset) => reset.state === "failed");
  const names = (list: readonly { username: string; message?: string }[]): string =>
    list.map((user) => (user.message ? `${user.username} (${user.message})` : user.username)).join(", ");
  // Every failed or unknown user is named, whatever the reason says first.
  const parts = [
    ...(failed.length > 0 ? [`could not set the content cache of: ${names(failed)}`] : []),
    ...(resetFailed.length > 0 ? [`could not reset the content cache of: ${names(resetFailed)}`] : []),
    ...(unknown.length > 0 ? [`DTR has no user(s): ${unknown.map((user) => user.username).join(", ")}`] : []),
  ];
  const message = parts.join("; ");
  if (failed.length > 0) return { synced: false, reason: "UserUpdateFailed", message, retryable: true };
  if (resetFailed.length > 0) return { synced: false, reason: "UserResetFailed", message, retryable: true };
  if (unknown.length > 0) return { synced: false, reason: "UnknownUsers", message, retryable: false };
  return {
    synced: true,
    reason: "Synced",
    message: `registered as ${status.registrationId ?? "?"}; ${status.users.length} user(s) assigned`,
    retryable: false,
  };
}

/** Condition fields for a pass that threw: the error's stable code is the reason. */
export function describeDtrFailure(error: unknown): { reason: string; message: string; retryable: boolean } {
  if (isDtrError(error)) return { reason: error.code, message: error.message, retryable: error.retryable };
  // Not one of ours (a bug or an abort): retry with backoff rather than wedge the cache.
  return { reason: "DTR_UNEXPECTED", message: error instanceof Error ? error.message : "unexpected failure", retryable: true };
}
