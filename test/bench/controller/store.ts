// The store rows of `npm run bench:controller` (issue 11): what an operator of the in-cluster
// controller waits for.
//   1. store edit → service updated: `dtrcache apply -f` started (a CLI process, as a user runs
//      it) → the controller's `updateService` returned. The controller runs in-process in store
//      mode (the store as its spec source: Docker config events plus a 10 s resync).
//   2. leader killed → standby active: two `dtrcache run` processes with one owner id; SIGKILL
//      the leader → the standby logs "lease acquired".
//   3. `dtrcache get` (CLI process, list + table) and `dtrcache apply` of an unchanged spec.
// Every wait has a deadline; trial counts are fixed.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { conditionOf, createController, SpecStore, storeSpecSource, type Logger, type SwarmApi } from "@dtrcache/controller";
import { run } from "../../harness/proc.js";
import { repoRoot } from "../../harness/index.js";
import { removeOwned, runbookVariant, type RunbookVariant } from "./support.js";

export interface StoreBenchOptions {
  readonly api: SwarmApi;
  readonly dockerHost: string;
  readonly dir: string;
  readonly variant: RunbookVariant;
  readonly trials: number;
  readonly leaseTrials: number;
  readonly actionClock: () => { logger: Logger; next(action: string, target?: string): Promise<number> };
  readonly until: <T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs?: number) => Promise<T>;
}

export interface StoreBenchResult {
  readonly storeEdit: number[];
  readonly applyCli: number[];
  readonly leaderKill: number[];
  readonly getCli: number[];
  readonly applyUnchangedCli: number[];
}

const cli = (): string => join(repoRoot(), "controller", "dist", "cli", "main.js");

/** The runbook variant with DTR on a closed loopback port: the bench measures the Swarm side only. */
async function storeSpec(v: RunbookVariant): Promise<string> {
  return (await runbookVariant(v)).replace("url: https://dtr.example.com:443", "url: https://127.0.0.1:9");
}

function startRun(owner: string, dockerHost: string): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, [cli(), "run", "--id", owner, "--listen", "127.0.0.1:0", "--log-level", "info"], {
    env: { PATH: process.env["PATH"] ?? "", DOCKER_HOST: dockerHost, DTR_ADMIN_PASSWORD: "not-used" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  return { child, log: () => log };
}

export async function benchStore(o: StoreBenchOptions): Promise<StoreBenchResult> {
  const owner = "bench-store";
  const env = { PATH: process.env["PATH"] ?? "", DOCKER_HOST: o.dockerHost, DTR_ADMIN_PASSWORD: "not-used" };
  const dtrcache = (...args: string[]) => run(process.execPath, [cli(), ...args, "--id", owner], { env, allowFailure: true });
  let variant: RunbookVariant = { ...o.variant, cache: "bench-store", nodeLabel: "dtr.cache.benchstore=true", port: o.variant.port + 1 };
  const specFile = join(o.dir, "store.yaml");
  const removeStore = async (): Promise<void> => {
    for (const c of await o.api.listConfigs({ labels: [] }))
      if (c.name.startsWith(`dtrcache-${owner}-`) || c.name === `dtrcache-lease-${owner}`) await o.api.removeConfig(c.id).catch(() => undefined);
  };
  try {
    await writeFile(specFile, await storeSpec(variant));
    const first = await dtrcache("apply", "-f", specFile);
    if (first.code !== 0) throw new Error(`bench: apply failed: ${first.stderr}`);

    const clock = o.actionClock();
    const controller = createController({
      docker: o.api,
      specSource: storeSpecSource(new SpecStore({ swarm: o.api, owner }), o.api),
      logger: clock.logger,
      id: owner,
      allowEmpty: true,
      resyncIntervalMs: 30_000,
      rolloutPollMs: 250,
      settleMs: 1_000,
    }); // settle shortened: Ready is awaited between trials, outside the measurement
    await controller.start();
    const ready = (): Promise<true> =>
      o.until("Ready (store)", () => (conditionOf(controller.status().caches[0], "Ready")?.status === "True" ? true : undefined), 90_000, 50);
    await ready();

    const storeEdit: number[] = [];
    const applyCli: number[] = [];
    for (let i = 0; i < o.trials; i += 1) {
      variant = { ...variant, blobTTL: `${200 + i}m` };
      await writeFile(specFile, await storeSpec(variant));
      const updated = clock.next("update-service");
      const t0 = performance.now();
      const applied = await dtrcache("apply", "-f", specFile);
      applyCli.push(performance.now() - t0);
      if (applied.code !== 0) throw new Error(`bench: apply failed: ${applied.stderr}`);
      storeEdit.push((await updated) - t0);
      await ready();
    }
    await controller.stop();

    const getCli: number[] = [];
    const applyUnchangedCli: number[] = [];
    for (let i = 0; i < o.trials; i += 1) {
      let t0 = performance.now();
      const got = await dtrcache("get");
      getCli.push(performance.now() - t0);
      if (got.code !== 0) throw new Error(`bench: get failed: ${got.stderr}`);
      t0 = performance.now();
      const same = await dtrcache("apply", "-f", specFile);
      applyUnchangedCli.push(performance.now() - t0);
      if (!same.stdout.includes("unchanged")) throw new Error(`bench: expected unchanged: ${same.stdout}`);
    }

    // Leader kill → standby active, with the CLI's defaults (lease 10 s, renew 2 s).
    const leaderKill: number[] = [];
    for (let i = 0; i < o.leaseTrials; i += 1) {
      const leader = startRun(owner, o.dockerHost);
      let standby: ReturnType<typeof startRun> | undefined;
      try {
        await o.until("a leader", () => (leader.log().includes("lease acquired") ? true : undefined), 30_000, 50);
        standby = startRun(owner, o.dockerHost);
        const waiting = standby;
        await o.until("the standby", () => (waiting.log().includes("standby") ? true : undefined), 30_000, 50);
        const t0 = performance.now();
        leader.child.kill("SIGKILL");
        await o.until("the standby to lead", () => (waiting.log().includes("lease acquired") ? true : undefined), 30_000, 20);
        leaderKill.push(performance.now() - t0);
      } finally {
        leader.child.kill("SIGKILL");
        // A graceful stop releases the lease, so the next trial's leader acquires at once.
        standby?.child.kill("SIGTERM");
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        standby?.child.kill("SIGKILL");
      }
    }
    return { storeEdit, applyCli, leaderKill, getCli, applyUnchangedCli };
  } finally {
    await removeOwned(o.api, owner).catch(() => undefined);
    await removeStore();
  }
}
