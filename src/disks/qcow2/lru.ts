/** A bounded least-recently-used map keyed by host offset (L2 tables, refcount blocks). */
export class LruMap<V> {
  private readonly map = new Map<number, V>();
  private newest: number | undefined;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`cache capacity ${capacity} must be a positive integer`);
  }

  get size(): number {
    return this.map.size;
  }

  /** Looks up and marks as most recently used. */
  get(key: number): V | undefined {
    const v = this.map.get(key);
    // Re-inserting moves the key to the back; skip it when it is already there (the usual case).
    if (v !== undefined && key !== this.newest) {
      this.map.delete(key);
      this.map.set(key, v);
      this.newest = key;
    }
    return v;
  }

  set(key: number, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    this.newest = key;
  }

  delete(key: number): void {
    this.map.delete(key);
    if (key === this.newest) this.newest = undefined;
  }

  /** The least recently used key, or undefined when empty. */
  oldestKey(): number | undefined {
    for (const k of this.map.keys()) return k;
    return undefined;
  }

  overCapacity(): boolean {
    return this.map.size > this.capacity;
  }

  peek(key: number): V | undefined {
    return this.map.get(key);
  }
}
