/**
 * The function services on a real cluster (issue 5; DESIGN §1, §2, §6): one redis-server; the
 * datacenter, two guild servers, the rank server, the account center and two battle servers as
 * `kuafu serve` processes; the game servers HS, GS1 and GS2 started in this test process (each
 * with its own store connection, as separate servers have), so the test watches their profile
 * caches; real KuafuClients on their gateways.
 *
 * The story: a level-up on GS1 reaches HS and GS2 by push, and a late publication changes no
 * cache; a friends list on HS sees a player move and log out; leaderboards and battles agree across
 * servers, and a rank server that was down catches up when it starts; three servers race 1,000 deductions
 * (with retries) at one treasury of 500; the guild server is killed and restarted without losing a
 * thing; recharges reach a player once, wherever he is, or wait for his next login; finally Redis
 * restarts and every cache is correct again.
 *
 * Nothing sleeps to let time pass: events are awaited with generous deadlines, conditions are
 * polled until they hold. The random parts take a seed, printed (KUAFU_TEST_SEED replays it).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { ClientRequestError, KuafuClient, loginAccount, registerAccount } from '../runtime/client/kuafu-client.js';
import { loadConfig, parseConfig, type ClusterConfig } from '../runtime/cluster/config.js';
import type { ServerNode } from '../runtime/cluster/server-node.js';
import { startServers, type RunningServers } from '../runtime/cluster/start.js';
import {
  AlreadyExistsError, BadCredentialsError, ConfigError, InsufficientResourceError, KuafuError, NotExportedError, NotFoundError,
  RequestConflictError, RpcProtocolError, WrongServerError,
} from '../runtime/errors.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { FriendsList, type Friend } from '../runtime/services/friends-list.js';
import { servicesOf, type ProfileEvent, type TreasuryReceipt } from '../runtime/services/index.js';
import { guildServerFor } from '../runtime/services/placement.js';
import { callScriptService } from '../runtime/services/script-surface.js';
import { RedisStore } from '../runtime/store/redis-store.js';
import type { PlayerDocument } from '../runtime/game/player.js';
import {
  EVENT_DEADLINE_MS, RawConnection, cleanupCluster, connect, eventually, onCleanup, quietly, rejectionOf, runKuafu, spawnServe, within, type ServeProcess,
} from './harness/cluster.js';
import { MAX_TRACKED_KEYS, WindowCounts } from '../runtime/services/login-limits.js';
import { startRedis, type RedisHandle } from './harness/redis.js';
import { seeded } from './harness/random.js';

const test = suite('services');

const GAMES = ['HS', 'GS1', 'GS2'] as const;
type Game = (typeof GAMES)[number];
const SERVED = ['DC', 'GUILD1', 'GUILD2', 'RANK', 'ACCOUNT', 'GS1-battle', 'GS2-battle'];

/** The account server's limits per source address (the defaults, but for fewer registrations, to test them cheaply). */
const LOGIN_LIMITS = { loginsPerSourcePerMinute: 20, failedLoginsPerAccountPerSource: 5, registrationsPerSourcePerHour: 4, hashesInFlightPerSource: 2 };

const SEED = Number(process.env.KUAFU_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`services: seed ${SEED} (replay with KUAFU_TEST_SEED=${SEED})`);


// ---- the cluster ------------------------------------------------------------------------------

let redis: RedisHandle;
let configPath = '';
let secret = '';
let config: ClusterConfig;
let store: RedisStore;
const served: Record<string, ServeProcess> = {};
const games = {} as Record<Game, ServerNode>;

function writeConfig(redisUrl: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'kuafu-services-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  secret = `services-test-secret-${process.pid}`;
  configPath = join(dir, 'cluster.json');
  writeFileSync(configPath, JSON.stringify({
    secret,
    store: { kind: 'redis', url: redisUrl },
    heartbeatMs: 250,
    rpcTimeoutMs: 5000,
    loginLimits: LOGIN_LIMITS,
    servers: [
      { name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0 },
      { name: 'GS1', roles: ['game'], rpcPort: 0, gatewayPort: 0, battle: 'GS1-battle' },
      { name: 'GS2', roles: ['game'], rpcPort: 0, gatewayPort: 0, battle: 'GS2-battle' },
      { name: 'DC', roles: ['datacenter'], rpcPort: 0 },
      { name: 'GUILD1', roles: ['guild'], rpcPort: 0 },
      { name: 'GUILD2', roles: ['guild'], rpcPort: 0 },
      { name: 'RANK', roles: ['rank'], rpcPort: 0 },
      { name: 'ACCOUNT', roles: ['account'], rpcPort: 0, gatewayPort: 0 },
      { name: 'GS1-battle', roles: ['battle'], rpcPort: 0 },
      { name: 'GS2-battle', roles: ['battle'], rpcPort: 0 },
    ],
  }));
  config = loadConfig(configPath, {});
}

test.before(async () => {
  redis = await startRedis({ persistent: true });
  writeConfig(redis.url);
  store = new RedisStore({ url: redis.url });
  await store.connect();
  onCleanup(() => store.close());
  await Promise.all(SERVED.map(async (name) => { served[name] = await spawnServe(configPath, name, redis.url); }));
  await quietly(async () => {
    for (const name of GAMES) {
      // One startServers each: every game server has its own store connections, as separate processes do.
      const running: RunningServers = await startServers(loadConfig(configPath, {}), [name]);
      onCleanup(() => running.stop());
      games[name] = running.nodes[0]!;
    }
  });
});

test.after(async () => {
  await cleanupCluster();
  await redis?.stop();
});

// ---- helpers ------------------------------------------------------------------------------------

/** Collects events; `waitFor` resolves with the first (past or future) one that matches. */
class Events<T> {
  readonly seen: T[] = [];
  private readonly waiters = new Set<{ test: (event: T) => boolean; resolve: (event: T) => void }>();

  constructor(private readonly label: string) {}

  readonly push = (event: T): void => {
    this.seen.push(event);
    for (const waiter of [...this.waiters]) {
      if (waiter.test(event)) {
        this.waiters.delete(waiter);
        waiter.resolve(event);
      }
    }
  };

  /** Where the next event will be: pass it to `waitFor` to wait for an event that comes after now. */
  get mark(): number {
    return this.seen.length;
  }

  waitFor(what: string, test: (event: T) => boolean, from = 0, ms = EVENT_DEADLINE_MS): Promise<T> {
    const found = this.seen.slice(from).find(test);
    if (found !== undefined) return Promise.resolve(found);
    let waiter: { test: (event: T) => boolean; resolve: (event: T) => void };
    return within(new Promise<T>((resolve) => {
      waiter = { test, resolve };
      this.waiters.add(waiter);
    }), ms, () => `${this.label}: ${what}; seen so far: ${JSON.stringify(this.seen)}`).finally(() => this.waiters.delete(waiter));
  }
}

const services = (name: Game) => servicesOf(games[name]);

/** A KuafuClient for `pid` at home `home` (closed at cleanup). */
function client(pid: number, home: Game, loginToken?: () => Promise<string>): KuafuClient {
  const c = new KuafuClient({
    pid, homeUrl: games[home].gatewayUrl, stepTimeoutMs: 15_000,
    loginToken: loginToken ?? (() => issueLoginToken(secret, pid, home)),
  });
  onCleanup(() => c.close());
  return c;
}

/** A guild id that lives on guild server `server`. */
function gidOn(server: string, prefix: string): string {
  for (let i = 0; ; i++) if (guildServerFor(config, `${prefix}-${i}`) === server) return `${prefix}-${i}`;
}

// ---- profiles ---------------------------------------------------------------------------------

test('a level-up on GS1 is pushed to HS and GS2 and applied there at once (no polling)', async () => {
  const pid = 3001;
  const first = await services('GS1').profiles.update(pid, { name: 'Ayla', level: 1, power: 10 });
  const onHs = new Events<ProfileEvent>('HS follower');
  const onGs2 = new Events<ProfileEvent>('GS2 follower');
  const followHs = await services('HS').profiles.follow([pid], onHs.push);
  const followGs2 = await services('GS2').profiles.follow([pid], onGs2.push);
  assert.equal(followHs.profiles().get(pid), first, 'HS read the profile once, into its cache');

  const written = await services('GS1').profiles.update(pid, { level: 2 });
  assert.is(written.version, first.version + 1);
  for (const [where, events] of [['HS', onHs], ['GS2', onGs2]] as const) {
    const event = await events.waitFor('the level-up', (e) => e.profile?.fields.level === 2);
    assert.equal(event.changed, { level: 2 }, `${where} heard exactly what changed`);
    assert.equal(event.profile, written, `${where}'s cache holds the new profile`);
    assert.equal(services(where).profiles.peek(pid), written, `${where} answers from its cache`);
  }

  // A profile merely read once (cached, not followed) is kept fresh too.
  const other = 3002;
  await services('GS1').profiles.update(other, { name: 'Borin', level: 7 });
  assert.is((await services('GS2').profiles.get(other))?.fields.level, 7);
  const anyOnGs2 = new Events<ProfileEvent>('GS2 cache');
  const stop = services('GS2').profiles.onChange(anyOnGs2.push);
  await services('HS').profiles.update(other, { level: 8 });
  await anyOnGs2.waitFor('the cached profile changing', (e) => e.pid === other && e.profile?.fields.level === 8);
  assert.is(services('GS2').profiles.peek(other)?.fields.level, 8);
  stop();
  followHs.close();
  followGs2.close();

  // The datacenter refuses what follows the route, and bad fields, saying why.
  const routeField = await rejectionOf(services('GS1').profiles.update(pid, { server: 'GS2' }), EVENT_DEADLINE_MS, 'setting "server"');
  assert.match(routeField.message, /follow the player's route/);
  const nested = await rejectionOf(services('GS1').profiles.update(pid, { level: { x: 1 } as unknown as number }), EVENT_DEADLINE_MS, 'an object value');
  assert.instance(nested, RpcProtocolError);
  assert.match(nested.message, /level.*string.*number.*boolean or null/);
});

test('a profile cache ignores an older or repeated publication arriving late, and applies the next one', async () => {
  const pid = 3011;
  // Every profile publication as it travels, to replay one late (as one delayed on its way would arrive).
  const tap = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const publisher = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await Promise.all([tap.connect(), publisher.connect()]);
  onCleanup(() => { tap.disconnect(); publisher.disconnect(); });
  const published: string[] = [];
  tap.on('message', (_channel: string, message: string) => published.push(message));
  await tap.subscribe('kf:profiles');

  const first = await services('GS1').profiles.update(pid, { name: 'Lio', level: 1 });
  const second = await services('GS1').profiles.update(pid, { level: 2 });
  assert.equal(await services('HS').profiles.get(pid), second, 'HS caches the profile as it is now');
  const tapped = (version: number) => eventually(async () => {
    const found = published.find((message) => message.startsWith(`${pid} ${version} `));
    if (!found) throw new Error(`tapped so far: ${JSON.stringify(published)}`);
    return found;
  }, `the publication of version ${version} to be tapped`);
  const older = await tapped(first.version);
  const repeated = await tapped(second.version);

  const onHs = new Events<ProfileEvent>('HS cache');
  const stop = services('HS').profiles.onChange(onHs.push);
  // HS's store hands each publication to its listeners, its profile cache first (it listened first).
  const reached = new Events<number>("HS's store");
  const stopStore = games.HS.store.onProfileChange((change) => { if (change.pid === pid) reached.push(change.version); });
  try {
    for (const [message, version, what] of [[older, first.version, 'an older'], [repeated, second.version, 'a repeated']] as const) {
      const mark = reached.mark;
      await publisher.publish('kf:profiles', message);
      await reached.waitFor(`${what} publication to reach HS`, (v) => v === version, mark);
      assert.equal(services('HS').profiles.peek(pid), second, `${what} publication changed the cached profile`);
    }
    assert.equal(onHs.seen.filter((e) => e.pid === pid), [], 'nobody was told of a change');
    // The next version is applied as it comes.
    const third = await services('GS1').profiles.update(pid, { level: 3 });
    const event = await onHs.waitFor('the next version', (e) => e.pid === pid && e.profile?.version === third.version);
    assert.equal(event.changed, { level: 3 });
    assert.equal(services('HS').profiles.peek(pid), third);
  } finally {
    stop();
    stopStore();
  }
});

test('a friends list on HS follows a player from another home as he moves, levels up and logs out', async () => {
  const pid = 3101; // home GS2
  const friends = await FriendsList.open(games.HS, [pid]);
  const seen = new Events<Friend>('HS friends list');
  friends.onChange(seen.push);
  const c = client(pid, 'GS2');
  let mark = seen.mark;
  await c.login();
  await seen.waitFor('online at his home GS2, named from his document', (f) => f.online && f.server === 'GS2' && f.home === 'GS2' && f.name === `player${pid}`, mark);
  mark = seen.mark;
  await c.go('GS1');
  await seen.waitFor('on GS1', (f) => f.online && f.server === 'GS1', mark);
  mark = seen.mark;
  await services('GS1').profiles.update(pid, { level: 12 });
  await seen.waitFor('level 12', (f) => f.level === 12, mark);
  mark = seen.mark;
  await c.go('HS');
  await seen.waitFor('on HS', (f) => f.online && f.server === 'HS', mark);
  mark = seen.mark;
  await c.logout();
  const offline = await seen.waitFor('offline', (f) => !f.online, mark);
  assert.equal(friends.view(), [{ ...offline }]);
  assert.equal(friends.friend(pid), { pid, name: `player${pid}`, level: 12, home: 'GS2', server: offline.server, online: false, guild: '' });
  // The store agrees with what was pushed.
  assert.equal((await store.getProfile(pid))?.fields.level, 12);
  friends.close();
});

// ---- leaderboards and battles -----------------------------------------------------------------

test('leaderboards: levels set on three servers rank together; any server reads top N and a place', async () => {
  // Players of three homes; each level set from another server. The "level" board follows the profiles.
  await services('GS1').profiles.update(4001, { name: 'Hana', home: 'HS', level: 30 });
  await services('HS').profiles.update(4002, { name: 'Ivo', home: 'GS2', level: 25 });
  await services('GS2').profiles.update(4003, { name: 'Juno', home: 'GS1', level: 40 });
  await eventually(async () => {
    const place = await services('GS1').rank('level').of(4002);
    if (place?.score !== 25) throw new Error(`4002 is at ${JSON.stringify(place)}`);
  }, 'the level board to take the three level-ups');
  const top = (await services('GS2').rank('level').top(100)).filter((e) => e.pid >= 4001 && e.pid <= 4003);
  assert.equal(top.map((e) => [e.pid, e.score]), [[4003, 40], [4001, 30], [4002, 25]]);
  await services('HS').profiles.update(4002, { level: 45 });
  await eventually(async () => {
    const place = await services('GS1').rank('level').of(4002);
    if (place?.score !== 45) throw new Error(`4002 is at ${JSON.stringify(place)}`);
  }, 'the level-up to move Ivo up');

  // A board of its own, scores submitted from two servers.
  const arena = services('HS').rank(`arena-${SEED}`);
  await arena.submit(4001, 1200);
  await services('GS1').rank(`arena-${SEED}`).submit(4002, 1500.5);
  await services('GS2').rank(`arena-${SEED}`).submit(4003, 900);
  assert.equal(await services('GS2').rank(`arena-${SEED}`).top(2), [{ rank: 1, pid: 4002, score: 1500.5 }, { rank: 2, pid: 4001, score: 1200 }]);
  assert.equal(await services('GS1').rank(`arena-${SEED}`).of(4003), { rank: 3, pid: 4003, score: 900 });
  assert.is(await arena.submit(4003, null), null, 'null takes a player off the board');
  assert.is(await arena.of(4003), null);
  const bad = await rejectionOf(arena.submit(4001, Number.NaN), EVENT_DEADLINE_MS, 'a NaN score');
  assert.match(bad.message, /finite number/);
});

test('the rank server catches up when it starts: a level set while it was down is on the board', async () => {
  const pid = 4011;
  const rank = served.RANK!;
  rank.kill('SIGKILL');
  await rank.waitForExit();
  // Published while no rank server listens: only a pass over the profiles at its start can see it.
  await services('GS1').profiles.update(pid, { name: 'Mika', home: 'HS', level: 33 });
  served.RANK = await spawnServe(configPath, 'RANK', redis.url);
  await eventually(async () => {
    const place = await services('GS2').rank('level').of(pid);
    if (place?.score !== 33) throw new Error(`${pid} is at ${JSON.stringify(place)}`);
  }, 'the restarted rank server to put the level set while it was down on the board');
});

test('battles: a game server asks its own battle server; fighters from two homes; the same input gives the same result', async () => {
  const [a, b] = [4001, 4003]; // homes HS and GS1 (profiles from the previous test)
  const first = await services('GS1').battle().resolve(a, b, 'duel-1');
  assert.equal([first.input.a.pid, first.input.b.pid, first.input.seed], [a, b, 'duel-1']);
  assert.equal([first.input.a.home, first.input.b.home], ['HS', 'GS1'], 'fighters read from profiles of two homes');
  assert.ok([a, b].includes(first.winner) && first.winner !== first.loser);
  assert.ok(first.blows.length > 0 && first.blows.every((blow) => blow.damage > 0));
  const again = await services('GS1').battle().resolve(a, b, 'duel-1');
  assert.equal(again, first, 'the same input, the same battle');
  const elsewhere = await services('GS2').battle().replay(first.input);
  assert.equal(elsewhere, first, "GS2's battle server replays it to the same result");
  const other = await services('GS1').battle().resolve(a, b, 'duel-2');
  assert.is.not(other.digest, first.digest, 'another seed, another battle');

  // A level-up changes the input (the battle server's cache gets the push).
  await services('HS').profiles.update(a, { level: 31 });
  const after = await eventually(async () => {
    const result = await services('GS1').battle().resolve(a, b, 'duel-1');
    if (result.input.a.level !== 31) throw new Error(`still level ${result.input.a.level}`);
    return result;
  }, 'the battle server to see the level-up');
  assert.is.not(after.digest, first.digest);

  // Pairs are the config's: HS has no battle server; GS2 cannot use GS1's.
  assert.throws(() => services('HS').battle(), (error: Error) => error instanceof ConfigError && /HS has no battle server/.test(error.message));
  const wrong = await rejectionOf(games.GS2.call('GS1-battle', 'battle.resolve', { a, b }), EVENT_DEADLINE_MS, "GS2 calling GS1's battle server");
  assert.instance(wrong, WrongServerError);
  assert.match(wrong.message, /GS2-battle/);
  const missing = await rejectionOf(services('GS1').battle().resolve(a, 999_999), EVENT_DEADLINE_MS, 'a player without a profile');
  assert.instance(missing, NotFoundError);
});

test('the host side of script services: an allowlist of methods, forwarded to the right servers', async () => {
  const gid = gidOn('GUILD2', 'script');
  const call = (service: string, target: string, method: string, args: unknown[]) => callScriptService(games.GS1, service, target, method, args);
  await services('HS').guild(gid).create('Scripted');
  assert.is((await call('guild', gid, 'deposit', ['wood', 9, 'script:fund']) as TreasuryReceipt).balance, 9);
  assert.is((await call('guild', gid, 'deduct', ['wood', 4, 'script:build', `${SEED}-script`]) as TreasuryReceipt).balance, 5);
  assert.is((await call('guild', gid, 'deduct', ['wood', 4, 'script:build', `${SEED}-script`]) as TreasuryReceipt).replayed, true);
  assert.instance(await rejectionOf(call('guild', gid, 'deduct', ['wood', 6, 'script:build']), EVENT_DEADLINE_MS, 'too much'), InsufficientResourceError);
  assert.equal((await call('profile', '4001', 'get', []) as { fields: { name: string } }).fields.name, 'Hana');
  assert.is((await call('rank', `arena-${SEED}`, 'of', [4002]) as { rank: number }).rank, 1);
  assert.is((await call('battle', '', 'resolve', [4001, 4003, 'duel-1']) as { input: { seed: string } }).input.seed, 'duel-1');
  for (const [service, method] of [['guild', 'constructor'], ['guild', 'create'], ['account', 'recharge'], ['__proto__', 'get']]) {
    const refused = await rejectionOf(call(service!, gid, method!, []), EVENT_DEADLINE_MS, `services.${service}.${method}`);
    assert.instance(refused, NotExportedError, `${service}.${method}: ${refused.message}`);
  }
  assert.match((await rejectionOf(call('guild', gid, 'deduct', [5, 'wood', 'x']), EVENT_DEADLINE_MS, 'arguments in the wrong order')).message, /the resource must be a string/);
});

// ---- guilds -----------------------------------------------------------------------------------

test('ordering: 3 servers send 1,000 concurrent deductions of 1 (and retries) against 500; exactly 500 succeed, once each', async () => {
  const random = seeded(SEED);
  const gid = gidOn('GUILD1', 'order');
  await services('HS').guild(gid).create('Ordering');
  await services('GS1').guild(gid).deposit('wood', 500, 'fund');

  type Outcome = { id: string; from: Game; ok: boolean; replayed: boolean; balance: number };
  const send = (id: string, from: Game): Promise<Outcome> =>
    services(from).guild(gid).deduct('wood', 1, 'ordering test', id).then(
      (receipt: TreasuryReceipt) => ({ id, from, ok: true, replayed: receipt.replayed, balance: receipt.balance }),
      (error: unknown) => {
        if (!(error instanceof InsufficientResourceError)) throw error;
        return { id, from, ok: false, replayed: error.details.replayed === true, balance: Number(error.details.balance) };
      },
    );
  // 1,000 requests spread over three servers, plus 150 of them sent a second time (from any server), all at once, shuffled.
  const sends: [string, Game][] = [];
  for (let i = 0; i < 1000; i++) sends.push([`${SEED}-d${i}`, GAMES[i % 3]!]);
  for (let i = 0; i < 150; i++) sends.push([`${SEED}-d${Math.floor(random() * 1000)}`, GAMES[Math.floor(random() * 3)]!]);
  for (let i = sends.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sends[i], sends[j]] = [sends[j]!, sends[i]!];
  }
  const outcomes = await Promise.all(sends.map(([id, from]) => send(id, from)));

  const byId = new Map<string, Outcome[]>();
  for (const outcome of outcomes) byId.set(outcome.id, [...(byId.get(outcome.id) ?? []), outcome]);
  assert.is(byId.size, 1000);
  for (const [id, list] of byId) {
    assert.is(list.filter((o) => !o.replayed).length, 1, `request ${id} was decided exactly once: ${JSON.stringify(list)}`);
    assert.ok(list.every((o) => o.ok === list[0]!.ok && o.balance === list[0]!.balance), `every answer to ${id} is its first one: ${JSON.stringify(list)}`);
  }
  const succeeded = [...byId.values()].filter((list) => list[0]!.ok).length;
  assert.is(succeeded, 500, 'exactly the 500 the treasury covers');
  assert.ok(outcomes.every((o) => o.balance >= 0), 'no answer showed a negative balance');
  assert.equal((await services('GS2').guild(gid).get()).treasury, { wood: 0 });

  // The ledger (kept by the same scripts): 500 deductions leaving 499, 498, … 0, each once.
  const ledger = await services('GS1').guild(gid).ledger(1000);
  const deductions = ledger.filter((e) => e.kind === 'deduct');
  assert.is(deductions.length, 500);
  assert.equal(deductions.map((e) => e.balance), Array.from({ length: 500 }, (_, i) => i), 'newest first: 0, 1, … 499');
  assert.is(new Set(deductions.map((e) => e.requestId)).size, 500, 'no request id applied twice');

  // Retrying afterwards changes nothing either.
  const late = await Promise.all([...byId.keys()].slice(0, 40).map((id) => send(id, 'GS2')));
  assert.ok(late.every((o) => o.replayed && o.ok === byId.get(o.id)![0]!.ok), 'late retries are replays');
  assert.equal((await services('HS').guild(gid).get()).treasury, { wood: 0 });
});

test('the guild server is killed and restarted: treasury and processed request ids are all still there', async () => {
  const gid = gidOn('GUILD2', 'restart');
  const guild = services('GS1').guild(gid);
  await guild.create('Restart');
  await guild.join(4001);
  await services('GS2').guild(gid).join(4003);
  const deposited = await guild.deposit('stone', 30, 'fund', `${SEED}-fund`);
  const spent = await services('HS').guild(gid).deduct('stone', 12, 'build', `${SEED}-spend`);
  assert.equal([deposited.balance, spent.balance], [30, 18]);
  const refused = await rejectionOf(guild.deduct('stone', 50, 'too much', `${SEED}-too-much`), EVENT_DEADLINE_MS, 'a deduction of more than there is');
  assert.instance(refused, InsufficientResourceError);
  assert.match(refused.message, /holds 18 stone, less than the 50/);

  served.GUILD2!.kill('SIGKILL');
  await served.GUILD2!.waitForExit();
  served.GUILD2 = await spawnServe(configPath, 'GUILD2', redis.url);

  // The callers find the new process by themselves; every id is remembered.
  const again = await eventually(() => services('GS2').guild(gid).deduct('stone', 12, 'build', `${SEED}-spend`), 'GUILD2 to answer again');
  assert.equal([again.replayed, again.balance], [true, 18], 'the retried deduction is a replay');
  const stillRefused = await rejectionOf(services('HS').guild(gid).deduct('stone', 50, 'too much', `${SEED}-too-much`), EVENT_DEADLINE_MS, 'the refused request again');
  assert.instance(stillRefused, InsufficientResourceError);
  assert.is(stillRefused instanceof KuafuError && stillRefused.details.replayed, true);
  const current = await guild.get();
  assert.equal([current.treasury, current.members], [{ stone: 18 }, [4001, 4003]]);
  assert.is((await services('HS').profiles.get(4001))?.fields.guild, gid, "a member's profile names his guild");

  // The same id for another change is refused; a guild on the other server is not served here.
  assert.instance(await rejectionOf(guild.deduct('stone', 2, 'other', `${SEED}-spend`), EVENT_DEADLINE_MS, 'a reused id'), RequestConflictError);
  const wrong = await rejectionOf(
    games.HS.call('GUILD1', 'guild.deposit', { gid, resource: 'stone', amount: 1, reason: 'misrouted', requestId: `${SEED}-misrouted` }),
    EVENT_DEADLINE_MS, 'a change sent to the other guild server',
  );
  assert.instance(wrong, WrongServerError);
  assert.is((wrong as WrongServerError).details.server, 'GUILD2');
  const joinedElsewhere = await rejectionOf(services('HS').guild(gidOn('GUILD1', 'other')).create('x').then(() => services('HS').guild(gidOn('GUILD1', 'other')).join(4001)), EVENT_DEADLINE_MS, 'joining a second guild');
  assert.instance(joinedElsewhere, AlreadyExistsError);
  const badAmount = await rejectionOf(guild.deduct('stone', -1, 'negative'), EVENT_DEADLINE_MS, 'a negative amount');
  assert.match(badAmount.message, /"amount", a positive integer/);
});

// ---- accounts and recharge --------------------------------------------------------------------

test('account center: a login token opens the home gateway; a recharge reaches the player on another server once', async () => {
  const accounts = services('GS2').account();
  const made = await accounts.register(`ayla-${SEED}`, 'correct horse', 'HS');
  assert.is(made.home, 'HS');
  assert.instance(await rejectionOf(accounts.register(`ayla-${SEED}`, 'another password'), EVENT_DEADLINE_MS, 'registering twice'), AlreadyExistsError);
  assert.instance(await rejectionOf(accounts.login(`ayla-${SEED}`, 'wrong password'), EVENT_DEADLINE_MS, 'a wrong password'), BadCredentialsError);
  assert.instance(await rejectionOf(accounts.login(`nobody-${SEED}`, 'wrong password'), EVENT_DEADLINE_MS, 'an unknown account'), BadCredentialsError);

  const pid = made.pid;
  const c = client(pid, 'HS', async () => {
    const login = await accounts.login(`ayla-${SEED}`, 'correct horse');
    assert.is(login.gateway, games.HS.gatewayUrl, 'the login names the home gateway');
    return login.token;
  });
  assert.is((await c.login()).server, 'HS');
  await c.go('GS1');

  const order = `order-${SEED}-1`;
  const delivered = await services('HS').account().recharge(order, pid, 60);
  assert.equal([delivered.state, delivered.replayed], ['delivered', false]);
  assert.is(await games.GS2.players.invoke(pid, ['getgold'], []), 60, 'the gold arrived on GS1, where he is');
  const replay = await services('GS1').account().recharge(order, pid, 60);
  assert.equal([replay.state, replay.replayed], ['delivered', true]);
  assert.is(await games.GS2.players.invoke(pid, ['getgold'], []), 60, 'a replayed order adds nothing');
  assert.instance(await rejectionOf(accounts.recharge(order, pid, 70), EVENT_DEADLINE_MS, 'the order id for another amount'), RequestConflictError);
  assert.is(games.GS1.game!.host.get(pid)?.player.getgold(), 60, 'GS1 holds him, with his 60 gold');

  // Offline: the order waits; his next login delivers it, once.
  await c.logout();
  await eventually(async () => {
    const route = await store.getRoute(pid);
    if (route?.online) throw new Error('still online');
  }, 'him to be offline');
  const held = await accounts.recharge(`order-${SEED}-2`, pid, 40);
  assert.equal([held.state, held.replayed], ['pending', false]);
  assert.equal((await accounts.pending(pid)).map((o) => o.order), [`order-${SEED}-2`]);
  assert.is(((await store.loadDocument(pid))?.data as PlayerDocument).gold, 60, 'nothing delivered while he is offline');

  await c.login();
  const arrived = await eventually(async () => {
    const state = await accounts.order(`order-${SEED}-2`);
    if (state.state !== 'delivered') throw new Error('still pending');
    return state;
  }, 'the held order to be delivered at his login');
  assert.ok(arrived.deliveredAt >= held.createdAt);
  assert.is(await games.GS1.players.invoke(pid, ['getgold'], []), 100);
  const replayHeld = await accounts.recharge(`order-${SEED}-2`, pid, 40);
  assert.is(replayHeld.replayed, true);
  assert.is(await games.GS1.players.invoke(pid, ['getgold'], []), 100, 'still 100: each order once');
  assert.equal(await accounts.pending(pid), []);

  // A delivery's call id is kept (saved, and loaded again at his login) for its retention of 30
  // days: retried after 300 other calls, more than a player remembers otherwise, it still runs once.
  await Promise.all(Array.from({ length: 300 }, (_, i) => games.HS.players.invoke(pid, ['addgold'], [0, 'filler'], `filler-${SEED}-${i}`)));
  assert.is(await games.HS.players.invoke(pid, ['addgold'], [60, `recharge:${order}`], `kept:recharge:${order}`), 60, 'the remembered result');
  assert.is(await games.GS1.players.invoke(pid, ['getgold'], []), 100, 'the late retry added nothing');
  await c.logout();
  // ...and it is not kept in his document (which would grow with every recharge, for good): it is
  // in his kept ledger beside it, which expires.
  const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  try {
    const fields = await admin.hkeys(`kf:{${pid}}:doc`);
    assert.equal(fields.filter((field) => field.startsWith('c:kept:')), [], 'no kept call result in the document hash');
    assert.equal(Object.keys(await admin.hgetall(`kf:{${pid}}:kept`)).sort(), [`kept:recharge:${order}`, `kept:recharge:order-${SEED}-2`].sort());
    const ttl = await admin.pttl(`kf:{${pid}}:kept`);
    assert.ok(ttl > 0, `the kept ledger expires (PTTL ${ttl})`);
  } finally {
    admin.disconnect();
  }
});

/** The refusal a promise ends with, as the client sees it. */
async function refusalOf(promise: Promise<unknown>, what: string): Promise<ClientRequestError> {
  const error = await rejectionOf(promise, EVENT_DEADLINE_MS, what);
  assert.instance(error, ClientRequestError, `${what}: a ClientRequestError`);
  return error as ClientRequestError;
}

test('login gateway: a game client registers and logs in on the account server itself, then enters his home', async () => {
  const url = (await store.getServer('ACCOUNT'))?.gateway ?? '';
  assert.match(url, /^ws:\/\//, 'the account server announces its login gateway');
  const account = `kai-${SEED}`;
  const made = await registerAccount(url, account, 'a long password', { home: 'GS2' });
  assert.is(made.home, 'GS2');
  assert.is((await refusalOf(registerAccount(url, account, 'another password'), 'registering twice')).kind, 'AlreadyExists');

  // The client learns his player and home from the login, and asks for a fresh token at each login.
  const c = await KuafuClient.forAccount(url, account, 'a long password');
  onCleanup(() => c.close());
  assert.is(c.pid, made.pid);
  assert.is((await c.login()).server, 'GS2');
  await c.logout();
  assert.is((await c.login()).server, 'GS2', 'a second login gets a token of its own');
  await c.logout();

  // Bad input gets a clear refusal, and the connection stays usable.
  const ws = new WebSocket(url);
  onCleanup(() => ws.terminate());
  const replies: Record<string, unknown>[] = [];
  let arrived: (() => void) | null = null;
  ws.on('message', (data) => { replies.push(JSON.parse(data.toString())); arrived?.(); });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const ask = async (text: string): Promise<Record<string, unknown>> => {
    const count = replies.length;
    ws.send(text);
    await within(new Promise<void>((resolve) => { arrived = () => { if (replies.length > count) resolve(); }; }), EVENT_DEADLINE_MS, `an answer to ${text}`);
    return replies[count]!;
  };
  assert.equal((await ask('not json'))?.kind, 'BadMessage');
  assert.equal((await ask(JSON.stringify({ type: 'shout' })))?.kind, 'BadMessage');
  const missing = await ask(JSON.stringify({ type: 'login', account }));
  assert.is(missing.kind, 'InvalidParams');
  assert.match(String(missing.message), /password/);
  const ticket = await ask(JSON.stringify({ type: 'login', account, password: 'a long password' }));
  assert.is(ticket.type, 'login_token');
  assert.is(ticket.pid, made.pid);
  assert.is(ticket.gateway, games.GS2.gatewayUrl);
  assert.not.ok('password' in ticket, 'the password is never echoed');

  // Guessing: after five wrong passwords in a minute, even the right one waits.
  for (let i = 0; i < 5; i++) {
    assert.is((await refusalOf(loginAccount(url, account, `guess number ${i}`), `wrong password ${i + 1}`)).kind, 'BadCredentials');
  }
  const locked = await refusalOf(loginAccount(url, account, 'a long password'), 'a login after five failures');
  assert.is(locked.kind, 'TooManyAttempts');
  assert.match(locked.message, /wait \d+ s/);
});

// ---- the login gateway under abuse (issue 10, finding 8) -----------------------------------------
//
// Each test's clients come from loopback addresses of their own (127.0.0.x: Linux routes all of
// 127/8 to the loopback), which the account server sees as different sources. What is asserted is
// the mechanism (which requests are answered, what they cost in password hashes as the account
// server's metrics count them), never a duration.

/** The login gateway's address. */
async function loginGateway(): Promise<string> {
  const url = (await store.getServer('ACCOUNT'))?.gateway ?? '';
  assert.match(url, /^ws:\/\//, 'the account server announces its login gateway');
  return url;
}

/** One request on a fresh connection to the login gateway from `source`; its answer. */
async function askFrom(source: string, message: Record<string, unknown>): Promise<Record<string, unknown>> {
  const conn = await RawConnection.open(await loginGateway(), { localAddress: source });
  try {
    return await conn.exchange(message, `the answer to ${String(message.type)} ${String(message.account)} from ${source}`);
  } finally {
    conn.close();
  }
}

/** The value of a series of the account server's metrics whose labels include `labels` (0 when absent). */
async function accountMetric(name: string, labels: Record<string, string>): Promise<number> {
  const text = await connect('ACCOUNT', served.ACCOUNT!.url, secret).call<string>('cluster.metrics');
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[3]);
  }
  return 0;
}

/** Password hashes the account server computed for logins so far. */
const loginHashes = () => accountMetric('kuafu_password_hashes_total', { purpose: 'login' });

test('login gateway: logins on made-up names cost one hash each and are bounded per source; the owner logs in from his own address meanwhile', async () => {
  const url = await loginGateway();
  const owner = `owner-${SEED}`;
  await services('HS').account().register(owner, 'the owner password', 'HS');
  const STRANGER = '127.0.0.11';
  const limit = LOGIN_LIMITS.loginsPerSourcePerMinute;

  // 40 connections from one address, each a login on a made-up name, sent at once.
  let hashes = await loginHashes();
  const conns = await Promise.all(Array.from({ length: 40 }, () => RawConnection.open(url, { localAddress: STRANGER })));
  conns.forEach((conn, i) => conn.send({ type: 'login', account: `ghost-${SEED}-${i}`, password: 'whatever it is' }));
  const answers = await Promise.all(conns.map((conn, i) => conn.next(`the answer to made-up login ${i}`)));
  for (const conn of conns) conn.close();
  const kinds = answers.map((answer) => String(answer.kind));
  assert.ok(kinds.every((kind) => kind === 'BadCredentials' || kind === 'TooManyAttempts'), kinds.join(' '));
  const checked = kinds.filter((kind) => kind === 'BadCredentials').length;
  assert.ok(checked < 40, `some of the 40 logins sent at once are refused before any work (all ${checked} were checked)`);
  assert.ok(checked <= limit, `at most the address's ${limit} logins of the minute were checked, not ${checked}`);
  assert.ok(await accountMetric('kuafu_account_refusals_total', { limit: 'busy' }) >= 1, 'refused: hashes already running for the address');
  assert.is(await loginHashes(), hashes + checked, 'each checked login cost one hash; each refused one none');

  // One at a time, until the address has spent its logins of this minute.
  let refusal: Record<string, unknown> | null = null;
  let checkedOneByOne = 0;
  for (let i = 0; i < limit + 5 && !refusal; i++) {
    const answer = await askFrom(STRANGER, { type: 'login', account: `ghost-${SEED}-more-${i}`, password: 'whatever it is' });
    if (answer.kind === 'BadCredentials') checkedOneByOne++;
    else refusal = answer;
  }
  assert.ok(refusal, `the address is refused after its ${limit} logins of the minute`);
  assert.is(refusal!.kind, 'TooManyAttempts', JSON.stringify(refusal));
  assert.match(String(refusal!.message), /Your address tried 20 logins within a minute/);
  // The window is a minute from the first of them: it does not renew within this test but on a
  // very slow machine, when it could have once.
  assert.ok(checked + checkedOneByOne <= 2 * limit, `checked ${checked} + ${checkedOneByOne} of the address's logins`);
  assert.is(await loginHashes(), hashes + checked + checkedOneByOne, 'refused logins cost no hash');

  // The stranger's address is refused even with the owner's password; the owner, from his own, is in.
  const stranger = await askFrom(STRANGER, { type: 'login', account: owner, password: 'the owner password' });
  assert.is(stranger.kind, 'TooManyAttempts', JSON.stringify(stranger));
  hashes = await loginHashes();
  const ticket = await askFrom('127.0.0.13', { type: 'login', account: owner, password: 'the owner password' });
  assert.is(ticket.type, 'login_token', JSON.stringify(ticket));
  assert.is(await loginHashes(), hashes + 1);

  // A made-up name is answered as a wrong password is, after the same work: one hash each.
  const fresh = '127.0.0.12';
  hashes = await loginHashes();
  const unknown = await askFrom(fresh, { type: 'login', account: `ghost-${SEED}`, password: 'some password' });
  assert.is(await loginHashes(), hashes + 1, 'an unknown account costs one hash');
  const wrong = await askFrom(fresh, { type: 'login', account: owner, password: 'some password' });
  assert.is(await loginHashes(), hashes + 2, 'a wrong password costs one hash');
  assert.equal([unknown.kind, unknown.message], [wrong.kind, wrong.message], `the same answer: ${JSON.stringify([unknown, wrong])}`);
  assert.is(unknown.kind, 'BadCredentials');
});

test('login gateway: five wrong passwords from a stranger refuse the stranger, not the owner', async () => {
  const owner = `locked-${SEED}`;
  await services('GS1').account().register(owner, 'the owner password', 'GS1');
  const STRANGER = '127.0.0.14';
  for (let i = 0; i < LOGIN_LIMITS.failedLoginsPerAccountPerSource; i++) {
    const answer = await askFrom(STRANGER, { type: 'login', account: owner, password: `guess number ${i}` });
    assert.is(answer.kind, 'BadCredentials', `guess ${i + 1}: ${JSON.stringify(answer)}`);
  }
  const ticket = await askFrom('127.0.0.15', { type: 'login', account: owner, password: 'the owner password' });
  assert.is(ticket.type, 'login_token', `the owner, from his own address: ${JSON.stringify(ticket)}`);

  const hashes = await loginHashes();
  const refused = await askFrom(STRANGER, { type: 'login', account: owner, password: 'the owner password' });
  assert.is(refused.kind, 'TooManyAttempts', `the stranger, even with the right password: ${JSON.stringify(refused)}`);
  assert.match(String(refused.message), /failed logins from your address/);
  assert.is(await loginHashes(), hashes, 'refused without a hash');
  // The stranger's other logins are not refused for it: he may still log in to his own account.
  const mine = `stranger-${SEED}`;
  await services('GS1').account().register(mine, 'his own password', 'GS1');
  const own = await askFrom(STRANGER, { type: 'login', account: mine, password: 'his own password' });
  assert.is(own.type, 'login_token', JSON.stringify(own));
});

test('login gateway: registrations are limited per source address', async () => {
  const FARM = '127.0.0.16';
  const limit = LOGIN_LIMITS.registrationsPerSourcePerHour;
  for (let i = 0; i < limit; i++) {
    const made = await askFrom(FARM, { type: 'register', account: `farm-${SEED}-${i}`, password: 'a long password' });
    assert.is(made.type, 'registered', `registration ${i + 1}: ${JSON.stringify(made)}`);
  }
  const before = await accountMetric('kuafu_password_hashes_total', { purpose: 'register' });
  const refused = await askFrom(FARM, { type: 'register', account: `farm-${SEED}-${limit}`, password: 'a long password' });
  assert.is(refused.kind, 'TooManyAttempts', JSON.stringify(refused));
  assert.match(String(refused.message), /registered 4 accounts within an hour/);
  assert.is(await store.getAccount(`farm-${SEED}-${limit}`), null, 'no account was made');
  assert.is(await accountMetric('kuafu_password_hashes_total', { purpose: 'register' }), before, 'and no hash computed');
  assert.is((await accountMetric('kuafu_account_refusals_total', { limit: 'registrations' })) >= 1, true);

  const elsewhere = await askFrom('127.0.0.17', { type: 'register', account: `farm-${SEED}-elsewhere`, password: 'a long password' });
  assert.is(elsewhere.type, 'registered', `another address may: ${JSON.stringify(elsewhere)}`);
});

test('the limits keep a bounded number of keys, forgetting windows that are over first, then the oldest', () => {
  let now = 1_000_000;
  const counts = new WindowCounts(60_000, 3, () => now);
  for (const key of ['a', 'b', 'c']) counts.add(key);
  counts.add('a');
  assert.equal([counts.count('a'), counts.size], [2, 3]);
  counts.add('d'); // full: the oldest window (a) goes
  assert.equal([counts.count('a'), counts.count('b'), counts.count('d'), counts.size], [0, 1, 1, 3]);
  for (let i = 0; i < 10_000; i++) counts.add(`made-up-${i}`);
  assert.is(counts.size, 3, 'ten thousand made-up keys, still three');
  now += 30_000;
  counts.add('x');
  now += 30_000; // the three made-up ones are over now, x is not
  counts.add('y');
  counts.add('z');
  assert.equal([counts.count('x'), counts.count('y'), counts.count('z'), counts.size], [1, 1, 1, 3]);
  assert.is(counts.retryAfterMs('x'), 30_000);
  assert.is(counts.retryAfterMs('nobody'), 0);
  assert.is(MAX_TRACKED_KEYS, 50_000);
});

// ---- config and the embedded cluster ------------------------------------------------------------

test('the config pairs each game server with its own battle server, gives a gateway port to one role, and says what to fix otherwise', () => {
  const parse = (servers: unknown[]) => parseConfig({ secret: 'a-secret-of-sixteen+', servers }, 'test.json', {});
  const game = (name: string, battle?: string) => ({ name, roles: ['game'], rpcPort: 0, ...(battle ? { battle } : {}) });
  const battle = (name: string) => ({ name, roles: ['battle'], rpcPort: 0 });
  assert.is(parse([game('HS', 'B1'), battle('B1')]).servers[0]!.battle, 'B1');
  const refused = (servers: unknown[], message: RegExp) => {
    assert.throws(() => parse(servers), (error: Error) => error instanceof ConfigError && message.test(error.message));
  };
  refused([game('HS', 'B1')], /HS's "battle" is B1, which is not a server with the "battle" role/);
  refused([game('HS', 'GS1'), game('GS1')], /not a server with the "battle" role/);
  refused([game('HS', 'B1'), game('GS1', 'B1'), battle('B1')], /B1 is paired with both HS and GS1/);
  refused([game('HS'), battle('B1')], /battle server B1 is paired with no game server: set "battle": "B1"/);
  refused([{ name: 'DC', roles: ['datacenter'], rpcPort: 0, battle: 'B1' }, battle('B1')], /only a game server has a battle server/);
  refused([{ name: 'X', roles: ['bank'], rpcPort: 0 }], /roles among game, datacenter, guild, rank, account, battle/);
  // A gateway port serves one kind of client: players (game) or logins (account), not both.
  assert.is(parse([{ name: 'ACC', roles: ['account'], rpcPort: 0, gatewayPort: 0 }]).servers[0]!.gatewayPort, 0);
  refused([{ name: 'HS', roles: ['game', 'account'], rpcPort: 0, gatewayPort: 0 }], /both a game server and an account server, and one port cannot be both gateways/);
  // The store: one Redis, or a node of a Redis Cluster.
  const withStore = (store: unknown) => parseConfig({ secret: 'a-secret-of-sixteen+', store, servers: [game('HS')] }, 'test.json', {});
  assert.equal(withStore({ kind: 'redis', url: 'redis://10.0.0.21:7000', cluster: true }).store, { kind: 'redis', url: 'redis://10.0.0.21:7000', cluster: true });
  assert.equal(withStore({ kind: 'redis', url: 'redis://10.0.0.21:6379' }).store, { kind: 'redis', url: 'redis://10.0.0.21:6379' });
  assert.throws(() => withStore({ kind: 'redis', url: 'redis://10.0.0.21:7000', cluster: 'yes' }), (error: Error) => error instanceof ConfigError && /"cluster": true when url names a node of a Redis Cluster/.test(error.message));
});

test('kuafu demo on the embedded default cluster shows a profile push and a guild deduction from two servers', async () => {
  const demo = await runKuafu(['demo'], 90_000);
  assert.is(demo.code, 0, demo.describe());
  assert.match(demo.stdout, /ok  ACCOUNT answered a login token for HS's gateway/);
  assert.match(demo.stdout, /ok  HS's cache applied the push: level \d+/);
  assert.match(demo.stdout, /ok  two deductions applied, the third refused with InsufficientResource/);
  assert.match(demo.stdout, /kuafu demo: every step checked out/);
});

// ---- the store restarts -----------------------------------------------------------------------

test('after a Redis restart the caches are rebuilt: a change whose publication was lost is not left stale', async () => {
  const pid = 3301;
  await services('GS1').profiles.update(pid, { name: 'Kiri', level: 5 });
  const onHs = new Events<ProfileEvent>('HS follower');
  const onGs2 = new Events<ProfileEvent>('GS2 follower');
  await services('HS').profiles.follow([pid], onHs.push);
  await services('GS2').profiles.follow([pid], onGs2.push);
  const cachedOnGs1 = await services('GS1').profiles.get(pid);

  // A change the caches never hear of (written without its publication: as if it had been lost).
  const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  await admin.hset(`kf:{${pid}}:profile`, 'f:level', '6', 'version', String(cachedOnGs1!.version + 1));
  // And one the level board never heard of: a player whose profile was written without its publication.
  await admin.hset('kf:{3302}:profile', 'f:level', '41', 'version', '1');
  admin.disconnect();
  assert.is(services('HS').profiles.peek(pid)?.fields.level, 5, 'HS did not hear of it');
  await eventually(async () => {
    if ((await services('GS2').rank('level').of(pid))?.score !== 5) throw new Error('the level board has not taken level 5 yet');
  }, 'the level board to follow the level set before');
  assert.is(await services('GS2').rank('level').of(3302), null, 'the board did not hear of player 3302');

  const rebuildsOnGs1 = services('GS1').profiles.rebuildCount;
  await redis.restart();
  for (const [where, events] of [['HS', onHs], ['GS2', onGs2]] as const) {
    const rebuilt = await events.waitFor('the profile read again after the reconnect', (e) => e.changed === null && e.profile?.fields.level === 6, 0, 30_000);
    assert.is(rebuilt.profile?.version, cachedOnGs1!.version + 1, where);
  }
  await eventually(async () => {
    if (services('GS1').profiles.rebuildCount === rebuildsOnGs1) throw new Error('GS1 has not rebuilt its cache yet');
  }, "GS1's store to reconnect");
  assert.is(services('GS1').profiles.peek(pid), undefined, 'what nobody follows was dropped, to be read afresh');
  assert.is((await services('GS1').profiles.get(pid))?.fields.level, 6);
  // The rank server caught up with a pass over the profiles: both lost changes are on the level board.
  await eventually(async () => {
    const [kiri, other] = await Promise.all([services('GS2').rank('level').of(pid), services('GS2').rank('level').of(3302)]);
    if (kiri?.score !== 6 || other?.score !== 41) throw new Error(`the level board shows ${JSON.stringify([kiri, other])}`);
  }, 'the level board to catch up after the reconnect');

  // Pushes flow again (the datacenter's connection may need a moment: it is asked until it answers).
  await eventually(() => services('GS1').profiles.update(pid, { level: 7 }), 'the datacenter to write again after the restart');
  await onHs.waitFor('a push after the restart', (e) => e.profile?.fields.level === 7);
  await onGs2.waitFor('a push after the restart', (e) => e.profile?.fields.level === 7);
  await eventually(async () => {
    if ((await services('GS2').rank('level').of(pid))?.score !== 7) throw new Error('the level board has not taken level 7 yet');
  }, 'the level board to follow a push after the restart');
});

test.run();
