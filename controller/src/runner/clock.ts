// Time, injected. Everything in the controller that waits or schedules — the queue's back-off and
// requeues, the periodic resync, the event stream's reconnect, teardown's wait for tasks, stop()'s
// grace period — asks a Clock, so a test drives time with FakeClock instead of sleeping.
// Durations that are only measured (lastReconcile.durationMs, metrics) use performance.now(): a
// measurement is about the machine, not about the controller's idea of time.
import { AbortedError } from "../abort.js";

/** A scheduled callback; cancel() is idempotent and safe after it ran. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): Date;
  /** Calls fn once after ms (on this clock's time). Never keeps the process alive on its own. */
  setTimer(fn: () => void, ms: number): Timer;
}

/** What callers may pass: a full Clock, or (as before timers were injected) only `now`. */
export type ClockLike = Clock | { now(): Date };

export const systemClock: Clock = {
  now: () => new Date(),
  setTimer(fn, ms) {
    const handle = setTimeout(fn, ms);
    // A pending back-off or resync must not keep a CLI process from exiting.
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock with timers: a `now`-only clock keeps its time and schedules on the process's timers. */
export function withTimers(clock: ClockLike | undefined): Clock {
  if (clock === undefined) return systemClock;
  if ("setTimer" in clock) return clock;
  return { now: () => clock.now(), setTimer: systemClock.setTimer };
}

/** Waits ms on the clock; rejects with AbortedError as soon as the signal aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortedError(signal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      timer.cancel();
      reject(new AbortedError(signal?.reason));
    };
    const timer = clock.setTimer(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
