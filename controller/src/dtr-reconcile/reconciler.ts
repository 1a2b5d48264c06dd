// The DTR reconciler: one cache's registration and user settings, separate from the Swarm side.
// It owns its record of what DTR confirmed (record.ts) and never reads the Swarm step's labels, so
// a failed DTR pass cannot lose the users it still has to reset (issue 10, defect 2). Failures are
// retried per user with their own back-off (1 s doubling to 60 s); the whole set is verified
// again every `verifyEveryMs`. DtrSynced is True only when every listed user is assigned and no
// reset is pending; otherwise its reason and message name each failed or unknown user.
import type { ResolvedCache } from "@dtrcache/crds";
import { describeDtrFailure, summarizeDtrStatus } from "../dtr/dtr-sync.js";
import type { DtrSync, UserAssignment, UserReset } from "../dtr/sync.js";
import type { Logger } from "../logger.js";
import { LEGACY_USERS } from "../reconcile/labels.js";
import type { CacheStatus, Condition } from "../status.js";
import type { SwarmApi } from "../swarm/api.js";
import { DtrRecordStore, type DtrRecord } from "./record.js";

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

/** What an older controller recorded on the service (users label), adopted once when no record exists. */
export interface LegacyDtrLabels {
  readonly users: readonly string[];
}

interface Trouble {
  readonly state: "failed" | "unknown-user";
  readonly message?: string;
  readonly failures: number;
  readonly dueAt: number;
}

interface CacheDtrState {
  generation?: string;
  verifiedAt?: number;
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

  constructor(private readonly options: DtrReconcilerOptions) {
    this.store = new DtrRecordStore(options.swarm, options.owner);
  }

  private stateOf(name: string): CacheDtrState {
    let s = this.caches.get(name);
    if (!s) {
      s = { assign: new Map(), reset: new Map() };
      this.caches.set(name, s);
    }
    return s;
  }

  private backoff(failures: number): number {
    const base = this.options.retryBaseMs ?? 1_000;
    return Math.min(this.options.retryMaxMs ?? 60_000, base * 2 ** Math.max(0, failures - 1));
  }

  /** Whether the DTR side of this generation has had its first pass (else DtrSynced is stale). */
  passed(name: string, generation: string): boolean {
    return this.caches.get(name)?.generation === generation;
  }

  async reconcile(cache: ResolvedCache, generation: string, legacy: LegacyDtrLabels | undefined, signal: AbortSignal): Promise<DtrOutcome> {
    const s = this.stateOf(cache.name);
    const now = this.options.now();
    const listed = [...new Set(cache.spec.users)];
    const full = s.generation !== generation || s.verifiedAt === undefined || now - s.verifiedAt >= this.options.verifyEveryMs || (s.pass !== undefined && now >= s.pass.dueAt);
    const due = (m: Map<string, Trouble>): string[] => [...m].filter(([, t]) => t.dueAt <= now).map(([u]) => u);
    if (!full && due(s.assign).length === 0 && due(s.reset).length === 0) return this.outcome(s, listed);

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
    const ahead: DtrRecord = { ...record, dtr: cache.dtr, users: [...new Set([...record.users, ...assign])], ...(adoptHost !== undefined ? { adoptHost } : {}) };
    await this.store.write(ahead);

    let result;
    try {
      result = await this.options.dtrSync.apply(cache, { owned: record.registrationIds, ...(adoptHost !== undefined ? { adoptHost } : {}), assign, reset }, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      const failure = describeDtrFailure(error);
      const failures = (s.pass?.failures ?? 0) + 1;
      // Not retryable (credentials, a foreign registration): the periodic verification looks again.
      s.pass = { failures, dueAt: now + (failure.retryable ? this.backoff(failures) : this.options.verifyEveryMs), reason: failure.reason, message: failure.message };
      s.generation = generation;
      this.options.logger.warn({ cache: cache.name, code: failure.reason, err: failure.message, retryInMs: s.pass.dueAt - now }, "DTR pass failed; the Swarm side is unaffected");
      return this.outcome(s, listed);
    }
    delete s.pass;
    for (const u of [...s.assign.keys()]) if (!listed.includes(u)) s.assign.delete(u);
    for (const u of [...s.reset.keys()]) if (listed.includes(u)) s.reset.delete(u);
    this.track(s.assign, result.users, now, true);
    this.track(s.reset, result.resets ?? [], now, false);
    const gone = new Set([...(result.resets ?? []).filter((r) => r.state !== "failed").map((r) => r.username), ...result.users.filter((u) => u.state === "unknown-user").map((u) => u.username)]);
    const registrationId = result.registrationId ?? "";
    // Older ids stay ours while a reset is pending: the user may still point at one of them.
    const ids = [...new Set([registrationId, ...(s.reset.size > 0 ? record.registrationIds : [])])].filter((id) => id !== "");
    await this.store.write({ cache: cache.name, dtr: cache.dtr, registrationIds: ids, ...(result.host !== undefined ? { host: result.host } : {}), users: ahead.users.filter((u) => !gone.has(u)) });
    s.registrationId = registrationId;
    const foreign = result.foreign ?? [];
    if (foreign.length > 0) s.note = `registrations of this name not ours, left alone: ${foreign.map((f) => `${f.id} ${f.host}`).join(", ")}`;
    else delete s.note;
    if (full) {
      s.generation = generation;
      s.verifiedAt = now;
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
      map.set(o.username, { state: o.state === "failed" ? "failed" : "unknown-user", ...(o.message !== undefined ? { message: o.message } : {}), failures, dueAt });
    }
  }

  private outcome(s: CacheDtrState, listed: readonly string[]): DtrOutcome {
    const now = this.options.now();
    const users = listed.map((username) => {
      const t = s.assign.get(username);
      return t ? { username, state: t.state, ...(t.message !== undefined ? { message: t.message } : {}) } : { username, state: "assigned" as const };
    });
    const resets = [...s.reset].map(([username, t]) => ({ username, state: "failed" as const, ...(t.message !== undefined ? { message: t.message } : {}) }));
    const status: CacheStatus["dtr"] = { ...(s.registrationId ? { registrationId: s.registrationId } : {}), users: [...users.map((u) => ({ username: u.username, state: u.state })), ...resets.map((r) => ({ username: r.username, state: "reset-failed" }))] };
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
      if (result.foreign.length > 0) this.options.logger.warn({ cache: name, foreign: result.foreign.map((f) => f.id) }, "DTR registrations of this name are not ours; left alone");
    } catch (error) {
      if (signal.aborted) throw error;
      const failure = describeDtrFailure(error);
      return { done: false, condition: { status: "False", reason: failure.reason, message: failure.message } };
    }
    await this.store.remove(name);
    this.caches.delete(name);
    return { done: true };
  }
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
