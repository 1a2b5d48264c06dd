// Authorization is the upstream's business; this module only remembers what the upstream said,
// per object. The unit of a remembered "allow" is a grant: (credential, repository, digest). A
// cached object is served to a request only when a fresh grant for exactly that triple exists,
// learned from the upstream's own 200 for that object under that repository name, or from a
// manifest the upstream served to that credential under that name (its references live in the
// same repository: the upstream refuses a manifest whose blobs are not linked there).
//
// - Credential: a hash of the Authorization header and the query string (a DTR-signed redirect
//   carries its credential in the query), so two credentials never share anything and no secret is
//   kept as a map key. A query's `expires` (unix seconds, DTR's signed redirects) ends every grant
//   learned with it, also during an outage.
// - Revocation: any 401/403 for a credential erases everything allowed for it (every repository,
//   every digest, and its outage allowance); a refusal is reused for `ttl` per (credential,
//   repository). Otherwise an allowed grant is re-asked after `ttl`: that is the revocation delay.
// - Outage allowance: only when no upstream answers at all (see Decision "unreachable") is a grant
//   honoured past `ttl`, for at most `outageAllowanceMs` after the upstream last confirmed it.
// - Not found: an upstream 404 for a triple is remembered for `notFoundTtlMs` (bounded), so
//   repeated requests for an unknown digest cost one upstream request per window, not one each.
// Concurrent probes for one triple are coalesced.
import { createHash } from "node:crypto";
import type { Clock } from "./clock.js";

export type Decision =
  | { readonly kind: "allow"; readonly stale?: boolean }
  | { readonly kind: "refuse"; readonly status: number; readonly headers: Record<string, string>; readonly body: Buffer }
  | { readonly kind: "notfound" }
  /** No upstream answered (connection failure, timeout, 502/503/504): the only case the outage allowance covers. */
  | { readonly kind: "unreachable" }
  /** The upstream answered, but neither allowed nor refused (e.g. 429, 400): relayed, never an outage. */
  | { readonly kind: "failed"; readonly status: number; readonly headers: Record<string, string> };

export interface Credential {
  /** sha256 of Authorization + "\n" + query: never the secret itself. */
  readonly key: string;
  /** Epoch ms after which nothing learned with this credential is honoured (a signed query's `expires`). */
  readonly notAfter: number | undefined;
}

export interface AuthPolicy {
  /** How long an upstream answer is reused before the upstream is asked again. */
  readonly ttlMs: number;
  /** How long after its last confirmation a grant is honoured while no upstream answers (0 = never). */
  readonly outageAllowanceMs: number;
  /** How long an upstream 404 for one (credential, repository, digest) is remembered. */
  readonly notFoundTtlMs: number;
  /** Bound on remembered entries across all credentials (oldest credentials are forgotten first). */
  readonly maxEntries?: number;
}

/** Where an authorization answer came from; counted so the cost of per-object checks is visible. */
export type DecisionSource = "remembered" | "upstream" | "outage";

const DEFAULT_MAX_ENTRIES = 200_000;
/** A signed query's `expires`: unix seconds, as DTR's (and the emulator's) redirects carry it. */
const EXPIRES_PARAM = /(?:^|&)expires=(\d{1,12})(?:&|$)/;

export function credentialOf(authorization: string | undefined, query: string): Credential {
  const key = createHash("sha256")
    .update(authorization ?? "")
    .update("\n")
    .update(query)
    .digest("hex");
  const m = EXPIRES_PARAM.exec(query);
  return { key, notAfter: m?.[1] !== undefined ? Number(m[1]) * 1000 : undefined };
}

/** The credential of a request with neither an Authorization header nor a query: computed once. */
const ANONYMOUS = credentialOf(undefined, "");

/**
 * credentialOf, remembered per connection: a client sends the same Authorization header on every
 * request of a keep-alive connection, so the hash is computed once per connection and header
 * value, not once per request (2.6% of a manifest hit's CPU). The header is held only as long as
 * the connection is (the WeakMap lets it go with the socket), never in a process-wide map.
 */
export class ConnectionCredentials {
  private readonly last = new WeakMap<object, { authorization: string | undefined; query: string; cred: Credential }>();

  of(connection: object, authorization: string | undefined, query: string): Credential {
    if (authorization === undefined && query === "") return ANONYMOUS;
    const seen = this.last.get(connection);
    if (seen && seen.authorization === authorization && seen.query === query) return seen.cred;
    const cred = credentialOf(authorization, query);
    this.last.set(connection, { authorization, query, cred });
    return cred;
  }
}

interface Remembered<T> {
  readonly value: T;
  readonly at: number;
}

/** Everything remembered for one credential; dropped whole on a refusal. */
class CredentialState {
  /** `${repo}@${digest}` → when the upstream last allowed it. */
  readonly grants = new Map<string, number>();
  /** repository → the refusal, reused for ttl. */
  readonly refusals = new Map<string, Remembered<Extract<Decision, { kind: "refuse" }>>>();
  /** `${repo}@${digest}` → when the upstream answered 404. */
  readonly missing = new Map<string, number>();

  /** This state's share of AuthCache.entries when last counted. */
  counted = 0;

  get size(): number {
    return this.grants.size + this.refusals.size + this.missing.size;
  }

  /** Drops the oldest entries (Map order is insertion order; writers delete before they set). */
  trim(target: number): void {
    for (const map of [this.missing, this.grants, this.refusals] as Map<string, unknown>[]) {
      for (const k of map.keys()) {
        if (this.size <= target) return;
        map.delete(k);
      }
    }
  }
}

export class AuthCache {
  private readonly byCredential = new Map<string, CredentialState>();
  private readonly inflight = new Map<string, Promise<Decision>>();
  private entries = 0;
  private readonly maxEntries: number;
  private readonly perCredentialMax: number;

  constructor(
    private readonly clock: Clock,
    private readonly policy: AuthPolicy,
    private readonly onDecision: (source: DecisionSource, kind: Decision["kind"]) => void = () => undefined,
  ) {
    this.maxEntries = policy.maxEntries ?? DEFAULT_MAX_ENTRIES;
    // One credential (anonymous, say, asking for random digests) must not push out everyone else.
    this.perCredentialMax = Math.max(16, Math.floor(this.maxEntries / 10));
  }

  /** The upstream served these objects of `repo` to `cred` (a 200/304, or a manifest listing them). */
  allow(cred: Credential, repo: string, digests: Iterable<string>): void {
    const now = this.clock.now();
    if (cred.notAfter !== undefined && now >= cred.notAfter) return;
    const state = this.state(cred.key);
    state.refusals.delete(repo);
    for (const digest of digests) {
      const k = `${repo}@${digest}`;
      state.missing.delete(k);
      state.grants.delete(k);
      state.grants.set(k, now);
    }
    this.resize(state);
  }

  /** The upstream refused `cred` (401/403): everything it was allowed before is forgotten. */
  refuse(cred: Credential, repo: string, decision: Extract<Decision, { kind: "refuse" }>): void {
    const old = this.byCredential.get(cred.key);
    if (old) this.forget(cred.key, old);
    const state = this.state(cred.key);
    state.refusals.set(repo, { value: decision, at: this.clock.now() });
    this.resize(state);
  }

  /** The upstream answered 404 for this object under this name (for this credential). */
  notFound(cred: Credential, repo: string, digest: string): void {
    const state = this.state(cred.key);
    const k = `${repo}@${digest}`;
    state.grants.delete(k);
    state.missing.delete(k);
    state.missing.set(k, this.clock.now());
    this.resize(state);
  }

  /** A remembered answer that makes an upstream request for this object pointless, if any. */
  remembered(cred: Credential, repo: string, digest: string): Decision | undefined {
    const state = this.byCredential.get(cred.key);
    if (!state) return undefined;
    const now = this.clock.now();
    const refusal = state.refusals.get(repo);
    if (refusal && now - refusal.at < this.policy.ttlMs) return refusal.value;
    const missingAt = state.missing.get(`${repo}@${digest}`);
    if (missingAt !== undefined && now - missingAt < this.policy.notFoundTtlMs) return { kind: "notfound" };
    const grantedAt = state.grants.get(`${repo}@${digest}`);
    if (grantedAt !== undefined && now - grantedAt < this.policy.ttlMs && this.withinExpiry(cred, now)) return { kind: "allow" };
    return undefined;
  }

  /**
   * A decision the caller got from remembered() and acts on instead of calling authorize(),
   * which would look it up again; counted as authorize() counts a remembered one.
   */
  rememberedUsed(known: Decision): Decision {
    this.onDecision("remembered", known.kind);
    return known;
  }

  /**
   * May `cred` read `digest` under `repo`? A remembered answer, else the upstream's (via `probe`,
   * coalesced per triple, and recorded), else — only when no upstream answered — the outage
   * allowance for a grant the upstream confirmed recently and never refused since.
   */
  async authorize(cred: Credential, repo: string, digest: string, probe: () => Promise<Decision>): Promise<Decision> {
    const known = this.remembered(cred, repo, digest);
    if (known) {
      this.onDecision("remembered", known.kind);
      return known;
    }
    const key = `${cred.key}|${repo}|${digest}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = probe().then((d) => {
        this.record(cred, repo, digest, d);
        this.onDecision("upstream", d.kind);
        return d;
      });
      p.finally(() => this.inflight.delete(key)).catch(() => undefined);
      this.inflight.set(key, p);
    }
    const d = await p;
    if (d.kind !== "unreachable") return d;
    const grantedAt = this.byCredential.get(cred.key)?.grants.get(`${repo}@${digest}`);
    const now = this.clock.now();
    if (grantedAt !== undefined && now - grantedAt <= this.policy.outageAllowanceMs && this.withinExpiry(cred, now)) {
      this.onDecision("outage", "allow");
      return { kind: "allow", stale: true };
    }
    return d;
  }

  /** Records an upstream answer about one object seen elsewhere (a fill's GET, a HEAD on a miss). */
  record(cred: Credential, repo: string, digest: string, d: Decision): void {
    if (d.kind === "allow" && !d.stale) this.allow(cred, repo, [digest]);
    else if (d.kind === "refuse") this.refuse(cred, repo, d);
    else if (d.kind === "notfound") this.notFound(cred, repo, digest);
  }

  /** Remembered entries (grants, refusals, 404s) across all credentials; for tests and bounds. */
  get size(): number {
    return this.entries;
  }

  private withinExpiry(cred: Credential, now: number): boolean {
    return cred.notAfter === undefined || now < cred.notAfter;
  }

  private state(key: string): CredentialState {
    let s = this.byCredential.get(key);
    if (s) this.byCredential.delete(key); // re-inserted below: Map order is recency of use
    s ??= new CredentialState();
    this.byCredential.set(key, s);
    return s;
  }

  private forget(key: string, s: CredentialState): void {
    this.entries -= s.counted;
    this.byCredential.delete(key);
  }

  /** Keeps one credential's entries and the total bounded after `changed` grew. */
  private resize(changed: CredentialState): void {
    if (changed.size > this.perCredentialMax) changed.trim(this.perCredentialMax * 0.9);
    this.entries += changed.size - changed.counted;
    changed.counted = changed.size;
    if (this.entries <= this.maxEntries) return;
    for (const [k, s] of this.byCredential) {
      if (this.entries <= this.maxEntries * 0.9 || s === changed) break;
      this.forget(k, s);
    }
  }
}
