// The lease record: a tiny Swarm config per owner id whose labels say who holds the lease. Swarm
// lets a config's labels change (nothing else), with the object's version index as a
// precondition: an update based on a stale version is refused ("update out of sequence"), which
// is the compare-and-swap the lease is built on.
import { createHash } from "node:crypto";
import type { Labels, SwarmApi, SwarmConfig } from "../swarm/api.js";

export const LEASE = "io.dtrcache.lease";
export const LEASE_OWNER = "io.dtrcache.lease.owner";
export const LEASE_HOLDER = "io.dtrcache.lease.holder";
/** The holder's clock when it last renewed (for one-shot checks and for people; standbys use their own clock). */
export const LEASE_RENEWED = "io.dtrcache.lease.renewed";
export const LEASE_DURATION = "io.dtrcache.lease.duration-ms";
export const LEASE_ACQUIRED = "io.dtrcache.lease.acquired";
/** Incremented by every renewal, so a live holder always changes the record. */
export const LEASE_SEQ = "io.dtrcache.lease.seq";

export interface LeaseRecord {
  readonly configId: string;
  readonly version: number;
  readonly holder: string;
  readonly renewedAt: string;
  readonly acquiredAt: string;
  readonly durationMs: number;
  readonly seq: number;
}

export function leaseConfigName(owner: string): string {
  const readable = `dtrcache-lease-${owner}`;
  if (readable.length <= 64 && /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(readable)) return readable;
  return `dtrcache-lease-${createHash("sha256").update(owner).digest("hex").slice(0, 20)}`;
}

export function toRecord(config: SwarmConfig): LeaseRecord {
  const l = config.labels;
  return {
    configId: config.id,
    version: config.version.index,
    holder: l[LEASE_HOLDER] ?? "",
    renewedAt: l[LEASE_RENEWED] ?? "",
    acquiredAt: l[LEASE_ACQUIRED] ?? "",
    durationMs: Number(l[LEASE_DURATION] ?? "0") || 0,
    seq: Number(l[LEASE_SEQ] ?? "0") || 0,
  };
}

export function recordLabels(owner: string, fields: { holder: string; renewedAt: string; acquiredAt: string; durationMs: number; seq: number }): Labels {
  return {
    [LEASE]: "v1",
    [LEASE_OWNER]: owner,
    [LEASE_HOLDER]: fields.holder,
    [LEASE_RENEWED]: fields.renewedAt,
    [LEASE_ACQUIRED]: fields.acquiredAt,
    [LEASE_DURATION]: String(fields.durationMs),
    [LEASE_SEQ]: String(fields.seq),
  };
}

/** The current record, or undefined when no lease was ever taken for this owner id. */
export async function readLease(swarm: SwarmApi, owner: string): Promise<LeaseRecord | undefined> {
  const name = leaseConfigName(owner);
  const found = (await swarm.listConfigs({ labels: [`${LEASE}=v1`, `${LEASE_OWNER}=${owner}`] })).find((c) => c.name === name);
  // List results may carry a stale version on some engines; inspect for the authoritative one.
  return found ? toRecord(await swarm.inspectConfig(found.id)) : undefined;
}

/** True while the holder's last renewal (by its own clock) is younger than the lease duration. */
export function isLive(record: LeaseRecord, now: Date): boolean {
  if (record.holder === "") return false;
  const renewed = Date.parse(record.renewedAt);
  return Number.isFinite(renewed) && now.getTime() - renewed < record.durationMs;
}
