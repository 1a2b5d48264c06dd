// How far a cache's rollout has got, for `dtrcache status` (issue 13, item 2): "Rolling out (1/2
// tasks updated)". The controller's conditions count running tasks only, and during a Swarm
// update old and new tasks both run; "updated" means a running task made from the service's
// current spec — its container carries the spec's rollout hash label (reconcile/labels.ts).
//
// Reads only, and only while a cache is rolling out (its Progressing condition is True): one
// inspectService + listTasks per such cache per poll (every 2 s by default). A cache that is not
// rolling out costs nothing. Reads go through the unrecorded engine: they are not the
// controller's actions.
import { ROLLOUT_HASH } from "../reconcile/labels.js";
import type { SwarmApi, SwarmService, SwarmTask } from "../swarm/api.js";
import type { CacheSnapshot, RuntimeSnapshot } from "./snapshot.js";

export interface RolloutCount {
  /** Running tasks made from the service's current spec. */
  readonly updated: number;
  readonly desired: number;
}

/** Running tasks whose container carries the service's current rollout hash. */
export function countUpdated(service: SwarmService, tasks: readonly SwarmTask[]): RolloutCount {
  const hash = service.spec.TaskTemplate.ContainerSpec.Labels?.[ROLLOUT_HASH];
  const desired = service.spec.Mode?.Replicated?.Replicas ?? 1;
  const updated =
    hash === undefined ? 0 : tasks.filter((t) => t.desiredState === "running" && t.state === "running" && t.containerLabels?.[ROLLOUT_HASH] === hash).length;
  return { updated, desired };
}

export const rollingOut = (cache: CacheSnapshot): boolean => cache.conditions.some((c) => c.type === "Progressing" && c.status === "True");

export class RolloutProgress {
  private readonly counts = new Map<string, RolloutCount>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly swarm: SwarmApi,
    /** The snapshot without rollout counts (what decides which caches to look at). */
    private readonly snapshot: () => RuntimeSnapshot,
    private readonly intervalMs = 2_000,
  ) {}

  /** Looks at every cache that is rolling out now; forgets the others. Never throws. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const rolling = this.snapshot()
        .caches.filter(rollingOut)
        .map((c) => c.name);
      for (const name of [...this.counts.keys()]) if (!rolling.includes(name)) this.counts.delete(name);
      for (const name of rolling) {
        try {
          const service = await this.swarm.inspectService(name);
          this.counts.set(name, countUpdated(service, await this.swarm.listTasks(service.id)));
        } catch {
          // service gone or engine away: say nothing rather than something stale
          this.counts.delete(name);
        }
      }
    } finally {
      this.polling = false;
    }
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The snapshot with `rollout` set on each cache that is rolling out and was counted. */
  decorate(snapshot: RuntimeSnapshot): RuntimeSnapshot {
    if (this.counts.size === 0) return snapshot;
    return { ...snapshot, caches: snapshot.caches.map((c) => (rollingOut(c) && this.counts.has(c.name) ? { ...c, rollout: this.counts.get(c.name) } : c)) };
  }
}
