/**
 * A real Redis Cluster for tests: `masters` redis-server processes (Debian's package, as
 * startRedis), cluster-enabled, each given an equal share of the 16384 slots, introduced to each
 * other (CLUSTER MEET), and awaited until every node reports `cluster_state:ok` and knows every
 * slot. No replicas: a stopped node's slots are unserved until it is back (the cluster is set
 * not to require full coverage, so the other slots keep working).
 *
 *   const cluster = await startRedisCluster();
 *   // cluster.url: one node's redis://127.0.0.1:PORT (a client discovers the others)
 *   await cluster.nodes[1]!.restart();
 *   await cluster.stop();
 */
import { Redis } from 'ioredis';
import { startRedis, type RedisHandle } from './redis.js';

const FORM_TIMEOUT_MS = 30_000;
const SLOTS = 16384;

export interface RedisClusterHandle {
  /** One node's URL: enough for a cluster client to find the rest. */
  url: string;
  nodes: RedisHandle[];
  /** Empties every node (FLUSHALL on each master). */
  flushAll(): Promise<void>;
  /** Waits until every node says the cluster is ok (after a node restarted, say). */
  waitHealthy(): Promise<void>;
  stop(): Promise<void>;
}

async function withNode<T>(node: RedisHandle, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => { /* the command fails */ });
  await redis.connect();
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

async function healthy(nodes: RedisHandle[]): Promise<string> {
  const states = await Promise.all(nodes.map((node) => withNode(node, async (redis) => {
    const info = String(await redis.call('CLUSTER', 'INFO'));
    const state = /cluster_state:(\w+)/.exec(info)?.[1] ?? '?';
    const assigned = Number(/cluster_slots_ok:(\d+)/.exec(info)?.[1] ?? 0);
    const known = Number(/cluster_known_nodes:(\d+)/.exec(info)?.[1] ?? 0);
    return state === 'ok' && assigned === SLOTS && known === nodes.length ? '' : `${node.url}: ${state}, ${assigned} slots ok, ${known} nodes known`;
  }).catch((error: Error) => `${node.url}: ${error.message}`)));
  return states.filter(Boolean).join('; ');
}

async function waitUntilHealthy(nodes: RedisHandle[]): Promise<void> {
  const deadline = Date.now() + FORM_TIMEOUT_MS;
  for (;;) {
    const problems = await healthy(nodes);
    if (!problems) return;
    if (Date.now() > deadline) throw new Error(`the Redis Cluster did not become healthy within ${FORM_TIMEOUT_MS} ms: ${problems}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const nodes: RedisHandle[] = [];
  try {
    for (let i = 0; i < masters; i++) nodes.push(await startRedis({ persistent: true, clusterNode: true }));
    const share = Math.ceil(SLOTS / masters);
    await Promise.all(nodes.map((node, i) => withNode(node, (redis) =>
      redis.call('CLUSTER', 'ADDSLOTSRANGE', String(i * share), String(Math.min(SLOTS, (i + 1) * share) - 1)))));
    await withNode(nodes[0]!, async (redis) => {
      for (const other of nodes.slice(1)) await redis.call('CLUSTER', 'MEET', '127.0.0.1', String(other.port));
    });
    await waitUntilHealthy(nodes);
  } catch (error) {
    await Promise.all(nodes.map((node) => node.stop()));
    throw error;
  }
  return {
    url: nodes[0]!.url,
    nodes,
    flushAll: async () => {
      await Promise.all(nodes.map((node) => withNode(node, (redis) => redis.flushall())));
    },
    waitHealthy: () => waitUntilHealthy(nodes),
    stop: async () => {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}
