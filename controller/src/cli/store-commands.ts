// kubectl-style verbs over the in-swarm store: apply, get, describe, edit, delete, history,
// rollback, diff. Every write goes through admission (store/admission.ts) first and is a
// compare-and-swap on the resource's generation; nothing is written when either refuses.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Option, type Command } from "commander";
import { formatIssue } from "@dtrcache/crds";
import type { SwarmApi } from "../swarm/api.js";
import { admit, writeChanges, type Admitted } from "../store/admission.js";
import { serverDryRun } from "./dry-run.js";
import { isStoreError } from "../store/errors.js";
import { KINDS, parseKind, type ResourceKind } from "../store/labels.js";
import { swarmReferenceCheck } from "../store/references.js";
import { documentHash, documentsOf, stripStoreFields, toYaml, type Document } from "../store/resource.js";
import { SpecStore, type Revision, type StoredResource } from "../store/store.js";
import { CliError, EXIT } from "./exit.js";
import { getStatusJson, readToken } from "./status-client.js";
import { age, lineDiff, readSpecTexts, table } from "./store-io.js";
import { formatTasksLine } from "./format.js";
import { openSwarm, setSwarmFactory } from "./swarm-factory.js";
import { addWaitOptions, waitAfterApply, waitBaseline, type WaitCliOptions } from "./apply-wait.js";
import type { CacheSnapshot } from "./snapshot.js";

interface Ctx {
  readonly swarm: SwarmApi;
  readonly store: SpecStore;
}

export { setSwarmFactory };

function open(id: string): Ctx {
  const swarm = openSwarm();
  return { swarm, store: new SpecStore({ swarm, owner: id }) };
}

const out = (text: string): void => void process.stdout.write(`${text}\n`);
const lower = (kind: ResourceKind): string => kind.toLowerCase();

/** Store errors → exit codes; admission issues printed as `file:line:col path: message`. */
function rethrow(error: unknown): never {
  if (isStoreError(error, "INVALID")) throw new CliError(EXIT.invalid, `${error.message}:\n${error.issues.map(formatIssue).join("\n")}`);
  if (isStoreError(error, "CONFLICT")) throw new CliError(EXIT.conflict, error.message);
  if (isStoreError(error, "NOT_FOUND")) throw new CliError(EXIT.notReady, error.message);
  throw error;
}

/** NAME alone: the ContentCache of that name, else the DTR (caches are what people name most). */
async function find(store: SpecStore, name: string, kind?: ResourceKind): Promise<StoredResource> {
  for (const k of kind ? [kind] : (["ContentCache", "DTR"] as const)) {
    const found = await store.get(k, name);
    if (found) return found;
  }
  throw new CliError(EXIT.notReady, `${kind ? `${kind}/` : ""}${name} not found in the store`);
}

async function findHead(store: SpecStore, name: string, kind?: ResourceKind): Promise<Revision> {
  for (const k of kind ? [kind] : (["ContentCache", "DTR"] as const)) {
    const head = await store.head(k, name);
    if (head) return head;
  }
  throw new CliError(EXIT.notReady, `${kind ? `${kind}/` : ""}${name} has no revisions in the store`);
}

function kindOption(): Option {
  return new Option("--kind <kind>", "DTR or ContentCache (default: ContentCache, then DTR)").argParser((v) => {
    const k = parseKind(v);
    if (!k) throw new CliError(EXIT.invalid, `unknown kind ${JSON.stringify(v)} (DTR or ContentCache)`);
    return k;
  });
}

function printResults(results: readonly { kind: ResourceKind; name: string; action: string }[], suffix = ""): void {
  for (const r of results) out(`${lower(r.kind)}/${r.name} ${r.action}${suffix}`);
}

/** Admission of the files; also the whole spec as it will be once stored (for diff's dry run). */
async function admitFilesWithSpec(ctx: Ctx, file: string): Promise<Admitted> {
  let texts;
  try {
    texts = await readSpecTexts(file);
  } catch (error) {
    throw new CliError(EXIT.invalid, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (texts.every((t) => documentsOf(t.text).length === 0) && texts.every((t) => t.text.trim() === ""))
    throw new CliError(EXIT.invalid, `${file}: no documents to apply`);
  try {
    return await admit(ctx.store, { texts }, swarmReferenceCheck(ctx.swarm));
  } catch (error) {
    return rethrow(error);
  }
}

export function registerStoreCommands(program: Command, exitHelp: string): void {
  const id = (): Option => new Option("--id <owner>", "owner id: whose store (see run --help)").default("dtrcache");

  const apply = program
    .command("apply")
    .description(
      "store resources in the swarm (create or update; admission first); the running controller applies them; --wait follows it until they are Ready",
    )
    .requiredOption("-f, --file <path>", "CacheSpec file or directory")
    .addOption(id());
  addWaitOptions(apply)
    .addHelpText("after", exitHelp)
    .action(async (opts: { file: string; id: string } & WaitCliOptions) => {
      const ctx = open(opts.id);
      const admitted = await admitFilesWithSpec(ctx, opts.file);
      // --wait: the controller's load count before the write, to see it load what we write
      const baseline = opts.wait ? await waitBaseline(opts) : undefined;
      let results;
      try {
        results = await writeChanges(ctx.store, admitted.changes);
      } catch (error) {
        rethrow(error);
      }
      printResults(results);
      if (baseline !== undefined) await waitAfterApply(results, opts, baseline, admitted.spec);
    });

  program
    .command("diff")
    .description(
      "what apply -f would change: in the store (line by line, admission included), then what the controller would do in the swarm and in DTR; writes nothing",
    )
    .requiredOption("-f, --file <path>", "CacheSpec file or directory")
    .addOption(id())
    .addHelpText("after", exitHelp)
    .action(async (opts: { file: string; id: string }) => {
      const ctx = open(opts.id);
      const admitted = await admitFilesWithSpec(ctx, opts.file);
      const changes = admitted.changes;
      for (const c of changes) {
        const current = await ctx.store.get(c.kind, c.name);
        const before = current ? toYaml(stripStoreFields(current.doc)) : "";
        const after = c.doc ? toYaml(c.doc) : "";
        out(
          c.action === "unchanged"
            ? `${lower(c.kind)}/${c.name} unchanged`
            : lineDiff(
                before,
                after,
                current ? `${lower(c.kind)}/${c.name} (generation ${current.generation})` : "/dev/null",
                `${lower(c.kind)}/${c.name} (${c.action})`,
              ),
        );
      }
      out(await serverDryRun(ctx.swarm, opts.id, admitted.spec));
    });

  program
    .command("get")
    .description("list stored resources: get [KIND] [NAME]")
    .argument("[kind]", "dtr, contentcache (cc), or a NAME")
    .argument("[name]", "resource name")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "wide", "yaml", "json"]).default("table"))
    .addOption(id())
    .addHelpText("after", exitHelp)
    .action(async (kindArg: string | undefined, nameArg: string | undefined, opts: { output: string; id: string }) => {
      const ctx = open(opts.id);
      let kind = kindArg === undefined || kindArg === "all" ? undefined : parseKind(kindArg);
      let name = nameArg;
      if (kindArg !== undefined && kindArg !== "all" && kind === undefined) {
        if (nameArg !== undefined) throw new CliError(EXIT.invalid, `unknown kind ${JSON.stringify(kindArg)} (dtr or contentcache)`);
        name = kindArg;
        kind = undefined;
      }
      let items = await ctx.store.list(kind);
      if (name !== undefined) {
        items = items.filter((r) => r.name === name);
        if (items.length === 0) throw new CliError(EXIT.notReady, `${kind ? `${kind}/` : ""}${name} not found in the store`);
      }
      if (opts.output === "yaml") out(items.map((r) => toYaml(r.doc).trimEnd()).join("\n---\n"));
      else if (opts.output === "json")
        out(JSON.stringify(name !== undefined && items.length === 1 ? items[0]?.doc : { items: items.map((r) => r.doc) }, null, 2));
      else if (items.length === 0) out(`no resources in the store of owner id ${opts.id}`);
      else {
        const wide = opts.output === "wide";
        const header = ["KIND", "NAME", "GENERATION", "AGE", "CHANGED BY", ...(wide ? ["CHANGE", "CONFIG"] : [])];
        out(table([header, ...items.map((r) => [r.kind, r.name, String(r.generation), age(r.when), r.who, ...(wide ? [r.change, r.configName] : [])])]));
      }
    });

  program
    .command("describe")
    .description("one resource: its spec, last change and revision history (and status, if a controller answers)")
    .argument("<name>", "resource name")
    .addOption(kindOption())
    .addOption(id())
    .option("--url <url>", "status endpoint to ask for conditions and events (default: $DTRCACHE_STATUS_URL)")
    .option("--token-file <path>", "bearer token file for the status endpoint (default: $DTRCACHE_STATUS_TOKEN)")
    .option("--events <n>", "how many of the controller's last events to show", (v) => Math.max(0, Number.parseInt(v, 10) || 0), 10)
    .addHelpText("after", exitHelp)
    .action(async (name: string, opts: { kind?: ResourceKind; id: string; url?: string; tokenFile?: string; events: number }) => {
      const ctx = open(opts.id);
      const r = await find(ctx.store, name, opts.kind);
      const history = await ctx.store.revisions(r.kind, r.name);
      const lines = [
        `Name:         ${r.name}`,
        `Kind:         ${r.kind}`,
        `Owner id:     ${opts.id}`,
        `Generation:   ${r.generation}`,
        `Last change:  ${r.change} (by ${r.who}, ${r.when})`,
        `Stored as:    config ${r.configName}`,
        "Spec:",
      ];
      lines.push(
        ...toYaml((r.doc["spec"] ?? {}) as Document)
          .trimEnd()
          .split("\n")
          .map((l) => `  ${l}`),
      );
      lines.push(
        "History:",
        ...table([
          ["REVISION", "WHEN", "WHO", "CHANGE"],
          ...history.slice(-5).map((h) => [String(h.generation), h.when, h.who, h.deleted ? "deleted" : h.change]),
        ])
          .split("\n")
          .map((l) => `  ${l}`),
      );
      lines.push(...(await statusLines(r, opts.url, readToken(opts.tokenFile, process.env["DTRCACHE_STATUS_TOKEN"]), opts.events)));
      out(lines.join("\n"));
    });

  program
    .command("history")
    .description("the revisions kept for a resource (at least the last 10)")
    .argument("<name>", "resource name")
    .addOption(kindOption())
    .addOption(id())
    .addHelpText("after", exitHelp)
    .action(async (name: string, opts: { kind?: ResourceKind; id: string }) => {
      const ctx = open(opts.id);
      const head = await findHead(ctx.store, name, opts.kind);
      const all = await ctx.store.revisions(head.kind, head.name);
      out(table([["REVISION", "WHEN", "WHO", "CHANGE"], ...all.map((h) => [String(h.generation), h.when, h.who, h.deleted ? "deleted" : h.change])]));
    });

  program
    .command("delete")
    .description("delete a resource from the store (a tombstone revision: history stays); the controller tears the cache down")
    .argument("<name>", "resource name")
    .addOption(kindOption())
    .addOption(id())
    .addHelpText("after", exitHelp)
    .action(async (name: string, opts: { kind?: ResourceKind; id: string }) => {
      const ctx = open(opts.id);
      const r = await find(ctx.store, name, opts.kind);
      try {
        const admitted = await admit(ctx.store, { deletes: [{ kind: r.kind, name: r.name }] }, swarmReferenceCheck(ctx.swarm));
        printResults(await writeChanges(ctx.store, admitted.changes));
      } catch (error) {
        rethrow(error);
      }
    });

  program
    .command("rollback")
    .description("store an earlier revision again as a new generation (default: the one before the current)")
    .argument("<name>", "resource name")
    .addOption(kindOption())
    .option("--to-revision <n>", "revision (generation) to restore", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new CliError(EXIT.invalid, "--to-revision takes a generation number");
      return n;
    })
    .addOption(id())
    .addHelpText("after", exitHelp)
    .action(async (name: string, opts: { kind?: ResourceKind; id: string; toRevision?: number }) => {
      const ctx = open(opts.id);
      const head = await findHead(ctx.store, name, opts.kind);
      const all = await ctx.store.revisions(head.kind, head.name);
      const target =
        opts.toRevision !== undefined
          ? all.find((r) => r.generation === opts.toRevision)
          : [...all].reverse().find((r) => !r.deleted && r.generation < head.generation && r.hash !== head.hash);
      if (!target)
        throw new CliError(
          EXIT.notReady,
          opts.toRevision !== undefined
            ? `${head.kind}/${head.name} has no revision ${opts.toRevision} (kept: ${all.map((r) => r.generation).join(", ")})`
            : `${head.kind}/${head.name} has no earlier revision to roll back to`,
        );
      const stored = await ctx.store.read(target);
      // The precondition is the head we looked at: a change made meanwhile makes this a conflict.
      const doc = { ...stored.doc, metadata: { ...(stored.doc["metadata"] as object), generation: head.generation } };
      try {
        const admitted = await admit(
          ctx.store,
          { texts: [{ file: `store:${head.kind}/${head.name}@r${target.generation}`, text: toYaml(doc), baseDir: path.sep }] },
          swarmReferenceCheck(ctx.swarm),
        );
        const results = await writeChanges(ctx.store, admitted.changes, `rollback to r${target.generation}`);
        for (const r of results) out(`${lower(r.kind)}/${r.name} rolled back to revision ${target.generation} (now generation ${r.generation})`);
      } catch (error) {
        rethrow(error);
      }
    });

  program
    .command("edit")
    .description("edit a stored resource in $EDITOR; an invalid result reopens with the errors; nothing is written until it is valid")
    .argument("<name>", "resource name")
    .addOption(kindOption())
    .addOption(id())
    .addHelpText("after", exitHelp)
    .action(async (name: string, opts: { kind?: ResourceKind; id: string }) => {
      const ctx = open(opts.id);
      const r = await find(ctx.store, name, opts.kind);
      await editLoop(ctx, r);
    });
}

const EDIT_HEADER =
  "# Edit the resource below; lines starting with '#' are ignored. Saving an unchanged file cancels.\n# metadata.generation guards against concurrent changes: leave it as it is.\n";

async function editLoop(ctx: Ctx, r: StoredResource): Promise<void> {
  const editor = process.env["DTRCACHE_EDITOR"] ?? process.env["VISUAL"] ?? process.env["EDITOR"] ?? "vi";
  const dir = mkdtempSync(path.join(tmpdir(), "dtrcache-edit-"));
  const file = path.join(dir, `${lower(r.kind)}-${r.name}.yaml`);
  const original = toYaml(r.doc);
  let body = original;
  let errors: string[] = [];
  let lastInvalid: string | undefined;
  try {
    for (;;) {
      const comment = errors.length > 0 ? `# The edited resource was refused (nothing was written):\n${errors.map((e) => `#   ${e}`).join("\n")}\n#\n` : "";
      writeFileSync(file, `${EDIT_HEADER}${comment}${body}`);
      const ran = spawnSync("/bin/sh", ["-c", `${editor} "$1"`, "sh", file], { stdio: "inherit" });
      if (ran.status !== 0) throw new CliError(EXIT.notReady, `editor ${JSON.stringify(editor)} exited with ${ran.status ?? ran.signal}; nothing was written`);
      const edited = readFileSync(file, "utf8");
      const docs = documentsOf(edited);
      if (docs.length === 1 && docs[0] && documentHash(docs[0].doc) === documentHash(r.doc) && errors.length === 0) {
        out("Edit cancelled, no changes made.");
        return;
      }
      if (lastInvalid !== undefined && edited === lastInvalid)
        throw new CliError(EXIT.invalid, `edit abandoned, nothing was written; the last errors:\n${errors.join("\n")}`);
      const problems: string[] = [];
      if (docs.length !== 1 || docs[0]?.kind !== r.kind || docs[0]?.name !== r.name)
        problems.push(`${path.basename(file)}: the edit must keep exactly one document, ${r.kind} ${JSON.stringify(r.name)} (rename = delete + apply)`);
      if (problems.length === 0) {
        try {
          const admitted = await admit(ctx.store, { texts: [{ file, text: edited, baseDir: process.cwd() }] }, swarmReferenceCheck(ctx.swarm));
          printResults(await writeChanges(ctx.store, admitted.changes, "edit"), "");
          return;
        } catch (error) {
          if (!isStoreError(error, "INVALID")) rethrow(error);
          problems.push(...error.issues.map(formatIssue));
        }
      }
      errors = problems;
      lastInvalid = edited;
      // Reopen what the user wrote, without our previous header and error comments.
      body = edited
        .split("\n")
        .filter((l, i, all) => !(l.startsWith("#") && all.slice(0, i).every((p) => p.startsWith("#"))))
        .join("\n");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface ShownEvent {
  readonly type: string;
  readonly source: string;
  readonly reason: string;
  readonly message: string;
  readonly lastTime: string;
  readonly count: number;
}

/** Conditions and the last `limit` events of a cache, from the controller's status endpoint. */
async function statusLines(r: StoredResource, url: string | undefined, token: string | undefined, limit: number): Promise<string[]> {
  const base = url ?? process.env["DTRCACHE_STATUS_URL"];
  if (r.kind !== "ContentCache" || base === undefined) return [];
  try {
    const status = await getStatusJson<{
      caches?: (Partial<Pick<CacheSnapshot, "tasks">> & { name: string; conditions: { type: string; status: string; reason: string; message: string }[] })[];
    }>(base, `/status`, token, 3000);
    const cache = status.caches?.find((c) => c.name === r.name);
    const lines = cache
      ? [
          ...(cache.tasks ? [formatTasksLine({ tasks: cache.tasks })] : []),
          "Conditions:",
          ...cache.conditions.map((c) => `  ${c.type}=${c.status} ${c.reason}: ${c.message}`),
        ]
      : ["Conditions:   (the controller does not report this cache yet)"];
    if (limit === 0) return lines;
    // An older controller has no /events: say so rather than fail the describe.
    const events = await getStatusJson<{ events: ShownEvent[] }>(base, `/events/${r.name}?limit=${limit}`, token, 3000).catch(() => undefined);
    if (!events) return [...lines, "Events:       (this controller does not serve events)"];
    if (events.events.length === 0) return [...lines, "Events:       <none>"];
    const rows = events.events.map((e) => [e.type, e.reason, age(e.lastTime) + (e.count > 1 ? ` (x${e.count})` : ""), e.source, e.message]);
    return [
      ...lines,
      "Events:",
      ...table([["TYPE", "REASON", "AGE", "FROM", "MESSAGE"], ...rows])
        .split("\n")
        .map((l) => `  ${l}`),
    ];
  } catch (error) {
    return [`Conditions:   (status endpoint ${base} not reachable: ${error instanceof Error ? error.message : String(error)})`];
  }
}

export { KINDS };
