/**
 * One game server HS in the test process, on the embedded memory store or on a redis-server of its
 * own, with the host's player model: for tests of what happens on a player's owner (his calls,
 * saves and limits), reached over a real authenticated connection, with real clients logged in.
 *
 *   const hs = await HomeServer.start('redis', { secret, model, config: { playerLimits } });
 *   const pid = await hs.online(7100);                  // a real client logged in at HS
 *   await hs.peer.call('player.invoke', { pid, path: ['addgold'], args: [1, 'test'], id: 'x' });
 *   await hs.stop();                                    // in test.after
 */
import { KuafuClient } from '../../runtime/client/kuafu-client.js';
import { parseConfig, type StoreConfig } from '../../runtime/cluster/config.js';
import { startServers, type RunningServers } from '../../runtime/cluster/start.js';
import type { PlayerModel } from '../../runtime/game/player.js';
import { issueLoginToken } from '../../runtime/game/tokens.js';
import type { PeerClient } from '../../runtime/rpc/peer-client.js';
import { cleanupCluster, connect, onCleanup, quietly } from './cluster.js';
import { startRedis } from './redis.js';

export class HomeServer {
  private constructor(readonly running: RunningServers, readonly peer: PeerClient, private readonly secret: string) {}

  /** Starts HS on `kind` of store; `config` adds fields to the cluster config (playerLimits…). */
  static async start(kind: 'memory' | 'redis', options: { secret: string; model?: PlayerModel; config?: Record<string, unknown> }): Promise<HomeServer> {
    let store: StoreConfig = { kind: 'memory' };
    if (kind === 'redis') {
      const redis = await startRedis({ persistent: false });
      onCleanup(() => redis.stop());
      store = { kind: 'redis', url: redis.url };
    }
    const running = await quietly(() => startServers(parseConfig({
      secret: options.secret,
      scriptsDir: '',
      store,
      ...options.config,
      servers: [{ name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0 }],
    }, 'home-server.json', {}), undefined, options.model ? { game: { model: options.model } } : {}));
    return new HomeServer(running, connect('HS', running.nodes[0]!.rpcUrl, options.secret), options.secret);
  }

  get store() {
    return this.running.store;
  }

  /** Player `pid` logged in at HS by a real client (closed by cleanupCluster). */
  async online(pid: number): Promise<number> {
    const client = new KuafuClient({ pid, homeUrl: this.running.nodes[0]!.gatewayUrl, loginToken: () => issueLoginToken(this.secret, pid, 'HS') });
    onCleanup(() => client.close());
    await client.login();
    return pid;
  }

  async stop(): Promise<void> {
    await this.running.stop();
    await cleanupCluster();
  }
}
