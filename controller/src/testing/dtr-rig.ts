// A controller on a FakeClock against a DTR (the emulator, usually) with the production
// intervals, converged and started: the DTR reconciler tests' common setup. stopDtrRigs() in an
// afterEach stops every rig started since.
import type { LoadResult } from "@dtrcache/crds";
import { createController, type Controller } from "../controller.js";
import { createDtrSync, type DtrSyncService } from "../dtr/dtr-sync.js";
import { memoryLogger } from "../logger.js";
import { FakeClock } from "../runner/fake-clock.js";
import { staticSpecSource } from "../source.js";
import type { FakeSwarm } from "../swarm/fake.js";

export interface DtrRig {
  readonly clock: FakeClock;
  readonly source: ReturnType<typeof staticSpecSource>;
  readonly controller: Controller;
  readonly sync: DtrSyncService;
  readonly logger: ReturnType<typeof memoryLogger>;
}

export interface DtrRigOptions {
  readonly spec: LoadResult;
  readonly swarm: FakeSwarm;
  /** The controller's owner id. */
  readonly id: string;
  /** What `{env: NAME}` password references resolve against. */
  readonly env?: NodeJS.ProcessEnv;
  /** The DTR drift check interval; 0 turns it off (default: the production interval). */
  readonly dtrCheckMs?: number;
}

const started: DtrRig[] = [];

export async function startDtrRig(o: DtrRigOptions): Promise<DtrRig> {
  const clock = new FakeClock();
  const source = staticSpecSource(o.spec);
  const sync = createDtrSync({ env: o.env, timeoutMs: 2_000, retry: { retries: 0, minTimeoutMs: 10, maxTimeoutMs: 20 } });
  const logger = memoryLogger();
  const controller = createController({ docker: o.swarm, specSource: source, dtrSync: sync, id: o.id, settleMs: 0, dtrCheckMs: o.dtrCheckMs, clock, logger });
  const rig = { clock, source, controller, sync, logger };
  started.push(rig);
  // Two passes: the first creates the services, the second finds them Ready and points DTR at them.
  await controller.reconcileOnce();
  await controller.reconcileOnce();
  await controller.start();
  await controller.idle();
  return rig;
}

/** Stops every rig started since the last call (for an afterEach). */
export async function stopDtrRigs(): Promise<void> {
  for (const r of started.splice(0)) {
    await r.controller.stop();
    await r.sync.close();
  }
}
