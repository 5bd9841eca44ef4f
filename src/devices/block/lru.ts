/** A small least-recently-used map with a fixed number of entries (qcow2 table caches). */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();

  /** @param capacity most entries kept (at least 1). */
  constructor(private readonly capacity: number) {
    if (!(capacity >= 1)) this.capacity = 1;
  }

  /** The value of `key` (now the most recently used), or undefined. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Insert or replace `key`, evicting the least recently used entry when full. */
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  /** Forget everything. */
  clear(): void {
    this.map.clear();
  }
}
