// What a controller process does with its lease: wait as standby until it holds the lease, then
// lead; and when the lease is lost, stop writing at the moment that is known. "Stop writing" is
// stop({ graceMs: 0 }): the runs in hand are aborted and the write fence closed at once — not
// the shutdown's grace period, during which the new leader may already be writing (two writers).
import type { LeaderElector } from "./elector.js";

/** The part of the controller a lease governs. */
export interface LeaseFollower {
  stop(options: { graceMs: number }): Promise<void>;
}

export interface LeadershipOptions {
  readonly elector: Pick<LeaderElector, "acquire" | "keepRenewing">;
  readonly controller: LeaseFollower;
  /** Starts leading (the controller and what goes with it); called once the lease is ours. */
  readonly lead: () => Promise<void>;
  /**
   * Called synchronously when the loss is known, before the controller is stopped: whatever else
   * writes for the leader (the event journal) lets go here.
   */
  readonly onLosing?: (reason: string) => void;
  /** Called once the controller has stopped after a loss, or when leading could not begin. */
  readonly onLost: (reason: string) => void;
  /** Aborting it gives up waiting for the lease (the process is shutting down). */
  readonly signal: AbortSignal;
}

export function followLease(o: LeadershipOptions): void {
  void o.elector
    .acquire(o.signal)
    .then(async () => {
      o.elector.keepRenewing((reason) => {
        o.onLosing?.(reason);
        void o.controller.stop({ graceMs: 0 }).finally(() => o.onLost(reason));
      });
      await o.lead();
    })
    .catch((error: unknown) => {
      if (!o.signal.aborted) o.onLost(error instanceof Error ? error.message : String(error));
    });
}
