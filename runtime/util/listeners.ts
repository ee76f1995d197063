/** A set of listeners of one event; a listener that throws is reported and does not stop the others. */
export class Listeners<T> {
  private readonly set = new Set<(event: T) => void>();

  constructor(private readonly name: string) {}

  /** Adds a listener; the returned function removes it. */
  add(listener: (event: T) => void): () => void {
    this.set.add(listener);
    return () => { this.set.delete(listener); };
  }

  /** Calls every listener with `event`. */
  emit(event: T): void {
    for (const listener of this.set) {
      try {
        listener(event);
      } catch (error) {
        console.error(`kuafu: a ${this.name} listener threw:`, error);
      }
    }
  }

  get size(): number {
    return this.set.size;
  }
}
