// The DTR drift check (issue 10, defect 9): every `intervalMs` (default 10 s), one list call per
// DTR (GET /api/v0/content_caches) compared with what the DTR reconciler's last full passes
// confirmed. A registration gone (deleted by hand, DTR restored empty) or changed asks that cache
// for a full verification now, instead of at the reconciler's slower periodic verification
// (60 s). A list call that fails marks the DTR down; the next answer — to this check or to any
// pass — re-verifies every cache on it, because a DTR that was away may come back from a backup
// with registrations present but user settings older than ours, which no list can show.
import type { Logger } from "../logger.js";
import type { Clock, Timer } from "../runner/clock.js";
import { describeDtrFailure } from "../dtr/dtr-sync.js";
import type { DtrRegistrationLister } from "../dtr/sync.js";
import type { DtrReconciler } from "./reconciler.js";

export const DEFAULT_DTR_CHECK_MS = 10_000;

export interface DtrDriftCheckOptions {
  readonly reconciler: DtrReconciler;
  readonly lister: DtrRegistrationLister;
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly logger: Logger;
}

/** What one check found, per cache: why its DTR side is verified in full now. */
export interface DriftFinding {
  readonly cache: string;
  readonly reason: string;
}

function sameHost(a: string, b: string): boolean {
  return a.replace(/\/+$/, "") === b.replace(/\/+$/, "");
}

export class DtrDriftCheck {
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private stopped = true;

  constructor(private readonly o: DtrDriftCheckOptions) {}

  /** Starts checking every interval (the first check one interval from now). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Stops the timer and aborts a check in flight; resolves once it has returned. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.abort?.abort();
    await this.running;
  }

  /** Resolves once no check is in flight (what it queued is then in the runner's queue). */
  async settled(): Promise<void> {
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimer(() => {
      this.timer = undefined;
      this.running = this.checkOnce()
        .then(
          () => undefined,
          (error: unknown) => this.o.logger.warn({ err: error instanceof Error ? error.message : String(error) }, "DTR drift check failed"),
        )
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.o.intervalMs);
  }

  /** One comparison per DTR; returns the caches it asked to verify in full because their registration drifted. */
  async checkOnce(): Promise<DriftFinding[]> {
    const abort = new AbortController();
    this.abort = abort;
    const findings: DriftFinding[] = [];
    try {
      for (const watched of this.o.reconciler.watched()) {
        if (abort.signal.aborted) break;
        let listed;
        try {
          listed = await this.o.lister.listRegistrations(watched.dtr, abort.signal);
        } catch (error) {
          if (abort.signal.aborted) break;
          this.o.reconciler.dtrUnreachable(watched.key, describeDtrFailure(error).message);
          continue;
        }
        this.o.reconciler.dtrAnswered(watched.key);
        const byId = new Map(listed.map((r) => [r.id, r]));
        for (const mine of watched.confirmed) {
          const now = byId.get(mine.registrationId);
          const reason =
            now === undefined
              ? `registration ${mine.registrationId} is no longer in DTR's list`
              : now.name !== mine.cache || !sameHost(now.host, mine.host)
                ? `registration ${mine.registrationId} is now ${now.name} ${now.host} in DTR (confirmed ${mine.cache} ${mine.host})`
                : undefined;
          if (reason === undefined) continue;
          findings.push({ cache: mine.cache, reason });
          this.o.reconciler.reverify(mine.cache, reason);
        }
      }
    } finally {
      if (this.abort === abort) this.abort = undefined;
    }
    return findings;
  }
}
