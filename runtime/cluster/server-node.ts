/**
 * A server node: one kuafu server of the cluster. It hosts one or more roles (their dispatch
 * tables are exactly the JSON-RPC methods it answers), announces itself in the store's registry
 * with a heartbeat, keeps a route cache, and holds one persistent connection per peer it calls.
 */
import { ServerUnavailableError } from '../errors.js';
import { clusterMethods } from '../roles/cluster-methods.js';
import { accountRole } from '../roles/account.js';
import { battleRole } from '../roles/battle.js';
import { datacenterRole } from '../roles/datacenter.js';
import { gameRole } from '../roles/game.js';
import { guildRole } from '../roles/guild.js';
import { rankRole } from '../roles/rank.js';
import type { RoleRuntime } from '../roles/role.js';
import { ServerMetrics } from './metrics.js';
import type { GameServer, GameServerOptions } from '../game/game-server.js';
import { PlayerCaller } from '../game/player-calls.js';
import { servicesOf, stopServicesOf, type Services } from '../services/index.js';
import { PeerClient, type CallOptions } from '../rpc/peer-client.js';
import { RpcServer, type MethodTable } from '../rpc/rpc-server.js';
import type { Store } from '../store/store.js';
import { createLogger, type Logger } from '../util/log.js';
import { notInConfig, type ClusterConfig, type Role, type ServerConfig } from './config.js';
import { RouteCache } from './route-cache.js';

/** How each role is made. */
const ROLES: Record<Role, (node: ServerNode, server: ServerConfig) => RoleRuntime> = {
  game: gameRole,
  datacenter: datacenterRole,
  guild: guildRole,
  rank: rankRole,
  account: accountRole,
  battle: battleRole,
};

export interface ServerNodeOptions {
  cluster: ClusterConfig;
  server: ServerConfig;
  store: Store;
  log?: Logger;
  /** How a host extends its game servers: its own player model and RPC surface, player data… */
  game?: GameServerOptions;
}

/** What `cluster.info` answers. */
export interface ServerInfo {
  name: string;
  roles: string[];
  rpc: string;
  /** The client gateway ('' when the server has none). */
  gateway: string;
  pid: number;
  uptimeMs: number;
  store: string;
  connectedPeers: string[];
  cachedRoutes: number;
  /** Where its metrics are served (`http://host:port/metrics`; '' without a metricsPort). */
  metrics: string;
}

export class ServerNode {
  readonly name: string;
  readonly roles: Role[];
  readonly store: Store;
  readonly routes: RouteCache;
  readonly log: Logger;
  /** Reaches any player wherever he is (player RPC, caller side). */
  readonly players: PlayerCaller;
  /** The game server, when this node hosts the game role. */
  readonly game: GameServer | null = null;
  /** This server's metrics (served on its metricsPort, answered by cluster.metrics). */
  readonly metrics: ServerMetrics;
  private readonly rpc: RpcServer;
  private readonly runtimes: RoleRuntime[] = [];
  private readonly peers = new Map<string, PeerClient>();
  private heartbeat: NodeJS.Timeout | null = null;
  private storeDown = false;
  private readonly startedAt = Date.now();

  constructor(private readonly options: ServerNodeOptions) {
    const { server, store } = options;
    this.name = server.name;
    this.roles = server.roles;
    this.store = store;
    this.log = options.log ?? createLogger(server.name);
    this.routes = new RouteCache(store);
    this.players = new PlayerCaller(this);
    const methods: MethodTable = clusterMethods(this);
    for (const role of server.roles) {
      const runtime = ROLES[role](this, server);
      this.runtimes.push(runtime);
      Object.assign(methods, runtime.methods);
      if ('game' in runtime) this.game = runtime.game as GameServer;
    }
    this.metrics = new ServerMetrics(server.name, {
      playersOnline: () => {
        let online = 0;
        for (const loaded of this.game?.host.players.values() ?? []) if (loaded.session) online++;
        return online;
      },
      peers: () => [...this.peers.values()].map((p) => ({ peer: p.peer, connected: p.connected })),
      storeUp: () => !this.storeDown,
      bundles: () => {
        const scripts = this.game?.scripts.host;
        if (!scripts) return [];
        return scripts.names().map((name) => {
          const stats = scripts.stats(name);
          return { name, inFlight: stats.inFlight, heapUsedBytes: stats.heapUsedMiB === null ? null : Math.round(stats.heapUsedMiB * 1024 * 1024), isolatesRemade: stats.isolatesMade };
        });
      },
    });
    this.rpc = new RpcServer({
      name: server.name,
      secret: options.cluster.secret,
      host: server.host,
      port: server.rpcPort,
      methods,
      log: this.log,
      onServed: (method, outcome) => this.metrics.rpcServed(method, outcome),
    });
  }

  /** The cluster config this server belongs to. */
  get cluster(): ClusterConfig {
    return this.options.cluster;
  }

  /** The function services as this server reaches them: profiles (cached), guilds, ranks, accounts, battles. */
  get services(): Services {
    return servicesOf(this);
  }

  /** The host's options for its game servers. */
  get gameOptions(): GameServerOptions {
    return this.options.game ?? {};
  }

  /** The cluster secret. */
  get secret(): string {
    return this.options.cluster.secret;
  }

  /** How often heartbeats beat, ms. */
  get heartbeatMs(): number {
    return this.options.cluster.heartbeatMs;
  }

  /** The client gateway address ('' when no role has one). */
  get gatewayUrl(): string {
    for (const runtime of this.runtimes) if (runtime.gatewayUrl) return runtime.gatewayUrl();
    return '';
  }

  /** The address other servers call, `ws://host:port` (after start). */
  get rpcUrl(): string {
    return this.rpc.url;
  }

  /** Listens, announces itself in the registry and starts its heartbeat. */
  async start(): Promise<void> {
    await this.rpc.listen();
    if (this.options.server.metricsPort !== undefined) await this.metrics.listen(this.options.server.host, this.options.server.metricsPort, this.log);
    this.routes.start();
    servicesOf(this); // the profile cache follows the store from the start
    for (const runtime of this.runtimes) await runtime.start?.();
    await this.announce();
    this.heartbeat = setInterval(() => void this.announce(), this.options.cluster.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Leaves the registry, stops listening and closes its connections. */
  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    await this.store.withdrawServer(this.name).catch(() => { /* it expires by itself */ });
    for (const runtime of this.runtimes) await runtime.stop?.();
    stopServicesOf(this);
    this.routes.stop();
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
    await this.rpc.close();
    await this.metrics.close();
  }

  /** Calls `method` on server `server` (a persistent, authenticated connection per peer). */
  call<T = unknown>(server: string, method: string, arg?: unknown, options?: CallOptions): Promise<T> {
    if (!this.isServer(server)) return Promise.reject(notInConfig(server));
    return this.peer(server).call<T>(method, arg, options);
  }

  /** Whether `server` names a server of the cluster config (only those are ever called). */
  isServer(server: string): boolean {
    return this.options.cluster.servers.some((s) => s.name === server);
  }

  /**
   * The connection to one peer, made on first use. A name that is not in the cluster config gets a
   * connection that is kept nowhere and fails each call with NotFoundError without connecting (a
   * name from outside — a client's `go`, a probe — must not make this server keep anything).
   */
  peer(server: string): PeerClient {
    let peer = this.peers.get(server);
    if (!peer && !this.isServer(server)) {
      const error = notInConfig(server);
      return new PeerClient({ self: this.name, peer: error.details.server as string, secret: '', resolveUrl: () => Promise.reject(error) });
    }
    if (!peer) {
      peer = new PeerClient({
        self: this.name,
        peer: server,
        secret: this.options.cluster.secret,
        timeoutMs: this.options.cluster.rpcTimeoutMs,
        resolveUrl: () => this.addressOf(server),
      });
      this.peers.set(server, peer);
    }
    return peer;
  }

  /** Where `server` listens: its registry record, else its config entry. */
  async addressOf(server: string): Promise<string> {
    if (!this.isServer(server)) throw notInConfig(server);
    const configured = this.options.cluster.servers.find((s) => s.name === server);
    const fallback = configured && configured.rpcPort !== 0 ? `ws://${configured.host}:${configured.rpcPort}` : '';
    let record;
    try {
      record = await this.store.getServer(server);
    } catch (error) {
      // The registry is unreachable: the configured address still serves; without one, say it is the store.
      if (fallback) return fallback;
      throw error;
    }
    if (record) return record.rpc;
    if (fallback) return fallback;
    throw new ServerUnavailableError(
      `Server ${server} is not in the registry: it is not running, or it missed its heartbeats. ` +
        `'kuafu status' lists the servers that answer.`,
      { server },
    );
  }

  /** What `cluster.info` answers. */
  info(): ServerInfo {
    return {
      name: this.name,
      roles: this.roles,
      rpc: this.rpcUrl,
      gateway: this.gatewayUrl,
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      store: this.store.description,
      connectedPeers: [...this.peers.values()].filter((p) => p.connected).map((p) => p.peer),
      cachedRoutes: this.routes.size,
      metrics: this.metrics.url,
    };
  }

  private async announce(): Promise<void> {
    const beat = this.options.cluster.heartbeatMs;
    try {
      await this.store.announceServer(
        { name: this.name, roles: this.roles, rpc: this.rpcUrl, gateway: this.gatewayUrl, pid: process.pid },
        beat * 3,
      );
      if (this.storeDown) this.log.info('the store answers again; registry record refreshed');
      this.storeDown = false;
    } catch (error) {
      if (!this.storeDown) this.log.warn(`cannot refresh the registry record: ${(error as Error).message}`);
      this.storeDown = true;
    }
  }
}

