/**
 * A server's cache of player routes, kept fresh by the store's route-change publications, so a hot
 * call finds the owner without a store round trip. After a store reconnect the cache is dropped:
 * publications may have been missed meanwhile.
 */
import type { Route, RouteChange, Store, Unsubscribe } from '../store/store.js';

export class RouteCache {
  private readonly routes = new Map<number, Route>();
  private readonly loading = new Map<number, Promise<Route | null>>();
  private readonly unsubscribes: Unsubscribe[] = [];
  private readonly waiters = new Map<number, Set<(change: RouteChange | null) => void>>();

  constructor(private readonly store: Store, private readonly maxEntries = 100_000) {}

  /** Starts following the store's publications. */
  start(): void {
    this.unsubscribes.push(
      this.store.onRouteChange((change) => this.apply(change)),
      this.store.onReconnect(() => this.clear()),
    );
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    this.clear();
  }

  /** The player's route: from the cache, else from the store (one load per player at a time). */
  get(pid: number): Promise<Route | null> {
    const cached = this.routes.get(pid);
    if (cached) return Promise.resolve(cached);
    let load = this.loading.get(pid);
    if (!load) {
      load = this.store.getRoute(pid).then(
        (route) => {
          this.loading.delete(pid);
          const newer = this.routes.get(pid);
          // A publication may have arrived while loading: keep whichever is newer.
          if (route && !(newer && newer.epoch > route.epoch)) this.remember(pid, route);
          return this.routes.get(pid) ?? route;
        },
        (error) => {
          this.loading.delete(pid);
          throw error;
        },
      );
      this.loading.set(pid, load);
    }
    return load;
  }

  /** The cached route only (no store round trip), or undefined. */
  peek(pid: number): Route | undefined {
    return this.routes.get(pid);
  }

  /** Forgets one player's route (e.g. after a call found him moved). */
  forget(pid: number): void {
    this.routes.delete(pid);
  }

  /** Drops every cached route. */
  clear(): void {
    this.routes.clear();
  }

  get size(): number {
    return this.routes.size;
  }

  /**
   * Resolves with the next change of the player's route past `epoch` (or a change of his online
   * state), or null after `timeoutMs`. A call that found the player moving waits on this.
   */
  waitForChange(pid: number, epoch: number, timeoutMs: number): Promise<RouteChange | null> {
    return new Promise((resolve) => {
      let set = this.waiters.get(pid);
      if (!set) this.waiters.set(pid, (set = new Set()));
      const waiter = (change: RouteChange | null) => {
        if (change && change.epoch <= epoch && change.online) return;
        clearTimeout(timer);
        set!.delete(waiter);
        if (set!.size === 0) this.waiters.delete(pid);
        resolve(change);
      };
      const timer = setTimeout(() => waiter(null), timeoutMs);
      set.add(waiter);
    });
  }

  private apply(change: RouteChange): void {
    const waiting = this.waiters.get(change.pid);
    if (waiting) for (const waiter of [...waiting]) waiter(change);
    const cached = this.routes.get(change.pid);
    // Only players this server asked about are cached; an older publication never replaces a newer route.
    if ((cached && change.epoch >= cached.epoch) || this.loading.has(change.pid)) {
      if (!cached || change.epoch >= cached.epoch) {
        this.remember(change.pid, { home: change.home, at: change.at, epoch: change.epoch, online: change.online });
      }
    }
  }

  private remember(pid: number, route: Route): void {
    this.routes.delete(pid);
    this.routes.set(pid, route);
    if (this.routes.size > this.maxEntries) {
      const oldest = this.routes.keys().next().value;
      if (oldest !== undefined) this.routes.delete(oldest);
    }
  }
}
