// How a resource revision is written into the swarm: one immutable Swarm config per revision,
// found again by these labels. The config's name is derived from (owner, kind, name, generation)
// alone, so "create generation N+1" is a compare-and-swap: Swarm refuses a second config with a
// name that exists, and exactly one of two concurrent writers of N+1 gets it.
import { createHash } from "node:crypto";

export const STORE = "io.dtrcache.store";
/** Store labels use their own owner key, so the reconciler's owned-object scans never see them. */
export const STORE_OWNER = "io.dtrcache.store.owner";
export const STORE_KIND = "io.dtrcache.store.kind";
export const STORE_NAME = "io.dtrcache.store.name";
export const STORE_GENERATION = "io.dtrcache.store.generation";
export const STORE_WHO = "io.dtrcache.store.who";
export const STORE_WHEN = "io.dtrcache.store.when";
export const STORE_CHANGE = "io.dtrcache.store.change";
export const STORE_HASH = "io.dtrcache.store.hash";
/** On a tombstone revision: the resource was deleted at this generation (its history stays). */
export const STORE_DELETED = "io.dtrcache.store.deleted";
export const STORE_FORMAT = "v1";

export type ResourceKind = "DTR" | "ContentCache";
export const KINDS: readonly ResourceKind[] = ["DTR", "ContentCache"];

const SHORT: Record<ResourceKind, string> = { DTR: "dtr", ContentCache: "cc" };
/** Swarm's limit for config names (swarmkit validateAnnotations). */
const MAX_NAME = 64;
const SAFE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function storeFilter(owner: string, kind?: ResourceKind, name?: string): { labels: string[] } {
  const labels = [`${STORE}=${STORE_FORMAT}`, `${STORE_OWNER}=${owner}`];
  if (kind !== undefined) labels.push(`${STORE_KIND}=${kind}`);
  if (name !== undefined) labels.push(`${STORE_NAME}=${name}`);
  return { labels };
}

/**
 * `dtrcache-<owner>-<dtr|cc>-<name>-r<generation>` when that fits Swarm's rules; otherwise (long or
 * unusual owner ids) a hash of the three parts stands in for them. Deterministic either way: the
 * compare-and-swap depends on every writer of one generation computing the same name.
 */
export function revisionConfigName(owner: string, kind: ResourceKind, name: string, generation: number): string {
  const readable = `dtrcache-${owner}-${SHORT[kind]}-${name}-r${generation}`;
  if (readable.length <= MAX_NAME && SAFE.test(readable)) return readable;
  const digest = createHash("sha256").update(`${owner}\0${kind}\0${name}`).digest("hex").slice(0, 20);
  return `dtrcache-${digest}-r${generation}`;
}

export function parseKind(text: string): ResourceKind | undefined {
  const k = text.toLowerCase();
  if (k === "dtr" || k === "dtrs") return "DTR";
  if (k === "contentcache" || k === "contentcaches" || k === "cc" || k === "cache" || k === "caches") return "ContentCache";
  return undefined;
}
