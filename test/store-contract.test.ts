/**
 * The Store contract (DESIGN §2, §3), written once and run against both implementations:
 * MemoryStore, and RedisStore on a real redis-server started by the test harness.
 *
 * Then, Redis only: the store survives a restart of Redis (onReconnect fires, data is kept, commands
 * and publications work again), and while Redis is down a command fails with StoreUnavailableError
 * instead of hanging: at once, refused by a connection that is not ready (no offline queue), even
 * while a reconnect is under way that never succeeds, and with a command timeout far away.
 * On a Redis Cluster the store moves its subscription to another node when it loses one.
 *
 * Nothing here sleeps and then asserts: events are awaited with a deadline that fails with a clear
 * message, and expiry is polled until it happens (or a generous deadline passes).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { createServer, type Socket } from 'node:net';
import { NotFoundError, StaleOwnerError, StoreUnavailableError } from '../runtime/errors.js';
import { MemoryStore } from '../runtime/store/memory-store.js';
import { RedisStore } from '../runtime/store/redis-store.js';
import type { ProfileChange, Route, RouteChange, ServerRecord, Store, TreasuryChange, TreasuryOutcome } from '../runtime/store/store.js';
import { FIRST_ACCOUNT_PID, MAX_KEPT_CALLS, REMEMBERED_CALLS } from '../runtime/store/store.js';
import { startRedis, type RedisHandle } from './harness/redis.js';
import { startRedisCluster, type RedisClusterHandle } from './harness/redis-cluster.js';

/** How long an awaited event may take before the test fails (generous: a loaded 2-core machine). */
const EVENT_TIMEOUT_MS = 10_000;
/** How long a polled condition (expiry, reconnection) may take before the test fails. */
const POLL_DEADLINE_MS = 20_000;
const POLL_INTERVAL_MS = 50;

// ---- helpers -------------------------------------------------------------------------------------

/** JSON with object keys sorted, so two plain values compare regardless of key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let lastPid = 1000;
/** A player id no other test uses. */
const nextPid = (): number => ++lastPid;

/** A TCP server on 127.0.0.1:`port` that takes every connection and never sends a byte. */
async function silentServer(port: number): Promise<{ connections(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => { /* the store hangs up */ });
    socket.on('close', () => sockets.delete(socket));
  });
  // The port was Redis's a moment ago: retry a little while the kernel lets go of it.
  for (let attempt = 1; ; attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      break;
    } catch (error) {
      if (attempt >= 50) throw error;
      await sleep(100);
    }
  }
  return {
    connections: () => accepted,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The sockets and timers that keep this process alive now (what a store's close() must give back). */
function handles(): { sockets: number; timers: number } {
  const resources = process.getActiveResourcesInfo();
  return {
    sockets: resources.filter((name) => name === 'TCPSocketWrap' || name === 'TCPWRAP' || name === 'PipeWrap').length,
    timers: resources.filter((name) => name === 'Timeout' || name === 'Immediate').length,
  };
}

/** Collects published events; `waitFor` resolves when a matching one has arrived (or fails after a deadline). */
class Inbox<T> {
  readonly events: T[] = [];
  private readonly waiters = new Set<{ test: (event: T) => boolean; resolve: (event: T) => void }>();

  constructor(private readonly label: string) {}

  readonly push = (event: T): void => {
    this.events.push(event);
    for (const waiter of this.waiters) {
      if (waiter.test(event)) {
        this.waiters.delete(waiter);
        waiter.resolve(event);
      }
    }
  };

  waitFor(what: string, test: (event: T) => boolean, timeoutMs = EVENT_TIMEOUT_MS): Promise<T> {
    const found = this.events.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(
          `${this.label}: ${what} did not arrive within ${timeoutMs} ms; received so far: ${JSON.stringify(this.events)}`,
        ));
      }, timeoutMs);
      const waiter = {
        test,
        resolve: (event: T) => {
          clearTimeout(timer);
          resolve(event);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Waits for an event equal to `expected` (plain JSON values). */
  waitForEqual(expected: T, timeoutMs = EVENT_TIMEOUT_MS): Promise<T> {
    const want = canonical(expected);
    return this.waitFor(want, (event) => canonical(event) === want, timeoutMs);
  }
}

/** Asserts that `promise` rejects with an instance of `type`; returns the error. */
async function rejects<E extends Error>(
  promise: Promise<unknown>,
  type: new (...args: never[]) => E,
  what: string,
): Promise<E> {
  let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await promise };
  } catch (error) {
    outcome = { ok: false, error };
  }
  if (outcome.ok) {
    assert.unreachable(`${what}: expected ${type.name}, but it resolved with ${String(JSON.stringify(outcome.value))}`);
    throw new Error('unreachable');
  }
  if (!(outcome.error instanceof type)) {
    const error = outcome.error as Error;
    assert.unreachable(`${what}: expected ${type.name}, got ${error?.name}: ${error?.message}`);
  }
  return outcome.error as E;
}

/** Polls `check` until it returns true; fails with `what` after `deadlineMs`. */
async function eventually(what: string, check: () => Promise<boolean>, deadlineMs = POLL_DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${(lastError as Error).message})` : '';
      assert.unreachable(`${what} did not happen within ${deadlineMs} ms${why}`);
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Settles `promise` or fails after `ms`, saying that `what` hung. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms: it hangs instead of failing`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// ---- the contract ----------------------------------------------------------------------------------

/** One test's world: a fresh, empty shared state seen from two servers. */
interface World {
  /** The store of "this" server. */
  store: Store;
  /** Another server's store on the same shared state (for MemoryStore: the same instance). */
  peer: Store;
  /**
   * Opens one more store on the same shared state (for MemoryStore: a store of its own), with
   * `options` (a short kept-call retention, for the tests of it).
   */
  open(options?: StoreOptions): Promise<Store>;
  /** Closes every store of this world. */
  close(): Promise<void>;
}

/** What a test may set when it opens a store. */
interface StoreOptions {
  keptCallRetentionMs?: number;
}

interface Backend {
  /** Starts what the stores need (a redis-server). */
  setup(): Promise<void>;
  /** Empties the shared state and returns a world on it. */
  makeStore(): Promise<World>;
  /** Stops what setup started. */
  teardown(): Promise<void>;
}

const record = (name: string, roles: string[] = ['game']): Omit<ServerRecord, 'seenAt'> => ({
  name,
  roles,
  rpc: `ws://127.0.0.1:${7000 + name.length}`,
  gateway: roles.includes('gateway') ? 'ws://127.0.0.1:8000' : '',
  pid: 4242,
});

function contract(name: string, backend: Backend): void {
  const test = suite(`Store contract: ${name}`);
  let world: World | undefined;
  const w = (): World => {
    if (!world) throw new Error('no world: setup failed');
    return world;
  };

  test.before(async () => { await backend.setup(); });
  test.after(async () => { await backend.teardown(); });
  test.before.each(async () => { world = await backend.makeStore(); });
  test.after.each(async () => {
    const current = world;
    world = undefined;
    await current?.close();
  });

  // ---- routes ----

  test('getRoute is null for a player without a route', async () => {
    assert.is(await w().store.getRoute(nextPid()), null);
  });

  test('ensureRoute creates {home, at: "", epoch: 0, online: false} and is idempotent', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    const fresh: Route = { home: 'home-1', at: '', epoch: 0, online: false };
    assert.equal(await store.ensureRoute(pid, 'home-1'), fresh);
    assert.equal(await store.getRoute(pid), fresh);
    // A second call (even from another server, naming another home) keeps the first route.
    assert.equal(await peer.ensureRoute(pid, 'home-2'), fresh, 'second ensureRoute returns the existing route');
    assert.equal(await store.getRoute(pid), fresh, 'second ensureRoute changed nothing');
  });

  test('claimRoute is a CAS on the epoch: bumps it and sets at/online', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');

    const claimed = await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    assert.equal(claimed, { home: 'home-1', at: 'game-2', epoch: 1, online: true });
    assert.equal(await peer.getRoute(pid), claimed, 'the other server reads the claimed route');

    // Back home: at '' again.
    const home = await peer.claimRoute(pid, { expectEpoch: 1, at: '', online: false });
    assert.equal(home, { home: 'home-1', at: '', epoch: 2, online: false });
    assert.equal(await store.getRoute(pid), home);
  });

  test('claimRoute with a stale epoch throws StaleOwnerError and changes nothing', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    const current = await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });

    const error = await rejects(
      peer.claimRoute(pid, { expectEpoch: 0, at: 'game-3', online: false }),
      StaleOwnerError,
      'claim with the old epoch',
    );
    assert.ok(error instanceof StaleOwnerError);
    assert.is(error.kind, 'StaleOwner');
    assert.is(error.details.epoch, 1, 'details.epoch is the current epoch');
    assert.is(error.details.at, 'game-2', 'details.at is the current holder');
    assert.equal(await store.getRoute(pid), current, 'a refused claim changed nothing');

    // An epoch from the future is just as stale.
    await rejects(peer.claimRoute(pid, { expectEpoch: 7, at: 'game-3', online: false }), StaleOwnerError, 'claim with a future epoch');
    assert.equal(await store.getRoute(pid), current);
  });

  test('claimRoute and setOnline on a player without a route throw NotFoundError', async () => {
    const { store } = w();
    const pid = nextPid();
    const error = await rejects(store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true }), NotFoundError, 'claim of an unknown player');
    assert.is(error.details.pid, pid);
    await rejects(store.setOnline(pid, 0, true), NotFoundError, 'setOnline of an unknown player');
    assert.is(await store.getRoute(pid), null, 'a refused claim created no route');
  });

  test('setOnline is fenced by the epoch', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    assert.equal(await store.setOnline(pid, 0, true), { home: 'home-1', at: '', epoch: 0, online: true });
    const claimed = await peer.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: false });

    const error = await rejects(store.setOnline(pid, 0, true), StaleOwnerError, 'setOnline with the old epoch');
    assert.is(error.details.epoch, 1);
    assert.equal(await store.getRoute(pid), claimed, 'a refused setOnline changed nothing');

    assert.equal(await peer.setOnline(pid, 1, true), { ...claimed, online: true });
    assert.equal(await store.getRoute(pid), { ...claimed, online: true });
  });

  test('setMark is fenced by the epoch and lists the player; unlistMarked only drops listings older than `below`', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    const home = `home-${pid}`;
    await store.ensureRoute(pid, home);
    const away = await peer.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    await rejects(store.setMark(pid, home, 'game-2', 0), StaleOwnerError, 'a mark under an old epoch');
    assert.is(await store.getMark(pid), null, 'a refused mark changed nothing');
    await store.setMark(pid, home, 'game-2', away.epoch);
    assert.equal(await peer.getMark(pid), { go: 'game-2', epoch: away.epoch });
    assert.equal(await peer.listMarked(home), [pid]);

    // A home that looked while he was at home (epoch 0) unlists what that state makes stale: not
    // the mark of the move that happened since (the race that once lost a player from the list).
    await store.unlistMarked(home, pid, 1);
    assert.equal(await peer.listMarked(home), [pid], 'a listing under a later epoch stays');
    await store.unlistMarked(home, pid, away.epoch);
    assert.equal(await peer.listMarked(home), [pid], 'a listing under the epoch itself stays');

    // He comes home (the claim clears the mark); the home unlists everything up to that epoch.
    const back = await store.claimRoute(pid, { expectEpoch: away.epoch, at: '', online: true });
    assert.is(await store.getMark(pid), null, 'a claim home clears the mark');
    await peer.unlistMarked(home, pid, back.epoch + 1);
    assert.equal(await store.listMarked(home), [], 'unlisted');
    await store.unlistMarked(home, pid, back.epoch + 1);
    assert.equal(await store.listMarked(home), [], 'unlisting twice is harmless');
  });

  test('CAS race: of 50 concurrent claims under one epoch exactly one wins, every round', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    const rounds = 5;
    const contenders = 50;
    await store.ensureRoute(pid, 'home-1');

    for (let round = 0; round < rounds; round++) {
      const results = await Promise.allSettled(
        Array.from({ length: contenders }, (_, i) =>
          (i % 2 === 0 ? store : peer).claimRoute(pid, { expectEpoch: round, at: `game-${round}-${i}`, online: true }),
        ),
      );
      const winners = results.filter((r): r is PromiseFulfilledResult<Route> => r.status === 'fulfilled');
      const losers = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.is(winners.length, 1, `round ${round}: exactly one claim wins (got ${winners.length})`);
      const won = winners[0]!.value;
      assert.is(won.epoch, round + 1, `round ${round}: the winner bumped the epoch`);
      assert.match(won.at, new RegExp(`^game-${round}-\\d+$`));
      assert.is(losers.length, contenders - 1);
      for (const loser of losers) {
        assert.ok(loser.reason instanceof StaleOwnerError, `round ${round}: a loser got ${String(loser.reason)}`);
        assert.is((loser.reason as StaleOwnerError).details.epoch, round + 1);
        assert.is((loser.reason as StaleOwnerError).details.at, won.at, 'a loser is told who won');
      }
      assert.equal(await store.getRoute(pid), won, `round ${round}: the stored route is the winner's`);
    }
    assert.is((await peer.getRoute(pid))!.epoch, rounds, 'final epoch = number of rounds');
  });

  // ---- fenced documents ----

  test('saveDocument under the current epoch stores the document (Date, Map, bigint) and its epoch', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    assert.is(await store.loadDocument(pid), null, 'no document yet');
    await store.ensureRoute(pid, 'home-1');
    assert.is(await store.loadDocument(pid), null, 'a route alone is no document');

    const data = {
      name: 'Ann',
      level: 7,
      born: new Date(Date.UTC(2024, 1, 29, 12, 30, 15, 250)),
      bag: new Map<string, number>([['sword', 1], ['potion', 12]]),
      gold: 12345678901234567890123n,
      tags: new Set(['a', 'b']),
      nested: { list: [1, 'two', null, { deep: true }] },
    };
    await store.saveDocument(pid, 0, data);

    const loaded = await peer.loadDocument(pid);
    assert.ok(loaded, 'the document was stored');
    assert.is(loaded.epoch, 0, 'the writer epoch is stored with it');
    assert.equal(loaded.data, data);
    const back = loaded.data as typeof data;
    assert.ok(back.born instanceof Date, 'a Date stays a Date');
    assert.is(back.born.getTime(), data.born.getTime());
    assert.ok(back.bag instanceof Map, 'a Map stays a Map');
    assert.is(back.bag.get('potion'), 12);
    assert.is(typeof back.gold, 'bigint', 'a bigint stays a bigint');
    assert.is(back.gold, 12345678901234567890123n);
    assert.ok(back.tags instanceof Set, 'a Set stays a Set');

    // Stored values are copies: changing what was saved or loaded does not change the store.
    data.bag.set('sword', 99);
    back.bag.set('potion', 0);
    const again = await store.loadDocument(pid);
    assert.is((again!.data as typeof data).bag.get('sword'), 1);
    assert.is((again!.data as typeof data).bag.get('potion'), 12);
  });

  test('saveDocument with an old epoch throws StaleOwnerError and leaves the document unchanged', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    await store.saveDocument(pid, 0, { gold: 1n, note: 'first' });

    // Another server takes the player: the old owner's epoch is now stale.
    await peer.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    const error = await rejects(store.saveDocument(pid, 0, { gold: 1_000_000n, note: 'lost update' }), StaleOwnerError, 'save under the old epoch');
    assert.is(error.details.epoch, 1);
    assert.is(error.details.at, 'game-2');
    assert.equal(await peer.loadDocument(pid), { data: { gold: 1n, note: 'first' }, epoch: 0 }, 'a refused save changed nothing');

    // The new owner saves under the new epoch.
    await peer.saveDocument(pid, 1, { gold: 2n, note: 'second' });
    assert.equal(await store.loadDocument(pid), { data: { gold: 2n, note: 'second' }, epoch: 1 });
  });

  test('saved call results: the latest REMEMBERED_CALLS are remembered, the oldest forgotten; "kept:" ones beside them, first', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    const [first] = await store.saveDocuments([{ pid, epoch: 0, data: { v: 0 }, calls: [['kept:recharge:o-1', '10']] }]);
    assert.is(first, null);
    // 400 ordinary calls: one save of one, then one of 300 (with a kept one among them), then 99 one by one.
    await store.saveDocuments([{ pid, epoch: 0, data: { v: 1 }, calls: [['call-0', '0']] }]);
    const many: [string, string][] = Array.from({ length: 300 }, (_, i) => [`call-${i + 1}`, String(i + 1)]);
    many.splice(150, 0, ['kept:recharge:o-2', '20']);
    await store.saveDocuments([{ pid, epoch: 0, data: { v: 2 }, calls: many }]);
    for (let i = 301; i < 400; i++) await store.saveDocuments([{ pid, epoch: 0, data: { v: 3 }, calls: [[`call-${i}`, String(i)]] }]);

    const check = (calls: [string, string][] | undefined, where: string) => {
      const byId = new Map(calls ?? []);
      assert.is(byId.get('kept:recharge:o-1'), '10', `${where}: a kept result outlives 400 later calls`);
      assert.is(byId.get('kept:recharge:o-2'), '20', `${where}: a kept result saved among others`);
      for (let i = 400 - REMEMBERED_CALLS; i < 400; i++) assert.is(byId.get(`call-${i}`), String(i), `${where}: call-${i} is among the latest`);
      assert.not.ok(byId.has('call-0'), `${where}: the oldest ordinary result is forgotten`);
      const ordinary = [...byId.keys()].filter((id) => !id.startsWith('kept:'));
      assert.ok(ordinary.length <= REMEMBERED_CALLS + 64, `${where}: at most ${REMEMBERED_CALLS} + 64 ordinary results (${ordinary.length})`);
      const order = ordinary.map((id) => Number(id.slice(5)));
      assert.equal(order, [...order].sort((a, b) => a - b), `${where}: ordinary results oldest first`);
    };
    check((await peer.loadDocument(pid))?.calls, 'loadDocument');
    const kept = ((await peer.loadDocument(pid))?.calls ?? []).slice(0, 2).map(([id]) => id).sort();
    assert.equal(kept, ['kept:recharge:o-1', 'kept:recharge:o-2'], 'the kept results come first');
    const { document } = await peer.claimAndLoad(pid, { expectEpoch: 0, at: 'game-2', online: true });
    check(document?.calls, 'claimAndLoad');
  });

  test('kept call results: keptCall answers one while remembered, a refused save stores none', async () => {
    const { store, peer } = w();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    await store.saveDocuments([{ pid, epoch: 0, data: { v: 1 }, calls: [['kept:recharge:o-1', '10'], ['call-1', '1'], ['kept:recharge:o-2', '20']] }]);
    assert.is(await peer.keptCall(pid, 'kept:recharge:o-1'), '10');
    assert.is(await peer.keptCall(pid, 'kept:recharge:o-2'), '20');
    assert.is(await peer.keptCall(pid, 'kept:recharge:o-3'), null, 'never stored');
    assert.is(await peer.keptCall(nextPid(), 'kept:recharge:o-1'), null, 'another player');
    assert.equal((await peer.loadDocument(pid))?.data, { v: 1 }, 'the document itself is only the document');
    const ids = ((await store.loadDocument(pid))?.calls ?? []).map(([id]) => id);
    assert.equal(ids.slice(0, 2).sort(), ['kept:recharge:o-1', 'kept:recharge:o-2'], 'the kept first');
    assert.equal(ids.slice(2), ['call-1']);

    // A save refused by the fence stores no kept result either.
    await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    const [refused] = await store.saveDocuments([{ pid, epoch: 0, data: { v: 2 }, calls: [['kept:recharge:o-4', '40']] }]);
    assert.ok(refused instanceof StaleOwnerError);
    assert.is(await peer.keptCall(pid, 'kept:recharge:o-4'), null);
  });

  test('a kept call result is forgotten once older than the store\'s retention (loadDocument, claimAndLoad, keptCall)', async () => {
    const { open } = w();
    const RETENTION_MS = 300;
    const short = await open({ keptCallRetentionMs: RETENTION_MS });
    const pid = nextPid();
    await short.ensureRoute(pid, 'home-1');
    const sentAt = Date.now();
    await short.saveDocuments([{ pid, epoch: 0, data: { v: 1 }, calls: [['kept:recharge:old', '1']] }]);
    assert.is(await short.keptCall(pid, 'kept:recharge:old'), '1', 'remembered right after');
    await eventually('the kept result to be forgotten after its retention', async () =>
      (await short.keptCall(pid, 'kept:recharge:old')) === null);
    assert.ok(Date.now() - sentAt >= RETENTION_MS, 'not forgotten before its retention'); // a lower bound: a slow machine only adds to it
    assert.is((await short.loadDocument(pid))?.calls, undefined, 'loadDocument has it no more');
    // A newer one is remembered, the old one stays forgotten.
    await short.saveDocuments([{ pid, epoch: 0, data: { v: 2 }, calls: [['kept:recharge:new', '2']] }]);
    const { document } = await short.claimAndLoad(pid, { expectEpoch: 0, at: 'game-2', online: true });
    assert.equal(document?.calls, [['kept:recharge:new', '2']], 'claimAndLoad: only the newer one');
    assert.is(await short.keptCall(pid, 'kept:recharge:old'), null);
  });

  test(`at most MAX_KEPT_CALLS (${MAX_KEPT_CALLS}) kept call results per player: the oldest are forgotten first`, async () => {
    const { store, peer } = w();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    const early: [string, string][] = Array.from({ length: 30 }, (_, i) => [`kept:early-${i}`, String(i)]);
    await store.saveDocuments([{ pid, epoch: 0, data: { v: 1 }, calls: early }]);
    const before = Date.now();
    await eventually('the clock to move on by a millisecond', async () => Date.now() > before);
    const late: [string, string][] = Array.from({ length: MAX_KEPT_CALLS }, (_, i) => [`kept:late-${i}`, String(i)]);
    await store.saveDocuments([{ pid, epoch: 0, data: { v: 2 }, calls: late }]);
    const ids = new Set(((await peer.loadDocument(pid))?.calls ?? []).map(([id]) => id));
    assert.is(ids.size, MAX_KEPT_CALLS);
    assert.ok(late.every(([id]) => ids.has(id)), 'every one of the later save is remembered');
    assert.is(await peer.keptCall(pid, 'kept:early-0'), null, 'the oldest were forgotten');
    assert.is(await peer.keptCall(pid, `kept:late-${MAX_KEPT_CALLS - 1}`), String(MAX_KEPT_CALLS - 1));
  });

  test('saveDocument for a player without a route throws NotFoundError and stores nothing', async () => {
    const { store } = w();
    const pid = nextPid();
    await rejects(store.saveDocument(pid, 0, { x: 1 }), NotFoundError, 'save of an unrouted player');
    assert.is(await store.loadDocument(pid), null);
  });

  test('saveDocuments fences each save on its own and reports per save, in order', async () => {
    const { store, peer } = w();
    const [a, b, c, d] = [nextPid(), nextPid(), nextPid(), nextPid()];
    for (const pid of [a, b, c, d]) await store.ensureRoute(pid, 'home-1');
    await store.saveDocument(b, 0, { who: 'b', v: 0 });
    await peer.claimRoute(b, { expectEpoch: 0, at: 'game-2', online: true }); // b: epoch 1
    await peer.claimRoute(d, { expectEpoch: 0, at: 'game-2', online: true });
    await peer.claimRoute(d, { expectEpoch: 1, at: 'game-3', online: true }); // d: epoch 2

    const results = await store.saveDocuments([
      { pid: a, epoch: 0, data: { who: 'a', v: 1, at: new Date(0) } },
      { pid: b, epoch: 0, data: { who: 'b', v: 1 } },
      { pid: c, epoch: 0, data: { who: 'c', v: 1, m: new Map([[1, 2n]]) } },
      { pid: d, epoch: 1, data: { who: 'd', v: 1 } },
    ]);
    assert.is(results.length, 4);
    assert.is(results[0], null, 'a: fresh save stored');
    assert.ok(results[1] instanceof StaleOwnerError, `b: stale save refused (got ${String(results[1])})`);
    assert.is((results[1] as StaleOwnerError).details.epoch, 1);
    assert.is(results[2], null, 'c: fresh save stored');
    assert.ok(results[3] instanceof StaleOwnerError, `d: stale save refused (got ${String(results[3])})`);
    assert.is((results[3] as StaleOwnerError).details.epoch, 2);
    assert.is((results[3] as StaleOwnerError).details.at, 'game-3');

    assert.equal(await peer.loadDocument(a), { data: { who: 'a', v: 1, at: new Date(0) }, epoch: 0 });
    assert.equal(await peer.loadDocument(b), { data: { who: 'b', v: 0 }, epoch: 0 }, 'b unchanged');
    assert.equal(await peer.loadDocument(c), { data: { who: 'c', v: 1, m: new Map([[1, 2n]]) }, epoch: 0 });
    assert.is(await peer.loadDocument(d), null, 'd: nothing stored');

    assert.equal(await store.saveDocuments([]), [], 'an empty batch is fine');
  });

  // ---- publications ----

  test('every route change is published to listeners on this and the other server', async () => {
    const { store, peer } = w();
    const here = new Inbox<RouteChange>('route listener on the writing store');
    const there = new Inbox<RouteChange>('route listener on the other store');
    store.onRouteChange(here.push);
    peer.onRouteChange(there.push);
    const pid = nextPid();

    await store.ensureRoute(pid, 'home-1');
    await store.ensureRoute(pid, 'home-9'); // no change: no publication
    await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    await rejects(store.claimRoute(pid, { expectEpoch: 0, at: 'game-3', online: true }), StaleOwnerError, 'stale claim');
    await store.setOnline(pid, 1, false);
    await rejects(store.setOnline(pid, 0, true), StaleOwnerError, 'stale setOnline');
    await store.claimRoute(pid, { expectEpoch: 1, at: '', online: false });

    const expected: RouteChange[] = [
      { pid, home: 'home-1', at: '', epoch: 0, online: false },
      { pid, home: 'home-1', at: 'game-2', epoch: 1, online: true },
      { pid, home: 'home-1', at: 'game-2', epoch: 1, online: false },
      { pid, home: 'home-1', at: '', epoch: 2, online: false },
    ];
    for (const inbox of [here, there]) {
      for (const change of expected) await inbox.waitForEqual(change);
      // Everything arrived, in order, and nothing else (the no-ops published nothing).
      assert.equal(inbox.events.filter((e) => e.pid === pid), expected);
    }
  });

  test('an unsubscribed route listener hears nothing more', async () => {
    const { store } = w();
    const gone = new Inbox<RouteChange>('unsubscribed listener');
    const kept = new Inbox<RouteChange>('kept listener');
    const unsubscribe = store.onRouteChange(gone.push);
    store.onRouteChange(kept.push);
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    await gone.waitFor('the first change', (e) => e.pid === pid && e.epoch === 0);
    unsubscribe();
    await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    // Both listeners are called for the same publication, so once the kept one has it, the other would have too.
    await kept.waitFor('the claim', (e) => e.pid === pid && e.epoch === 1);
    assert.is(gone.events.filter((e) => e.pid === pid).length, 1, 'no change after unsubscribing');
  });

  test('updateProfile bumps the version, merges fields, publishes the change; getProfile reads it', async () => {
    const { store, peer } = w();
    const here = new Inbox<ProfileChange>('profile listener on the writing store');
    const there = new Inbox<ProfileChange>('profile listener on the other store');
    store.onProfileChange(here.push);
    peer.onProfileChange(there.push);
    const pid = nextPid();
    assert.is(await store.getProfile(pid), null, 'no profile yet');

    const first = await store.updateProfile(pid, { name: 'Ann', level: 1, vip: false });
    assert.equal(first, { pid, version: 1, fields: { name: 'Ann', level: 1, vip: false } });
    const second = await peer.updateProfile(pid, { level: 2, guild: null, vip: true });
    assert.equal(second, { pid, version: 2, fields: { name: 'Ann', level: 2, vip: true, guild: null } });
    assert.equal(await store.getProfile(pid), second);
    assert.equal(await peer.getProfile(pid), second);

    const expected: ProfileChange[] = [
      { pid, version: 1, changed: { name: 'Ann', level: 1, vip: false } },
      { pid, version: 2, changed: { level: 2, guild: null, vip: true } },
    ];
    for (const inbox of [here, there]) {
      for (const change of expected) await inbox.waitForEqual(change);
      assert.equal(inbox.events.filter((e) => e.pid === pid), expected);
    }
  });

  test('syncProfileRoute copies the route into the profile (home, server, online), publishing only what changed', async () => {
    const { store, peer } = w();
    const changes = new Inbox<ProfileChange>('profile listener on the other store');
    peer.onProfileChange(changes.push);
    const pid = nextPid();
    assert.is(await store.syncProfileRoute(pid), null, 'no route, no profile');
    assert.is(await store.getProfile(pid), null);

    await store.ensureRoute(pid, 'home-1');
    await store.updateProfile(pid, { name: 'Dana' });
    const first = await store.syncProfileRoute(pid);
    assert.equal(first, { pid, version: 2, fields: { name: 'Dana', home: 'home-1', server: 'home-1', online: false } });
    assert.equal(await store.syncProfileRoute(pid), first, 'nothing changed: same version, no publication');

    await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    const moved = await peer.syncProfileRoute(pid);
    assert.equal(moved, { pid, version: 3, fields: { name: 'Dana', home: 'home-1', server: 'game-2', online: true } });
    await store.setOnline(pid, 1, false);
    assert.equal((await store.syncProfileRoute(pid))!.fields, { name: 'Dana', home: 'home-1', server: 'game-2', online: false });

    await changes.waitForEqual({ pid, version: 4, changed: { online: false } });
    assert.equal(changes.events.filter((e) => e.pid === pid), [
      { pid, version: 1, changed: { name: 'Dana' } },
      { pid, version: 2, changed: { home: 'home-1', server: 'home-1', online: false } },
      { pid, version: 3, changed: { server: 'game-2', online: true } },
      { pid, version: 4, changed: { online: false } },
    ]);
  });

  test('scanProfiles pages through every profile with its version and the fields asked for', async () => {
    const { store, peer } = w();
    const pids = Array.from({ length: 1200 }, () => nextPid()); // more than one page
    await Promise.all(pids.map((pid, i) => store.updateProfile(pid, i % 2 === 0 ? { level: i, name: `p${i}` } : { name: `p${i}` })));
    await store.updateProfile(pids[0]!, { level: 7 }); // version 2
    const seen = new Map<number, { version: number; fields: Record<string, unknown> }>();
    let cursor = '0';
    let pages = 0;
    do {
      const page = await peer.scanProfiles(cursor, ['level', 'power']);
      for (const profile of page.profiles) seen.set(profile.pid, profile);
      cursor = page.cursor;
      assert.ok(++pages < 10_000, 'the pass ends');
    } while (cursor !== '0');
    for (const [i, pid] of pids.entries()) {
      const profile = seen.get(pid);
      assert.ok(profile, `profile ${pid} was seen`);
      const level = i === 0 ? 7 : i % 2 === 0 ? i : undefined;
      assert.equal(profile!.fields, level === undefined ? {} : { level }, `profile ${pid}: only the fields asked for, those it has`);
      assert.is(profile!.version, i === 0 ? 2 : 1);
    }
  });

  test('fillProfile sets only the fields a profile lacks, and publishes only those', async () => {
    const { store, peer } = w();
    const changes = new Inbox<ProfileChange>('profile listener');
    peer.onProfileChange(changes.push);
    const pid = nextPid();
    assert.equal(await store.fillProfile(pid, { name: 'Eli', level: 3 }), { pid, version: 1, fields: { name: 'Eli', level: 3 } });
    await store.updateProfile(pid, { level: 9 });
    assert.equal(await store.fillProfile(pid, { name: 'Other', level: 1, power: 40 }), { pid, version: 3, fields: { name: 'Eli', level: 9, power: 40 } });
    assert.equal(await store.fillProfile(pid, { name: 'Again' }), { pid, version: 3, fields: { name: 'Eli', level: 9, power: 40 } }, 'nothing missing: no change');
    await changes.waitForEqual({ pid, version: 3, changed: { power: 40 } });
    assert.is(changes.events.filter((e) => e.pid === pid).length, 3);
  });

  // ---- guilds ----

  test('createGuild / getGuild / setGuildMember', async () => {
    const { store, peer } = w();
    assert.is(await store.getGuild('g1'), null);
    const made = await store.createGuild('g1', 'Wolves');
    assert.ok(made.created);
    assert.equal({ ...made.guild, createdAt: 0 }, { gid: 'g1', name: 'Wolves', createdAt: 0, members: [], treasury: {} });
    const again = await peer.createGuild('g1', 'Another name');
    assert.not.ok(again.created, 'a second create changes nothing');
    assert.is(again.guild.name, 'Wolves');
    assert.ok(await store.setGuildMember('g1', 2002, true));
    assert.ok(await peer.setGuildMember('g1', 1001, true));
    assert.not.ok(await store.setGuildMember('g1', 1001, true), 'already a member');
    assert.equal((await peer.getGuild('g1'))!.members, [1001, 2002]);
    assert.ok(await store.setGuildMember('g1', 2002, false));
    assert.not.ok(await store.setGuildMember('g1', 2002, false));
    assert.equal((await store.getGuild('g1'))!.members, [1001]);
    await rejects(store.setGuildMember('nope', 1, true), NotFoundError, 'a member of a guild that does not exist');
  });

  test('applyTreasuryChanges: deposits, deductions, refusals, replays and conflicts, in order; the ledger', async () => {
    const { store, peer } = w();
    await store.createGuild('g2', 'Bears');
    const change = (requestId: string, kind: 'deposit' | 'deduct', amount: number, resource = 'wood'): TreasuryChange =>
      ({ gid: 'g2', requestId, kind, resource, amount, reason: `test ${requestId}` });
    const summary = (outcomes: TreasuryOutcome[]) => outcomes.map((o) => `${o.requestId} ${o.status} ${o.balance}${o.replayed ? ' replayed' : ''}`);
    assert.equal(summary(await store.applyTreasuryChanges([
      change('r1', 'deposit', 10),
      change('r2', 'deduct', 4),
      change('r3', 'deduct', 7),
      change('r4', 'deduct', 6),
      change('r2', 'deduct', 4),
      change('r5', 'deposit', 3, 'stone'),
    ])), ['r1 applied 10', 'r2 applied 6', 'r3 insufficient 6', 'r4 applied 0', 'r2 applied 6 replayed', 'r5 applied 3']);
    assert.equal((await peer.getGuild('g2'))!.treasury, { wood: 0, stone: 3 });

    const [replayed] = await peer.applyTreasuryChanges([change('r3', 'deduct', 7)]);
    assert.equal(replayed, { requestId: 'r3', status: 'insufficient', kind: 'deduct', resource: 'wood', amount: 7, balance: 6, replayed: true },
      'a refused request stays refused: its first outcome');
    const [conflict] = await store.applyTreasuryChanges([change('r1', 'deduct', 1)]);
    assert.is(conflict!.status, 'conflict', 'a request id used again for another change');
    const [missing] = await store.applyTreasuryChanges([{ ...change('r9', 'deposit', 1), gid: 'no-such-guild' }]);
    assert.is(missing!.status, 'missing');
    const [overflow] = await store.applyTreasuryChanges([change('r6', 'deposit', Number.MAX_SAFE_INTEGER, 'stone')]);
    assert.is(overflow!.status, 'overflow');
    const [big] = await store.applyTreasuryChanges([change('r7', 'deposit', Number.MAX_SAFE_INTEGER - 3, 'stone')]);
    assert.equal([big!.status, big!.balance], ['applied', Number.MAX_SAFE_INTEGER], 'balances are exact up to MAX_SAFE_INTEGER');
    assert.equal((await store.getGuild('g2'))!.treasury, { wood: 0, stone: Number.MAX_SAFE_INTEGER });

    const ledger = await peer.guildLedger('g2', 10);
    assert.equal(ledger.map((e) => `${e.requestId} ${e.kind} ${e.resource} ${e.amount} ${e.balance} ${e.reason}`), [
      `r7 deposit stone ${Number.MAX_SAFE_INTEGER - 3} ${Number.MAX_SAFE_INTEGER} test r7`,
      'r5 deposit stone 3 3 test r5', 'r4 deduct wood 6 0 test r4', 'r2 deduct wood 4 6 test r2', 'r1 deposit wood 10 10 test r1',
    ], 'applied changes only, newest first');
    assert.equal((await store.guildLedger('g2', 2)).length, 2);
  });

  test('concurrent deductions from two stores: exactly what the balance covers succeeds, retries count once', async () => {
    const { store, peer } = w();
    await store.createGuild('g3', 'Owls');
    await store.applyTreasuryChanges([{ gid: 'g3', requestId: 'fund', kind: 'deposit', resource: 'gold', amount: 100, reason: 'fund' }]);
    const deduct = (i: number): TreasuryChange => ({ gid: 'g3', requestId: `d${i}`, kind: 'deduct', resource: 'gold', amount: 1, reason: 'test' });
    const batches: Promise<TreasuryOutcome[]>[] = [];
    for (let b = 0; b < 20; b++) {
      const ids = Array.from({ length: 10 }, (_, i) => b * 10 + i);
      // Every batch also retries two requests of the batch before it.
      const retries = b > 0 ? [b * 10 - 1, b * 10 - 2] : [];
      batches.push((b % 2 ? peer : store).applyTreasuryChanges([...ids, ...retries].map(deduct)));
    }
    const outcomes = (await Promise.all(batches)).flat();
    const firsts = outcomes.filter((o) => !o.replayed);
    assert.is(firsts.length, 200);
    assert.is(firsts.filter((o) => o.status === 'applied').length, 100);
    assert.ok(outcomes.every((o) => o.balance >= 0));
    for (const retry of outcomes.filter((o) => o.replayed)) {
      const first = firsts.find((o) => o.requestId === retry.requestId)!;
      assert.equal({ ...retry, replayed: false }, first, `retry of ${retry.requestId} returns its first outcome`);
    }
    assert.equal((await peer.getGuild('g3'))!.treasury, { gold: 0 });
  });

  // ---- leaderboards ----

  test('setRankScore / rankTop / rankOf: best first, ties in Redis order, removal', async () => {
    const { store, peer } = w();
    await store.setRankScore('level', 1001, 5);
    await peer.setRankScore('level', 1002, 9);
    await store.setRankScore('level', 1003, 7.5);
    await store.setRankScore('level', 1004, 7.5);
    await store.setRankScore('power', 1001, 100);
    assert.equal(await peer.rankTop('level', 10), [
      { rank: 1, pid: 1002, score: 9 }, { rank: 2, pid: 1004, score: 7.5 }, { rank: 3, pid: 1003, score: 7.5 }, { rank: 4, pid: 1001, score: 5 },
    ]);
    assert.equal(await store.rankTop('level', 2), [{ rank: 1, pid: 1002, score: 9 }, { rank: 2, pid: 1004, score: 7.5 }]);
    assert.equal(await store.rankOf('level', 1001), { rank: 4, pid: 1001, score: 5 });
    assert.equal(await store.rankOf('power', 1001), { rank: 1, pid: 1001, score: 100 });
    assert.is(await store.rankOf('level', 9999), null);
    await store.setRankScore('level', 1002, 1);
    await store.setRankScore('level', 1004, null);
    assert.equal((await peer.rankTop('level', 10)).map((e) => e.pid), [1003, 1001, 1002]);
    assert.equal(await store.rankTop('empty', 10), []);
  });

  // ---- accounts and orders ----

  test('createAccount allocates player ids once per account name; getAccount', async () => {
    const { store, peer } = w();
    assert.is(await store.getAccount('ann'), null);
    const ann = await store.createAccount('ann', 'hash-a', 'HS');
    assert.ok(ann.created);
    assert.equal({ ...ann.account, createdAt: 0 }, { account: 'ann', pid: FIRST_ACCOUNT_PID, home: 'HS', passwordHash: 'hash-a', createdAt: 0 });
    const bob = await peer.createAccount('bob', 'hash-b', 'GS1');
    assert.is(bob.account.pid, FIRST_ACCOUNT_PID + 1);
    const again = await peer.createAccount('ann', 'other', 'GS2');
    assert.not.ok(again.created);
    assert.equal(again.account, ann.account, 'the existing account, unchanged');
    assert.equal(await peer.getAccount('bob'), bob.account);
  });

  test('recharge orders: created once per id, pending oldest first, delivered once', async () => {
    const { store, peer } = w();
    const a = await store.createOrder('o-1', 1001, 60);
    assert.ok(a.created);
    assert.equal({ ...a.order, createdAt: 0 }, { order: 'o-1', pid: 1001, amount: 60, state: 'pending', createdAt: 0, deliveredAt: 0 });
    await peer.createOrder('o-2', 1001, 30);
    await store.createOrder('o-3', 2002, 10);
    const replay = await peer.createOrder('o-1', 1001, 999);
    assert.not.ok(replay.created, 'a replayed order id adds nothing');
    assert.equal(replay.order, a.order);
    assert.equal((await store.pendingOrders(1001)).map((o) => o.order), ['o-1', 'o-2']);
    assert.equal((await peer.playersWithPendingOrders()).sort(), [1001, 2002]);

    const delivered = await store.markOrderDelivered('o-1');
    assert.is(delivered.state, 'delivered');
    assert.ok(delivered.deliveredAt > 0);
    assert.equal(await peer.markOrderDelivered('o-1'), delivered, 'idempotent');
    assert.equal(await peer.getOrder('o-1'), delivered);
    assert.equal((await store.pendingOrders(1001)).map((o) => o.order), ['o-2']);
    await store.markOrderDelivered('o-2');
    assert.equal(await store.pendingOrders(1001), []);
    assert.equal(await store.playersWithPendingOrders(), [2002]);
    assert.is(await store.getOrder('o-9'), null);
    await rejects(store.markOrderDelivered('o-9'), NotFoundError, 'delivering an order that does not exist');
  });

  // ---- server registry ----

  test('announceServer / listServers / getServer / withdrawServer', async () => {
    const { store, peer } = w();
    assert.equal(await store.listServers(), [], 'no servers yet');
    assert.is(await store.getServer('game-1'), null);

    const before = Date.now();
    await store.announceServer(record('game-2', ['game']), 60_000);
    await peer.announceServer(record('game-1', ['game', 'gateway']), 60_000);
    const after = Date.now();

    const list = await store.listServers();
    assert.equal(list.map((s) => s.name), ['game-1', 'game-2'], 'sorted by name');
    for (const server of list) {
      assert.is(typeof server.seenAt, 'number');
      assert.ok(server.seenAt >= before && server.seenAt <= after, `seenAt ${server.seenAt} is the announcement time`);
      assert.equal(server, { ...record(server.name, server.name === 'game-1' ? ['game', 'gateway'] : ['game']), seenAt: server.seenAt });
    }
    assert.equal(await peer.getServer('game-2'), list[1]);
    assert.equal(await peer.listServers(), list, 'every server sees the same registry');

    await peer.withdrawServer('game-2');
    assert.is(await store.getServer('game-2'), null, 'withdrawn');
    assert.equal((await store.listServers()).map((s) => s.name), ['game-1']);
    await store.withdrawServer('never-announced'); // harmless
  });

  test('a server record expires unless re-announced', async () => {
    const { store, peer } = w();
    await store.announceServer(record('short'), 200);
    await store.announceServer(record('long'), 600_000);
    await eventually('expiry of the 200 ms record', async () => !(await peer.listServers()).some((s) => s.name === 'short'));
    assert.is(await peer.getServer('short'), null, 'expired: getServer is null');
    assert.equal((await peer.listServers()).map((s) => s.name), ['long'], 'the other record is still live');

    await store.announceServer(record('short'), 600_000);
    assert.equal((await peer.listServers()).map((s) => s.name), ['long', 'short'], 're-announced: back');
    assert.is((await peer.getServer('short'))?.name, 'short');
  });

  // ---- lifecycle ----

  test('close() closes a store: its connections and timers are gone, it hears nothing more, the others go on', async () => {
    const { peer } = w();
    const before = handles();
    const extra = await w().open();
    const pid = nextPid();
    const heard = new Inbox<RouteChange>('route listener of the closed store');
    extra.onRouteChange(heard.push);
    await extra.ensureRoute(pid, 'home-1');
    assert.is((await extra.getRoute(pid))?.home, 'home-1');
    await heard.waitFor('its own route change, while open', (change) => change.pid === pid);
    await extra.close();
    // Everything it opened is closed: no socket or timer of it keeps the process alive.
    await eventually('the closed store to release its sockets and timers', async () => {
      const now = handles();
      if (now.sockets > before.sockets || now.timers > before.timers) {
        throw new Error(`before it was opened: ${JSON.stringify(before)}; now: ${JSON.stringify(now)}`);
      }
      return true;
    });
    // It hears nothing more; the stores still open work as before.
    const other = nextPid();
    const peerHeard = new Inbox<RouteChange>('route listener of the store still open');
    peer.onRouteChange(peerHeard.push);
    await peer.ensureRoute(other, 'home-2');
    await peerHeard.waitFor('the change, on the store still open', (change) => change.pid === other);
    assert.equal(heard.events.filter((change) => change.pid === other), [], 'the closed store heard a change');
    assert.is((await peer.getRoute(other))?.home, 'home-2');
  });

  test.run();
}

// ---- the two implementations -------------------------------------------------------------------------

contract('MemoryStore', {
  async setup() {},
  async teardown() {},
  async makeStore() {
    const opened: Store[] = [];
    const open = async (options: StoreOptions = {}): Promise<Store> => {
      const store = new MemoryStore(options);
      await store.connect();
      opened.push(store);
      return store;
    };
    const store = await open();
    return {
      store,
      peer: store, // one process, one state: the "other server" is the same instance
      open,
      async close() {
        for (const s of opened) await s.close();
      },
    };
  },
});

/** A RedisStore on `url`, connected. */
async function redisStore(url: string, commandTimeoutMs?: number, options: StoreOptions = {}): Promise<RedisStore> {
  const store = new RedisStore({ url, commandTimeoutMs, ...options });
  await store.connect();
  return store;
}

{
  let redis: RedisHandle | undefined;
  let admin: Redis | undefined;
  contract('RedisStore', {
    async setup() {
      redis = await startRedis();
      admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await admin.connect();
    },
    async teardown() {
      admin?.disconnect();
      admin = undefined;
      await redis?.stop();
      redis = undefined;
    },
    async makeStore() {
      if (!redis || !admin) throw new Error('redis-server did not start');
      const url = redis.url;
      await admin.flushall();
      const opened: Store[] = [];
      const open = async (options: StoreOptions = {}): Promise<Store> => {
        const store = await redisStore(url, undefined, options);
        opened.push(store);
        return store;
      };
      const store = await open();
      const peer = await open();
      return {
        store,
        peer,
        open,
        async close() {
          for (const s of opened) await s.close();
        },
      };
    },
  });
}

// ---- the same contract on a Redis Cluster (three masters) ------------------------------------------------

{
  let cluster: RedisClusterHandle | undefined;
  const openOn = async (url: string, opened: Store[], options: StoreOptions = {}): Promise<Store> => {
    const store = new RedisStore({ url, cluster: true, ...options });
    await store.connect();
    opened.push(store);
    return store;
  };
  contract('RedisStore on a Redis Cluster', {
    async setup() {
      cluster = await startRedisCluster(3);
    },
    async teardown() {
      await cluster?.stop();
      cluster = undefined;
    },
    async makeStore() {
      if (!cluster) throw new Error('the Redis Cluster did not start');
      await cluster.flushAll();
      const opened: Store[] = [];
      // The two servers start from different nodes: each finds the whole cluster.
      const store = await openOn(cluster.nodes[0]!.url, opened);
      const peer = await openOn(cluster.nodes[1]!.url, opened);
      return {
        store,
        peer,
        open: (options?: StoreOptions) => openOn(cluster!.nodes[2]!.url, opened, options),
        async close() {
          for (const s of opened) await s.close();
        },
      };
    },
  });

  const test = suite('RedisStore on a Redis Cluster: losing a node');
  const opened: Store[] = [];
  test.before(async () => { cluster = await startRedisCluster(3); });
  test.after(async () => {
    for (const store of opened.splice(0)) await store.close();
    await cluster?.stop();
    cluster = undefined;
  });

  test('the node a store listens on stops: it listens on another, says so (onReconnect) and hears publications again', async () => {
    const store = await openOn(cluster!.nodes[0]!.url, opened); // listens on node 0
    const peer = await openOn(cluster!.nodes[1]!.url, opened);
    const reconnected = new Inbox<number>('onReconnect listener');
    store.onReconnect(() => reconnected.push(1));
    const changes = new Inbox<RouteChange>('route listener');
    store.onRouteChange(changes.push);
    const before = nextPid();
    await peer.ensureRoute(before, 'home-1');
    await changes.waitFor('a route change while every node is up', (change) => change.pid === before);

    await cluster!.nodes[0]!.kill();
    await reconnected.waitFor('onReconnect once the store listens on another node', () => true, 30_000);
    // A player whose slot a live node serves (node 0's slots are unserved while it is down).
    let pid = 0;
    for (let tries = 0; pid === 0; tries++) {
      const candidate = nextPid();
      try {
        await peer.ensureRoute(candidate, 'home-1');
        pid = candidate;
      } catch (error) {
        if (tries > 50) throw new Error(`no live node took a route in 50 tries: ${(error as Error).message}`);
      }
    }
    await changes.waitFor('a route change published while node 0 is down', (change) => change.pid === pid, 30_000);
    assert.equal(await store.getRoute(pid), { home: 'home-1', at: '', epoch: 0, online: false }, 'commands reach the live nodes');

    await cluster!.nodes[0]!.restart();
    await cluster!.waitHealthy();
    // Every node serves again: 30 new players in a row (some on node 0's slots) all get routes.
    let last = 0;
    await eventually('every node to take routes again', async () => {
      for (let i = 0; i < 30; i++) {
        last = nextPid();
        await peer.ensureRoute(last, 'home-1');
      }
      return true;
    });
    await changes.waitFor('route changes after node 0 is back', (change) => change.pid === last);
  });

  test.run();
}

// ---- Redis only: where kept call results live ----------------------------------------------------------

{
  const test = suite('RedisStore: the kept ledger');
  let redis: RedisHandle | undefined;
  let admin: Redis | undefined;
  const stores: Store[] = [];
  test.before(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
  });
  test.after(async () => {
    for (const store of stores.splice(0)) await store.close();
    admin?.disconnect();
    await redis?.stop();
  });

  test('kept results live in kf:{pid}:kept beside the document (never in its hash), and the ledger expires', async () => {
    const RETENTION_MS = 60_000;
    const store = await redisStore(redis!.url, undefined, { keptCallRetentionMs: RETENTION_MS });
    stores.push(store);
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    await store.saveDocuments([{ pid, epoch: 0, data: { v: 1 }, calls: [['kept:recharge:o-1', '10'], ['call-1', '1']] }]);
    const fields = await admin!.hkeys(`kf:{${pid}}:doc`);
    assert.equal(fields.filter((field) => field.includes('kept:')), [], `the document hash holds no kept result: ${fields.join(', ')}`);
    assert.ok(fields.includes('c:call-1'), 'ordinary results stay in the document hash');
    assert.equal(await admin!.hgetall(`kf:{${pid}}:kept`), { 'kept:recharge:o-1': '10' });
    for (const key of [`kf:{${pid}}:kept`, `kf:{${pid}}:kept-at`]) {
      const ttl = await admin!.pttl(key);
      assert.ok(ttl > 0 && ttl <= RETENTION_MS, `${key} expires (PTTL ${ttl})`);
    }
    // A document stored by an older kuafu, with a kept result in its hash: still found.
    await admin!.hset(`kf:{${pid}}:doc`, 'c:kept:recharge:o-0', '5');
    assert.is(await store.keptCall(pid, 'kept:recharge:o-0'), '5');
    assert.ok((await store.loadDocument(pid))?.calls?.some(([id, text]) => id === 'kept:recharge:o-0' && text === '5'));
  });

  test.run();
}

// ---- Redis only: losing and regaining the connection ---------------------------------------------------

{
  const COMMAND_TIMEOUT_MS = 2_000;
  const test = suite('RedisStore: Redis restarts and outages');
  let redis: RedisHandle | undefined;
  const stores: Store[] = [];
  const open = async (): Promise<Store> => {
    const store = await redisStore(redis!.url, COMMAND_TIMEOUT_MS);
    stores.push(store);
    return store;
  };

  test.before(async () => { redis = await startRedis(); });
  test.after(async () => {
    for (const store of stores.splice(0)) await store.close();
    await redis?.stop();
    redis = undefined;
  });

  test('after redis.restart(): onReconnect fires, saved data is still there, commands and publications work', async () => {
    const store = await open();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    await store.saveDocument(pid, 0, { gold: 5n, when: new Date(1000) });
    let reconnects = 0;
    const reconnected = new Inbox<number>('onReconnect listener');
    store.onReconnect(() => reconnected.push(++reconnects));
    const changes = new Inbox<RouteChange>('route listener across the restart');
    store.onRouteChange(changes.push);

    await redis!.restart();
    await reconnected.waitFor('a reconnection after restart', () => true, POLL_DEADLINE_MS);

    // Data saved before the restart is still there (the commands may need a moment to be ready again).
    await eventually('getRoute after the restart', async () => (await store.getRoute(pid))?.epoch === 0);
    assert.equal(await store.loadDocument(pid), { data: { gold: 5n, when: new Date(1000) }, epoch: 0 });

    // New commands work: scripts (reloaded on the new server), fenced saves in a pipeline, registry.
    assert.equal(await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true }), { home: 'home-1', at: 'game-2', epoch: 1, online: true });
    await rejects(store.saveDocument(pid, 0, { gold: 0n }), StaleOwnerError, 'stale save after restart');
    await store.saveDocument(pid, 1, { gold: 6n });
    assert.equal(await store.loadDocument(pid), { data: { gold: 6n }, epoch: 1 });
    await store.announceServer(record('game-2'), 60_000);
    assert.equal((await store.listServers()).map((s) => s.name), ['game-2']);

    // Publications flow again once the subscriber is back: toggle online until a change arrives.
    let online = false;
    await eventually('a route publication after the restart', async () => {
      online = !online;
      await store.setOnline(pid, 1, online);
      return changes.events.some((e) => e.pid === pid && e.epoch === 1);
    });
  });

  test('while Redis is down a command fails with StoreUnavailableError (it does not hang); then it recovers', async () => {
    const store = await open();
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    await store.saveDocument(pid, 0, { gold: 1n });
    let reconnects = 0;
    const reconnected = new Inbox<number>('onReconnect listener');
    store.onReconnect(() => reconnected.push(++reconnects));

    await redis!.kill();
    // Generous slack over the command timeout for a loaded machine; the point is "fails, not hangs".
    const limit = COMMAND_TIMEOUT_MS + 8_000;
    const down = (what: string, command: Promise<unknown>) =>
      rejects(within(command, limit, what), StoreUnavailableError, `${what} while Redis is down`);
    const error = await down('getRoute', store.getRoute(pid));
    assert.is(error.kind, 'StoreUnavailable');
    await down('claimRoute', store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true }));
    await down('setOnline', store.setOnline(pid, 0, true));
    await down('saveDocument', store.saveDocument(pid, 0, { gold: 2n }));
    await down('loadDocument', store.loadDocument(pid));
    await down('updateProfile', store.updateProfile(pid, { level: 3 }));
    await down('syncProfileRoute', store.syncProfileRoute(pid));
    await down('applyTreasuryChanges', store.applyTreasuryChanges([{ gid: 'g', requestId: 'r', kind: 'deposit', resource: 'wood', amount: 1, reason: 'outage' }]));
    await down('rankTop', store.rankTop('level', 10));
    await down('createOrder', store.createOrder('o-outage', pid, 1));
    await down('announceServer', store.announceServer(record('game-1'), 60_000));
    await down('listServers', store.listServers());
    // A batch of saves fails as a whole or save by save, but always with StoreUnavailableError.
    const batch = await within(
      store.saveDocuments([{ pid, epoch: 0, data: { gold: 3n } }]).then(
        (results) => results,
        (error: unknown) => error,
      ),
      limit,
      'saveDocuments',
    );
    if (Array.isArray(batch)) {
      assert.is(batch.length, 1);
      assert.ok(batch[0] instanceof StoreUnavailableError, `saveDocuments while down reported ${String(batch[0])}`);
    } else {
      assert.ok(batch instanceof StoreUnavailableError, `saveDocuments while down threw ${String(batch)}`);
    }
    // A new store cannot connect either, and says so (and leaves nothing running behind).
    const late = new RedisStore({ url: redis!.url, commandTimeoutMs: COMMAND_TIMEOUT_MS });
    await rejects(within(late.connect(), limit, 'connect'), StoreUnavailableError, 'connect while Redis is down');
    await late.close();

    await redis!.restart();
    await reconnected.waitFor('a reconnection after the outage', () => true, POLL_DEADLINE_MS);
    await eventually('commands working again after the outage', async () => (await store.getRoute(pid)) !== null);
    // Nothing written during the outage, everything acknowledged before it is there.
    assert.equal(await store.getRoute(pid), { home: 'home-1', at: '', epoch: 0, online: false });
    assert.equal(await store.loadDocument(pid), { data: { gold: 1n }, epoch: 0 });
    assert.is(await store.getProfile(pid), null);
    await store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true });
    await store.saveDocument(pid, 1, { gold: 4n });
    assert.equal(await store.loadDocument(pid), { data: { gold: 4n }, epoch: 1 });
  });

  test('while Redis does not answer, a command is refused at once by its connection (no offline queue), not by a timeout, before any reconnect succeeds', async () => {
    // A command timeout far beyond this test: it cannot be what fails a command here.
    const store = new RedisStore({ url: redis!.url, commandTimeoutMs: 600_000 });
    await store.connect();
    stores.push(store);
    const pid = nextPid();
    await store.ensureRoute(pid, 'home-1');
    let reconnects = 0;
    store.onReconnect(() => { reconnects++; });

    await redis!.kill();
    // In Redis's place, a server that takes connections and never answers: the store reconnects to
    // it, and that reconnect can never succeed (no answer to its ready check, ever).
    const silent = await silentServer(redis!.port);
    try {
      await eventually('both connections of the store (commands, publications) to reach the silent server', async () => silent.connections() >= 2);
      // A command queued until the connection is ready would wait here for good: the deadline only
      // turns that hang into a failure that says so.
      const hang = 60_000;
      for (const [what, command] of [
        ['getRoute', (): Promise<unknown> => store.getRoute(pid)],
        ['claimRoute', () => store.claimRoute(pid, { expectEpoch: 0, at: 'game-2', online: true })],
        ['saveDocument', () => store.saveDocument(pid, 0, { gold: 2n })],
      ] as const) {
        const error = await rejects(within(command(), hang, `${what} to be refused (it was queued instead?)`), StoreUnavailableError, `${what} while Redis does not answer`);
        assert.not.match(error.message, /timed out|timeout/i, `${what} failed by a timeout, not at once: ${error.message}`);
      }
      assert.is(reconnects, 0, 'no reconnect succeeded before the errors');
    } finally {
      await silent.close();
    }

    await redis!.restart();
    await eventually('commands working again once Redis is back', async () => (await store.getRoute(pid)) !== null);
    assert.ok(reconnects >= 1, 'the reconnect to the real Redis was told');
    assert.equal(await store.getRoute(pid), { home: 'home-1', at: '', epoch: 0, online: false }, 'nothing refused was written');
  });

  test.run();
}
