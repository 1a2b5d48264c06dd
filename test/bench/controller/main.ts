// `npm run bench:controller`: on a private one-node swarm, measures
//   1. spec edit written to the watched file → service spec updated (updateService returned),
//   2. drift → repaired: node label removed by hand → label written back; service deleted by
//      hand → service created again,
//   3. Engine API calls per no-op reconcile (total and mutating),
//   4. the spec store (store.ts): store edit → service updated, leader kill → standby active,
//      `dtrcache get` / unchanged `apply` latency,
// and, as the floor to compare against, the docker CLI's own round trip for one node update.
// Every loop is bounded (fixed trial count, every wait with a deadline).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  conditionOf,
  createController,
  createDockerClient,
  DockerodeSwarmApi,
  fileSpecSource,
  labels,
  recordSwarmApi,
  resolveDockerConnection,
  type Logger,
  type SwarmApi,
} from "@dtrcache/controller";
import { buildServiceImage, dockerCli, startSwarm } from "../../harness/index.js";
import { run } from "../../harness/proc.js";
import { prepareSpecDir, removeOwned, runbookVariant, writeAtomically, type RunbookVariant } from "./support.js";
import { benchStore } from "./store.js";

const TRIALS = Number(process.env["BENCH_TRIALS"] ?? "20");
/** Each leader-kill trial waits out the lease (~10 s), so fewer of them by default. */
const LEASE_TRIALS = Number(process.env["BENCH_LEASE_TRIALS"] ?? "5");
const OWNER = "bench";

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`bench: timed out waiting for ${what}`);
}

/** A logger that timestamps applied actions; everything else is dropped. */
function actionClock(): { logger: Logger; next(action: string, target?: string): Promise<number> } {
  const waiters: { action: string; target?: string; resolve: (t: number) => void }[] = [];
  const logger: Logger = {
    debug: () => undefined,
    warn: () => undefined,
    error: () => undefined,
    info: (fields, message) => {
      if (message !== "action applied" || fields["result"] !== "done") return;
      const at = performance.now();
      for (const w of [...waiters]) {
        if (w.action === fields["action"] && (w.target === undefined || String(fields["target"]).includes(w.target))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(at);
        }
      }
    },
    child: () => logger,
  };
  return {
    logger,
    next: (action, target) =>
      new Promise((resolve, reject) => {
        const w = target === undefined ? { action, resolve } : { action, target, resolve };
        waiters.push(w);
        setTimeout(() => reject(new Error(`bench: no ${action} within 30 s`)), 30_000).unref();
      }),
  };
}

async function main(): Promise<void> {
  const swarm = await startSwarm({ nodes: 1 });
  const dir = await mkdtemp(join(tmpdir(), "dtrcache-bench-controller-"));
  let api: SwarmApi | undefined;
  try {
    const image = await buildServiceImage("test-http", swarm.manager.dockerHost);
    if (!image) throw new Error("test-http image could not be built");
    api = new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(swarm.manager.dockerHost)));
    await prepareSpecDir(dir);
    const specFile = join(dir, "cachespec.yaml");
    const labelKey = "dtr.cache.bench";
    let variant: RunbookVariant = {
      cache: "bench",
      hostname: swarm.manager.hostname,
      nodeLabel: `${labelKey}=true`,
      port: 28_000 + Math.floor(Math.random() * 1000),
      image,
    };
    await writeFile(specFile, await runbookVariant(variant));

    const clock = actionClock();
    const controller = createController({
      docker: api,
      specSource: fileSpecSource(specFile, { debounceMs: 50 }),
      logger: clock.logger,
      id: OWNER,
      resyncIntervalMs: 30_000,
      rolloutPollMs: 250,
    });
    await controller.start();
    const ready = (): Promise<true> =>
      until("Ready", () => (conditionOf(controller.status().caches[0], "Ready")?.status === "True" ? true : undefined), 90_000, 50);
    await ready();

    const edit: number[] = [];
    for (let i = 0; i < TRIALS; i += 1) {
      variant = { ...variant, blobTTL: `${100 + i}m` };
      const text = await runbookVariant(variant);
      const updated = clock.next("update-service");
      const t0 = performance.now();
      await writeAtomically(specFile, text);
      edit.push((await updated) - t0);
      await ready();
    }

    const labelDrift: number[] = [];
    for (let i = 0; i < TRIALS; i += 1) {
      const node = (await api.listNodes())[0];
      if (!node) throw new Error("no node");
      const stripped = { ...(node.spec.Labels ?? {}) };
      delete stripped[labelKey];
      const repaired = clock.next("label-node");
      const t0 = performance.now();
      await api.updateNode(node.id, node.version, { ...node.spec, Labels: stripped });
      labelDrift.push((await repaired) - t0);
    }

    const serviceDrift: number[] = [];
    for (let i = 0; i < TRIALS; i += 1) {
      const [service] = await api.listServices(labels.ownerFilter(OWNER, "bench"));
      if (!service) throw new Error("no service");
      const recreated = clock.next("create-service");
      const t0 = performance.now();
      await api.removeService(service.id);
      serviceDrift.push((await recreated) - t0);
      await ready();
    }
    await controller.stop();

    // No-op passes, by a fresh controller instance on the converged swarm.
    const recording = recordSwarmApi(api);
    const probe = createController({ docker: recording, specSource: fileSpecSource(specFile), id: OWNER });
    await probe.reconcileOnce();
    await probe.reconcileOnce();
    const totals: number[] = [];
    const mutating: number[] = [];
    const passMs: number[] = [];
    for (let i = 0; i < TRIALS; i += 1) {
      recording.reset();
      const t0 = performance.now();
      await probe.reconcileOnce();
      passMs.push(performance.now() - t0);
      totals.push(recording.counts().total);
      mutating.push(recording.counts().mutating);
    }

    // The floor: the docker CLI's own round trip for one node label update on the same engine.
    const docker = await dockerCli();
    const cli: number[] = [];
    for (let i = 0; i < TRIALS; i += 1) {
      const t0 = performance.now();
      await run(docker, ["-H", swarm.manager.dockerHost, "node", "update", "--label-add", `bench.cli=${i}`, swarm.manager.hostname]);
      cli.push(performance.now() - t0);
    }
    await run(docker, ["-H", swarm.manager.dockerHost, "node", "update", "--label-rm", "bench.cli", swarm.manager.hostname]);

    const store = await benchStore({ api, dockerHost: swarm.manager.dockerHost, dir, variant, trials: TRIALS, leaseTrials: LEASE_TRIALS, actionClock, until });

    const ms = (v: number): string => `${v.toFixed(0)} ms`;
    const rows = [
      ["spec edit → service spec updated", ms(quantile(edit, 0.5)), ms(quantile(edit, 0.95)), String(edit.length)],
      ["drift: node label removed → label restored", ms(quantile(labelDrift, 0.5)), ms(quantile(labelDrift, 0.95)), String(labelDrift.length)],
      ["drift: service deleted → service re-created", ms(quantile(serviceDrift, 0.5)), ms(quantile(serviceDrift, 0.95)), String(serviceDrift.length)],
      ["no-op reconcile pass (whole spec)", ms(quantile(passMs, 0.5)), ms(quantile(passMs, 0.95)), String(passMs.length)],
      ["peer: `docker node update --label-add` (CLI round trip)", ms(quantile(cli, 0.5)), ms(quantile(cli, 0.95)), String(cli.length)],
      [
        "store edit (`dtrcache apply` started) → service spec updated",
        ms(quantile(store.storeEdit, 0.5)),
        ms(quantile(store.storeEdit, 0.95)),
        String(store.storeEdit.length),
      ],
      [
        "`dtrcache apply` of a changed resource (CLI process, until it exits)",
        ms(quantile(store.applyCli, 0.5)),
        ms(quantile(store.applyCli, 0.95)),
        String(store.applyCli.length),
      ],
      [
        "leader SIGKILLed → standby active (`lease acquired`)",
        ms(quantile(store.leaderKill, 0.5)),
        ms(quantile(store.leaderKill, 0.95)),
        String(store.leaderKill.length),
      ],
      ["`dtrcache get` (CLI process)", ms(quantile(store.getCli, 0.5)), ms(quantile(store.getCli, 0.95)), String(store.getCli.length)],
      [
        "`dtrcache apply` unchanged (CLI process)",
        ms(quantile(store.applyUnchangedCli, 0.5)),
        ms(quantile(store.applyUnchangedCli, 0.95)),
        String(store.applyUnchangedCli.length),
      ],
    ];
    const lines = [
      "| measurement | median | p95 | trials |",
      "|---|---|---|---|",
      ...rows.map((r) => `| ${r.join(" | ")} |`),
      "",
      "| Engine API calls per no-op reconcile | median | max | trials |",
      "|---|---|---|---|",
      `| total | ${quantile(totals, 0.5)} | ${Math.max(...totals)} | ${totals.length} |`,
      `| mutating | ${quantile(mutating, 0.5)} | ${Math.max(...mutating)} | ${mutating.length} |`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    if (api) await removeOwned(api, OWNER).catch(() => undefined);
    await swarm.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
