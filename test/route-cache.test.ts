/**
 * A server's route cache: fed by the store's route publications (so a hot call needs no store round
 * trip), never moved back by an older publication, and dropped after a store reconnect (it may have
 * missed publications meanwhile). Real Redis, real publications.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RouteCache } from '../runtime/cluster/route-cache.js';
import { RedisStore } from '../runtime/store/redis-store.js';
import { eventually } from './harness/cluster.js';
import { startRedis, type RedisHandle } from './harness/redis.js';

const test = suite('route cache');
let redis: RedisHandle;
let store: RedisStore;
let writer: RedisStore;
let cache: RouteCache;

test.before(async () => {
  redis = await startRedis();
  store = new RedisStore({ url: redis.url, commandTimeoutMs: 2000 });
  writer = new RedisStore({ url: redis.url, commandTimeoutMs: 2000 });
  await Promise.all([store.connect(), writer.connect()]);
  cache = new RouteCache(store);
  cache.start();
});

test.after(async () => {
  cache?.stop();
  await store?.close();
  await writer?.close();
  await redis?.stop();
});

test('a route read once is kept fresh by the publications of another server', async () => {
  await writer.ensureRoute(501, 'HS');
  assert.equal(await cache.get(501), { home: 'HS', at: '', epoch: 0, online: false });
  assert.ok(cache.peek(501), 'cached');
  await writer.claimRoute(501, { expectEpoch: 0, at: 'GS1', online: true });
  await eventually(async () => {
    if (cache.peek(501)?.epoch !== 1) throw new Error(`cached ${JSON.stringify(cache.peek(501))}`);
  }, 'the claim to reach the cache', 10_000, 10);
  assert.equal(cache.peek(501), { home: 'HS', at: 'GS1', epoch: 1, online: true });
  assert.not.ok(cache.peek(502), 'a player nobody asked about is not cached');
});

test('waitForChange wakes a caller on the next change of that player', async () => {
  await writer.ensureRoute(503, 'HS');
  const route = (await cache.get(503))!;
  const waiting = cache.waitForChange(503, route.epoch, 10_000);
  await writer.claimRoute(503, { expectEpoch: route.epoch, at: 'GS2', online: true });
  const change = await waiting;
  assert.ok(change, 'woken by the change, not the deadline');
  assert.is(change!.at, 'GS2');
  assert.is(await cache.waitForChange(503, 5, 50), null, 'no change: the deadline answers null');
});

test('after Redis restarts, the cache is dropped and reads come from the store again', async () => {
  await writer.ensureRoute(504, 'HS');
  await cache.get(504);
  assert.ok(cache.size > 0);
  const reconnected = new Promise<void>((resolve) => {
    const stop = store.onReconnect(() => {
      stop();
      resolve();
    });
  });
  await redis.restart();
  await reconnected;
  assert.is(cache.size, 0, 'dropped: publications may have been missed while the connection was down');
  await eventually(async () => {
    await writer.getRoute(504);
  }, 'the writer to reconnect', 20_000, 50);
  // The next read comes from the store, with what changed since.
  await writer.claimRoute(504, { expectEpoch: 0, at: 'GS1', online: true });
  assert.equal(await cache.get(504), { home: 'HS', at: 'GS1', epoch: 1, online: true });
});

test.run();
