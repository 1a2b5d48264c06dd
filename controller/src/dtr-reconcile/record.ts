// The DTR reconciler's own record of what DTR confirmed, kept in the Swarm so that a restarted
// controller, and a teardown with an empty spec, find it: one Swarm config per cache, named
// `<cache>-dtr-<sha8>` and labelled owner/cache/purpose=dtr-record. It holds the DTR connection
// (references only: the password stays an {env}/{file} reference), the registration ids that are
// ours, and every user that may point at them. Configs are immutable, so a change writes a new one
// and removes the old; an unchanged record writes nothing. The Swarm reconciler never sees it
// (observeCache leaves this purpose out), so removing the service does not remove the record.
import { createHash } from "node:crypto";
import type { ResolvedDtr } from "@dtrcache/crds";
import { CACHE, OWNER, PURPOSE } from "../reconcile/labels.js";
import type { SwarmApi, SwarmConfig } from "../swarm/api.js";
import { isSwarmError } from "../swarm/errors.js";

export const DTR_RECORD_PURPOSE = "dtr-record";

export interface DtrRecord {
  readonly cache: string;
  /** Where the registration lives; used when the spec no longer names the cache or the DTR. */
  readonly dtr: ResolvedDtr;
  /** Registration ids that are ours, current first; older ones only while a user may still point at them. */
  readonly registrationIds: readonly string[];
  readonly host?: string;
  /** Set before a create: a registration of the name with this host is ours even if its id is not recorded yet. */
  readonly adoptHost?: string;
  /** Users that may point at one of our ids: confirmed, being assigned, or whose reset is pending. Sorted. */
  readonly users: readonly string[];
}

function canonical(record: DtrRecord): string {
  const { cache, dtr, registrationIds, host, adoptHost, users } = record;
  return JSON.stringify({
    version: 1,
    cache,
    dtr,
    registrationIds,
    ...(host !== undefined ? { host } : {}),
    ...(adoptHost !== undefined ? { adoptHost } : {}),
    users: [...new Set(users)].sort(),
  });
}

function parse(data: Buffer | undefined): DtrRecord | undefined {
  try {
    const value = JSON.parse(data?.toString("utf8") ?? "") as Partial<DtrRecord> & { version?: number };
    if (
      value.version !== 1 ||
      typeof value.cache !== "string" ||
      value.dtr === undefined ||
      !Array.isArray(value.registrationIds) ||
      !Array.isArray(value.users)
    )
      return undefined;
    return value as DtrRecord;
  } catch {
    return undefined;
  }
}

export class DtrRecordStore {
  /** Inspected record contents by config id: a record is read once, then listed only. */
  private readonly contents = new Map<string, DtrRecord | undefined>();

  constructor(
    private readonly swarm: SwarmApi,
    private readonly owner: string,
  ) {}

  private async list(cache: string): Promise<SwarmConfig[]> {
    const configs = await this.swarm.listConfigs({ labels: [`${OWNER}=${this.owner}`, `${CACHE}=${cache}`, `${PURPOSE}=${DTR_RECORD_PURPOSE}`] });
    // Newest first: after a crash between create and remove the newer one is the truth.
    return configs.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : b.name.localeCompare(a.name)));
  }

  async read(cache: string): Promise<DtrRecord | undefined> {
    const newest = (await this.list(cache))[0];
    if (newest === undefined) return undefined;
    if (!this.contents.has(newest.id)) this.contents.set(newest.id, parse((await this.swarm.inspectConfig(newest.id)).data));
    return this.contents.get(newest.id);
  }

  /** Writes the record unless it is already the newest one; then removes the older ones. */
  async write(record: DtrRecord): Promise<void> {
    const text = canonical(record);
    const name = `${record.cache}-dtr-${createHash("sha256").update(text).digest("hex").slice(0, 8)}`;
    const existing = await this.list(record.cache);
    if (existing[0]?.name === name && existing.length === 1) return;
    let id = existing.find((c) => c.name === name)?.id;
    if (id === undefined || existing[0]?.name !== name) {
      if (id !== undefined) await this.drop(id);
      id = await this.swarm.createConfig({
        name,
        labels: { [OWNER]: this.owner, [CACHE]: record.cache, [PURPOSE]: DTR_RECORD_PURPOSE },
        data: Buffer.from(text),
      });
    }
    this.contents.set(id, parse(Buffer.from(text)));
    for (const old of existing) if (old.id !== id) await this.drop(old.id);
  }

  async remove(cache: string): Promise<void> {
    for (const config of await this.list(cache)) await this.drop(config.id);
  }

  private async drop(id: string): Promise<void> {
    try {
      await this.swarm.removeConfig(id);
    } catch (error) {
      if (!isSwarmError(error, "NOT_FOUND")) throw error;
    }
    this.contents.delete(id);
  }
}
