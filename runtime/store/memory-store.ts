/**
 * MemoryStore: the Store in one process, for the embedded default (`kuafu up` without Redis) and
 * for tests. Values are copied in and out (encoded as in Redis), so no caller shares a stored
 * object; publications are delivered asynchronously, as Redis delivers them.
 */
import { NotFoundError } from '../errors.js';
import { decodeDocument, encodeDocument } from '../rpc/values.js';
import { Listeners } from '../util/listeners.js';
import type {
  Account, Claim, FencedSave, Guild, LedgerEntry, Mark, Profile, ProfileChange, ProfileValue, RankEntry, RechargeOrder, Route,
  RouteChange, ServerRecord, Store, StoredDocument, TreasuryChange, TreasuryOutcome, Unsubscribe,
} from './store.js';
import {
  FIRST_ACCOUNT_PID, GUILD_LEDGER_LENGTH, KEPT_CALL_RETENTION_MS, MAX_KEPT_CALLS, REMEMBERED_CALLS, REMEMBERED_TREASURY_REQUESTS, isKeptCall, ownerOf,
} from './store.js';
import { staleOwner } from './store-errors.js';

/** Profiles in one page of scanProfiles. */
const PROFILE_PAGE = 500;

export interface MemoryStoreOptions {
  /** How long a kept call's result is remembered after it ran, ms (default KEPT_CALL_RETENTION_MS, 30 days). */
  keptCallRetentionMs?: number;
}

export class MemoryStore implements Store {
  readonly description = 'memory (embedded, this process only)';
  private readonly routes = new Map<number, Route>();
  private readonly marks = new Map<number, Mark>();
  /** Per home: the players it marked away, with the epoch of the mark. */
  private readonly marked = new Map<string, Map<number, number>>();
  /** Documents as stored: the text, its epoch, the latest call results. */
  private readonly documents = new Map<number, { text: string; epoch: number; calls: Map<string, string> }>();
  /** Each player's kept call results (beside his document), oldest first, with when they were stored. */
  private readonly kept = new Map<number, Map<string, { text: string; at: number }>>();
  private readonly keptCallRetentionMs: number;
  private readonly profiles = new Map<number, Profile>();
  private readonly servers = new Map<string, { record: ServerRecord; expiresAt: number }>();
  private readonly guilds = new Map<string, MemoryGuild>();
  private readonly boards = new Map<string, Map<number, number>>();
  private readonly accounts = new Map<string, Account>();
  private nextPid = FIRST_ACCOUNT_PID;
  private readonly orders = new Map<string, RechargeOrder>();
  /** Pending order ids by player, in creation order. */
  private readonly pending = new Map<number, Set<string>>();
  private readonly routeListeners = new Listeners<RouteChange>('route change');
  private readonly profileListeners = new Listeners<ProfileChange>('profile change');
  private readonly reconnectListeners = new Listeners<void>('store reconnect');

  constructor(options: MemoryStoreOptions = {}) {
    this.keptCallRetentionMs = options.keptCallRetentionMs ?? KEPT_CALL_RETENTION_MS;
  }

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
    if (!listed) this.marked.set(home, (listed = new Map()));
    listed.set(pid, Math.max(listed.get(pid) ?? 0, epoch));
    this.marks.set(pid, { go, epoch });
  }

  async listMarked(home: string): Promise<number[]> {
    return [...(this.marked.get(home)?.keys() ?? [])];
  }

  async unlistMarked(home: string, pid: number, below: number): Promise<void> {
    const listed = this.marked.get(home);
    const epoch = listed?.get(pid);
    if (epoch !== undefined && epoch < below) listed!.delete(pid);
  }

  onRouteChange(listener: (change: RouteChange) => void): Unsubscribe {
    return this.routeListeners.add(listener);
  }

  async loadDocument(pid: number): Promise<StoredDocument | null> {
    const stored = this.documents.get(pid);
    if (!stored) return null;
    const document: StoredDocument = { data: decodeDocument(stored.text), epoch: stored.epoch };
    const kept: [string, string][] = [...this.liveKept(pid)].map(([id, { text }]) => [id, text]);
    if (stored.calls.size + kept.length > 0) document.calls = [...kept, ...stored.calls];
    return document;
  }

  /** The player's kept call results still within their retention (the older ones are dropped now). */
  private liveKept(pid: number): Map<string, { text: string; at: number }> {
    const kept = this.kept.get(pid);
    if (!kept) return new Map();
    const cutoff = Date.now() - this.keptCallRetentionMs;
    for (const [id, entry] of kept) {
      if (entry.at > cutoff) break; // oldest first: the rest are newer
      kept.delete(id);
    }
    if (kept.size === 0) this.kept.delete(pid);
    return kept;
  }

  async keptCall(pid: number, id: string): Promise<string | null> {
    return this.liveKept(pid).get(id)?.text ?? null;
  }


  async saveDocument(pid: number, epoch: number, data: unknown): Promise<void> {
    const [error] = await this.saveDocuments([{ pid, epoch, data }]);
    if (error) throw error;
  }

  async saveDocuments(saves: FencedSave[]): Promise<(Error | null)[]> {
    return saves.map(({ pid, epoch, data, text, calls }) => {
      const route = this.routes.get(pid);
      if (!route) return new NotFoundError(`Player ${pid} has no route: a document is saved only for a routed player.`, { pid });
      if (route.epoch !== epoch) return staleOwner(pid, epoch, route);
      const remembered = this.documents.get(pid)?.calls ?? new Map<string, string>();
      const now = Date.now();
      for (const [id, text] of calls ?? []) {
        if (isKeptCall(id)) {
          let kept = this.liveKept(pid);
          if (kept.size === 0) this.kept.set(pid, (kept = new Map()));
          kept.delete(id); // stored again: it is the newest now
          kept.set(id, { text, at: now });
          if (kept.size > MAX_KEPT_CALLS) kept.delete(kept.keys().next().value!);
          continue;
        }
        remembered.delete(id);
        remembered.set(id, text);
        if (remembered.size > REMEMBERED_CALLS) remembered.delete(remembered.keys().next().value!);
      }
      this.documents.set(pid, { text: text ?? encodeDocument(data), epoch, calls: remembered });
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

  async scanProfiles(cursor: string, fields: string[]): Promise<{ cursor: string; profiles: Profile[] }> {
    // The cursor is the last pid of the previous page: pages go up the pids.
    const after = Number(cursor);
    const pids = [...this.profiles.keys()].filter((pid) => pid > after).sort((a, b) => a - b).slice(0, PROFILE_PAGE);
    const profiles = pids.map((pid) => {
      const profile = this.profiles.get(pid)!;
      const picked: Record<string, ProfileValue> = {};
      for (const field of fields) if (field in profile.fields) picked[field] = profile.fields[field]!;
      return { pid, version: profile.version, fields: picked };
    });
    return { cursor: pids.length < PROFILE_PAGE ? '0' : String(pids[pids.length - 1]), profiles };
  }

  async syncProfileRoute(pid: number): Promise<Profile | null> {
    const route = this.routes.get(pid);
    if (!route) return null;
    const want: Record<string, ProfileValue> = { home: route.home, server: ownerOf(route), online: route.online };
    const profile = this.profiles.get(pid);
    const changed: Record<string, ProfileValue> = {};
    for (const [name, value] of Object.entries(want)) {
      if (!profile || !(name in profile.fields) || profile.fields[name] !== value) changed[name] = value;
    }
    if (Object.keys(changed).length === 0) return this.getProfile(pid);
    return this.updateProfile(pid, changed);
  }

  async fillProfile(pid: number, fields: Record<string, ProfileValue>): Promise<Profile> {
    const profile = this.profiles.get(pid);
    const missing: Record<string, ProfileValue> = {};
    for (const [name, value] of Object.entries(fields)) {
      if (!profile || !(name in profile.fields)) missing[name] = value;
    }
    if (Object.keys(missing).length === 0) return (await this.getProfile(pid))!;
    return this.updateProfile(pid, missing);
  }

  // ---- guilds ----

  async createGuild(gid: string, name: string): Promise<{ created: boolean; guild: Guild }> {
    const created = !this.guilds.has(gid);
    if (created) {
      this.guilds.set(gid, {
        name, createdAt: Date.now(), members: new Set(), treasury: new Map(), requests: new Map(), ledger: [],
      });
    }
    return { created, guild: (await this.getGuild(gid))! };
  }

  async getGuild(gid: string): Promise<Guild | null> {
    const guild = this.guilds.get(gid);
    if (!guild) return null;
    return {
      gid, name: guild.name, createdAt: guild.createdAt,
      members: [...guild.members].sort((a, b) => a - b),
      treasury: Object.fromEntries(guild.treasury),
    };
  }

  async setGuildMember(gid: string, pid: number, member: boolean): Promise<boolean> {
    const guild = this.guilds.get(gid);
    if (!guild) throw new NotFoundError(`There is no guild ${gid}: create it first.`, { gid });
    const had = guild.members.has(pid);
    if (member) guild.members.add(pid);
    else guild.members.delete(pid);
    return had !== member;
  }

  async applyTreasuryChanges(changes: TreasuryChange[]): Promise<TreasuryOutcome[]> {
    return changes.map((change) => this.applyTreasuryChange(change));
  }

  private applyTreasuryChange(change: TreasuryChange): TreasuryOutcome {
    const { gid, requestId, kind, resource, amount } = change;
    const guild = this.guilds.get(gid);
    const outcome = (status: TreasuryOutcome['status'], balance: number): TreasuryOutcome =>
      ({ requestId, status, kind, resource, amount, balance, replayed: false });
    if (!guild) return outcome('missing', 0);
    const remembered = guild.requests.get(requestId);
    if (remembered) {
      if (remembered.kind !== kind || remembered.resource !== resource || remembered.amount !== amount) {
        return { ...outcome('conflict', remembered.balance), replayed: true };
      }
      return { ...remembered, requestId, replayed: true };
    }
    let balance = guild.treasury.get(resource) ?? 0;
    let status: TreasuryOutcome['status'] = 'applied';
    if (kind === 'deduct') {
      if (balance < amount) status = 'insufficient';
      else balance -= amount;
    } else if (balance + amount > Number.MAX_SAFE_INTEGER) {
      status = 'overflow';
    } else {
      balance += amount;
    }
    const result = outcome(status, balance);
    if (status === 'applied') {
      guild.treasury.set(resource, balance);
      guild.ledger.unshift({ requestId, kind, resource, amount, balance, reason: change.reason, at: Date.now() });
      if (guild.ledger.length > GUILD_LEDGER_LENGTH) guild.ledger.pop();
    }
    guild.requests.set(requestId, result);
    if (guild.requests.size > REMEMBERED_TREASURY_REQUESTS) guild.requests.delete(guild.requests.keys().next().value!);
    return { ...result };
  }

  async guildLedger(gid: string, count: number): Promise<LedgerEntry[]> {
    return (this.guilds.get(gid)?.ledger ?? []).slice(0, Math.max(0, count)).map((entry) => ({ ...entry }));
  }

  // ---- leaderboards ----

  async setRankScore(board: string, pid: number, score: number | null): Promise<void> {
    let scores = this.boards.get(board);
    if (!scores) this.boards.set(board, (scores = new Map()));
    if (score === null) scores.delete(pid);
    else scores.set(pid, score);
  }

  /** The board best first, ties as Redis orders them (the member text, larger first). */
  private ranked(board: string): RankEntry[] {
    const scores = [...(this.boards.get(board) ?? [])];
    scores.sort(([a, x], [b, y]) => (y - x) || (String(b) < String(a) ? -1 : String(b) > String(a) ? 1 : 0));
    return scores.map(([pid, score], i) => ({ rank: i + 1, pid, score }));
  }

  async rankTop(board: string, count: number): Promise<RankEntry[]> {
    return this.ranked(board).slice(0, Math.max(0, count));
  }

  async rankOf(board: string, pid: number): Promise<RankEntry | null> {
    if (!this.boards.get(board)?.has(pid)) return null;
    return this.ranked(board).find((entry) => entry.pid === pid) ?? null;
  }

  // ---- accounts and recharge orders ----

  async createAccount(account: string, passwordHash: string, home: string): Promise<{ created: boolean; account: Account }> {
    const existing = this.accounts.get(account);
    if (existing) return { created: false, account: { ...existing } };
    const made: Account = { account, pid: this.nextPid++, home, passwordHash, createdAt: Date.now() };
    this.accounts.set(account, made);
    return { created: true, account: { ...made } };
  }

  async getAccount(account: string): Promise<Account | null> {
    const found = this.accounts.get(account);
    return found ? { ...found } : null;
  }

  async createOrder(order: string, pid: number, amount: number): Promise<{ created: boolean; order: RechargeOrder }> {
    const existing = this.orders.get(order);
    if (existing) return { created: false, order: { ...existing } };
    const made: RechargeOrder = { order, pid, amount, state: 'pending', createdAt: Date.now(), deliveredAt: 0 };
    this.orders.set(order, made);
    let ids = this.pending.get(pid);
    if (!ids) this.pending.set(pid, (ids = new Set()));
    ids.add(order);
    return { created: true, order: { ...made } };
  }

  async getOrder(order: string): Promise<RechargeOrder | null> {
    const found = this.orders.get(order);
    return found ? { ...found } : null;
  }

  async markOrderDelivered(order: string): Promise<RechargeOrder> {
    const found = this.orders.get(order);
    if (!found) throw new NotFoundError(`There is no recharge order ${order}.`, { order });
    if (found.state !== 'delivered') {
      found.state = 'delivered';
      found.deliveredAt = Date.now();
    }
    const ids = this.pending.get(found.pid);
    ids?.delete(order);
    if (ids && ids.size === 0) this.pending.delete(found.pid);
    return { ...found };
  }

  async pendingOrders(pid: number): Promise<RechargeOrder[]> {
    return [...(this.pending.get(pid) ?? [])].map((id) => ({ ...this.orders.get(id)! }));
  }

  async playersWithPendingOrders(): Promise<number[]> {
    return [...this.pending.keys()];
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

/** A guild as MemoryStore keeps it. */
interface MemoryGuild {
  name: string;
  createdAt: number;
  members: Set<number>;
  treasury: Map<string, number>;
  /** Outcomes by request id, oldest first. */
  requests: Map<string, TreasuryOutcome>;
  /** Newest first. */
  ledger: LedgerEntry[];
}
