// The DTR reconciler: one cache's registration and user settings, separate from the Swarm side.
// It owns its record of what DTR confirmed (record.ts) and never reads the Swarm step's labels, so
// a failed DTR pass cannot lose the users it still has to reset (issue 10, defect 2). Failures are
// retried per user with their own back-off (1 s doubling to 60 s); the whole set is verified
// again every `verifyEveryMs`, and at once when the drift check (drift.ts) finds DTR's list differs
// from what this record says DTR confirmed, or when a DTR that stopped answering answers again (it
// may have been restored from a backup), or when the DTR resource or the credential its password
// reference resolves to changed (inputs.ts): a rotated password is tried at once, and the status
// says which DTR resource the last pass ran with. DtrSynced is True only when every listed user is
// assigned and no reset is pending; otherwise its reason and message name each failed or unknown user.
import type { ResolvedCache, ResolvedDtr } from "@dtrcache/crds";
import { describeDtrFailure, summarizeDtrStatus } from "../dtr/dtr-sync.js";
import type { DtrSync, UserAssignment, UserReset } from "../dtr/sync.js";
import type { Logger } from "../logger.js";
import type { CacheStatus, Condition } from "../status.js";
import type { SwarmApi } from "../swarm/api.js";
import type { LegacyDtrLabels } from "./legacy.js";
import { dtrResourceHash } from "./inputs.js";
import { DtrRecordStore, type DtrRecord } from "./record.js";
import { dtrKey, OUTAGE_CODES, type ConfirmedRegistration, type WatchedDtr } from "./watched.js";

export { legacyDtrLabels, type LegacyDtrLabels } from "./legacy.js";
export type { ConfirmedRegistration, WatchedDtr } from "./watched.js";

export interface DtrReconcilerOptions {
  readonly swarm: SwarmApi;
  readonly owner: string;
  readonly dtrSync: DtrSync;
  readonly logger: Logger;
  readonly now: () => number;
  /** How often a cache already in sync is verified against DTR again. */
  readonly verifyEveryMs: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** Queues a cache for a reconcile now (the runner's queue); a full verification was asked for. */
  readonly requeue?: (name: string) => void;
}

export interface DtrConditionFields {
  readonly status: Condition["status"];
  readonly reason: string;
  readonly message: string;
}

export interface DtrOutcome {
  readonly condition: DtrConditionFields;
  readonly status: CacheStatus["dtr"];
  /** When a failed user or pass is due again. */
  readonly requeueAfterMs?: number;
}

export interface DtrTeardownOutcome {
  /** DTR holds nothing of the cache any more (or there was nothing recorded). */
  readonly done: boolean;
  readonly condition?: DtrConditionFields;
}

interface Trouble {
  readonly state: "failed" | "unknown-user";
  readonly message?: string;
  readonly failures: number;
  readonly dueAt: number;
}

interface CacheDtrState {
  generation?: string;
  /**
   * What the last full pass (or failed pass) ran with: the DTR resource's hash and the credential's
   * fingerprint (`inputs`), and the resource's hash alone (`resourceHash`, reported in the status).
   */
  inputs?: string;
  resourceHash?: string;
  verifiedAt?: number;
  /** The DTR of the last pass, and the registration host it confirmed. */
  dtr?: ResolvedDtr;
  host?: string;
  /**
   * Full verifications asked for from outside (drift, recovery), counted; `verifiedStale` is the
   * count the last full pass started under. A request arriving while a pass runs is not lost.
   */
  stale: number;
  verifiedStale: number;
  /** The count the last pass started under, failed or not: a request it saw is not answered twice. */
  attemptedStale: number;
  pass?: { failures: number; dueAt: number; reason: string; message: string };
  /** Listed users not confirmed assigned. */
  readonly assign: Map<string, Trouble>;
  /** Dropped users whose reset failed. */
  readonly reset: Map<string, Trouble>;
  registrationId?: string;
  note?: string;
}

export class DtrReconciler {
  private readonly store: DtrRecordStore;
  private readonly caches = new Map<string, CacheDtrState>();
  /** DTRs (by key) that did not answer since they last did: their next answer re-verifies every cache on them. */
  private readonly down = new Set<string>();

  constructor(private readonly options: DtrReconcilerOptions) {
    this.store = new DtrRecordStore(options.swarm, options.owner);
  }

  private stateOf(name: string): CacheDtrState {
    let s = this.caches.get(name);
    if (!s) {
      s = { assign: new Map(), reset: new Map(), stale: 0, verifiedStale: 0, attemptedStale: 0 };
      this.caches.set(name, s);
    }
    return s;
  }

  private backoff(failures: number): number {
    const base = this.options.retryBaseMs ?? 1_000;
    return Math.min(this.options.retryMaxMs ?? 60_000, base * 2 ** Math.max(0, failures - 1));
  }

  /** Every DTR with a cache on it, and the registrations confirmed by each cache's last full pass. */
  watched(): WatchedDtr[] {
    const byKey = new Map<string, { dtr: ResolvedDtr; confirmed: ConfirmedRegistration[] }>();
    for (const [cache, s] of this.caches) {
      if (s.dtr === undefined) continue;
      const key = dtrKey(s.dtr);
      const entry = byKey.get(key) ?? { dtr: s.dtr, confirmed: [] };
      byKey.set(key, entry);
      // Only what a completed full pass confirmed, and nothing already due for verification.
      if (s.registrationId && s.host !== undefined && s.pass === undefined && s.verifiedAt !== undefined && s.stale === s.verifiedStale)
        entry.confirmed.push({ cache, registrationId: s.registrationId, host: s.host });
    }
    return [...byKey].map(([key, v]) => ({ key, ...v }));
  }

  /** Asks for a full verification of the cache's DTR side at its next reconcile, and queues it now. */
  reverify(name: string, reason: string): void {
    const s = this.caches.get(name);
    if (s === undefined) return;
    s.stale += 1;
    this.options.logger.info({ cache: name, reason }, "DTR drift: verifying the cache's registration and users in full");
    this.options.requeue?.(name);
  }

  /** A call to this DTR got no answer (down, timed out): remembered until it answers again. */
  dtrUnreachable(key: string, message: string): void {
    if (this.down.has(key)) return;
    this.down.add(key);
    this.options.logger.warn({ dtr: key, err: message }, "DTR did not answer; every cache on it is verified in full once it answers again");
  }

  /**
   * This DTR answered. After an outage it may have been restored from a backup (registrations or
   * user settings gone or older), so every cache on it is verified in full — but `except`, whose
   * full pass just succeeded.
   */
  dtrAnswered(key: string, except?: string): void {
    if (!this.down.delete(key)) return;
    for (const [name, s] of this.caches)
      if (name !== except && s.dtr !== undefined && dtrKey(s.dtr) === key) this.reverify(name, "DTR answers again after an outage");
  }

  /** Whether the DTR side of this generation has had its first pass (else DtrSynced is stale). */
  passed(name: string, generation: string): boolean {
    return this.caches.get(name)?.generation === generation;
  }

  async reconcile(cache: ResolvedCache, generation: string, legacy: LegacyDtrLabels | undefined, signal: AbortSignal): Promise<DtrOutcome> {
    const s = this.stateOf(cache.name);
    const now = this.options.now();
    const listed = [...new Set(cache.spec.users)];
    const staleAtStart = s.stale;
    // The DTR resource beyond its URL and name, and the credential now behind its reference: the
    // generation does not cover them, and a rotation changes nothing else.
    const resourceHash = dtrResourceHash(cache.dtr);
    const inputs = `${resourceHash}:${(await this.options.dtrSync.credentialFingerprint?.(cache.dtr)) ?? ""}`;
    const rotated = s.inputs !== undefined && s.inputs !== inputs;
    // After a failed pass nothing reaches DTR before its back-off, however often the cache is
    // looked at (rollout poll, events, resync) and whether or not it was ever verified — unless
    // the spec, the DTR resource or its credential changed, or a verification was asked for since
    // that pass began (DTR answers again, drift): those are news the failed pass could not have acted on.
    const news = s.generation !== generation || s.stale !== s.attemptedStale || s.inputs !== inputs;
    const backingOff = s.pass !== undefined && now < s.pass.dueAt;
    if (backingOff && !news) return this.outcome(s, listed);
    const full = news || s.pass !== undefined || s.verifiedAt === undefined || s.stale !== s.verifiedStale || now - s.verifiedAt >= this.options.verifyEveryMs;
    const due = (m: Map<string, Trouble>): string[] => [...m].filter(([, t]) => t.dueAt <= now).map(([u]) => u);
    if (!full && due(s.assign).length === 0 && due(s.reset).length === 0) return this.outcome(s, listed);
    if (full) s.attemptedStale = staleAtStart;
    if (rotated)
      this.options.logger.info(
        { cache: cache.name, dtr: cache.dtr.name, resourceChanged: s.resourceHash !== resourceHash },
        "the DTR resource or its admin credential changed; verifying the cache's DTR side in full",
      );

    s.dtr = cache.dtr;
    const found = await this.store.read(cache.name);
    const record: DtrRecord = found ?? { cache: cache.name, dtr: cache.dtr, registrationIds: [], users: [...(legacy?.users ?? [])] };
    const host = cache.spec.externalURL;
    const assign = full ? listed : due(s.assign).filter((u) => listed.includes(u));
    const reset = (full ? record.users : due(s.reset)).filter((u) => !listed.includes(u));
    // A registration is ours by its recorded id. Before a create (nothing of ours for this host,
    // or an older controller's cache without a record) the host is recorded first, so a create
    // whose answer is lost, or a crash right after it, still finds its registration ours.
    const adoptHost = record.host === host && record.registrationIds.length > 0 ? undefined : host;
    // Write-ahead: every user this pass may point at us is recorded before DTR is touched.
    const ahead: DtrRecord = {
      ...record,
      dtr: cache.dtr,
      users: [...new Set([...record.users, ...assign])],
      ...(adoptHost !== undefined ? { adoptHost } : {}),
    };
    await this.store.write(ahead);

    let result;
    try {
      result = await this.options.dtrSync.apply(
        cache,
        { owned: record.registrationIds, ...(adoptHost !== undefined ? { adoptHost } : {}), assign, reset },
        signal,
      );
    } catch (error) {
      if (signal.aborted) throw error;
      const failure = describeDtrFailure(error);
      if (OUTAGE_CODES.has(failure.reason)) this.dtrUnreachable(dtrKey(cache.dtr), failure.message);
      const failures = (s.pass?.failures ?? 0) + 1;
      // Not retryable (credentials, a foreign registration): the periodic verification looks again.
      s.pass = {
        failures,
        dueAt: now + (failure.retryable ? this.backoff(failures) : this.options.verifyEveryMs),
        reason: failure.reason,
        message: failure.message,
      };
      s.generation = generation;
      s.inputs = inputs;
      s.resourceHash = resourceHash;
      this.options.logger.warn(
        { cache: cache.name, code: failure.reason, err: failure.message, retryInMs: s.pass.dueAt - now },
        "DTR pass failed; the Swarm side is unaffected",
      );
      return this.outcome(s, listed);
    }
    delete s.pass;
    this.dtrAnswered(dtrKey(cache.dtr), full ? cache.name : undefined);
    for (const u of [...s.assign.keys()]) if (!listed.includes(u)) s.assign.delete(u);
    for (const u of [...s.reset.keys()]) if (listed.includes(u)) s.reset.delete(u);
    this.track(s.assign, result.users, now, true);
    this.track(s.reset, result.resets ?? [], now, false);
    const gone = new Set([
      ...(result.resets ?? []).filter((r) => r.state !== "failed").map((r) => r.username),
      ...result.users.filter((u) => u.state === "unknown-user").map((u) => u.username),
    ]);
    const registrationId = result.registrationId ?? "";
    // Older ids stay ours while a reset is pending: the user may still point at one of them.
    const ids = [...new Set([registrationId, ...(s.reset.size > 0 ? record.registrationIds : [])])].filter((id) => id !== "");
    await this.store.write({
      cache: cache.name,
      dtr: cache.dtr,
      registrationIds: ids,
      ...(result.host !== undefined ? { host: result.host } : {}),
      users: ahead.users.filter((u) => !gone.has(u)),
    });
    s.registrationId = registrationId;
    s.host = result.host ?? host;
    const foreign = result.foreign ?? [];
    if (foreign.length > 0) s.note = `registrations of this name not ours, left alone: ${foreign.map((f) => `${f.id} ${f.host}`).join(", ")}`;
    else delete s.note;
    if (full) {
      s.generation = generation;
      s.inputs = inputs;
      s.resourceHash = resourceHash;
      s.verifiedAt = now;
      s.verifiedStale = staleAtStart;
    }
    return this.outcome(s, listed);
  }

  /** Failed users get their own back-off; an unknown listed user is looked at with the periodic verification. */
  private track(map: Map<string, Trouble>, outcomes: readonly (UserAssignment | UserReset)[], now: number, unknownIsTrouble: boolean): void {
    for (const o of outcomes) {
      const trouble = o.state === "failed" || (unknownIsTrouble && o.state === "unknown-user");
      if (!trouble) {
        map.delete(o.username);
        continue;
      }
      const failures = (map.get(o.username)?.failures ?? 0) + 1;
      const dueAt = now + (o.state === "failed" ? this.backoff(failures) : this.options.verifyEveryMs);
      map.set(o.username, {
        state: o.state === "failed" ? "failed" : "unknown-user",
        ...(o.message !== undefined ? { message: o.message } : {}),
        failures,
        dueAt,
      });
    }
  }

  private outcome(s: CacheDtrState, listed: readonly string[]): DtrOutcome {
    const now = this.options.now();
    const users = listed.map((username) => {
      const t = s.assign.get(username);
      return t ? { username, state: t.state, ...(t.message !== undefined ? { message: t.message } : {}) } : { username, state: "assigned" as const };
    });
    const resets = [...s.reset].map(([username, t]) => ({ username, state: "failed" as const, ...(t.message !== undefined ? { message: t.message } : {}) }));
    const status: CacheStatus["dtr"] = {
      ...(s.registrationId ? { registrationId: s.registrationId } : {}),
      ...(s.resourceHash !== undefined ? { resourceHash: s.resourceHash } : {}),
      users: [...users.map((u) => ({ username: u.username, state: u.state })), ...resets.map((r) => ({ username: r.username, state: "reset-failed" }))],
    };
    const retries = [...s.assign.values(), ...s.reset.values()].filter((t) => t.state === "failed").map((t) => t.dueAt);
    if (s.pass) retries.push(s.pass.dueAt);
    const next = retries.length > 0 ? Math.max(0, Math.min(...retries) - now) : undefined;
    let condition: DtrConditionFields;
    if (s.pass) condition = { status: "False", reason: s.pass.reason, message: s.pass.message };
    else {
      const summary = summarizeDtrStatus({ ...(s.registrationId ? { registrationId: s.registrationId } : {}), users, resets });
      const message = s.note ? `${summary.message}; ${s.note}` : summary.message;
      condition = { status: summary.synced ? "True" : "False", reason: summary.reason, message };
    }
    return { condition, status, ...(next !== undefined ? { requeueAfterMs: Math.max(next, 50) } : {}) };
  }

  /**
   * The cache left the spec: reset the users that still point at our registrations, then delete
   * them, then drop the record — from the record alone, so an empty spec (no DTR document) works.
   */
  async teardown(name: string, signal: AbortSignal): Promise<DtrTeardownOutcome> {
    const record = await this.store.read(name);
    if (record === undefined) {
      this.caches.delete(name);
      return { done: true };
    }
    try {
      const result = await this.options.dtrSync.remove({ cacheName: name, dtr: record.dtr, users: record.users, owned: record.registrationIds }, signal);
      if (result.foreign.length > 0)
        this.options.logger.warn({ cache: name, foreign: result.foreign.map((f) => f.id) }, "DTR registrations of this name are not ours; left alone");
    } catch (error) {
      if (signal.aborted) throw error;
      const failure = describeDtrFailure(error);
      if (OUTAGE_CODES.has(failure.reason)) this.dtrUnreachable(dtrKey(record.dtr), failure.message);
      return { done: false, condition: { status: "False", reason: failure.reason, message: failure.message } };
    }
    // Forgotten first, so a recovery re-verifies the caches still on this DTR, not this one.
    this.caches.delete(name);
    this.dtrAnswered(dtrKey(record.dtr));
    await this.store.remove(name);
    return { done: true };
  }
}
