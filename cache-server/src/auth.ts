// Authorization is the upstream's business. A decision (allowed or refused) for one
// (credential, repository) pair is reused for a short TTL; the credential key is a hash of the
// Authorization header and the query string, so two credentials never share a decision and no
// secret is kept in memory as a map key. Concurrent probes for one key are coalesced.
import { createHash } from "node:crypto";
import type { Clock } from "./clock.js";

export type Decision =
  | { readonly kind: "allow"; readonly stale?: boolean }
  | { readonly kind: "refuse"; readonly status: number; readonly headers: Record<string, string>; readonly body: Buffer }
  | { readonly kind: "notfound" }
  | { readonly kind: "unreachable" };

interface Entry {
  readonly decision: Decision;
  readonly at: number;
}

const MAX_ENTRIES = 20_000;

export function credentialKey(authorization: string | undefined, query: string): string {
  return createHash("sha256").update(authorization ?? "").update("\n").update(query).digest("hex");
}

export class AuthCache {
  private readonly fresh = new Map<string, Entry>();
  /** Last positive decision per key, kept longer: used only when no upstream answers. */
  private readonly lastAllowed = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<Decision>>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly staleAllowMs: number,
  ) {}

  /** Records the outcome of an upstream answer seen elsewhere (e.g. a fill's GET). */
  record(cred: string, repo: string, decision: Decision): void {
    const key = `${cred}|${repo}`;
    if (decision.kind === "allow" || decision.kind === "refuse") {
      if (this.fresh.size >= MAX_ENTRIES) this.prune(this.fresh);
      this.fresh.set(key, { decision, at: this.clock.now() });
    }
    if (decision.kind === "allow") {
      if (this.lastAllowed.size >= MAX_ENTRIES) this.prune(this.lastAllowed);
      this.lastAllowed.set(key, this.clock.now());
    }
  }

  async authorize(cred: string, repo: string, probe: () => Promise<Decision>): Promise<Decision> {
    const key = `${cred}|${repo}`;
    const now = this.clock.now();
    const hit = this.fresh.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.decision;
    let p = this.inflight.get(key);
    if (!p) {
      p = probe().then((d) => {
        this.record(cred, repo, d);
        return d;
      });
      p.finally(() => this.inflight.delete(key)).catch(() => undefined);
      this.inflight.set(key, p);
    }
    const d = await p;
    if (d.kind === "unreachable") {
      const allowedAt = this.lastAllowed.get(key);
      if (allowedAt !== undefined && this.clock.now() - allowedAt <= this.staleAllowMs) return { kind: "allow", stale: true };
    }
    return d;
  }

  private prune(map: Map<string, unknown>): void {
    // Map iteration is insertion order: the oldest tenth goes.
    let n = Math.ceil(map.size / 10);
    for (const k of map.keys()) {
      if (n-- <= 0) break;
      map.delete(k);
    }
  }
}
