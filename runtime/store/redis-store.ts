/**
 * RedisStore: the Store on one shared Redis (ioredis), the real one for production.
 *
 * Keys of one player share the hash tag `{pid}` so every multi-key change is one Lua script in one
 * slot and Redis Cluster works unchanged. Route and profile changes are published from inside the
 * same scripts that make them, so a change and its publication cannot part.
 *
 * Connections: one for commands (no offline queue: while Redis is down a command
 * fails at once with StoreUnavailableError instead of waiting silently) and one subscriber. When
 * either comes back after a loss, `onReconnect` listeners are told: publications may have been missed.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { NotFoundError, StoreUnavailableError } from '../errors.js';
import { decodeDocument, encodeDocument } from '../rpc/values.js';
import { Listeners } from '../util/listeners.js';
import type {
  Account, Claim, FencedSave, Guild, LedgerEntry, Mark, Profile, ProfileChange, ProfileValue, RankEntry, RechargeOrder, Route,
  RouteChange, ServerRecord, Store, StoredDocument, TreasuryChange, TreasuryOutcome, Unsubscribe,
} from './store.js';
import {
  FIRST_ACCOUNT_PID, GUILD_LEDGER_LENGTH, KEPT_CALL_PREFIX, KEPT_CALL_RETENTION_MS, MAX_KEPT_CALLS, REMEMBERED_CALLS, REMEMBERED_TREASURY_REQUESTS,
} from './store.js';
import { staleOwner } from './store-errors.js';
import { LUA } from './redis-scripts.js';

const ROUTE_CHANNEL = 'kf:routes';
const PROFILE_CHANNEL = 'kf:profiles';
const SERVER_SET = 'kf:servers'; // sorted set: name scored by the expiry of its record

const routeKey = (pid: number) => `kf:{${pid}}:route`;
const documentKey = (pid: number) => `kf:{${pid}}:doc`;
const profileKey = (pid: number) => `kf:{${pid}}:profile`;
/** The pattern every profile key matches (scanProfiles). */
const PROFILE_KEYS = 'kf:{*}:profile';
const callsKey = (pid: number) => `kf:{${pid}}:calls`;
/** A player's kept call results (KEPT_CALL_PREFIX): a hash of their result texts, and a sorted set of when each was stored. */
const keptKey = (pid: number) => `kf:{${pid}}:kept`;
const keptAtKey = (pid: number) => `kf:{${pid}}:kept-at`;
/**
 * The document hash fields of kept call results, from documents stored before kept results had
 * a ledger of their own: still read, never written.
 */
const KEPT_FIELD_PREFIX = `c:${KEPT_CALL_PREFIX}`;
const serverKey = (name: string) => `kf:server:${name}`;
/** A sorted set per home: the players it marked away, scored by the mark's epoch. */
const markedKey = (home: string) => `kf:away:${home}`;
// A guild's keys share the hash tag {gid}: one treasury change is one script in one slot.
const guildKey = (gid: string) => `kf:guild:{${gid}}`;
const guildMembersKey = (gid: string) => `kf:guild:{${gid}}:members`;
const treasuryKey = (gid: string) => `kf:guild:{${gid}}:treasury`;
const requestsKey = (gid: string) => `kf:guild:{${gid}}:requests`;
const requestOrderKey = (gid: string) => `kf:guild:{${gid}}:request-order`;
const ledgerKey = (gid: string) => `kf:guild:{${gid}}:ledger`;
const boardKey = (board: string) => `kf:rank:${board}`;
// Accounts share one hash tag (the pid counter goes with them), and so do recharge orders.
const accountKey = (account: string) => `kf:{accounts}:account:${account}`;
const NEXT_PID_KEY = 'kf:{accounts}:next-pid';
const orderKey = (order: string) => `kf:{orders}:order:${order}`;
const pendingOrdersKey = (pid: number) => `kf:{orders}:pending:${pid}`;
const PENDING_PLAYERS_KEY = 'kf:{orders}:pending-players';
const ORDER_SEQUENCE_KEY = 'kf:{orders}:sequence';

type ScriptReply = (string | null)[];

interface KuafuCommands {
  kfEnsureRoute(route: string, home: string, pid: string, channel: string): Promise<ScriptReply>;
  kfClaimRoute(route: string, expectEpoch: string, at: string, online: string, pid: string, channel: string): Promise<ScriptReply>;
  kfClaimAndLoad(route: string, doc: string, calls: string, kept: string, keptAt: string, expectEpoch: string, at: string, online: string, pid: string, channel: string, cutoff: string): Promise<ScriptReply>;
  kfLoadDocument(route: string, doc: string, calls: string, kept: string, keptAt: string, cutoff: string): Promise<ScriptReply>;
  kfKeptCall(doc: string, kept: string, keptAt: string, id: string, cutoff: string): Promise<string | null>;
  kfSetOnline(route: string, epoch: string, online: string, pid: string, channel: string): Promise<ScriptReply>;
  kfReleaseToHome(route: string, epoch: string, pid: string, channel: string): Promise<ScriptReply>;
  kfSetMark(route: string, go: string, epoch: string): Promise<ScriptReply>;
  kfUnlistMarked(marked: string, pid: string, below: string): Promise<number>;
  kfSaveDocument(
    route: string, doc: string, calls: string, kept: string, keptAt: string, epoch: string, data: string, keep: string,
    now: string, keptRetentionMs: string, maxKept: string, ...callPairs: string[]
  ): Promise<ScriptReply>;
  kfUpdateProfile(profile: string, pid: string, channel: string, changed: string, ...fieldValues: string[]): Promise<string[]>;
  kfSyncProfileRoute(route: string, profile: string, pid: string, channel: string): Promise<string[]>;
  kfFillProfile(profile: string, pid: string, channel: string, ...fieldValues: string[]): Promise<string[]>;
  kfCreateGuild(guild: string, name: string, now: string): Promise<number>;
  kfGetGuild(guild: string, members: string, treasury: string): Promise<string[]>;
  kfSetGuildMember(guild: string, members: string, pid: string, member: string): Promise<number>;
  kfTreasuryChange(guild: string, treasury: string, requests: string, order: string, ledger: string, ...args: string[]): Promise<string[]>;
  kfRankTop(board: string, count: string): Promise<string[]>;
  kfRankOf(board: string, pid: string): Promise<string[]>;
  kfCreateAccount(account: string, nextPid: string, passwordHash: string, home: string, now: string, before: string): Promise<string[]>;
  kfCreateOrder(order: string, pending: string, players: string, sequence: string, id: string, pid: string, amount: string, now: string): Promise<string[]>;
  kfDeliverOrder(order: string, pending: string, players: string, id: string, pid: string, now: string): Promise<string[]>;
}

/** A flat `[name, value, name, value…]` reply as an object. */
function pairsOf(flat: string[], from = 0): Record<string, string> {
  const hash: Record<string, string> = {};
  for (let i = from; i + 1 < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
  return hash;
}

function orderFrom(order: string, hash: Record<string, string>): RechargeOrder {
  return {
    order, pid: Number(hash.pid), amount: Number(hash.amount), state: hash.state === 'delivered' ? 'delivered' : 'pending',
    createdAt: Number(hash.createdAt), deliveredAt: Number(hash.deliveredAt ?? 0),
  };
}

/** A treasury change's stored outcome, "status kind amount balance resource", for the change asking. */
function outcomeFrom(change: TreasuryChange, text: string, replayed: boolean): TreasuryOutcome {
  const [status, kind, amount, balance] = text.split(' ', 4) as [TreasuryOutcome['status'], TreasuryChange['kind'], string, string];
  const resource = text.split(' ').slice(4).join(' ');
  const outcome: TreasuryOutcome = {
    requestId: change.requestId, status, kind, resource, amount: Number(amount), balance: Number(balance), replayed,
  };
  if (replayed && (kind !== change.kind || resource !== change.resource || Number(amount) !== change.amount)) {
    return { ...outcome, status: 'conflict', kind: change.kind, resource: change.resource, amount: change.amount };
  }
  return outcome;
}

type CommandRedis = (Redis | Cluster) & KuafuCommands;

/** A subscriber that cannot reach its node this many times in a row moves to another node of the cluster. */
const SUBSCRIBER_ATTEMPTS_PER_NODE = 3;

/** Options of a RedisStore. */
export interface RedisStoreOptions {
  /** `redis://host:port[/db]`; with `cluster`, any one node of the Redis Cluster. */
  url: string;
  /**
   * `url` names a node of a Redis Cluster: the store finds the other nodes and sends each key to
   * the node of its hash slot (one player's keys share the tag `{pid}`, so each script runs on one
   * node). Publications reach every node of a cluster: the store listens on one, and moves to
   * another when it loses that one.
   */
  cluster?: boolean;
  /** A command that gets no answer within this many ms fails with StoreUnavailableError (default 5000). */
  commandTimeoutMs?: number;
  /** How long a kept call's result is remembered after it ran, ms (default KEPT_CALL_RETENTION_MS, 30 days). */
  keptCallRetentionMs?: number;
}

function routeFromReply(reply: ScriptReply, offset: number): Route {
  return {
    home: reply[offset] ?? '',
    at: reply[offset + 1] ?? '',
    epoch: Number(reply[offset + 2] ?? 0),
    online: reply[offset + 3] === '1',
  };
}

function parseRouteMessage(message: string): RouteChange | null {
  // "pid epoch online home at" — server names never contain spaces (the config refuses them).
  const parts = message.split(' ');
  if (parts.length !== 5) return null;
  return {
    pid: Number(parts[0]), epoch: Number(parts[1]), online: parts[2] === '1', home: parts[3]!, at: parts[4]!,
  };
}

export class RedisStore implements Store {
  readonly description: string;
  private readonly redis: CommandRedis;
  private subscriber: Redis;
  private readonly cluster: boolean;
  private readonly routeListeners = new Listeners<RouteChange>('route change');
  private readonly profileListeners = new Listeners<ProfileChange>('profile change');
  private readonly reconnectListeners = new Listeners<void>('store reconnect');
  private closed = false;
  private readonly keptCallRetentionMs: number;

  constructor(private readonly options: RedisStoreOptions) {
    this.cluster = options.cluster === true;
    this.keptCallRetentionMs = options.keptCallRetentionMs ?? KEPT_CALL_RETENTION_MS;
    this.description = `redis ${this.cluster ? 'cluster ' : ''}${options.url}`;
    const commandOptions: RedisOptions = {
      connectTimeout: 5000,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 5000,
    };
    if (this.cluster) {
      this.redis = new Cluster([options.url], {
        lazyConnect: true,
        enableOfflineQueue: false,
        // A pipeline cannot span the nodes of a cluster: ioredis groups one tick's commands per node.
        enableAutoPipelining: true,
        clusterRetryStrategy: (times) => (this.closed ? null : Math.min(50 * times, 1000)),
        // (ioredis keeps the offline queue of the node connections, which it makes lazily: failing
        // fast while the cluster is down is the cluster's own enableOfflineQueue, and the timeout.)
        redisOptions: commandOptions,
      }) as CommandRedis;
    } else {
      this.redis = new Redis(options.url, {
        ...commandOptions,
        enableOfflineQueue: false,
        lazyConnect: true,
        retryStrategy: (times) => (this.closed ? null : Math.min(50 * times, 1000)),
        // No auto-pipelining: it waits a setImmediate before writing, which costs a loop turn on
        // every call; the saves of one tick are pipelined explicitly instead (saveDocuments).
        enableAutoPipelining: false,
      }) as CommandRedis;
    }
    this.subscriber = this.newSubscriber(options.url);
    for (const [name, lua, keys] of LUA) this.redis.defineCommand(name, { lua, numberOfKeys: keys });
    this.redis.on('error', () => { /* reported through the failing commands */ });
    this.watchReconnects(this.redis);
  }

  /**
   * The connection that hears publications, on the node at `url`. In a cluster it gives up on a
   * node it cannot reach SUBSCRIBER_ATTEMPTS_PER_NODE times in a row and moves to another.
   */
  private newSubscriber(url: string, node?: RedisOptions): Redis {
    const options: RedisOptions = {
      lazyConnect: true,
      connectTimeout: 5000,
      autoResubscribe: true,
      retryStrategy: (times) => {
        if (this.closed || (this.cluster && times > SUBSCRIBER_ATTEMPTS_PER_NODE)) return null;
        return Math.min(50 * times, 1000);
      },
    };
    // A node found in the cluster's list connects as the cluster's own connections do (its password, TLS…).
    const subscriber = node
      ? new Redis({ ...options, host: node.host, port: node.port, username: node.username, password: node.password, tls: node.tls })
      : new Redis(url, options);
    subscriber.on('error', () => { /* reported through onReconnect */ });
    subscriber.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    if (this.cluster) subscriber.once('end', () => void this.moveSubscriber(subscriber, url));
    this.watchReconnects(subscriber);
    return subscriber;
  }

  /** Cluster: the subscriber lost its node for good; listen on another node (tried in turn until one answers). */
  private async moveSubscriber(lost: Redis, lostUrl: string): Promise<void> {
    for (let round = 0; !this.closed && this.subscriber === lost; round++) {
      const nodes = new Map((this.redis as Cluster).nodes('all').map((node) => [`redis://${node.options.host}:${node.options.port}`, node.options]));
      const candidates = [...new Set([...nodes.keys(), this.options.url])].filter((url) => url !== lostUrl || nodes.size <= 1);
      for (const url of candidates) {
        if (this.closed) return;
        const next = this.newSubscriber(url, nodes.get(url));
        try {
          await next.connect();
          await next.subscribe(ROUTE_CHANNEL, PROFILE_CHANNEL);
        } catch {
          next.removeAllListeners('end');
          next.disconnect();
          continue;
        }
        this.subscriber = next;
        if (this.closed) {
          next.disconnect();
          return;
        }
        this.reconnectListeners.emit(); // publications were missed meanwhile
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(200 * (round + 1), 2000)));
    }
  }

  async connect(): Promise<void> {
    try {
      await Promise.all([this.redis.connect(), this.subscriber.connect()]);
      await this.subscriber.subscribe(ROUTE_CHANNEL, PROFILE_CHANNEL);
    } catch (error) {
      await this.close();
      throw new StoreUnavailableError(
        `Cannot reach Redis ${this.cluster ? 'Cluster node ' : ''}at ${this.options.url} (${(error as Error).message}). ` +
          `Start redis-server there, or pass the right --redis URL.`,
        { url: this.options.url },
      );
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect();
    this.subscriber.disconnect();
  }

  // ---- routes ----------------------------------------------------------------------------------

  async getRoute(pid: number): Promise<Route | null> {
    const reply = await this.run(() => this.redis.hmget(routeKey(pid), 'home', 'at', 'epoch', 'online'));
    return reply[0] === null ? null : routeFromReply(reply, 0);
  }

  async ensureRoute(pid: number, home: string): Promise<Route> {
    const reply = await this.run(() => this.redis.kfEnsureRoute(routeKey(pid), home, String(pid), ROUTE_CHANNEL));
    return routeFromReply(reply, 0);
  }

  async claimRoute(pid: number, claim: Claim): Promise<Route> {
    const reply = await this.run(() =>
      this.redis.kfClaimRoute(routeKey(pid), String(claim.expectEpoch), claim.at, claim.online ? '1' : '0', String(pid), ROUTE_CHANNEL),
    );
    return this.routeOrThrow(pid, claim.expectEpoch, reply);
  }

  async claimAndLoad(pid: number, claim: Claim): Promise<{ route: Route; document: StoredDocument | null }> {
    const reply = await this.run(() =>
      this.redis.kfClaimAndLoad(
        routeKey(pid), documentKey(pid), callsKey(pid), keptKey(pid), keptAtKey(pid),
        String(claim.expectEpoch), claim.at, claim.online ? '1' : '0', String(pid), ROUTE_CHANNEL, this.keptCutoff(),
      ),
    );
    const route = this.routeOrThrow(pid, claim.expectEpoch, reply);
    // reply: ok, route (4), then the document as kfLoadDocument answers it.
    return { route, document: this.documentFromReply(reply, 5) };
  }

  /** The oldest time (exclusive) of a kept call result still remembered, ms. */
  private keptCutoff(): string {
    return String(Date.now() - this.keptCallRetentionMs);
  }

  /**
   * A stored document from a load script's reply from `at` on: the count of doc hash fields and
   * the hash (`data`, `epoch`, `c:<id>` results), the count of kept values and the kept id, text
   * pairs, then the call ids, newest first.
   */
  private documentFromReply(reply: ScriptReply, at: number): StoredDocument | null {
    const fields = Number(reply[at]);
    const hash: Record<string, string> = {};
    for (let i = at + 1; i < at + 1 + fields; i += 2) hash[reply[i]!] = reply[i + 1]!;
    const keptAt = at + 1 + fields;
    const keptValues = Number(reply[keptAt]);
    const kept: [string, string][] = [];
    for (let i = keptAt + 1; i < keptAt + 1 + keptValues; i += 2) kept.push([reply[i]!, reply[i + 1]!]);
    return this.documentFrom(hash, reply.slice(keptAt + 1 + keptValues) as string[], kept);
  }

  /** A stored document from its hash (`data`, `epoch`, `c:<id>` results), its call ids, newest first, and its kept results. */
  private documentFrom(hash: Record<string, string>, newestFirst: string[], kept: [string, string][] = []): StoredDocument | null {
    if (hash.data === undefined) return null;
    const document: StoredDocument = { data: decodeDocument(hash.data), epoch: Number(hash.epoch) };
    const calls: [string, string][] = [...kept];
    // Kept results of a document stored before they had a ledger of their own: c:kept:<…> fields of the hash.
    for (const field of Object.keys(hash)) {
      if (field.startsWith(KEPT_FIELD_PREFIX) && !kept.some(([id]) => id === field.slice(2))) calls.push([field.slice(2), hash[field]!]);
    }
    for (let i = newestFirst.length - 1; i >= 0; i--) {
      const id = newestFirst[i]!;
      const text = hash[`c:${id}`];
      if (text !== undefined) calls.push([id, text]);
    }
    if (calls.length > 0) document.calls = calls;
    return document;
  }

  async setOnline(pid: number, epoch: number, online: boolean): Promise<Route> {
    const reply = await this.run(() =>
      this.redis.kfSetOnline(routeKey(pid), String(epoch), online ? '1' : '0', String(pid), ROUTE_CHANNEL),
    );
    return this.routeOrThrow(pid, epoch, reply);
  }

  async releaseToHome(pid: number, epoch: number): Promise<Route> {
    const reply = await this.run(() => this.redis.kfReleaseToHome(routeKey(pid), String(epoch), String(pid), ROUTE_CHANNEL));
    return this.routeOrThrow(pid, epoch, reply);
  }

  async getMark(pid: number): Promise<Mark | null> {
    const [go, epoch] = await this.run(() => this.redis.hmget(routeKey(pid), 'go', 'goEpoch'));
    return go ? { go, epoch: Number(epoch) } : null;
  }

  async setMark(pid: number, home: string, go: string, epoch: number): Promise<void> {
    // List first, and only then mark: the list may hold a player whose mark is gone, never miss one
    // who has a mark (in a cluster the list and the route may live on different nodes).
    if (go !== '') await this.run(() => this.redis.zadd(markedKey(home), 'GT', epoch, String(pid)));
    const reply = await this.run(() => this.redis.kfSetMark(routeKey(pid), go, String(epoch)));
    this.routeOrThrow(pid, epoch, reply);
  }

  async listMarked(home: string): Promise<number[]> {
    return (await this.run(() => this.redis.zrange(markedKey(home), '0', '-1'))).map(Number);
  }

  async unlistMarked(home: string, pid: number, below: number): Promise<void> {
    await this.run(() => this.redis.kfUnlistMarked(markedKey(home), String(pid), String(below)));
  }

  onRouteChange(listener: (change: RouteChange) => void): Unsubscribe {
    return this.routeListeners.add(listener);
  }

  // ---- documents -------------------------------------------------------------------------------

  async loadDocument(pid: number): Promise<StoredDocument | null> {
    const reply = await this.run(() =>
      this.redis.kfLoadDocument(routeKey(pid), documentKey(pid), callsKey(pid), keptKey(pid), keptAtKey(pid), this.keptCutoff()));
    return this.documentFromReply(reply, 0);
  }

  async keptCall(pid: number, id: string): Promise<string | null> {
    return this.run(() => this.redis.kfKeptCall(documentKey(pid), keptKey(pid), keptAtKey(pid), id, this.keptCutoff()));
  }


  async saveDocument(pid: number, epoch: number, data: unknown): Promise<void> {
    const [error] = await this.saveDocuments([{ pid, epoch, data }]);
    if (error) throw error;
  }

  async saveDocuments(saves: FencedSave[]): Promise<(Error | null)[]> {
    // One save is one command; several leave in one pipeline (one write, one round trip).
    const now = String(Date.now());
    const retention = String(this.keptCallRetentionMs);
    const args = saves.map((save) => [
      routeKey(save.pid), documentKey(save.pid), callsKey(save.pid), keptKey(save.pid), keptAtKey(save.pid),
      String(save.epoch), save.text ?? encodeDocument(save.data), String(REMEMBERED_CALLS), now, retention, String(MAX_KEPT_CALLS),
      ...(save.calls ?? []).flat(),
    ] as const);
    let results: (readonly [Error | null, unknown])[];
    if (args.length === 1 || this.cluster) {
      // One save, or a cluster (a pipeline cannot span nodes; ioredis groups them per node).
      results = await Promise.all(args.map((saveArgs) => this.redis.kfSaveDocument(...(saveArgs as unknown as Parameters<KuafuCommands['kfSaveDocument']>)).then(
        (reply) => [null, reply] as const,
        (error: Error) => [error, null] as const,
      )));
    } else {
      const pipeline = this.redis.pipeline() as unknown as KuafuCommands & { exec(): Promise<[Error | null, unknown][] | null> };
      for (const saveArgs of args) pipeline.kfSaveDocument(...(saveArgs as unknown as Parameters<KuafuCommands['kfSaveDocument']>));
      const replies = await this.run(() => pipeline.exec());
      results = args.map((_, i) => replies?.[i] ?? [new Error('no reply'), null]);
    }
    return saves.map((save, i) => {
      const [error, reply] = results[i]!;
      if (error) return this.storeError(error);
      const r = reply as ScriptReply;
      if (r[0] === 'ok') return null;
      if (r[0] === 'missing') return this.missing(save.pid);
      return staleOwner(save.pid, save.epoch, routeFromReply(r, 1));
    });
  }

  // ---- profiles --------------------------------------------------------------------------------

  async getProfile(pid: number): Promise<Profile | null> {
    const hash = await this.run(() => this.redis.hgetall(profileKey(pid)));
    return hash.version === undefined ? null : this.profileFromHash(pid, hash);
  }

  async updateProfile(pid: number, fields: Record<string, ProfileValue>): Promise<Profile> {
    const pairs: string[] = [];
    for (const [name, value] of Object.entries(fields)) pairs.push(name, JSON.stringify(value));
    const flat = await this.run(() =>
      this.redis.kfUpdateProfile(profileKey(pid), String(pid), PROFILE_CHANNEL, JSON.stringify(fields), ...pairs),
    );
    const hash: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
    return this.profileFromHash(pid, hash);
  }

  onProfileChange(listener: (change: ProfileChange) => void): Unsubscribe {
    return this.profileListeners.add(listener);
  }

  async scanProfiles(cursor: string, fields: string[]): Promise<{ cursor: string; profiles: Profile[] }> {
    if (!this.cluster) return this.scanProfilesOn(this.redis as Redis, cursor, fields);
    // A cluster: each master in turn, by address; the cursor is "<master's address> <its cursor>".
    // A master gone since the last page (a failover) is passed over: the next address goes on from 0.
    const address = (node: Redis) => `${node.options.host}:${node.options.port}`;
    const masters = (this.redis as Cluster).nodes('master').sort((a, b) => address(a).localeCompare(address(b)));
    const [at, inner] = cursor === '0' ? ['', '0'] : [cursor.slice(0, cursor.indexOf(' ')), cursor.slice(cursor.indexOf(' ') + 1)];
    let place = masters.findIndex((node) => address(node) === at);
    let from = inner;
    if (place < 0) {
      place = masters.findIndex((node) => address(node) > at);
      from = '0';
    }
    const master = masters[place];
    if (!master) return { cursor: '0', profiles: [] };
    const page = await this.scanProfilesOn(master, from, fields);
    if (page.cursor !== '0') return { cursor: `${address(master)} ${page.cursor}`, profiles: page.profiles };
    const next = masters[place + 1];
    return { cursor: next ? `${address(next)} 0` : '0', profiles: page.profiles };
  }

  /** One SCAN page of the profiles on one Redis node, with the fields asked for. */
  private async scanProfilesOn(node: Redis, cursor: string, fields: string[]): Promise<{ cursor: string; profiles: Profile[] }> {
    const [next, keys] = await this.run(() => node.scan(cursor, 'MATCH', PROFILE_KEYS, 'COUNT', 500));
    if (keys.length === 0) return { cursor: next, profiles: [] };
    const names = ['version', ...fields.map((field) => `f:${field}`)];
    const pipeline = node.pipeline();
    for (const key of keys) pipeline.hmget(key, ...names);
    const replies = await this.run(() => pipeline.exec());
    const profiles: Profile[] = [];
    keys.forEach((key, i) => {
      const [error, values] = replies?.[i] ?? [new Error('no reply')];
      if (error) throw this.storeError(error);
      const [version, ...texts] = values as (string | null)[];
      if (version === null || version === undefined) return; // gone since the scan saw it
      const picked: Record<string, ProfileValue> = {};
      fields.forEach((field, j) => {
        if (texts[j] !== null && texts[j] !== undefined) picked[field] = JSON.parse(texts[j]!) as ProfileValue;
      });
      profiles.push({ pid: Number(key.slice(key.indexOf('{') + 1, key.indexOf('}'))), version: Number(version), fields: picked });
    });
    return { cursor: next, profiles };
  }

  async syncProfileRoute(pid: number): Promise<Profile | null> {
    const reply = await this.run(() => this.redis.kfSyncProfileRoute(routeKey(pid), profileKey(pid), String(pid), PROFILE_CHANNEL));
    if (reply[0] !== 'ok') return null;
    return this.profileFromHash(pid, pairsOf(reply, 1));
  }

  async fillProfile(pid: number, fields: Record<string, ProfileValue>): Promise<Profile> {
    const pairs: string[] = [];
    for (const [name, value] of Object.entries(fields)) pairs.push(name, JSON.stringify(value));
    const flat = await this.run(() => this.redis.kfFillProfile(profileKey(pid), String(pid), PROFILE_CHANNEL, ...pairs));
    return this.profileFromHash(pid, pairsOf(flat));
  }

  // ---- guilds ----------------------------------------------------------------------------------

  async createGuild(gid: string, name: string): Promise<{ created: boolean; guild: Guild }> {
    const created = await this.run(() => this.redis.kfCreateGuild(guildKey(gid), name, String(Date.now())));
    return { created: created === 1, guild: (await this.getGuild(gid))! };
  }

  async getGuild(gid: string): Promise<Guild | null> {
    const reply = await this.run(() => this.redis.kfGetGuild(guildKey(gid), guildMembersKey(gid), treasuryKey(gid)));
    if (reply.length === 0) return null;
    const count = Number(reply[2]);
    const members = reply.slice(3, 3 + count).map(Number).sort((a, b) => a - b);
    const treasury: Record<string, number> = {};
    for (const [resource, balance] of Object.entries(pairsOf(reply, 3 + count))) treasury[resource] = Number(balance);
    return { gid, name: reply[0]!, createdAt: Number(reply[1]), members, treasury };
  }

  async setGuildMember(gid: string, pid: number, member: boolean): Promise<boolean> {
    const changed = await this.run(() => this.redis.kfSetGuildMember(guildKey(gid), guildMembersKey(gid), String(pid), member ? '1' : '0'));
    if (changed === -1) throw new NotFoundError(`There is no guild ${gid}: create it first.`, { gid });
    return changed === 1;
  }

  async applyTreasuryChanges(changes: TreasuryChange[]): Promise<TreasuryOutcome[]> {
    if (changes.length === 0) return [];
    const now = String(Date.now());
    const argsOf = (c: TreasuryChange): Parameters<KuafuCommands['kfTreasuryChange']> => [
      guildKey(c.gid), treasuryKey(c.gid), requestsKey(c.gid), requestOrderKey(c.gid), ledgerKey(c.gid),
      c.requestId, c.kind, c.resource, String(c.amount), c.reason, String(REMEMBERED_TREASURY_REQUESTS),
      String(GUILD_LEDGER_LENGTH), now, String(Number.MAX_SAFE_INTEGER),
    ];
    // One pipeline: Redis runs the scripts one after another, in this order. A cluster's pipelines
    // cannot span nodes: there each change is a command of its own, and those of one guild (one
    // node, one connection) still run in this order.
    let replies: [Error | null, unknown][] | null;
    if (this.cluster) {
      replies = await Promise.all(changes.map((change) => this.redis.kfTreasuryChange(...argsOf(change)).then(
        (reply): [Error | null, unknown] => [null, reply],
        (error: Error): [Error | null, unknown] => [error, null],
      )));
    } else {
      const pipeline = this.redis.pipeline() as unknown as KuafuCommands & { exec(): Promise<[Error | null, unknown][] | null> };
      for (const change of changes) pipeline.kfTreasuryChange(...argsOf(change));
      replies = await this.run(() => pipeline.exec());
    }
    return changes.map((change, i) => {
      const [error, reply] = replies?.[i] ?? [new Error('no reply'), null];
      if (error) throw this.storeError(error);
      const r = reply as string[];
      if (r[0] === 'missing') {
        return { requestId: change.requestId, status: 'missing', kind: change.kind, resource: change.resource, amount: change.amount, balance: 0, replayed: false };
      }
      return outcomeFrom(change, r[1]!, r[0] === 'replayed');
    });
  }

  async guildLedger(gid: string, count: number): Promise<LedgerEntry[]> {
    if (count <= 0) return [];
    const texts = await this.run(() => this.redis.lrange(ledgerKey(gid), 0, count - 1));
    return texts.map((text) => JSON.parse(text) as LedgerEntry);
  }

  // ---- leaderboards ----------------------------------------------------------------------------

  async setRankScore(board: string, pid: number, score: number | null): Promise<void> {
    if (score === null) await this.run(() => this.redis.zrem(boardKey(board), String(pid)));
    else await this.run(() => this.redis.zadd(boardKey(board), String(score), String(pid)));
  }

  async rankTop(board: string, count: number): Promise<RankEntry[]> {
    if (count <= 0) return [];
    const flat = await this.run(() => this.redis.kfRankTop(boardKey(board), String(count)));
    const entries: RankEntry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) entries.push({ rank: i / 2 + 1, pid: Number(flat[i]), score: Number(flat[i + 1]) });
    return entries;
  }

  async rankOf(board: string, pid: number): Promise<RankEntry | null> {
    const reply = await this.run(() => this.redis.kfRankOf(boardKey(board), String(pid)));
    if (reply.length < 2) return null;
    return { rank: Number(reply[0]) + 1, pid, score: Number(reply[1]) };
  }

  // ---- accounts and recharge orders --------------------------------------------------------------

  async createAccount(account: string, passwordHash: string, home: string): Promise<{ created: boolean; account: Account }> {
    const reply = await this.run(() =>
      this.redis.kfCreateAccount(accountKey(account), NEXT_PID_KEY, passwordHash, home, String(Date.now()), String(FIRST_ACCOUNT_PID - 1)),
    );
    const hash = pairsOf(reply, 1);
    return {
      created: reply[0] === 'created',
      account: { account, pid: Number(hash.pid), home: hash.home!, passwordHash: hash.passwordHash!, createdAt: Number(hash.createdAt) },
    };
  }

  async getAccount(account: string): Promise<Account | null> {
    const hash = await this.run(() => this.redis.hgetall(accountKey(account)));
    if (hash.pid === undefined) return null;
    return { account, pid: Number(hash.pid), home: hash.home!, passwordHash: hash.passwordHash!, createdAt: Number(hash.createdAt) };
  }

  async createOrder(order: string, pid: number, amount: number): Promise<{ created: boolean; order: RechargeOrder }> {
    const reply = await this.run(() =>
      this.redis.kfCreateOrder(orderKey(order), pendingOrdersKey(pid), PENDING_PLAYERS_KEY, ORDER_SEQUENCE_KEY, order, String(pid), String(amount), String(Date.now())),
    );
    return { created: reply[0] === 'created', order: orderFrom(order, pairsOf(reply, 1)) };
  }

  async getOrder(order: string): Promise<RechargeOrder | null> {
    const hash = await this.run(() => this.redis.hgetall(orderKey(order)));
    return hash.pid === undefined ? null : orderFrom(order, hash);
  }

  async markOrderDelivered(order: string): Promise<RechargeOrder> {
    const found = await this.getOrder(order);
    if (!found) throw new NotFoundError(`There is no recharge order ${order}.`, { order });
    const reply = await this.run(() =>
      this.redis.kfDeliverOrder(orderKey(order), pendingOrdersKey(found.pid), PENDING_PLAYERS_KEY, order, String(found.pid), String(Date.now())),
    );
    if (reply[0] !== 'ok') throw new NotFoundError(`There is no recharge order ${order}.`, { order });
    return orderFrom(order, pairsOf(reply, 1));
  }

  async pendingOrders(pid: number): Promise<RechargeOrder[]> {
    const ids = await this.run(() => this.redis.zrange(pendingOrdersKey(pid), '0', '-1'));
    const orders = await Promise.all(ids.map((id) => this.getOrder(String(id))));
    return orders.filter((order): order is RechargeOrder => order !== null && order.state === 'pending');
  }

  async playersWithPendingOrders(): Promise<number[]> {
    return (await this.run(() => this.redis.smembers(PENDING_PLAYERS_KEY))).map(Number);
  }

  // ---- server registry -------------------------------------------------------------------------

  async announceServer(record: Omit<ServerRecord, 'seenAt'>, ttlMs: number): Promise<void> {
    const full: ServerRecord = { ...record, seenAt: Date.now() };
    await this.run(() =>
      Promise.all([
        this.redis.set(serverKey(record.name), JSON.stringify(full), 'PX', Math.max(1, Math.round(ttlMs))),
        this.redis.zadd(SERVER_SET, full.seenAt + ttlMs, record.name),
      ]),
    );
  }

  async withdrawServer(name: string): Promise<void> {
    await this.run(() => Promise.all([this.redis.del(serverKey(name)), this.redis.zrem(SERVER_SET, name)]));
  }

  async listServers(): Promise<ServerRecord[]> {
    // kf:servers scores each name by when its record expires: expired names are dropped by score, so a
    // server that re-announces meanwhile (a later score) is never dropped by mistake.
    const now = Date.now();
    await this.run(() => this.redis.zremrangebyscore(SERVER_SET, '-inf', now));
    const names = await this.run(() => this.redis.zrangebyscore(SERVER_SET, now, '+inf'));
    const texts = await this.run(() => Promise.all(names.map((name) => this.redis.get(serverKey(name)))));
    const live = texts.filter((text): text is string => Boolean(text)).map((text) => JSON.parse(text) as ServerRecord);
    return live.sort((a, b) => a.name.localeCompare(b.name));
  }

  async getServer(name: string): Promise<ServerRecord | null> {
    const text = await this.run(() => this.redis.get(serverKey(name)));
    return text ? (JSON.parse(text) as ServerRecord) : null;
  }

  onReconnect(listener: () => void): Unsubscribe {
    return this.reconnectListeners.add(listener);
  }

  // ---- internals -------------------------------------------------------------------------------

  private watchReconnects(connection: Redis | Cluster): void {
    let lost = false;
    connection.on('close', () => { lost = true; });
    connection.on('ready', () => {
      if (lost && !this.closed) {
        lost = false;
        if (connection !== this.subscriber) {
          this.reconnectListeners.emit();
          return;
        }
        // ioredis says 'ready' before it subscribes again: tell the listeners once the subscription
        // is confirmed, so a cache they rebuild now cannot miss a change published meanwhile.
        this.subscriber.subscribe(ROUTE_CHANNEL, PROFILE_CHANNEL).then(
          () => { if (!this.closed) this.reconnectListeners.emit(); },
          () => { /* lost again: the next 'ready' tells them */ },
        );
      }
    });
  }

  private onMessage(channel: string, message: string): void {
    if (channel === ROUTE_CHANNEL) {
      const change = parseRouteMessage(message);
      if (change) this.routeListeners.emit(change);
    } else if (channel === PROFILE_CHANNEL) {
      // "pid version {changed json}"
      const first = message.indexOf(' ');
      const second = message.indexOf(' ', first + 1);
      const changed = JSON.parse(message.slice(second + 1)) as Record<string, ProfileValue>;
      this.profileListeners.emit({
        pid: Number(message.slice(0, first)), version: Number(message.slice(first + 1, second)), changed,
      });
    }
  }

  private profileFromHash(pid: number, hash: Record<string, string>): Profile {
    const fields: Record<string, ProfileValue> = {};
    for (const [key, text] of Object.entries(hash)) {
      if (key.startsWith('f:')) fields[key.slice(2)] = JSON.parse(text) as ProfileValue;
    }
    return { pid, version: Number(hash.version), fields };
  }

  private routeOrThrow(pid: number, epoch: number, reply: ScriptReply): Route {
    if (reply[0] === 'ok') return routeFromReply(reply, 1);
    if (reply[0] === 'missing') throw this.missing(pid);
    throw staleOwner(pid, epoch, routeFromReply(reply, 1));
  }

  private missing(pid: number): NotFoundError {
    return new NotFoundError(`Player ${pid} has no route: log him in at his home server first.`, { pid });
  }

  /** Runs a command; a connection failure becomes StoreUnavailableError (Redis replies stay as they are). */
  private async run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw this.storeError(error as Error);
    }
  }

  private storeError(error: Error): Error {
    if (error.name === 'ReplyError') return error;
    return new StoreUnavailableError(
      `The store (Redis at ${this.options.url}) is unreachable: ${error.message}. ` +
        `Check that redis-server is running; kuafu reconnects by itself, and the call can be retried then.`,
      { url: this.options.url },
    );
  }
}
