// The DTR half of `plan` and `diff` (issue 13, item 2; issue 11, item 6): what the controller
// would do in DTR, read from DTR itself — the registrations of each cache's name and the Content
// Cache setting of every user the spec lists or the controller's record holds — compared with the
// controller's record of what is ours (dtr-reconcile/record.ts), with the same rules the DTR
// reconciler applies (dtr/dtr-sync.ts): only recorded registrations are ours; a registration of
// the name that is not ours is never touched and blocks a create; a dropped user is reset only
// where it still points at one of ours. Reads only (GET), no write.
//
// DTR is asked with the spec's own admin reference. Where that cannot be read here — a
// `{secret: NAME}` password lives in the controller's container, not in the operator's shell —
// or DTR does not answer, the lines come from the record alone and say so.
import type { CacheSpec, ResolvedCache, ResolvedDtr } from "@dtrcache/crds";
import { DtrClient, type ContentCacheRecord } from "../dtr/client.js";
import { isDtrError } from "../dtr/errors.js";
import { readSecretRef } from "../dtr/secret.js";
import { establishTrust } from "../dtr/trust.js";
import { silentLogger } from "../logger.js";
import type { DtrRecord } from "../dtr-reconcile/record.js";

/** What the dry run needs from DTR: the two reads the reconciler's pass starts with. */
export interface DtrReader {
  listContentCaches(): Promise<ContentCacheRecord[]>;
  /** The user's ContentCacheUUID ("" unset); undefined when DTR has no such user. */
  userContentCache(username: string): Promise<string | undefined>;
  close(): Promise<void>;
}

export type DtrReaderFactory = (dtr: ResolvedDtr) => Promise<DtrReader>;

/**
 * DTR is not asked because what it takes is a Swarm secret mounted only into the controller's
 * service: the normal case from an operator's shell, not a failure, so it is said calmly.
 */
export class ControllerOnlySecretError extends Error {
  constructor(readonly what: string) {
    super(`${what} is a Swarm secret only the controller can read`);
  }
}

/** Reads a `{secret: NAME}` reference's file, or says it lives in the controller's service only. */
async function readHere<T>(isSwarmSecret: boolean, what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (isSwarmSecret && isMissingFile(error)) throw new ControllerOnlySecretError(what);
    throw error;
  }
}

function isMissingFile(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) if ((e as NodeJS.ErrnoException).code === "ENOENT" || /: ENOENT$/.test(e.message)) return true;
  return false;
}

/** A reader over the real client, with the spec's trust and admin reference. */
export function liveDtrReader(env: NodeJS.ProcessEnv, readConfig?: (name: string) => Promise<string>): DtrReaderFactory {
  return async (dtr) => {
    const ref = dtr.spec.admin.password;
    const password = await readHere("secret" in ref, "the admin password", () => readSecretRef(ref, env));
    const caFile = dtr.spec.trust.caFile;
    const trust = await readHere(typeof caFile === "object" && "secret" in caFile, "DTR's CA", () =>
      establishTrust(dtr.spec, silentLogger, { timeoutMs: 10_000, ...(readConfig ? { readConfig } : {}) }),
    );
    const signal = (): AbortSignal => AbortSignal.timeout(20_000);
    const client = new DtrClient({ url: dtr.spec.url, username: dtr.spec.admin.username, password, dispatcher: trust.dispatcher, retry: { retries: 1 } });
    return {
      listContentCaches: () => client.listContentCaches(signal()),
      async userContentCache(username) {
        try {
          return await client.getUserContentCache(username, signal());
        } catch (error) {
          if (isDtrError(error) && error.code === "DTR_NOT_FOUND") return undefined;
          throw error;
        }
      },
      close: () => trust.close(),
    };
  };
}

function why(error: unknown): string {
  return isDtrError(error) ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
}

interface CacheInput {
  readonly name: string;
  /** The cache as the spec will have it; undefined when it leaves the spec (teardown). */
  readonly cache?: ResolvedCache;
  readonly record?: DtrRecord;
}

/** From the record alone (DTR not asked). */
function recordedLines(input: CacheInput): string[] {
  const { cache, name, record } = input;
  if (cache === undefined) {
    if (!record) return [];
    const users = record.users.length > 0 ? `; reset ${record.users.join(", ")} where they still point here` : "";
    return [
      `  - delete registration${record.registrationIds.length === 1 ? "" : "s"} ${record.registrationIds.join(", ") || "(none recorded)"} of ${name}${users}`,
    ];
  }
  const host = cache.spec.externalURL;
  const lines: string[] = [];
  const recordedUsers = new Set(record?.users ?? []);
  if (!record || record.registrationIds.length === 0) lines.push(`  + register ${name} with ${cache.dtr.spec.url} as host ${host}`);
  else if (record.host !== host)
    lines.push(
      `  ~ move registration ${record.registrationIds[0] ?? ""} from host ${record.host ?? "?"} to ${host} (new registration, then the old one deleted)`,
    );
  const assign = cache.spec.users.filter((u) => !recordedUsers.has(u));
  const reset = [...recordedUsers].filter((u) => !cache.spec.users.includes(u));
  if (assign.length > 0) lines.push(`  + point ${assign.join(", ")} at ${name}`);
  if (reset.length > 0) lines.push(`  - reset ${reset.join(", ")} (where they still point at ${name})`);
  return lines.length > 0 ? lines : ["  no changes (as recorded)"];
}

const sameHost = (a: string, b: string): boolean => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");

/** From DTR as it is now. */
async function liveLines(input: CacheInput, reader: DtrReader): Promise<{ lines: string[]; warnings: string[] }> {
  const { cache, name, record } = input;
  const owned = new Set(record?.registrationIds ?? []);
  const named = (await reader.listContentCaches()).filter((r) => r.name === name);
  const ours = named.filter((r) => owned.has(r.id) || (record?.adoptHost !== undefined && sameHost(r.host, record.adoptHost)));
  const foreign = named.filter((r) => !ours.includes(r));
  const warnings = foreign.map(
    (r) =>
      `! DTR registration ${r.id} of ${name} (host ${r.host}) was not created by this controller: it is never changed or deleted${cache !== undefined && ours.length === 0 ? `, and ${name} cannot be registered next to it (DTR_NOT_OWNED)` : ""}`,
  );
  const lines: string[] = [];
  const ourIds = new Set(ours.map((r) => r.id));
  if (cache === undefined) {
    for (const user of record?.users ?? []) {
      const current = await reader.userContentCache(user);
      if (current !== undefined && ourIds.has(current)) lines.push(`  ~ user ${user}: content cache ${current} -> (unset)`);
    }
    for (const r of ours) lines.push(`  - delete registration ${r.id} (host ${r.host})`);
    return { lines: lines.length > 0 ? lines : ["  nothing registered in DTR"], warnings };
  }
  const host = cache.spec.externalURL;
  const keep = ours.find((r) => sameHost(r.host, host));
  const target = keep?.id;
  if (keep === undefined && (foreign.length === 0 || ours.length > 0)) lines.push(`  + create registration ${name} (host ${host})`);
  for (const r of ours.filter((x) => x !== keep))
    lines.push(`  - delete registration ${r.id} (host ${r.host}${keep === undefined ? `; replaced by the new one for ${host}` : ""})`);
  const listed = new Set(cache.spec.users);
  const dropped = (record?.users ?? []).filter((u) => !listed.has(u));
  for (const user of dropped) {
    const current = await reader.userContentCache(user);
    if (current !== undefined && ourIds.has(current)) lines.push(`  ~ user ${user}: content cache ${current} -> (unset) (left the spec)`);
  }
  for (const user of cache.spec.users) {
    const current = await reader.userContentCache(user);
    if (current === undefined) lines.push(`  ! user ${user}: DTR has no such user (the cache reports UnknownUsers)`);
    else if (target === undefined || current !== target)
      lines.push(`  ~ user ${user}: content cache ${current || "(unset)"} -> ${target ?? `the new registration of ${name}`} (once ${name} is Ready)`);
  }
  return { lines: lines.length > 0 ? lines : ["  no changes (DTR already matches)"], warnings };
}

/** DTR lines per cache (live when possible), and warnings about registrations not ours. */
export async function planDtr(spec: CacheSpec, caches: readonly CacheInput[], readerFor: DtrReaderFactory): Promise<{ lines: string[]; warnings: string[] }> {
  const readers = new Map<string, Promise<DtrReader>>();
  const lines: string[] = [];
  const warnings: string[] = [];
  try {
    for (const input of caches) {
      const dtr = input.cache?.dtr ?? input.record?.dtr ?? spec.dtrs[0];
      lines.push(`${input.name} (${input.cache ? "apply" : "teardown"})`);
      if (dtr === undefined) {
        lines.push(...recordedLines(input));
        continue;
      }
      let reader = readers.get(dtr.name);
      if (!reader) readers.set(dtr.name, (reader = readerFor(dtr)));
      try {
        const live = await liveLines(input, await reader);
        lines.push(...live.lines);
        warnings.push(...live.warnings);
      } catch (error) {
        const note =
          error instanceof ControllerOnlySecretError
            ? `DTR ${dtr.spec.url} not asked from this shell: ${error.message}; the DTR actions below are from the controller's record`
            : `DTR ${dtr.spec.url} not asked: ${why(error)}; from the controller's record`;
        lines.push(`  (${note})`, ...recordedLines(input));
      }
    }
  } finally {
    for (const reader of readers.values())
      await reader.then(
        (r) => r.close(),
        () => undefined,
      );
  }
  return { lines, warnings };
}
