// The work queue: keys (cache names) in, one worker run per key at a time. A key added while it
// runs is run once more afterwards; many adds while it waits collapse into one run. The worker's
// outcome decides what happens next:
//   { requeueAfterMs }       run again after that delay (rollout polling)
//   throw retryable + CONFLICT-like (`immediate`)  run again at once (bounded, then back off)
//   throw retryable          per-key exponential back-off, jittered, under a global token bucket
//   throw non-retryable      stop; the key runs again only when added again
// Those follow-ups are the loop's business: with `followUps` off (a one-shot converge without a
// running loop) a run schedules nothing after itself.
//
// Time comes from an injected Clock (runner/clock.ts) so tests move it instead of sleeping.
import { ControllerError } from "./errors.js";
import { systemClock, type Clock, type Timer } from "./runner/clock.js";

export interface WorkResult {
  readonly requeueAfterMs?: number;
}

export type ErrorClass = "immediate" | "backoff" | "terminal";

/** How one run ended, for whoever waited for it (runOnce). */
export type RunOutcome<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: unknown };

export interface QueueOptions<R extends WorkResult = WorkResult> {
  readonly worker: (key: string, signal: AbortSignal) => Promise<R>;
  readonly classify: (error: unknown) => ErrorClass;
  readonly onError?: (key: string, error: unknown, klass: ErrorClass, retryInMs: number | undefined) => void;
  readonly concurrency?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Global limit on retries: tokens per second and bucket size. */
  readonly retryRatePerSecond?: number;
  readonly retryBurst?: number;
  /** Immediate retries in a row before a conflicting key backs off. */
  readonly maxImmediate?: number;
  readonly clock?: Clock;
}

interface KeyState {
  failures: number;
  immediate: number;
  timer?: Timer;
  dueAt?: number;
}

type Waiter<R> = (outcome: RunOutcome<R>) => void;

export class WorkQueue<R extends WorkResult = WorkResult> {
  private readonly ready: string[] = [];
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly state = new Map<string, KeyState>();
  /** runOnce callers, answered by the next run of their key that starts after the call. */
  private readonly waiting = new Map<string, Waiter<R>[]>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly controller = new AbortController();
  private readonly clock: Clock;
  private tokens: number;
  private lastRefill: number;
  private stopped = false;
  /** Whether a run schedules its requeue or retry (the loop runs) or not (one-shot). */
  followUps = true;

  constructor(private readonly options: QueueOptions<R>) {
    this.clock = options.clock ?? systemClock;
    this.tokens = options.retryBurst ?? 20;
    this.lastRefill = this.clock.now().getTime();
  }

  /** Schedules the key now (cancelling a pending back-off: something changed). */
  add(key: string): void {
    if (this.stopped) return;
    const s = this.stateOf(key);
    if (s.timer) {
      s.timer.cancel();
      delete s.timer;
      delete s.dueAt;
    }
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (!this.ready.includes(key)) this.ready.push(key);
    this.pump();
  }

  /** Schedules the key after a delay, unless it is already due sooner. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const s = this.stateOf(key);
    const dueAt = this.clock.now().getTime() + delayMs;
    if (this.ready.includes(key) || (s.dueAt !== undefined && s.dueAt <= dueAt)) return;
    s.timer?.cancel();
    s.dueAt = dueAt;
    s.timer = this.clock.setTimer(() => {
      delete s.timer;
      delete s.dueAt;
      this.add(key);
    }, delayMs);
  }

  /**
   * Adds the key and resolves with the outcome of the next run of it that starts after this call
   * (a run already in hand read an older state, so it does not count). Never rejects: a queue that
   * stops before the run starts answers with a STOPPED error outcome.
   */
  runOnce(key: string): Promise<RunOutcome<R>> {
    if (this.stopped) return Promise.resolve({ ok: false, error: new ControllerError("STOPPED", `${key}: the controller is stopping`) });
    return new Promise((resolve) => {
      const list = this.waiting.get(key) ?? [];
      list.push(resolve);
      this.waiting.set(key, list);
      this.add(key);
    });
  }

  /** Forgets the back-off of a key (its spec changed). */
  forget(key: string): void {
    const s = this.state.get(key);
    if (s) {
      s.failures = 0;
      s.immediate = 0;
    }
  }

  get length(): number {
    return this.ready.length;
  }

  /** Resolves when nothing is ready or running (timers may still be pending). */
  idle(): Promise<void> {
    if (this.ready.length === 0 && this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops taking work and drops pending timers; the runs in hand get `graceMs` to finish, then
   * their signal aborts and this resolves once they have returned (a worker that honours the
   * signal returns at once).
   */
  async shutdown(graceMs = Infinity): Promise<void> {
    this.stopped = true;
    this.ready.length = 0;
    for (const s of this.state.values()) {
      s.timer?.cancel();
      delete s.timer;
      delete s.dueAt;
    }
    for (const [key, list] of this.waiting)
      for (const w of list.splice(0)) w({ ok: false, error: new ControllerError("STOPPED", `${key}: the controller stopped before this run began`) });
    this.waiting.clear();
    const drained = this.idle();
    if (Number.isFinite(graceMs)) {
      let timer: Timer | undefined;
      const graceOver = new Promise<void>((resolve) => (timer = this.clock.setTimer(resolve, graceMs)));
      await Promise.race([drained, graceOver]);
      timer?.cancel();
      if (this.running.size > 0) this.controller.abort(new ControllerError("STOPPED", `the controller is stopping: runs in hand aborted after ${graceMs} ms`));
    }
    await drained;
  }

  private stateOf(key: string): KeyState {
    let s = this.state.get(key);
    if (!s) {
      s = { failures: 0, immediate: 0 };
      this.state.set(key, s);
    }
    return s;
  }

  private takeToken(): number {
    const rate = this.options.retryRatePerSecond ?? 10;
    const burst = this.options.retryBurst ?? 20;
    const now = this.clock.now().getTime();
    this.tokens = Math.min(burst, this.tokens + ((now - this.lastRefill) / 1000) * rate);
    this.lastRefill = now;
    this.tokens -= 1;
    // A negative balance means the caller waits until it is paid back.
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / rate) * 1000);
  }

  private pump(): void {
    const limit = this.options.concurrency ?? 2;
    while (!this.stopped && this.running.size < limit && this.ready.length > 0) {
      const key = this.ready.shift() as string;
      this.running.add(key);
      const waiters = this.waiting.get(key) ?? [];
      this.waiting.delete(key);
      void this.run(key, waiters);
    }
    if (this.ready.length === 0 && this.running.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async run(key: string, waiters: Waiter<R>[]): Promise<void> {
    const s = this.stateOf(key);
    // What happens after this run is decided here and done once, in `finally`, after the key is
    // released: re-adding from inside the catch would start the next run while this one still
    // held the key, and the release that follows would then free the new run's key (two runs of
    // one key at once, idle() resolving while one is in flight).
    let next: { readonly afterMs: number } | undefined;
    let outcome: RunOutcome<R>;
    try {
      const value = await this.options.worker(key, this.controller.signal);
      outcome = { ok: true, value };
      s.failures = 0;
      s.immediate = 0;
      if (value.requeueAfterMs !== undefined) next = { afterMs: value.requeueAfterMs };
    } catch (error) {
      outcome = { ok: false, error };
      let klass = this.options.classify(error);
      if (klass === "immediate" && s.immediate >= (this.options.maxImmediate ?? 5)) klass = "backoff";
      let retryIn: number | undefined;
      if (klass === "immediate") {
        s.immediate += 1;
        retryIn = 0;
      } else if (klass === "backoff") {
        s.immediate = 0;
        const base = this.options.baseDelayMs ?? 250;
        const max = this.options.maxDelayMs ?? 60_000;
        const exp = Math.min(max, base * 2 ** s.failures);
        s.failures += 1;
        retryIn = Math.round(exp / 2 + Math.random() * (exp / 2)) + this.takeToken();
      }
      this.options.onError?.(key, error, klass, this.followUps ? retryIn : undefined);
      if (retryIn !== undefined) next = { afterMs: retryIn };
    } finally {
      // The one place a key is released.
      this.running.delete(key);
      if (!this.followUps) next = undefined;
      if (this.dirty.delete(key) || next?.afterMs === 0) this.add(key);
      else if (next !== undefined) this.addAfter(key, next.afterMs);
      this.pump();
    }
    for (const w of waiters) w(outcome);
  }
}
