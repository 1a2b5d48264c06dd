// The server-side dry run of `dtrcache plan -f` and `dtrcache diff -f` (issue 11, item 6; issue
// 13, item 2): what the controller would do in the swarm and in DTR with this spec. Nothing is
// written. The Swarm side is the controller's own planner (`plan()`, the one every reconcile
// uses), run twice so that only names apply really creates are printed (plan-names.ts). The DTR
// side is read from DTR itself against the controller's DTR record (dtr-plan.ts), falling back to
// the record when DTR cannot be asked from here. Objects of a cache's name that another owner id
// (or nobody) holds are warned about: the controller never touches them.
import type { CacheSpec, ResolvedDtr } from "@dtrcache/crds";
import { createController } from "../controller.js";
import { createDtrSync } from "../dtr/dtr-sync.js";
import { DtrRecordStore } from "../dtr-reconcile/record.js";
import { silentLogger } from "../logger.js";
import { OWNER } from "../reconcile/labels.js";
import { PemSources } from "../reconcile/pem-sources.js";
import { staticSpecSource } from "../source.js";
import type { SwarmApi } from "../swarm/api.js";
import { liveDtrReader, planDtr, type DtrReaderFactory } from "./dtr-plan.js";
import { formatPlans } from "./format.js";
import { generatedNote, planWithStableNames } from "./plan-names.js";

const BLOB_NAME = /^(.+)-(config|cert|key|ca)-[0-9a-f]{8}$/;

function holder(labels: Readonly<Record<string, string>>): string {
  return labels[OWNER] !== undefined ? `owned by id ${labels[OWNER]}` : "not owned by any dtrcache controller";
}

/** Swarm objects named like a cache of the spec (its service, its configs and secrets) that another id or nobody owns. */
async function foreignWarnings(swarm: SwarmApi, owner: string, spec: CacheSpec): Promise<string[]> {
  const names = new Set(spec.caches.map((c) => c.name));
  const warnings: string[] = [];
  for (const s of await swarm.listServices({ labels: [] })) {
    if (names.has(s.name) && s.labels[OWNER] !== owner)
      warnings.push(`! service ${s.name} exists and is ${holder(s.labels)}: it is never touched, so cache ${s.name} cannot be created next to it`);
  }
  const blobs = [
    ...(await swarm.listConfigs({ labels: [] })).map((b) => ({ kind: "config", ...b })),
    ...(await swarm.listSecrets({ labels: [] })).map((b) => ({ kind: "secret", ...b })),
  ];
  for (const b of blobs.sort((x, y) => x.name.localeCompare(y.name))) {
    const cache = BLOB_NAME.exec(b.name)?.[1];
    if (cache !== undefined && names.has(cache) && b.labels[OWNER] !== undefined && b.labels[OWNER] !== owner) {
      warnings.push(
        `! ${b.kind} ${b.name} is ${holder(b.labels)}: another controller id manages a cache named ${cache} in this swarm; both would register it with DTR`,
      );
    }
  }
  return warnings;
}

export interface DryRunOptions {
  /** Plan the teardown of every owned cache when the spec has none (the store: always). */
  readonly allowEmpty?: boolean;
  /** How DTR is read; default: the real client with the spec's admin reference and trust. */
  readonly dtrReader?: DtrReaderFactory;
  /** Environment for {env: NAME} password references. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * The CA the controller trusts DTR with (it goes into the caches' CA bundle, so into config and
   * secret names); default: established as the controller does (createDtrSync().caPem).
   */
  readonly dtrCa?: (dtr: ResolvedDtr) => Promise<string | undefined>;
}

/** What converging on `spec` would make the controller of `owner` do, in the swarm and in DTR. */
export async function serverDryRun(swarm: SwarmApi, owner: string, spec: CacheSpec, options: DryRunOptions = {}): Promise<string> {
  const pem = new PemSources(swarm);
  const readConfig = async (name: string): Promise<string> => {
    const read = await pem.read({ config: name }, "trust.caFile");
    return read.readable ? read.pem : "";
  };
  const trust = options.dtrCa ? undefined : createDtrSync({ env: options.env ?? process.env, readConfig });
  const dtrCa = options.dtrCa ?? ((dtr: ResolvedDtr) => trust?.caPem(dtr) ?? Promise.resolve(undefined));
  try {
    return await dryRun(swarm, owner, spec, options, dtrCa, readConfig);
  } finally {
    await trust?.close();
  }
}

async function dryRun(
  swarm: SwarmApi,
  owner: string,
  spec: CacheSpec,
  options: DryRunOptions,
  dtrCa: (dtr: ResolvedDtr) => Promise<string | undefined>,
  readConfig: (name: string) => Promise<string>,
): Promise<string> {
  const controller = createController({
    docker: swarm,
    specSource: staticSpecSource({ ok: true, spec }),
    logger: silentLogger,
    id: owner,
    allowEmpty: options.allowEmpty ?? true,
    dtrCa,
  });
  const { plans, generated } = await planWithStableNames(() => controller.plan());
  const records = new DtrRecordStore(swarm, owner);
  const inputs = [];
  for (const plan of plans) {
    const cache = spec.caches.find((c) => c.name === plan.cache);
    const record = await records.read(plan.cache);
    inputs.push({ name: plan.cache, ...(cache ? { cache } : {}), ...(record ? { record } : {}) });
  }
  const dtr = await planDtr(spec, inputs, options.dtrReader ?? liveDtrReader(options.env ?? process.env, readConfig));
  return [
    "Swarm:",
    formatPlans(plans),
    ...generatedNote(generated),
    "DTR:",
    ...(dtr.lines.length > 0 ? dtr.lines : ["nothing to do"]),
    ...(await foreignWarnings(swarm, owner, spec)),
    ...dtr.warnings,
  ].join("\n");
}
