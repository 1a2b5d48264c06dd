// Which running tasks have *stayed* running (issue 10, defect 11). A cache that exits at start is
// running for an instant, and Swarm's restart policy replaces it by a new task with a new id; a
// task never restarts under its own id. So a task counts as settled once this controller has seen
// the same task id running for `settleMs` on its own clock. Its own clock, not the task's
// timestamps: those come from the manager's clock, which may be skewed from ours. A restarted
// controller has seen nothing yet, so it only waits once more; it never calls a crash loop settled.
import type { SwarmTask } from "../swarm/api.js";

export interface SettleState {
  /** Tasks meant to run that are running now. */
  readonly running: number;
  /** Of those, the ones seen running for at least settleMs. */
  readonly settled: number;
  /** How long until every running task is settled, if none of them stops (0 when all are). */
  readonly waitMs: number;
  readonly settleMs: number;
}

export class SettleTracker {
  /** cache name → task id → when this controller first saw the task running (ms). */
  private readonly firstSeen = new Map<string, Map<string, number>>();

  constructor(readonly settleMs: number) {
    if (!Number.isFinite(settleMs) || settleMs < 0) throw new RangeError(`settleMs must be a finite number ≥ 0, not ${settleMs}`);
  }

  /** Records one observation of the cache's tasks; forgets tasks that are no longer running. */
  observe(cache: string, tasks: readonly SwarmTask[], now: number): SettleState {
    const before = this.firstSeen.get(cache) ?? new Map<string, number>();
    const seen = new Map<string, number>();
    for (const t of tasks) if (t.desiredState === "running" && t.state === "running") seen.set(t.id, before.get(t.id) ?? now);
    this.firstSeen.set(cache, seen);
    let settled = 0;
    let waitMs = 0;
    for (const at of seen.values()) {
      const left = at + this.settleMs - now;
      if (left <= 0) settled += 1;
      else waitMs = Math.max(waitMs, left);
    }
    return { running: seen.size, settled, waitMs, settleMs: this.settleMs };
  }

  forget(cache: string): void {
    this.firstSeen.delete(cache);
  }
}
