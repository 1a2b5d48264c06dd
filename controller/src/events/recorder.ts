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
    while (this.rings.size > this.maxCaches) {
      const oldest = this.rings.keys().next().value;
      if (oldest === undefined) break;
      this.rings.delete(oldest);
    }
  }

  /**
   * The last `limit` events, oldest first: of one cache (with the controller-wide ones, which may
   * concern it, merged in by time), or of everything when `cache` is undefined.
   */
  list(cache?: string, limit = this.perCache): ControllerEvent[] {
    const picked = cache === undefined ? [...this.rings.values()].flat() : [...(this.rings.get(cache) ?? []), ...(cache === CONTROLLER_WIDE ? [] : (this.rings.get(CONTROLLER_WIDE) ?? []))];
    const sorted = picked.sort((a, b) => (a.lastTime < b.lastTime ? -1 : a.lastTime > b.lastTime ? 1 : 0));
    return limit <= 0 ? [] : sorted.slice(-limit);
  }
}
