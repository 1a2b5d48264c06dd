// The CacheSpec store: resources kept in the swarm's own replicated state as immutable, labelled
// Swarm configs, one per revision (labels.ts names them). Reads list by label and take the highest
// generation per resource; writes create generation N+1 and rely on Swarm's unique config names
// for the compare-and-swap. A delete writes a tombstone revision, so history survives it and a
// later apply continues the generation count. Old revisions beyond `keep` are pruned.
import { hostname, userInfo } from "node:os";
import { parse } from "yaml";
import type { SwarmApi, SwarmConfig } from "../swarm/api.js";
import { isSwarmError } from "../swarm/errors.js";
import { StoreError } from "./errors.js";
import {
  KINDS,
  STORE,
  STORE_CHANGE,
  STORE_DELETED,
  STORE_FORMAT,
  STORE_GENERATION,
  STORE_HASH,
  STORE_KIND,
  STORE_NAME,
  STORE_OWNER,
  STORE_WHEN,
  STORE_WHO,
  revisionConfigName,
  storeFilter,
  type ResourceKind,
} from "./labels.js";
import { documentHash, keyOf, stripStoreFields, toYaml, type Document, type ResourceKey } from "./resource.js";

export interface Revision extends ResourceKey {
  readonly generation: number;
  readonly configId: string;
  readonly configName: string;
  readonly who: string;
  readonly when: string;
  readonly change: string;
  readonly hash: string;
  readonly deleted: boolean;
}

export interface StoredResource extends Revision {
  /** The document with metadata.generation set to the revision's generation. */
  readonly doc: Document;
}

export interface StoreOptions {
  readonly swarm: SwarmApi;
  readonly owner: string;
  /** Revisions kept per resource, current included (at least 10). */
  readonly keep?: number;
  /** Recorded on each revision: who wrote it (default user@host). */
  readonly who?: string;
  readonly now?: () => Date;
}

export interface WriteRequest extends ResourceKey {
  /** The new document; undefined writes a tombstone (delete). */
  readonly doc: Document | undefined;
  /** The generation this write is based on (0: the resource does not exist yet). */
  readonly base: number;
  readonly change: string;
}

export const DEFAULT_KEEP = 10;

export function defaultWho(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (a container with a bare uid): keep "unknown".
  }
  return `${user}@${hostname()}`;
}

function toRevision(config: SwarmConfig): Revision | undefined {
  const l = config.labels;
  const kind = KINDS.find((k) => k === l[STORE_KIND]);
  const name = l[STORE_NAME];
  const generation = Number(l[STORE_GENERATION]);
  if (!kind || !name || !Number.isInteger(generation) || generation < 1) return undefined;
  return {
    kind,
    name,
    generation,
    configId: config.id,
    configName: config.name,
    who: l[STORE_WHO] ?? "",
    when: l[STORE_WHEN] ?? config.createdAt,
    change: l[STORE_CHANGE] ?? "",
    hash: l[STORE_HASH] ?? "",
    deleted: l[STORE_DELETED] === "true",
  };
}

export class SpecStore {
  readonly owner: string;
  private readonly swarm: SwarmApi;
  private readonly keep: number;
  private readonly who: string;
  private readonly now: () => Date;
  /** Revisions are immutable: their documents are read once per process. */
  private readonly documents = new Map<string, Document>();

  constructor(options: StoreOptions) {
    this.swarm = options.swarm;
    this.owner = options.owner;
    this.keep = Math.max(DEFAULT_KEEP, options.keep ?? DEFAULT_KEEP);
    this.who = options.who ?? defaultWho();
    this.now = options.now ?? (() => new Date());
  }

  /** Every revision of this owner's resources (or of one kind / resource), oldest first. */
  async revisions(kind?: ResourceKind, name?: string): Promise<Revision[]> {
    const configs = await this.swarm.listConfigs(storeFilter(this.owner, kind, name));
    return configs
      .map(toRevision)
      .filter((r): r is Revision => r !== undefined && (kind === undefined || r.kind === kind) && (name === undefined || r.name === name))
      .sort((a, b) => (a.kind === b.kind ? (a.name === b.name ? a.generation - b.generation : a.name < b.name ? -1 : 1) : a.kind < b.kind ? -1 : 1));
  }

  /** The newest revision of each resource, tombstones included (callers decide what a tombstone means). */
  async heads(kind?: ResourceKind): Promise<Revision[]> {
    const newest = new Map<string, Revision>();
    for (const r of await this.revisions(kind)) {
      const seen = newest.get(keyOf(r));
      if (!seen || seen.generation < r.generation) newest.set(keyOf(r), r);
    }
    return [...newest.values()];
  }

  /** The live resources: newest revision of each, deleted ones left out. */
  async list(kind?: ResourceKind): Promise<StoredResource[]> {
    const heads = (await this.heads(kind)).filter((r) => !r.deleted);
    return Promise.all(heads.map((r) => this.read(r)));
  }

  async get(kind: ResourceKind, name: string): Promise<StoredResource | undefined> {
    const head = await this.head(kind, name);
    return head && !head.deleted ? this.read(head) : undefined;
  }

  /** The newest revision of one resource, tombstone or not; undefined if it never existed. */
  async head(kind: ResourceKind, name: string): Promise<Revision | undefined> {
    const all = await this.revisions(kind, name);
    return all[all.length - 1];
  }

  async revision(kind: ResourceKind, name: string, generation: number): Promise<StoredResource> {
    const found = (await this.revisions(kind, name)).find((r) => r.generation === generation);
    if (!found) throw new StoreError("NOT_FOUND", `${kind}/${name} has no revision ${generation} (kept: the last ${this.keep})`);
    return this.read(found);
  }

  /** Reads a revision's document (tombstones hold the last document before the delete). */
  async read(revision: Revision): Promise<StoredResource> {
    let doc = this.documents.get(revision.configId);
    if (!doc) {
      const config = await this.swarm.inspectConfig(revision.configId);
      let parsed: unknown;
      try {
        parsed = parse(config.data?.toString("utf8") ?? "");
      } catch (error) {
        throw new StoreError("CORRUPT", `${revision.configName}: stored document is not YAML`, [], { cause: error });
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
        throw new StoreError("CORRUPT", `${revision.configName}: stored document is not a mapping`);
      doc = parsed as Document;
      this.documents.set(revision.configId, doc);
    }
    const withGeneration = structuredClone(doc);
    const metadata = (withGeneration["metadata"] ?? {}) as Record<string, unknown>;
    withGeneration["metadata"] = { ...metadata, generation: revision.generation };
    return { ...revision, doc: withGeneration };
  }

  /**
   * Creates generation `base + 1`. Exactly one of several concurrent writers based on the same
   * generation succeeds; the others get CONFLICT and nothing of theirs is stored.
   */
  async write(request: WriteRequest): Promise<Revision> {
    const generation = request.base + 1;
    const configName = revisionConfigName(this.owner, request.kind, request.name, generation);
    let doc = request.doc;
    if (doc === undefined) {
      // A tombstone keeps the last document, so `history` and `rollback` can still show it.
      const previous = request.base > 0 ? await this.revision(request.kind, request.name, request.base).catch(() => undefined) : undefined;
      doc = previous?.doc ?? { kind: request.kind, metadata: { name: request.name } };
    }
    const stored = stripStoreFields(doc);
    const labels: Record<string, string> = {
      [STORE]: STORE_FORMAT,
      [STORE_OWNER]: this.owner,
      [STORE_KIND]: request.kind,
      [STORE_NAME]: request.name,
      [STORE_GENERATION]: String(generation),
      [STORE_WHO]: this.who,
      [STORE_WHEN]: this.now().toISOString(),
      [STORE_CHANGE]: request.change,
      [STORE_HASH]: documentHash(stored),
      ...(request.doc === undefined ? { [STORE_DELETED]: "true" } : {}),
    };
    let configId: string;
    try {
      configId = await this.swarm.createConfig({ name: configName, labels, data: Buffer.from(toYaml(stored)) });
    } catch (error) {
      if (isSwarmError(error, "NAME_TAKEN")) throw await this.conflict(request, generation, error);
      throw error;
    }
    this.documents.set(configId, stored);
    await this.prune(request.kind, request.name);
    return {
      kind: request.kind,
      name: request.name,
      generation,
      configId,
      configName,
      who: this.who,
      when: labels[STORE_WHEN] ?? "",
      change: request.change,
      hash: labels[STORE_HASH] ?? "",
      deleted: request.doc === undefined,
    };
  }

  private async conflict(request: WriteRequest, generation: number, cause: unknown): Promise<StoreError> {
    const winner = (await this.revisions(request.kind, request.name).catch(() => [])).find((r) => r.generation === generation);
    const by = winner ? ` by ${winner.who} at ${winner.when}` : "";
    return new StoreError(
      "CONFLICT",
      `${request.kind}/${request.name} was changed${by} (generation ${generation} exists; this change was based on ${request.base}); nothing was written — re-read and try again`,
      [],
      { cause },
    );
  }

  /** Removes revisions beyond `keep`, oldest first. Best effort: a failure leaves one more revision. */
  async prune(kind: ResourceKind, name: string): Promise<number> {
    const all = await this.revisions(kind, name);
    const old = all.slice(0, Math.max(0, all.length - this.keep));
    let removed = 0;
    for (const r of old) {
      try {
        await this.swarm.removeConfig(r.configId);
        this.documents.delete(r.configId);
        removed += 1;
      } catch (error) {
        if (!isSwarmError(error, "NOT_FOUND")) continue;
      }
    }
    return removed;
  }
}

export { keyOf };
