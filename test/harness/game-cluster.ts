/**
 * A game cluster for the transfer tests (issue 3), made of real parts: one redis-server, one
 * `kuafu serve` process per game server (each with its client gateway on a free port), real
 * KuafuClients on WebSockets, and — in the test process — a caller node started from the same
 * config (`startServers`), whose PlayerCaller reaches a player wherever he is (player-calls.ts, the
 * real caller side), plus a RedisStore of the test's own to read routes, marks and documents.
 *
 *   const cluster = await GameCluster.start({ games: ['HS', 'GS1', 'GS2'] });
 *   const c = cluster.client(1001, 'HS');            // a KuafuClient whose home is HS
 *   await c.login(); await c.go('GS1');
 *   await cluster.invoke(1001, ['addgold'], [10, 'test']);   // on whichever server owns him
 *   await cluster.stop();                            // in test.after
 *
 * Every wait is on an event or a polled condition with a generous deadline; nothing sleeps to let
 * time pass. Every process, client and connection made here is closed by `stop()`.
 */
import { KuafuClient, type KuafuClientOptions } from '../../runtime/client/kuafu-client.js';
import { loadConfig } from '../../runtime/cluster/config.js';
import type { ServerNode } from '../../runtime/cluster/server-node.js';
import type { GameServerOptions } from '../../runtime/game/game-server.js';
import { startServers, type RunningServers } from '../../runtime/cluster/start.js';
import { issueLoginToken, type TokenClaims } from '../../runtime/game/tokens.js';
import type { PlayerDocument } from '../../runtime/game/player.js';
import type { PeerClient } from '../../runtime/rpc/peer-client.js';
import { RedisStore } from '../../runtime/store/redis-store.js';
import type { Mark, Route } from '../../runtime/store/store.js';
import {
  cleanupCluster, connect, eventually, onCleanup, quietly, spawnServe, writeClusterConfig, type ClusterConfigFile, type ServeProcess,
} from './cluster.js';
import { startRedis, type RedisHandle } from './redis.js';

export interface GameClusterOptions {
  /** Game servers, one `kuafu serve` process each (default HS, GS1, GS2). */
  games?: string[];
  /** Servers started in the test process from the same config: 'DC' (datacenter) is always one; add game servers here. */
  inProcessGames?: string[];
  /** Game servers in the config that the test runs itself (stand-ins): nothing is started for them. */
  standIns?: string[];
  /** Registry and home heartbeat period, ms (short, so heartbeat-driven steps are quick). */
  heartbeatMs?: number;
  rpcTimeoutMs?: number;
  /** Options of the in-process game servers (a short transfer token TTL, …). */
  game?: GameServerOptions;
}

/** What `player.where` answers. */
export interface Where {
  pid: number;
  route: Route | null;
  go_srvname: string;
  markEpoch: number;
}

/** The claims inside a token (its payload, readable by anyone; only the signature is secret). */
export function claimsOf(token: string): TokenClaims {
  return JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as TokenClaims;
}

/** A player's route and his home's mark, as a store holds them. */
export interface PlayerState {
  route: Route | null;
  mark: Mark | null;
}

/** The player's route and mark as `store` holds them now. */
export async function stateOf(store: RedisStore, pid: number): Promise<PlayerState> {
  const [route, mark] = await Promise.all([store.getRoute(pid), store.getMark(pid)]);
  return { route, mark };
}

/** Waits until `store` shows `check` true of the player's route and mark (`what` says what is awaited). */
export function untilState(store: RedisStore, pid: number, what: string, check: (state: PlayerState) => boolean, ms: number): Promise<PlayerState> {
  return eventually(async () => {
    const state = await stateOf(store, pid);
    if (!check(state)) throw new Error(`now ${JSON.stringify(state)}`);
    return state;
  }, `player ${pid}: ${what}`, ms, 25);
}

export class GameCluster {
  readonly servers: Record<string, ServeProcess> = {};
  readonly peers: Record<string, PeerClient> = {};
  private constructor(
    readonly redis: RedisHandle,
    readonly config: ClusterConfigFile,
    readonly store: RedisStore,
    readonly local: RunningServers,
  ) {}

  static async start(options: GameClusterOptions = {}): Promise<GameCluster> {
    const games = options.games ?? ['HS', 'GS1', 'GS2'];
    const inProcessGames = options.inProcessGames ?? [];
    const redis = await startRedis({ persistent: false });
    try {
      const config = writeClusterConfig({
        servers: [
          ...[...games, ...inProcessGames, ...(options.standIns ?? [])].map((name) => ({ name, roles: ['game'], gatewayPort: 0 })),
          { name: 'DC', roles: ['datacenter'] },
        ],
        store: { kind: 'redis', url: redis.url },
        heartbeatMs: options.heartbeatMs ?? 250,
        rpcTimeoutMs: options.rpcTimeoutMs ?? 5000,
      });
      const store = new RedisStore({ url: redis.url });
      await store.connect();
      onCleanup(() => store.close());
      // The in-process servers log warnings only (the test's output stays readable).
      const local: RunningServers = await quietly(() =>
        startServers(loadConfig(config.path, {}), ['DC', ...inProcessGames], options.game ? { game: options.game } : {}));
      onCleanup(() => local.stop());
      const cluster = new GameCluster(redis, config, store, local);
      await Promise.all(games.map((name) => cluster.serve(name)));
      return cluster;
    } catch (error) {
      await cleanupCluster();
      await redis.stop();
      throw error;
    }
  }

  /** Starts (or starts again, after a kill) the `kuafu serve` process of game server `name`. */
  async serve(name: string): Promise<ServeProcess> {
    const proc = await spawnServe(this.config.path, name, this.redis.url);
    if (!proc.gateway) throw new Error(`${name} printed no gateway address:\n${proc.describe()}`);
    this.servers[name] = proc;
    // One PeerClient per server, which follows the server to its new address after a restart.
    this.peers[name] ??= connect(name, proc.url, this.config.secret, { resolveUrl: () => this.servers[name]!.url });
    return proc;
  }

  /** The in-process caller node (datacenter role): its PlayerCaller reaches players wherever they are. */
  get dc(): ServerNode {
    return this.node('DC');
  }

  /** An in-process server node by name. */
  node(name: string): ServerNode {
    const node = this.local.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no in-process server ${name}`);
    return node;
  }

  /** The gateway of game server `name` (a serve process, or an in-process game server). */
  gateway(name: string): string {
    return this.servers[name]?.gateway ?? this.node(name).gatewayUrl;
  }

  /** A fresh login token for `pid` at `home`. */
  loginToken(pid: number, home: string): string {
    return issueLoginToken(this.config.secret, pid, home);
  }

  /** A KuafuClient for player `pid` whose home is `home` (closed by stop()). */
  client(pid: number, home = 'HS', options: Partial<KuafuClientOptions> = {}): KuafuClient {
    const client = new KuafuClient({
      pid,
      homeUrl: this.gateway(home),
      loginToken: () => this.loginToken(pid, home),
      stepTimeoutMs: 15_000,
      ...options,
    });
    onCleanup(() => client.close());
    return client;
  }

  /** `player.where` asked of server `via`: the route, the home's mark, its epoch. */
  where(pid: number, via = 'HS'): Promise<Where> {
    return this.peers[via]!.call<Where>('player.where', { pid });
  }

  /** The route and mark as the store holds them. */
  async state(pid: number): Promise<PlayerState> {
    return stateOf(this.store, pid);
  }

  /** Calls a method of the player's RPC surface wherever he is (the real caller side, with call ids). */
  invoke<T = unknown>(pid: number, path: string[], args: unknown[], id?: string): Promise<T> {
    return this.dc.players.invoke(pid, path, args, id) as Promise<T>;
  }

  /** The player's stored document. */
  async document(pid: number): Promise<PlayerDocument> {
    const stored = await this.store.loadDocument(pid);
    if (!stored) throw new Error(`player ${pid} has no stored document`);
    return stored.data as PlayerDocument;
  }

  /** Gold and the count of each item type, as stored. */
  async stored(pid: number): Promise<{ gold: number; items: Record<number, number> }> {
    const doc = await this.document(pid);
    const items = doc.items as unknown;
    const counts: Record<number, number> = {};
    // Items by type id: a Map in older documents, a plain object now.
    for (const [type, count] of items instanceof Map ? items : Object.entries(items as Record<string, number>)) counts[Number(type)] = count as number;
    return { gold: doc.gold, items: counts };
  }

  /** Waits until the store shows `check` true of the player's route and mark. */
  until(pid: number, what: string, check: (state: PlayerState) => boolean, ms = 30_000): Promise<PlayerState> {
    return untilState(this.store, pid, what, check, ms);
  }

  /** What every serve process printed, for failure messages. */
  describe(): string {
    return Object.values(this.servers).map((s) => s.describe()).join('\n');
  }

  async stop(): Promise<void> {
    await cleanupCluster();
    await this.redis.stop();
  }
}
