/**
 * A server's route cache: fed by the store's route publications (so a hot call needs no store round
 * trip), never moved back by an older publication, and dropped after a store reconnect (it may have
 * missed publications meanwhile). Real Redis, real publications.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { RouteCache } from '../runtime/cluster/route-cache.js';
import { RedisStore } from '../runtime/store/redis-store.js';
import { eventually, within } from './harness/cluster.js';
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

test('an older publication arriving late never moves a cached route back; a change of the same epoch is applied', async () => {
  const pid = 505;
  // Every publication as it travels, to replay one late (as one delayed on its way would arrive).
  const tap = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await tap.connect();
  const published: string[] = [];
  tap.on('message', (_channel: string, message: string) => published.push(message));
  await tap.subscribe('kf:routes');
  const publisher = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await publisher.connect();
  try {
    await writer.ensureRoute(pid, 'HS');
    await cache.get(pid);
    await writer.claimRoute(pid, { expectEpoch: 0, at: 'GS1', online: true });
    await writer.claimRoute(pid, { expectEpoch: 1, at: 'GS2', online: true });
    await eventually(async () => {
      if (cache.peek(pid)?.epoch !== 2) throw new Error(`cached ${JSON.stringify(cache.peek(pid))}`);
    }, 'the second claim to reach the cache', 10_000, 10);
    const toGs1 = await eventually(async () => {
      const found = published.find((message) => message.startsWith(`${pid} `) && message.includes('GS1'));
      if (!found) throw new Error(`tapped so far: ${JSON.stringify(published)}`);
      return found;
    }, 'the publication of the claim to GS1 to be tapped', 10_000, 10);

    // The epoch-1 publication again, now: the store hands it to its listeners, the cache first (it listened first).
    const late = within(new Promise<void>((resolve) => {
      const stop = store.onRouteChange((change) => {
        if (change.pid === pid && change.epoch === 1) {
          stop();
          resolve();
        }
      });
    }), 10_000, 'the late publication to reach the store');
    await publisher.publish('kf:routes', toGs1);
    await late;
    assert.equal(cache.peek(pid), { home: 'HS', at: 'GS2', epoch: 2, online: true }, 'the late epoch-1 publication moved the route back');

    // A change under the same epoch (he went offline at GS2) is newer news: applied.
    await writer.setOnline(pid, 2, false);
    await eventually(async () => {
      if (cache.peek(pid)?.online !== false) throw new Error(`cached ${JSON.stringify(cache.peek(pid))}`);
    }, 'the same-epoch change to reach the cache', 10_000, 10);
    assert.equal(cache.peek(pid), { home: 'HS', at: 'GS2', epoch: 2, online: false });
  } finally {
    tap.disconnect();
    publisher.disconnect();
  }
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
