// What the status endpoint and `dtrcache status` show: the controller's status with each cache's
// TLS findings folded in as a `TlsTrusted` condition (the runbook's three failure causes).
import type { CacheStatus, Condition, ControllerStatus } from "../status.js";
import type { TlsFinding } from "../tls/checks.js";
import type { LeaseStatus } from "../lease/elector.js";

export interface TlsCheckResult {
  readonly checkedAt: string;
  readonly findings: readonly TlsFinding[];
  /** The cache serves plain HTTP (`tls.disabled`): there is no cache certificate to check. */
  readonly plainHttp?: boolean;
  /** The cache's upstream URLs that are plain http:// (no TLS hop there: nothing verifies). */
  readonly plainUpstreams?: readonly string[];
  /** How many upstreams the cache has (to tell "all plain" from "some plain"). */
  readonly upstreamCount?: number;
}

/** What the cache → upstream hop does: only https upstreams are verified. */
function upstreamWording(result: TlsCheckResult): string {
  const plain = result.plainUpstreams ?? [];
  if (plain.length === 0) return result.upstreamCount === undefined || result.upstreamCount > 1 ? "the upstreams verify" : "the upstream verifies";
  if (plain.length >= (result.upstreamCount ?? plain.length))
    return `the upstream${plain.length > 1 ? "s are" : " is"} plain HTTP (${plain.join(", ")}): no TLS to verify`;
  return `https upstreams verify; ${plain.join(", ")} ${plain.length > 1 ? "are" : "is"} plain HTTP (no TLS to verify)`;
}

export type SnapshotCondition = Omit<Condition, "type"> & { readonly type: Condition["type"] | "TlsTrusted" };

/** The cache's spec as `status` shows it (cli/spec-view.ts). */
export interface SpecView {
  /** Valid: the latest spec load was accepted; Rejected: it was not (the last good one stays in force); Removed: the cache left the spec. */
  readonly state: "Valid" | "Rejected" | "Removed";
  /** Store mode: the stored revision of the ContentCache (`dtrcache get` shows it). */
  readonly storedGeneration?: number;
  /** Store mode: the revision the controller's last completed reconcile acted on. */
  readonly observedStoreGeneration?: number;
  /** When the cache's current spec was written (store) or first loaded by this controller (file). */
  readonly since?: string;
}

export interface CacheSnapshot extends Omit<CacheStatus, "conditions"> {
  readonly conditions: readonly SnapshotCondition[];
  readonly tls?: TlsCheckResult;
  /** Absent from a controller that predates it. */
  readonly spec?: SpecView;
  /** While the cache rolls out: running tasks of the current spec / desired (cli/rollout-progress.ts). */
  readonly rollout?: { readonly updated: number; readonly desired: number };
}

export interface RuntimeSnapshot extends Omit<ControllerStatus, "caches"> {
  readonly caches: readonly CacheSnapshot[];
  /** Present when the controller runs with a lease: leader, or standby (and who leads). */
  readonly lease?: LeaseStatus;
}

function tlsCondition(result: TlsCheckResult): SnapshotCondition {
  const blocking = result.findings.filter((f) => f.blocking);
  const first = blocking[0];
  if (first)
    return {
      type: "TlsTrusted",
      status: "False",
      reason: first.reason,
      message: blocking.map((f) => f.message).join("; "),
      lastTransitionTime: result.checkedAt,
    };
  const advice = result.findings.map((f) => f.message).join("; ");
  if (result.plainHttp && advice === "")
    return {
      type: "TlsTrusted",
      status: "True",
      reason: "TlsDisabled",
      message: `the cache serves plain HTTP (tls.disabled); ${upstreamWording(result)}`,
      lastTransitionTime: result.checkedAt,
    };
  return {
    type: "TlsTrusted",
    status: "True",
    reason: result.findings[0]?.reason ?? "Verified",
    message: advice || `certificate names the external host; ${upstreamWording(result)}`,
    lastTransitionTime: result.checkedAt,
  };
}

export function buildSnapshot(status: ControllerStatus, tls: ReadonlyMap<string, TlsCheckResult>): RuntimeSnapshot {
  return {
    ...status,
    caches: status.caches.map((cache) => {
      const result = tls.get(cache.name);
      return result ? { ...cache, conditions: [...cache.conditions, tlsCondition(result)], tls: result } : cache;
    }),
  };
}
