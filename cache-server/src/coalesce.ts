// Coalesced revalidation that keeps freshness: a request never joins a round trip that started
// before it arrived (that answer may predate a tag change it must see). Requests that arrive
// while one round trip is in flight share the NEXT one, so at most one runs and one waits per key.
export class Batcher<T> {
  private readonly slots = new Map<string, { running?: Promise<T>; next?: Promise<T> }>();

  /** `onJoin` is called when the caller shares a round trip started by someone else. */
  run(key: string, fn: () => Promise<T>, onJoin?: () => void): Promise<T> {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = {};
      this.slots.set(key, slot);
    }
    const s = slot;
    if (!s.running) return this.start(key, s, fn);
    if (s.next) {
      onJoin?.();
      return s.next;
    }
    const next = s.running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        s.next = undefined;
        return this.start(key, s, fn);
      });
    s.next = next;
    return next;
  }

  private start(key: string, s: { running?: Promise<T>; next?: Promise<T> }, fn: () => Promise<T>): Promise<T> {
    const p = fn();
    s.running = p;
    const clear = (): void => {
      if (s.running === p) s.running = undefined;
      if (!s.running && !s.next && this.slots.get(key) === s) this.slots.delete(key);
    };
    p.then(clear, clear);
    return p;
  }
}
