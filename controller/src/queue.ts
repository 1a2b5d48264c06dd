// The work queue: keys (cache names) in, one worker run per key at a time. A key added while it
// runs is run once more afterwards; many adds while it waits collapse into one run. The worker's
// outcome decides what happens next:
//   { requeueAfterMs }       run again after that delay (rollout polling)
//   throw retryable + CONFLICT-like (`immediate`)  run again at once (bounded, then back off)
//   throw retryable          per-key exponential back-off, jittered, under a global token bucket
//   throw non-retryable      stop; the key runs again only when added again
export interface WorkResult {
  readonly requeueAfterMs?: number;
}

export type ErrorClass = "immediate" | "backoff" | "terminal";

export interface QueueOptions {
  readonly worker: (key: string, signal: AbortSignal) => Promise<WorkResult>;
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
}

interface KeyState {
  failures: number;
  immediate: number;
  timer?: NodeJS.Timeout;
  dueAt?: number;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly state = new Map<string, KeyState>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly controller = new AbortController();
  private tokens: number;
  private lastRefill = Date.now();
  private stopped = false;

  constructor(private readonly options: QueueOptions) {
    this.tokens = options.retryBurst ?? 20;
  }

  /** Schedules the key now (cancelling a pending back-off: something changed). */
  add(key: string): void {
    if (this.stopped) return;
    const s = this.stateOf(key);
    if (s.timer) {
      clearTimeout(s.timer);
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
    const dueAt = Date.now() + delayMs;
    if (this.ready.includes(key) || (s.dueAt !== undefined && s.dueAt <= dueAt)) return;
    if (s.timer) clearTimeout(s.timer);
    s.dueAt = dueAt;
    s.timer = setTimeout(() => {
      delete s.timer;
      delete s.dueAt;
      this.add(key);
    }, delayMs);
    s.timer.unref?.();
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

  /** Stops taking work; resolves after the runs in hand finish. Pending timers are dropped. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    this.ready.length = 0;
    for (const s of this.state.values()) if (s.timer) clearTimeout(s.timer);
    await this.idle();
  }

  /** Aborts runs in hand (used when shutdown must not wait). */
  abort(): void {
    this.controller.abort();
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
    const now = Date.now();
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
      void this.run(key);
    }
    if (this.ready.length === 0 && this.running.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async run(key: string): Promise<void> {
    const s = this.stateOf(key);
    // What happens after this run is decided here and done once, in `finally`, after the key is
    // released: re-adding from inside the catch would start the next run while this one still
    // held the key, and the release that follows would then free the new run's key (two runs of
    // one key at once, idle() resolving while one is in flight).
    let next: { readonly afterMs: number } | undefined;
    try {
      const result = await this.options.worker(key, this.controller.signal);
      s.failures = 0;
      s.immediate = 0;
      if (result.requeueAfterMs !== undefined) next = { afterMs: result.requeueAfterMs };
    } catch (error) {
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
      this.options.onError?.(key, error, klass, retryIn);
      if (retryIn !== undefined) next = { afterMs: retryIn };
    } finally {
      // The one place a key is released.
      this.running.delete(key);
      if (this.dirty.delete(key) || next?.afterMs === 0) this.add(key);
      else if (next !== undefined) this.addAfter(key, next.afterMs);
      this.pump();
    }
  }
}
