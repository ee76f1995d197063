/**
 * MemoryStore: the Store in one process, for the embedded default (`kuafu up` without Redis) and
 * for tests. Values are copied in and out (encoded as in Redis), so no caller shares a stored
 * object; publications are delivered asynchronously, as Redis delivers them.
 */
import { NotFoundError } from '../errors.js';
import { decodeDocument, encodeDocument } from '../rpc/values.js';
import { Listeners } from '../util/listeners.js';
import type {
  Claim, FencedSave, Mark, Profile, ProfileChange, ProfileValue, Route, RouteChange, ServerRecord, Store,
  StoredDocument, Unsubscribe,
} from './store.js';
import { REMEMBERED_CALLS } from './store.js';
import { staleOwner } from './store-errors.js';

export class MemoryStore implements Store {
  readonly description = 'memory (embedded, this process only)';
  private readonly routes = new Map<number, Route>();
  private readonly marks = new Map<number, Mark>();
  private readonly marked = new Map<string, Set<number>>();
  private readonly documents = new Map<number, { text: string; epoch: number; calls: Map<string, string> }>();
  private readonly profiles = new Map<number, Profile>();
  private readonly servers = new Map<string, { record: ServerRecord; expiresAt: number }>();
  private readonly routeListeners = new Listeners<RouteChange>('route change');
  private readonly profileListeners = new Listeners<ProfileChange>('profile change');
  private readonly reconnectListeners = new Listeners<void>('store reconnect');

  async connect(): Promise<void> {}
  async close(): Promise<void> {}

  async getRoute(pid: number): Promise<Route | null> {
    const route = this.routes.get(pid);
    return route ? { ...route } : null;
  }

  async ensureRoute(pid: number, home: string): Promise<Route> {
    let route = this.routes.get(pid);
    if (!route) {
      route = { home, at: '', epoch: 0, online: false };
      this.routes.set(pid, route);
      this.publishRoute(pid, route);
    }
    return { ...route };
  }

  async claimRoute(pid: number, claim: Claim): Promise<Route> {
    const route = this.routes.get(pid);
    if (!route) throw new NotFoundError(`Player ${pid} has no route: log him in at his home server first.`, { pid });
    if (route.epoch !== claim.expectEpoch) throw staleOwner(pid, claim.expectEpoch, route);
    route.at = claim.at;
    route.epoch += 1;
    route.online = claim.online;
    if (claim.at === '') this.marks.delete(pid);
    this.publishRoute(pid, route);
    return { ...route };
  }

  async claimAndLoad(pid: number, claim: Claim): Promise<{ route: Route; document: StoredDocument | null }> {
    const route = await this.claimRoute(pid, claim);
    return { route, document: await this.loadDocument(pid) };
  }

  async setOnline(pid: number, epoch: number, online: boolean): Promise<Route> {
    const route = this.routes.get(pid);
    if (!route) throw new NotFoundError(`Player ${pid} has no route: log him in at his home server first.`, { pid });
    if (route.epoch !== epoch) throw staleOwner(pid, epoch, route);
    route.online = online;
    this.publishRoute(pid, route);
    return { ...route };
  }

  async releaseToHome(pid: number, epoch: number): Promise<Route> {
    const route = this.routes.get(pid);
    if (!route) throw new NotFoundError(`Player ${pid} has no route: log him in at his home server first.`, { pid });
    if (route.epoch !== epoch) throw staleOwner(pid, epoch, route);
    route.at = '';
    route.online = false;
    route.epoch += 1;
    this.marks.delete(pid);
    this.publishRoute(pid, route);
    return { ...route };
  }

  async getMark(pid: number): Promise<Mark | null> {
    const mark = this.marks.get(pid);
    return mark ? { ...mark } : null;
  }

  async setMark(pid: number, home: string, go: string, epoch: number): Promise<void> {
    const route = this.routes.get(pid);
    if (!route) throw new NotFoundError(`Player ${pid} has no route: log him in at his home server first.`, { pid });
    if (route.epoch !== epoch) throw staleOwner(pid, epoch, route);
    if (go === '') {
      this.marks.delete(pid);
      return;
    }
    let listed = this.marked.get(home);
    if (!listed) this.marked.set(home, (listed = new Set()));
    listed.add(pid);
    this.marks.set(pid, { go, epoch });
  }

  async listMarked(home: string): Promise<number[]> {
    return [...(this.marked.get(home) ?? [])];
  }

  async unlistMarked(home: string, pid: number): Promise<void> {
    this.marked.get(home)?.delete(pid);
  }

  onRouteChange(listener: (change: RouteChange) => void): Unsubscribe {
    return this.routeListeners.add(listener);
  }

  async loadDocument(pid: number): Promise<StoredDocument | null> {
    const stored = this.documents.get(pid);
    if (!stored) return null;
    const document: StoredDocument = { data: decodeDocument(stored.text), epoch: stored.epoch };
    if (stored.calls.size > 0) document.calls = [...stored.calls];
    return document;
  }

  async saveDocument(pid: number, epoch: number, data: unknown): Promise<void> {
    const [error] = await this.saveDocuments([{ pid, epoch, data }]);
    if (error) throw error;
  }

  async saveDocuments(saves: FencedSave[]): Promise<(Error | null)[]> {
    return saves.map(({ pid, epoch, data, calls }) => {
      const route = this.routes.get(pid);
      if (!route) return new NotFoundError(`Player ${pid} has no route: a document is saved only for a routed player.`, { pid });
      if (route.epoch !== epoch) return staleOwner(pid, epoch, route);
      const remembered = this.documents.get(pid)?.calls ?? new Map<string, string>();
      for (const [id, text] of calls ?? []) {
        remembered.delete(id);
        remembered.set(id, text);
        if (remembered.size > REMEMBERED_CALLS) remembered.delete(remembered.keys().next().value!);
      }
      this.documents.set(pid, { text: encodeDocument(data), epoch, calls: remembered });
      return null;
    });
  }

  async getProfile(pid: number): Promise<Profile | null> {
    const profile = this.profiles.get(pid);
    return profile ? { pid, version: profile.version, fields: { ...profile.fields } } : null;
  }

  async updateProfile(pid: number, fields: Record<string, ProfileValue>): Promise<Profile> {
    const profile = this.profiles.get(pid) ?? { pid, version: 0, fields: {} };
    Object.assign(profile.fields, fields);
    profile.version += 1;
    this.profiles.set(pid, profile);
    const change: ProfileChange = { pid, version: profile.version, changed: { ...fields } };
    queueMicrotask(() => this.profileListeners.emit(change));
    return { pid, version: profile.version, fields: { ...profile.fields } };
  }

  onProfileChange(listener: (change: ProfileChange) => void): Unsubscribe {
    return this.profileListeners.add(listener);
  }

  async announceServer(record: Omit<ServerRecord, 'seenAt'>, ttlMs: number): Promise<void> {
    const now = Date.now();
    this.servers.set(record.name, { record: { ...record, roles: [...record.roles], seenAt: now }, expiresAt: now + ttlMs });
  }

  async withdrawServer(name: string): Promise<void> {
    this.servers.delete(name);
  }

  async listServers(): Promise<ServerRecord[]> {
    const now = Date.now();
    const live: ServerRecord[] = [];
    for (const [name, entry] of this.servers) {
      if (entry.expiresAt <= now) this.servers.delete(name);
      else live.push({ ...entry.record, roles: [...entry.record.roles] });
    }
    return live.sort((a, b) => a.name.localeCompare(b.name));
  }

  async getServer(name: string): Promise<ServerRecord | null> {
    const entry = this.servers.get(name);
    if (!entry || entry.expiresAt <= Date.now()) return null;
    return { ...entry.record, roles: [...entry.record.roles] };
  }

  onReconnect(listener: () => void): Unsubscribe {
    return this.reconnectListeners.add(listener);
  }

  private publishRoute(pid: number, route: Route): void {
    const change: RouteChange = { pid, ...route };
    queueMicrotask(() => this.routeListeners.emit(change));
  }
}
