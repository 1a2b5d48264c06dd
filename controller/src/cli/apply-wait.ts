// `dtrcache apply --wait` (like `kubectl rollout status` after `kubectl apply`): after the store
// write, ask the controller's status endpoint until every applied ContentCache has been reconciled
// at the revision written (or a later one), is Ready and is DtrSynced. Progress goes to stderr as
// it changes; the outcome to stdout. Fails with exit 1 and the blocking condition's reason on
// timeout, or as soon as a cache stays Degraded on the new revision; exit 3 when the endpoint
// refuses the token, or never answered at all.
//
// A changed DTR resource has no revision the controller reports back, so for it (and the caches
// that use it) "the controller has loaded it" is read from the status's spec.loadedAt: it must
// differ from what the endpoint said just before the write. And since a DTR resource change may
// leave every cache's spec alone (an admin password rotated to a new secret), the cache's DTR side
// must report a pass made with the DTR resource as stored (status.dtr.resourceHash): before that,
// its DtrSynced may still describe a pass with the old credential.
import { Option, type Command } from "commander";
import type { CacheSpec } from "@dtrcache/crds";
import { dtrResourceHash } from "../dtr-reconcile/inputs.js";
import type { WriteResult } from "../store/admission.js";
import { pendingOf } from "./convergence.js";
import { parseTimeout } from "./durations.js";
import { CliError, EXIT } from "./exit.js";
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";
import { DEFAULT_STATUS_URL, getStatusJson, isTokenRefused, readToken } from "./status-client.js";

export interface WaitCliOptions {
  readonly wait: boolean;
  readonly timeout: number;
  readonly url?: string;
  readonly tokenFile?: string;
}

export function addWaitOptions(command: Command): Command {
  return command
    .option(
      "--wait",
      "after storing, wait until the controller runs every applied cache at the stored revision, Ready and DtrSynced (exit 1 on timeout or Degraded)",
      false,
    )
    .addOption(new Option("--timeout <duration>", "with --wait: give up after this long (e.g. 90s, 5m)").argParser(parseTimeout).default(300_000, "5m"))
    .option("--url <url>", "with --wait: the status endpoint (default: $DTRCACHE_STATUS_URL or http://127.0.0.1:9090)")
    .option("--token-file <path>", "with --wait: bearer token file (default: $DTRCACHE_STATUS_TOKEN)");
}

/** One applied cache to wait for: at least this store revision. */
export interface WaitTarget {
  readonly name: string;
  readonly generation: number;
  /** A DTR it uses changed: the controller must have loaded the spec again since the write. */
  readonly needsReload: boolean;
  /** Hash of the cache's DTR resource as stored: its DTR pass must have run with it. */
  readonly dtrResource?: string;
}

/** What the endpoint said before the write (undefined when it did not answer). */
export interface WaitBaseline {
  readonly loadedAt: string | undefined;
}

export interface FollowOptions {
  readonly fetch: () => Promise<RuntimeSnapshot>;
  readonly timeoutMs: number;
  readonly progress: (line: string) => void;
  readonly baseline: WaitBaseline;
  readonly pollMs?: number;
  /** How long Degraded may hold on the new revision before the wait fails (Swarm retries a failed task). */
  readonly degradedGraceMs?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Reasons Swarm does not recover from by itself: fail at once. */
const FINAL_DEGRADED = new Set(["RolledBack", "UpdatePaused"]);

type Verdict =
  | { readonly state: "done"; readonly line: string }
  | { readonly state: "waiting"; readonly line: string }
  | { readonly state: "degraded"; readonly line: string; readonly final: boolean };

function condition(cache: CacheSnapshot, type: string): { status: string; reason: string; message: string } | undefined {
  return cache.conditions.find((c) => c.type === type);
}

/** Where one target stands in one snapshot. */
export function judge(target: WaitTarget, status: RuntimeSnapshot, baseline: WaitBaseline): Verdict {
  const cache = status.caches.find((c) => c.name === target.name);
  const rejected = status.spec.errors.length > 0 ? `; the controller rejects the stored spec: ${status.spec.errors.join("; ")}` : "";
  if (!cache) return { state: "waiting", line: `waiting for the controller to load revision ${target.generation}${rejected}` };
  if (cache.terminating) return { state: "waiting", line: "being removed" };
  const observed = cache.spec?.observedStoreGeneration;
  if (cache.spec?.storedGeneration === undefined)
    return { state: "waiting", line: `the controller reports no store revisions for it (is it running from a file, or with another --id?)` };
  if (observed === undefined || observed < target.generation)
    return {
      state: "waiting",
      line: `Applying revision ${target.generation} (${observed === undefined ? "none reconciled yet" : `running ${observed}`})${rejected}`,
    };
  if (target.needsReload && baseline.loadedAt !== undefined && status.spec.loadedAt === baseline.loadedAt)
    return { state: "waiting", line: `waiting for the controller to load the changed DTR resource${rejected}` };
  // Every load queues every cache: a reconcile that ended after the load (both times by the
  // controller's clock) ran with the changed DTR resource in hand.
  const reconciledAt = Date.parse(cache.lastReconcile?.at ?? "");
  if (target.needsReload && !(reconciledAt >= Date.parse(status.spec.loadedAt ?? "")))
    return { state: "waiting", line: "waiting for a reconcile with the changed DTR resource" };
  const pending = pendingOf(cache);
  if (pending !== undefined) return { state: "waiting", line: pending };
  const revision = `revision ${observed}`;
  const degraded = condition(cache, "Degraded");
  if (degraded?.status === "True")
    return { state: "degraded", line: `${revision}: Degraded ${degraded.reason}: ${degraded.message}`, final: FINAL_DEGRADED.has(degraded.reason) };
  const ready = condition(cache, "Ready");
  if (ready?.status !== "True")
    return { state: "waiting", line: `${revision}: Ready=${ready?.status ?? "Unknown"} ${ready ? `${ready.reason}: ${ready.message}` : "not reported yet"}` };
  const dtr = condition(cache, "DtrSynced");
  // A controller that reports no hash (none before its first DTR pass, where DtrSynced is Unknown
  // anyway) is not held up by it.
  const passedWith = cache.dtr.resourceHash;
  if (dtr?.reason !== "NotConfigured" && target.dtrResource !== undefined && passedWith !== undefined && passedWith !== target.dtrResource)
    return {
      state: "waiting",
      line: `${revision}: Ready, waiting for a DTR pass with the stored DTR resource (DtrSynced=${dtr?.status ?? "Unknown"} is from an earlier one)`,
    };
  // Unknown means the DTR pass has not run for this spec yet; only a controller without a DTR
  // client (NotConfigured) is exempt.
  if (dtr && dtr.status !== "True" && dtr.reason !== "NotConfigured")
    return { state: "waiting", line: `${revision}: Ready, DtrSynced=${dtr.status} ${dtr.reason}: ${dtr.message}` };
  return { state: "done", line: `${revision}: Ready${dtr?.status === "True" ? ", DtrSynced" : ""}` };
}

/** Polls until every target is done; throws CliError (exit 1 or 3) otherwise. Returns the final lines. */
export async function followApplied(targets: readonly WaitTarget[], options: FollowOptions): Promise<string[]> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const deadline = now() + options.timeoutMs;
  const shown = new Map<string, string>();
  const degradedSince = new Map<string, number>();
  let answered = false;
  let lastError: string;
  let verdicts = new Map<string, Verdict>();
  for (;;) {
    let status: RuntimeSnapshot | undefined;
    try {
      status = await options.fetch();
      answered = true;
      lastError = "";
    } catch (error) {
      // A refused token never gets better; an endpoint that does not answer may (a controller
      // restarting, a standby taking over), so keep asking until the deadline.
      if (isTokenRefused(error)) throw error;
      lastError = error instanceof Error ? error.message : String(error);
      if (!shown.has("")) options.progress(`(${lastError}; asking again)`);
      shown.set("", lastError);
    }
    if (status) {
      shown.delete("");
      verdicts = new Map(targets.map((t) => [t.name, judge(t, status, options.baseline)]));
      for (const [name, verdict] of verdicts) {
        // "waiting 8s to settle", "7s", …: one line for the countdown, not one a second
        const key = verdict.line.replace(/waiting \d+s to settle/, "waiting to settle");
        if (shown.get(name) !== key) options.progress(`contentcache/${name}: ${verdict.line}`);
        shown.set(name, key);
        if (verdict.state !== "degraded") degradedSince.delete(name);
        else if (!degradedSince.has(name)) degradedSince.set(name, now());
        if (verdict.state === "degraded" && (verdict.final || now() - (degradedSince.get(name) ?? now()) >= (options.degradedGraceMs ?? 30_000))) {
          throw new CliError(EXIT.notReady, `contentcache/${name} ${verdict.line}`);
        }
      }
      if ([...verdicts.values()].every((v) => v.state === "done")) return targets.map((t) => `contentcache/${t.name} ${verdicts.get(t.name)?.line ?? ""}`);
    }
    if (now() >= deadline) {
      const seconds = Math.round(options.timeoutMs / 1000);
      if (!answered) throw new CliError(EXIT.unreachable, `the status endpoint did not answer within ${seconds} s: ${lastError}`);
      const stuck = [...verdicts].filter(([, v]) => v.state !== "done").map(([name, v]) => `contentcache/${name} ${v.line}`);
      throw new CliError(
        EXIT.notReady,
        `not converged after ${seconds} s (stored; the controller goes on): ${stuck.join("; ")}${lastError ? ` (last ask: ${lastError})` : ""}`,
      );
    }
    await sleep(Math.min(options.pollMs ?? 1_000, Math.max(0, deadline - now())));
  }
}

/** The caches `apply` wrote or left unchanged, plus those using a DTR it changed. */
export function waitTargets(results: readonly WriteResult[], spec: CacheSpec | undefined): WaitTarget[] {
  const changedDtrs = new Set(results.filter((r) => r.kind === "DTR" && r.action !== "unchanged").map((r) => r.name));
  const targets = new Map<string, WaitTarget>();
  for (const r of results)
    if (r.kind === "ContentCache" && r.action !== "deleted") targets.set(r.name, { name: r.name, generation: r.generation, needsReload: false });
  for (const cache of spec?.caches ?? []) {
    const applied = targets.get(cache.name);
    const changed = changedDtrs.has(cache.dtr.name);
    if (applied === undefined && !changed) continue;
    targets.set(cache.name, {
      name: cache.name,
      generation: applied?.generation ?? 0,
      needsReload: changed,
      dtrResource: dtrResourceHash(cache.dtr),
    });
  }
  return [...targets.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function endpoint(opts: WaitCliOptions): { base: string; token: string | undefined } {
  return { base: opts.url ?? process.env["DTRCACHE_STATUS_URL"] ?? DEFAULT_STATUS_URL, token: readToken(opts.tokenFile, process.env["DTRCACHE_STATUS_TOKEN"]) };
}

/** Asked before the write: what the controller last loaded (best effort; a restarting controller may not answer). */
export async function waitBaseline(opts: WaitCliOptions): Promise<WaitBaseline> {
  const { base, token } = endpoint(opts);
  const status = await getStatusJson<RuntimeSnapshot>(base, "/status", token, 3_000).catch(() => undefined);
  return { loadedAt: status?.spec.loadedAt };
}

export async function waitAfterApply(results: readonly WriteResult[], opts: WaitCliOptions, baseline: WaitBaseline, spec?: CacheSpec): Promise<void> {
  const targets = waitTargets(results, spec);
  if (targets.length === 0) return;
  const { base, token } = endpoint(opts);
  const lines = await followApplied(targets, {
    fetch: () => getStatusJson<RuntimeSnapshot>(base, "/status", token, 5_000),
    timeoutMs: opts.timeout,
    baseline,
    progress: (line) => void process.stderr.write(`${line}\n`),
  });
  for (const line of lines) process.stdout.write(`${line}\n`);
}
