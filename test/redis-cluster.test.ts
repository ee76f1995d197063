/**
 * A game cluster on a Redis Cluster (DESIGN §2: one player's keys share the tag {pid}, so every
 * script runs on one node): three cluster-enabled redis-servers, HS and GS1 as `kuafu serve`
 * processes whose config says `"store": {"kind": "redis", "url": …, "cluster": true}`, a caller
 * (the datacenter) in this process, a real KuafuClient. The player logs in, moves, is called
 * through player RPC wherever he is, comes home and logs out; every step lands in the cluster.
 *
 * The store contract itself runs on a Redis Cluster in store-contract.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { loadConfig } from '../runtime/cluster/config.js';
import { startServers } from '../runtime/cluster/start.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { RedisStore } from '../runtime/store/redis-store.js';
import type { PlayerDocument } from '../runtime/game/player.js';
import { cleanupCluster, eventually, onCleanup, quietly, spawnServe, writeClusterConfig } from './harness/cluster.js';
import { startRedisCluster, type RedisClusterHandle } from './harness/redis-cluster.js';

const test = suite('game servers on a Redis Cluster');
let cluster: RedisClusterHandle | undefined;

test.before(async () => { cluster = await startRedisCluster(3); });
test.after(async () => {
  await cleanupCluster();
  await cluster?.stop();
});

test('login, a transfer, player RPC wherever he is, home again and logout: all on a Redis Cluster', async () => {
  const url = cluster!.nodes[1]!.url;
  const config = writeClusterConfig({
    servers: [
      { name: 'HS', roles: ['game'], gatewayPort: 0 },
      { name: 'GS1', roles: ['game'], gatewayPort: 0 },
      { name: 'DC', roles: ['datacenter'] },
    ],
    store: { kind: 'redis', url, cluster: true },
    heartbeatMs: 250,
  });
  // --redis names another node: the config's "cluster": true still holds.
  const hs = await spawnServe(config.path, 'HS', cluster!.nodes[0]!.url);
  await spawnServe(config.path, 'GS1', cluster!.nodes[2]!.url);
  const local = await quietly(() => startServers(loadConfig(config.path, {}), ['DC']));
  onCleanup(() => local.stop());
  assert.match(local.store.description, /^redis cluster /);
  const store = new RedisStore({ url: cluster!.nodes[2]!.url, cluster: true });
  await store.connect();
  onCleanup(() => store.close());

  const pids = [7101, 7102, 7103, 7104]; // a few players: their keys land on different nodes
  for (const pid of pids) {
    const client = new KuafuClient({ pid, homeUrl: hs.gateway, loginToken: () => issueLoginToken(config.secret, pid, 'HS'), stepTimeoutMs: 15_000 });
    onCleanup(() => client.close());
    assert.is((await client.login()).server, 'HS');
    assert.is((await client.go('GS1')).server, 'GS1');
    assert.is(await local.nodes[0]!.players.invoke(pid, ['addgold'], [10, 'cluster test']), 10, `player ${pid}: addgold on GS1`);
    await eventually(async () => {
      const mark = await store.getMark(pid);
      if (mark?.go !== 'GS1') throw new Error(`mark ${JSON.stringify(mark)}`);
    }, `HS to mark player ${pid} away at GS1`);
    const home = await client.go('HS');
    assert.is(home.server, 'HS');
    assert.is(home.player.gold, 10, `player ${pid}: his gold came home with him`);
    await client.logout();
    await eventually(async () => {
      const route = await store.getRoute(pid);
      if (!route || route.online || route.at !== '') throw new Error(`route ${JSON.stringify(route)}`);
    }, `player ${pid} to be offline at home`);
    assert.is(((await store.loadDocument(pid))?.data as PlayerDocument).gold, 10, `player ${pid}: saved`);
  }
});

test.run();
