// A least-recently-used map bounded by the bytes of its values: the store's in-memory copies of
// manifests and of small hot blobs. Map order is insertion order and a hit re-inserts its key,
// so the first key is always the least recently used one.

export class ByteLru<V> {
  private readonly entries = new Map<string, V>();
  private total = 0;

  /**
   * @param maxBytes what all values together may hold
   * @param maxEntryBytes a larger value is never kept (one big object must not flush many small ones)
   * @param sizeOf the bytes one value holds
   */
  constructor(
    private readonly maxBytes: number,
    private readonly maxEntryBytes: number,
    private readonly sizeOf: (value: V) => number,
  ) {}

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether a value of this many bytes would be kept. */
  admits(bytes: number): boolean {
    return bytes <= this.maxEntryBytes && bytes <= this.maxBytes;
  }

  /** The value, now the most recently used one. */
  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  /** Keeps the value unless it is too large or the key is already held; evicts the least recently used beyond maxBytes. */
  set(key: string, value: V): void {
    const bytes = this.sizeOf(value);
    if (!this.admits(bytes) || this.entries.has(key)) return;
    this.entries.set(key, value);
    this.total += bytes;
    for (const [k, v] of this.entries) {
      if (this.total <= this.maxBytes) break;
      this.entries.delete(k);
      this.total -= this.sizeOf(v);
    }
  }

  delete(key: string): void {
    const value = this.entries.get(key);
    if (value === undefined) return;
    this.entries.delete(key);
    this.total -= this.sizeOf(value);
  }
}
