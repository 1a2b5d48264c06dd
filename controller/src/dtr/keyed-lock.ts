// Serializes async work per key. The DTR side uses it per (DTR, user): a user's "GET setting,
// then PATCH" must not interleave with another cache's "GET, then PATCH" of the same user, or a
// reset that read "ours" can land after the other cache's assignment (issue 10, defect 1).
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      // The last holder cleans up, so the map does not grow with every user ever seen.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
