/**
 * What the account server counts to keep logins and registrations cheap to refuse and hard to
 * abuse (services/account.ts): per source address, and per source address and account, in fixed
 * windows, in maps that never hold more than a set number of keys whatever the callers send.
 */

/**
 * Counts per key in fixed windows (each key's window starts with its first count), holding at most
 * `capacity` keys: past that, windows that are over are forgotten first, then the oldest.
 */
export class WindowCounts {
  /** Keys in the order their windows started (a new window moves its key to the end). */
  private readonly windows = new Map<string, { count: number; since: number }>();

  constructor(readonly windowMs: number, readonly capacity: number, private readonly now: () => number = Date.now) {
    if (!(capacity >= 1)) throw new RangeError('WindowCounts needs a capacity of at least 1');
  }

  /** Keys held now. */
  get size(): number {
    return this.windows.size;
  }

  /** The count of `key` in its current window (0 when it has none). */
  count(key: string): number {
    return this.current(key)?.count ?? 0;
  }

  /** How long until the current window of `key` is over, ms (0 when it has none). */
  retryAfterMs(key: string): number {
    const window = this.current(key);
    return window ? Math.max(0, window.since + this.windowMs - this.now()) : 0;
  }

  /** Adds `n` to the count of `key`, starting a window if it has none. */
  add(key: string, n = 1): void {
    let window = this.current(key);
    if (!window) {
      this.windows.delete(key);
      this.makeRoom();
      window = { count: 0, since: this.now() };
      this.windows.set(key, window);
    }
    window.count += n;
  }

  /** Takes one back (a count that turned out not to be what is counted). */
  subtract(key: string): void {
    const window = this.current(key);
    if (window && window.count > 0) window.count--;
  }

  /** Forgets `key`. */
  delete(key: string): void {
    this.windows.delete(key);
  }

  private current(key: string): { count: number; since: number } | undefined {
    const window = this.windows.get(key);
    if (window && this.now() - window.since >= this.windowMs) {
      this.windows.delete(key);
      return undefined;
    }
    return window;
  }

  /** Below capacity again: windows that are over first (they are at the front), then the oldest. */
  private makeRoom(): void {
    const now = this.now();
    for (const [key, window] of this.windows) {
      if (this.windows.size < this.capacity) return;
      if (now - window.since >= this.windowMs) this.windows.delete(key);
      else break;
    }
    while (this.windows.size >= this.capacity) {
      const oldest = this.windows.keys().next();
      if (oldest.done) return;
      this.windows.delete(oldest.value);
    }
  }
}

/** Keys a map of the account server's limits holds at most (sources; source and account pairs). */
export const MAX_TRACKED_KEYS = 50_000;
