// The controller's event log (issue 11, item 7): what it did and why, per cache, like Kubernetes
// events. The one owner of the events: the Swarm, DTR and reconcile observers only call
// `record`, the status endpoint and `describe` only read. Bounded twice — a ring of `perCache`
// events per cache and at most `maxCaches` caches (the least recently active one is dropped) —
// so a controller that loops cannot grow it; a repeat of the newest event of a cache (same type,
// source, reason and message) is folded into it with a count, as Kubernetes does, so a loop
// shows as one line with a count instead of pushing the history out.
//
// Events carry names, codes and the engine's/DTR's messages only: the observers never put
// object data (config contents, secrets, passwords) into a message.

export type EventType = "Normal" | "Warning";
/** Where the event comes from: a Swarm write, a DTR pass, or the reconcile loop itself. */
export type EventSource = "swarm" | "dtr" | "reconcile";

export interface EventInput {
  /** The cache the event is about; undefined for controller-wide events (e.g. node labels). */
  readonly cache?: string;
  readonly type: EventType;
  readonly source: EventSource;
  /** Stable, CamelCase (ServiceUpdated, ConfigCreated, DtrSyncFailed, ReconcileFailed, ...). */
  readonly reason: string;
  readonly message: string;
}

export interface ControllerEvent extends EventInput {
  readonly firstTime: string;
  readonly lastTime: string;
  /** How many times in a row this event happened (first..last). */
  readonly count: number;
}

export interface EventRecorderOptions {
  readonly perCache?: number;
  readonly maxCaches?: number;
  readonly now?: () => Date;
}

/** Key of the controller-wide ring. Not a valid cache name (cache names are DNS labels). */
const CONTROLLER_WIDE = "";

export class EventRecorder {
  private readonly perCache: number;
  private readonly maxCaches: number;
  private readonly now: () => Date;
  /** Insertion order = least recently active first (a key is re-inserted on every record). */
  private readonly rings = new Map<string, ControllerEvent[]>();
  private readonly listeners = new Set<() => void>();

  constructor(options: EventRecorderOptions = {}) {
    this.perCache = Math.max(1, options.perCache ?? 50);
    this.maxCaches = Math.max(1, options.maxCaches ?? 200);
    this.now = options.now ?? (() => new Date());
  }

  record(input: EventInput): void {
    const key = input.cache ?? CONTROLLER_WIDE;
    const ring = this.rings.get(key) ?? [];
    this.rings.delete(key);
    this.rings.set(key, ring);
    const at = this.now().toISOString();
    const last = ring[ring.length - 1];
    if (last && last.type === input.type && last.source === input.source && last.reason === input.reason && last.message === input.message) {
      ring[ring.length - 1] = { ...last, lastTime: at, count: last.count + 1 };
    } else {
      ring.push({ ...input, firstTime: at, lastTime: at, count: 1 });
      if (ring.length > this.perCache) ring.splice(0, ring.length - this.perCache);
    }
    this.trim();
    for (const listener of this.listeners) listener();
  }

  private trim(): void {
    while (this.rings.size > this.maxCaches) {
      const oldest = this.rings.keys().next().value;
      if (oldest === undefined) break;
      this.rings.delete(oldest);
    }
  }

  /** Called after every record (the journal uses it to know there is something to persist). */
  onRecord(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Puts back events kept from an earlier controller (store/events-journal.ts), oldest first,
   * before anything new is recorded: events recorded since are kept after them, and the rings'
   * bounds hold as for recorded ones.
   */
  restore(events: readonly ControllerEvent[]): void {
    const byKey = new Map<string, ControllerEvent[]>();
    for (const e of [...events].sort((a, b) => (a.lastTime < b.lastTime ? -1 : a.lastTime > b.lastTime ? 1 : 0))) {
      const key = e.cache ?? CONTROLLER_WIDE;
      byKey.set(key, [...(byKey.get(key) ?? []), e]);
    }
    for (const [key, restored] of byKey) {
      const current = this.rings.get(key) ?? [];
      this.rings.delete(key);
      this.rings.set(key, [...restored, ...current].slice(-this.perCache));
    }
    // restored caches are older than the ones active in this process: put those last again
    for (const key of [...this.rings.keys()]) {
      if (byKey.has(key)) continue;
      const ring = this.rings.get(key) ?? [];
      this.rings.delete(key);
      this.rings.set(key, ring);
    }
    this.trim();
  }

  /**
   * The last `limit` events, oldest first: of one cache (with the controller-wide ones, which may
   * concern it, merged in by time), or of everything when `cache` is undefined.
   */
  list(cache?: string, limit = this.perCache): ControllerEvent[] {
    const picked =
      cache === undefined
        ? [...this.rings.values()].flat()
        : [...(this.rings.get(cache) ?? []), ...(cache === CONTROLLER_WIDE ? [] : (this.rings.get(CONTROLLER_WIDE) ?? []))];
    const sorted = picked.sort((a, b) => (a.lastTime < b.lastTime ? -1 : a.lastTime > b.lastTime ? 1 : 0));
    return limit <= 0 ? [] : sorted.slice(-limit);
  }
}
