// The fills running in this process: at most one per digest, joined by every concurrent
// requester; a short disk-full window in which new fills skip the disk; waiting for all of them
// on shutdown so commits land first.
import { Fill, type FillEvents, type FillSource } from "./fill.js";
import type { FillReader } from "./fill-reader.js";
import type { BlobStore } from "./store.js";

/** One fill per digest at a time. */
export class FillCoordinator {
  private readonly fills = new Map<string, Fill>();
  /** Every run not yet finished, pass-through ones included (they are not in `fills`). */
  private readonly running = new Set<Promise<void>>();
  private diskFullUntil = 0;

  constructor(
    private readonly store: BlobStore,
    private readonly events: FillEvents,
    private readonly now: () => number,
  ) {}

  get inFlight(): number {
    return this.fills.size;
  }

  get(digest: string): Fill | undefined {
    return this.fills.get(digest);
  }

  /** Resolves when every fill started so far has finished (graceful shutdown: commits land first). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /**
   * Joins the fill for `digest` or starts one with `source`. The returned reader is attached
   * synchronously, before any byte can arrive.
   */
  join(digest: string, source: () => Promise<FillSource>): { reader: FillReader; started: boolean } {
    const existing = this.fills.get(digest);
    if (existing && !existing.passthrough && existing.state !== "failed") return { reader: existing.attach(), started: false };
    const fill = new Fill(digest, this.store.tempPath(), this.now() < this.diskFullUntil);
    this.fills.set(digest, fill);
    const reader = fill.attach();
    const events: FillEvents = {
      ...this.events,
      onDiskFull: (f, err) => {
        // Later requests for this digest start their own pass-through fills; for a short while
        // new fills skip the disk entirely.
        if (this.fills.get(digest) === f) this.fills.delete(digest);
        this.diskFullUntil = this.now() + 5000;
        this.events.onDiskFull?.(f, err);
      },
    };
    const run = fill.run(source, this.store, events).finally(() => {
      if (this.fills.get(digest) === fill) this.fills.delete(digest);
      this.running.delete(run);
    });
    this.running.add(run);
    return { reader, started: true };
  }
}
