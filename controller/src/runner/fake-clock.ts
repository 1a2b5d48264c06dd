// A clock that moves only when a test says so. Timers fire in due order during advance(); a timer
// set by a firing callback fires in the same advance() when it falls due within it.
import type { Clock, Timer } from "./clock.js";

interface Pending {
  readonly id: number;
  readonly dueAt: number;
  readonly fn: () => void;
}

export class FakeClock implements Clock {
  private current: number;
  private nextId = 0;
  private pending: Pending[] = [];

  constructor(start: number = Date.UTC(2026, 10, 1)) {
    this.current = start;
  }

  now(): Date {
    return new Date(this.current);
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry: Pending = { id: this.nextId++, dueAt: this.current + Math.max(0, ms), fn };
    this.pending.push(entry);
    return { cancel: () => void (this.pending = this.pending.filter((p) => p !== entry)) };
  }

  /** Timers waiting to fire. */
  get timers(): number {
    return this.pending.length;
  }

  /** Moves time forward by ms, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      const due = this.pending.filter((p) => p.dueAt <= target).sort((a, b) => a.dueAt - b.dueAt || a.id - b.id)[0];
      if (!due) break;
      this.pending = this.pending.filter((p) => p !== due);
      this.current = Math.max(this.current, due.dueAt);
      due.fn();
    }
    this.current = target;
  }
}
