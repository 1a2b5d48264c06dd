// One requester attached to a fill (fill.ts): whether it is still there, and in pass-through
// mode (disk full) its own in-memory queue of the bytes the fill could not keep on disk.
import type { Fill } from "./fill.js";

/**
 * One requester attached to a fill. Holds its own queue of pass-through bytes (disk full), fed
 * by the fill and drained by the send loop through take(); nothing else touches the queue.
 */
export class FillReader {
  private queue: Buffer[] = [];
  /** Blob offset of the queue's first byte; -1 until the first pass-through byte. */
  private queueBase = -1;
  private queuedBytes = 0;
  private isDetached = false;
  constructor(readonly fill: Fill) {}

  get detached(): boolean {
    return this.isDetached;
  }

  /** Pass-through bytes waiting in memory for this reader (the fill pauses above QUEUE_LIMIT). */
  get queued(): number {
    return this.queuedBytes;
  }

  detach(): void {
    if (this.isDetached) return;
    this.isDetached = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.fill.release(this);
  }

  /** Called by the fill: `part` holds the blob's bytes from offset `at` on. */
  offer(part: Buffer, at: number): void {
    if (this.isDetached) return;
    if (this.queueBase < 0) this.queueBase = at;
    this.queue.push(part);
    this.queuedBytes += part.length;
  }

  /**
   * The queued bytes from `pos` up to `limit` (at most one queued piece; empty when none are
   * there yet). Bytes before `pos` (already sent from the file) are dropped. The returned buffer
   * is shared with other readers: send it as it is, never write into it.
   */
  take(pos: number, limit: number): Buffer {
    while (this.queue.length > 0 && this.queueBase >= 0) {
      const head = this.queue[0];
      if (!head) break;
      if (this.queueBase + head.length <= pos) {
        this.shift(head.length);
        continue;
      }
      const from = pos - this.queueBase;
      const to = Math.min(head.length, limit - this.queueBase);
      if (to <= from) return Buffer.alloc(0);
      const out = head.subarray(from, to);
      if (to === head.length) this.shift(head.length);
      else {
        this.queue[0] = head.subarray(to);
        this.queueBase += to;
        this.queuedBytes -= to;
      }
      return out;
    }
    return Buffer.alloc(0);
  }

  private shift(n: number): void {
    this.queue.shift();
    this.queueBase += n;
    this.queuedBytes -= n;
  }
}
