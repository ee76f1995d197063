/**
 * Cross-server transfer (issue 3; DESIGN §3, §4), with real parts only: three `kuafu serve` game
 * servers (HS, GS1, GS2) on one real redis-server, real KuafuClients and raw WebSockets on their
 * gateways, the real caller side of player RPC (an in-process node of the same cluster), and one
 * more game server, GX, started in the test process to reach its PlayerHost directly.
 *
 * Covered here: each flow end to end (home→GS, GS→GS, GS→home, logout at a GS and the home's
 * heartbeat, login at home while away), checking route, mark, the `entered` messages and the
 * player's data after each step; every bad token, each refused with its own kind and changing
 * nothing; a second login while a transfer is pending; two transfers of one player at once; a
 * call made while the player is between servers, and one that follows a player who keeps moving
 * (at most 8 tries); the heartbeat during a hop; the operator's
 * `kuafu transfer` / `kuafu route`; a save by a server that lost the player; a write on an
 * offline copy. Faults (kill, pause) are in transfer-faults.test.ts, the randomized run in
 * transfer-random.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ConnectTo, Entered, KuafuClient } from '../runtime/client/kuafu-client.js';
import {
  PlayerMovedError, PlayerOfflineError, ReadOnlyPlayerError, StaleOwnerError,
} from '../runtime/errors.js';
import { issueLoginToken, issueToken } from '../runtime/game/tokens.js';
import { RpcServer } from '../runtime/rpc/rpc-server.js';
import { createLogger } from '../runtime/util/log.js';
import type { Route } from '../runtime/store/store.js';
import { EVENT_DEADLINE_MS, RawConnection, eventually, quietly, rejectionOf, runKuafu, within } from './harness/cluster.js';
import { GameCluster, claimsOf } from './harness/game-cluster.js';

const test = suite('transfer');

let cluster: GameCluster;
const ITEM = 105001;

test.before(async () => {
  cluster = await GameCluster.start({ games: ['HS', 'GS1', 'GS2'], inProcessGames: ['GX'], standIns: ['HOP-A', 'HOP-B'], heartbeatMs: 500 });
});

test.after(async () => {
  await cluster?.stop();
});

// ---- helpers ------------------------------------------------------------------------------------

/** The home's data that travels with a player who leaves HS (the reference playerData). */
const homeData = (pid: number, level = 1) => ({ name: `player${pid}`, home_level: level });

/** Checks an `entered` message against what the step should have produced. */
function checkEntered(entered: Entered, want: { pid: number; server: string; epoch: number; go: string; data: Record<string, unknown>; gold?: number; home?: string }): void {
  const where = `entered ${JSON.stringify(entered)}`;
  assert.is(entered.type, 'entered', where);
  assert.is(entered.pid, want.pid, where);
  assert.is(entered.server, want.server, where);
  assert.is(entered.home_srvname, want.home ?? 'HS', `home_srvname: ${where}`);
  assert.is(entered.go_srvname, want.go, `go_srvname: ${where}`);
  assert.is(entered.epoch, want.epoch, `epoch: ${where}`);
  assert.equal(entered.player_data, want.data, `player_data: ${where}`);
  assert.is(entered.player.home_srvname, want.home ?? 'HS', where);
  assert.is(entered.player.go_srvname, want.go, where);
  if (want.gold !== undefined) assert.is(entered.player.gold, want.gold, `gold: ${where}`);
}

/** `player.where` (asked of HS) shows this route; the home's mark eventually shows `go` (set by transfer.arrived). */
async function checkWhere(pid: number, route: Route, go: string): Promise<void> {
  const where = await cluster.where(pid);
  assert.equal(where.route, route, `player.where route: ${JSON.stringify(where)}`);
  await eventually(async () => {
    const now = await cluster.where(pid, 'GS1');
    if (now.go_srvname !== go || (go !== '' && now.markEpoch !== route.epoch)) throw new Error(JSON.stringify(now));
  }, `player ${pid}: the home's mark to be go_srvname=${go || '(none)'} at epoch ${route.epoch}`);
}

/** Which of the cluster's game servers hold the player online (`player.status`). */
async function holders(pid: number): Promise<string[]> {
  const names = ['HS', 'GS1', 'GS2'];
  const answers = await Promise.all(names.map((name) => cluster.peers[name]!.call<{ pid: number; online: boolean }[]>('player.status', { pids: [pid] })));
  return names.filter((_, i) => answers[i]![0]!.online);
}

/** Logs in on a raw WebSocket (to read each message and hold tokens back). */
async function rawLogin(pid: number, home = 'HS'): Promise<{ conn: RawConnection; entered: Entered }> {
  const conn = await RawConnection.open(cluster.gateway(home));
  const entered = await conn.exchange<Entered>({ type: 'login', pid, token: cluster.loginToken(pid, home) }, `player ${pid}'s entered`);
  assert.is(entered.type, 'entered', JSON.stringify(entered));
  return { conn, entered };
}

/** Asks to go to `to` on a raw connection: the connect_to it answers (the token is not used). */
async function rawGo(conn: RawConnection, to: string): Promise<ConnectTo> {
  const move = await conn.exchange<ConnectTo>({ type: 'go', server: to }, `connect_to ${to}`);
  assert.is(move.type, 'connect_to', JSON.stringify(move));
  assert.is(await within(conn.closed, EVENT_DEADLINE_MS, 'the source to close the connection after connect_to'), 1000);
  return move;
}

/** Presents a transfer token on a new raw connection to `server`'s gateway: the answer and the connection. */
async function rawEnter(server: string, pid: number, token: string): Promise<{ conn: RawConnection; reply: any }> {
  const conn = await RawConnection.open(cluster.gateway(server));
  const reply = await conn.exchange({ type: 'enter', pid, token }, `the answer to enter at ${server}`);
  return { conn, reply };
}

function expectRefused(reply: any, kind: string, what: string): void {
  assert.is(reply.type, 'error', `${what} must be refused, got ${JSON.stringify(reply)}`);
  assert.is(reply.kind, kind, `${what}: ${JSON.stringify(reply)}`);
  assert.ok(typeof reply.message === 'string' && reply.message.length > 20, `${what}: the refusal says what to do`);
}

/** Resolves with the next event `name` of a client. */
function nextEvent<T>(client: KuafuClient, name: string): Promise<T> {
  return within(new Promise<T>((resolve) => client.once(name, resolve)), EVENT_DEADLINE_MS, `client ${client.pid} to emit ${name}`);
}

// ---- the flows ----------------------------------------------------------------------------------

test('home → GS1 → GS2 → home → GS1, logout at GS1 and the heartbeat: route, mark, entered and data after each step', async () => {
  const pid = 3001;
  const c = cluster.client(pid, 'HS');

  // [1] Login at home: a new player, claimed by his home (epoch 0 → 1).
  let e = await c.login();
  checkEntered(e, { pid, server: 'HS', epoch: 1, go: '', data: {}, gold: 0 });
  assert.is(c.server, 'HS');
  await checkWhere(pid, { home: 'HS', at: '', epoch: 1, online: true }, '');
  assert.is(await cluster.invoke(pid, ['setlevel'], [7, 'test:flow']), 7);
  assert.is(await cluster.invoke(pid, ['addgold'], [100, 'test:flow']), 100);
  assert.is(await cluster.invoke(pid, ['itemdb', 'additembytype'], [ITEM, 3, null, 'test:flow']), 3);
  assert.equal(await cluster.stored(pid), { gold: 100, items: { [ITEM]: 3 } }, 'acknowledged calls are stored');

  // [2] HS → GS1: the home passes its data along; GS1 claims (epoch 2) and tells HS, which marks him.
  e = await c.go('GS1');
  checkEntered(e, { pid, server: 'GS1', epoch: 2, go: 'GS1', data: homeData(pid, 7), gold: 100 });
  assert.is(c.server, 'GS1');
  await checkWhere(pid, { home: 'HS', at: 'GS1', epoch: 2, online: true }, 'GS1');
  assert.equal(await holders(pid), ['GS1'], 'only GS1 holds him');
  assert.is(await cluster.invoke(pid, ['addgold'], [10, 'test:flow']), 10);
  assert.is(await cluster.invoke(pid, ['getgold'], []), 110);
  assert.is((await cluster.stored(pid)).gold, 110);
  const moved = await rejectionOf(cluster.peers.HS!.call('player.invoke', { pid, path: ['getgold'], args: [], id: 'flow-where' }));
  assert.instance(moved, PlayerMovedError, 'HS says where he is');
  assert.is((moved as PlayerMovedError).details.at, 'GS1');

  // [3] GS1 → GS2 (a hop): he keeps his home's data; HS's mark moves to GS2 (epoch 3).
  e = await c.go('GS2');
  checkEntered(e, { pid, server: 'GS2', epoch: 3, go: 'GS2', data: homeData(pid, 7), gold: 110 });
  await checkWhere(pid, { home: 'HS', at: 'GS2', epoch: 3, online: true }, 'GS2');
  assert.equal(await holders(pid), ['GS2']);
  assert.is(await cluster.invoke(pid, ['itemdb', 'additembytype'], [ITEM, 2, null, 'test:flow']), 5);
  assert.equal(await cluster.stored(pid), { gold: 110, items: { [ITEM]: 5 } });

  // [4] GS2 → HS (return): at home, no go_srvname, no player_data; the mark is cleared (epoch 4).
  e = await c.go('HS');
  checkEntered(e, { pid, server: 'HS', epoch: 4, go: '', data: {}, gold: 110 });
  await checkWhere(pid, { home: 'HS', at: '', epoch: 4, online: true }, '');
  assert.equal(await holders(pid), ['HS']);
  assert.is(await cluster.invoke(pid, ['addgold'], [1, 'test:flow']), 1);
  assert.is(await cluster.invoke(pid, ['itemdb', 'getitemcount'], [ITEM]), 5);

  // [5] HS → GS1 again (epoch 5).
  e = await c.go('GS1');
  checkEntered(e, { pid, server: 'GS1', epoch: 5, go: 'GS1', data: homeData(pid, 7), gold: 111 });
  await checkWhere(pid, { home: 'HS', at: 'GS1', epoch: 5, online: true }, 'GS1');

  // [6] Logout at GS1: saved and offline there; HS's heartbeat finds him offline, clears the mark
  // and takes him home (epoch 6).
  await c.logout();
  assert.is(c.server, null);
  const after = await cluster.state(pid);
  assert.is(after.route!.online, false, `offline after logout: ${JSON.stringify(after)}`);
  const home = await cluster.until(pid, "HS's heartbeat to clear the mark and take him home",
    ({ route, mark }) => route?.at === '' && mark === null);
  assert.equal(home.route, { home: 'HS', at: '', epoch: 6, online: false });
  assert.equal(await holders(pid), []);
  assert.equal(await cluster.stored(pid), { gold: 111, items: { [ITEM]: 5 } }, 'nothing lost');

  // [7] He logs in again at home: everything acknowledged is there.
  e = await cluster.client(pid, 'HS').login();
  checkEntered(e, { pid, server: 'HS', epoch: 7, go: '', data: {}, gold: 111 });
  assert.is(await cluster.invoke(pid, ['itemdb', 'getitemcount'], [ITEM]), 5);
  assert.is(await cluster.invoke(pid, ['getlevel'], []), 7);
});

test('login at home while he is online at a GS: the home sends the new connection on with a fresh token, and the old one is kicked', async () => {
  const pid = 3002;
  const first = cluster.client(pid, 'HS');
  await first.login();
  await first.go('GS2');
  assert.is(await cluster.invoke(pid, ['addgold'], [7, 'test:relogin']), 7);
  await checkWhere(pid, { home: 'HS', at: 'GS2', epoch: 2, online: true }, 'GS2');

  const second = cluster.client(pid, 'HS');
  const moves: ConnectTo[] = [];
  second.on('connect_to', (move: ConnectTo) => moves.push(move));
  const kicked = nextEvent<{ type: string; reason: string }>(first, 'kicked');
  const before = Date.now();
  const e = await second.login();
  checkEntered(e, { pid, server: 'GS2', epoch: 2, go: 'GS2', data: homeData(pid), gold: 7 });
  assert.is(moves.length, 1, 'HS sent the client on once');
  assert.is(moves[0]!.go_srvname, 'GS2');
  assert.is(moves[0]!.home_srvname, 'HS');
  assert.is(moves[0]!.addr, cluster.gateway('GS2'));
  const claims = claimsOf(moves[0]!.token);
  assert.equal({ kind: claims.kind, pid: claims.pid, source: claims.source, destination: claims.destination, home: claims.home, epoch: claims.epoch },
    { kind: 'transfer', pid, source: 'HS', destination: 'GS2', home: 'HS', epoch: 2 }, 'a fresh token from the home, bound to the current epoch');
  assert.ok(claims.expiresAt > before, 'fresh');
  assert.is((await kicked).type, 'kicked', 'the older connection is told it was replaced');
  await checkWhere(pid, { home: 'HS', at: 'GS2', epoch: 2, online: true }, 'GS2');
  assert.equal(await holders(pid), ['GS2']);
  assert.is(await cluster.invoke(pid, ['addgold'], [3, 'test:relogin']), 3);
  assert.is((await cluster.stored(pid)).gold, 10);
});

test('kuafu route shows where a player is; kuafu transfer moves an online player and his client follows', async () => {
  const pid = 3003;
  const c = cluster.client(pid, 'HS');
  await c.login();
  await c.go('GS2');
  await checkWhere(pid, { home: 'HS', at: 'GS2', epoch: 2, online: true }, 'GS2');
  const cli = ['--config', cluster.config.path, '--redis', cluster.redis.url];
  const route = await runKuafu(['route', String(pid), ...cli]);
  assert.is(route.code, 0, route.describe());
  assert.match(route.stdout, `player ${pid}: home HS, on GS2, epoch 2, online, home's mark go_srvname=GS2`);
  const unknown = await runKuafu(['route', '3999', ...cli]);
  assert.is(unknown.code, 1, unknown.describe());
  assert.match(unknown.stdout, 'no route');

  // The operator moves him; the client, told connect_to by GS2, follows by itself to GS1.
  const arrived = within(new Promise<Entered>((resolve) => c.on('entered', (e: Entered) => { if (e.server === 'GS1') resolve(e); })),
    EVENT_DEADLINE_MS, `client ${pid} to follow the operator's transfer to GS1 by itself`);
  const moved = await runKuafu(['transfer', String(pid), 'GS1', ...cli]);
  assert.is(moved.code, 0, moved.describe());
  assert.match(moved.stdout, `player ${pid}: GS2 sent him to GS1`);
  const e = await arrived;
  checkEntered(e, { pid, server: 'GS1', epoch: 3, go: 'GS1', data: homeData(pid) });
  await checkWhere(pid, { home: 'HS', at: 'GS1', epoch: 3, online: true }, 'GS1');
});

test('a late transfer.arrived (an older epoch) cannot undo a newer arrival: the mark changes only by compare-and-set', async () => {
  const pid = 3004;
  const c = cluster.client(pid, 'HS');
  await c.login();
  await c.go('GS1');
  await c.go('GS2');
  await checkWhere(pid, { home: 'HS', at: 'GS2', epoch: 3, online: true }, 'GS2');
  const late = await cluster.peers.HS!.call<{ marked: boolean }>('transfer.arrived', { pid, server: 'GS1', epoch: 2 });
  assert.is(late.marked, false, 'the late message is ignored');
  await checkWhere(pid, { home: 'HS', at: 'GS2', epoch: 3, online: true }, 'GS2');
});

test('a refused go leaves the player where he was, able to play and to move', async () => {
  const pid = 3005;
  const c = cluster.client(pid, 'HS');
  await c.login();
  assert.is(await cluster.invoke(pid, ['addgold'], [4, 'test:refused']), 4);
  for (const [to, why] of [['GS9', 'a server that does not exist'], ['DC', 'a server that is not a game server'], ['HS', 'the server he is on']] as const) {
    const error = await rejectionOf(c.go(to), EVENT_DEADLINE_MS, `go ${to} to be refused`);
    const kind = (error as { kind?: string }).kind;
    assert.ok(kind && kind !== 'Internal', `go to ${why} is refused with a kind that says why, not ${kind}: ${error.message}`);
    assert.is(c.server, 'HS');
    assert.equal((await cluster.state(pid)).route, { home: 'HS', at: '', epoch: 1, online: true }, `after go to ${why}`);
    assert.is(await cluster.invoke(pid, ['addgold'], [1, 'test:refused']), 1, `he can play after go to ${why}`);
  }
  const e = await c.go('GS1');
  assert.is(e.server, 'GS1');
  assert.is(e.player.gold, 7);
});

// ---- tokens -------------------------------------------------------------------------------------

test('transfer tokens: wrong player, wrong destination, forged, never expected are each refused with their own kind and change nothing; the real one then works once', async () => {
  const pid = 3010;
  const { entered } = await rawLogin(pid);
  assert.is(entered.epoch, 1);
  assert.is(await cluster.invoke(pid, ['addgold'], [33, 'test:tokens']), 33);
  const { conn, entered: again } = await rawLogin(pid); // a second login at home takes over the first: same epoch
  assert.is(again.epoch, 1);
  const before = Date.now();
  const move = await rawGo(conn, 'GS1');
  const after = Date.now();
  const token = move.token;
  const claims = claimsOf(token);
  assert.equal({ kind: claims.kind, pid: claims.pid, source: claims.source, destination: claims.destination, home: claims.home, epoch: claims.epoch },
    { kind: 'transfer', pid, source: 'HS', destination: 'GS1', home: 'HS', epoch: 1 }, 'the token is bound to pid, source, destination, home and epoch');
  assert.match(claims.nonce, /^[0-9a-f]{32}$/, '128 random bits');
  assert.ok(claims.expiresAt >= before + 30_000 && claims.expiresAt <= after + 30_000, `default TTL 30 s: ${claims.expiresAt - after} ms left`);
  const state = await cluster.state(pid);
  assert.equal(state.route, { home: 'HS', at: '', epoch: 1, online: true }, 'nothing moves before the token is used');

  const probe = await RawConnection.open(cluster.gateway('GS1'));
  const [payload, signature] = token.split('.') as [string, string];
  const otherPayload = Buffer.from(JSON.stringify({ ...claims, pid: 3011 })).toString('base64url');
  const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
  const cases: [string, Record<string, unknown>, string][] = [
    ['a token presented for another player', { type: 'enter', pid: 3011, token }, 'TokenWrongPlayer'],
    ['a token whose signature was changed', { type: 'enter', pid, token: `${payload}.${flipped}` }, 'TokenInvalid'],
    ['a token whose claims were changed', { type: 'enter', pid: 3011, token: `${otherPayload}.${signature}` }, 'TokenInvalid'],
    ['a token signed with another secret', { type: 'enter', pid, token: issueToken('not-the-cluster-secret!', { kind: 'transfer', pid, source: 'HS', destination: 'GS1', home: 'HS', epoch: 1 }).token }, 'TokenInvalid'],
    ['something that is not a token', { type: 'enter', pid, token: 'not-a-token' }, 'TokenInvalid'],
    ['a login token where a transfer token is needed', { type: 'enter', pid, token: issueLoginToken(cluster.config.secret, pid, 'GS1') }, 'TokenInvalid'],
    ['a well-signed token no server asked GS1 to expect', { type: 'enter', pid, token: issueToken(cluster.config.secret, { kind: 'transfer', pid, source: 'HS', destination: 'GS1', home: 'HS', epoch: 1 }).token }, 'TokenInvalid'],
  ];
  for (const [what, message, kind] of cases) {
    expectRefused(await probe.exchange(message, what), kind, what);
  }
  const atGs2 = await RawConnection.open(cluster.gateway('GS2'));
  expectRefused(await atGs2.exchange({ type: 'enter', pid, token }, 'enter at GS2'), 'TokenWrongDestination', 'a token presented at another server');
  assert.equal(await cluster.state(pid), state, 'the refusals changed nothing');
  assert.equal(await holders(pid), ['HS'], 'HS still answers for him while he is on his way (until he arrives or the token expires)');

  // The genuine token, presented as it was given, on the connection that saw every refusal.
  const e = await probe.exchange<Entered>({ type: 'enter', pid, token }, 'entered at GS1');
  checkEntered(e, { pid, server: 'GS1', epoch: 2, go: 'GS1', data: homeData(pid), gold: 33 });
  await checkWhere(pid, { home: 'HS', at: 'GS1', epoch: 2, online: true }, 'GS1');

  // Replayed: refused, and the player stays where he is, with his connection.
  const stateAfter = await cluster.state(pid);
  const replay = await rawEnter('GS1', pid, token);
  expectRefused(replay.reply, 'TokenUsed', 'a replayed token');
  assert.equal(await cluster.state(pid), stateAfter, 'the replay changed nothing');
  assert.equal(await holders(pid), ['GS1']);
  assert.is(probe.closeCode, null, 'the player who entered with it is not disturbed');
  assert.is(await cluster.invoke(pid, ['getgold'], []), 33);
});

test('an expired transfer token is refused with TokenExpired even at the server told to expect it, and changes nothing', async () => {
  const pid = 3012;
  await cluster.client(pid, 'HS').login();
  const { route } = await cluster.state(pid);
  // A short-lived token, expected by GS2 as a source would make it expected (transfer.expect).
  const { token, claims } = issueToken(cluster.config.secret, { kind: 'transfer', pid, source: 'HS', destination: 'GS2', home: 'HS', epoch: route!.epoch }, 2000);
  const expected = await cluster.peers.GS2!.call<{ gateway: string }>('transfer.expect', { token, pid, playerData: {} });
  assert.is(expected.gateway, cluster.gateway('GS2'));
  await eventually(async () => { if (Date.now() <= claims.expiresAt) throw new Error('not yet expired'); }, 'the token to expire', 10_000, 25);
  const { reply } = await rawEnter('GS2', pid, token);
  expectRefused(reply, 'TokenExpired', 'an expired token');
  assert.equal((await cluster.state(pid)).route, route, 'nothing changed');
  assert.equal(await holders(pid), ['HS']);
});

test('login tokens: replayed, expired, forged, for another server, at a server that is not his home: each refused with its own kind', async () => {
  const pid = 3013;
  const secret = cluster.config.secret;
  const token = issueLoginToken(secret, pid, 'HS');
  const first = await RawConnection.open(cluster.gateway('HS'));
  assert.is((await first.exchange({ type: 'login', pid, token })).type, 'entered');
  const state = await cluster.state(pid);

  const hs = await RawConnection.open(cluster.gateway('HS'));
  expectRefused(await hs.exchange({ type: 'login', pid, token }), 'TokenUsed', 'a replayed login token');
  const [payload, signature] = issueLoginToken(secret, pid, 'HS').split('.') as [string, string];
  expectRefused(await hs.exchange({ type: 'login', pid, token: `${payload}.${(signature[0] === 'A' ? 'B' : 'A') + signature.slice(1)}` }), 'TokenInvalid', 'a forged login token');
  expectRefused(await hs.exchange({ type: 'login', pid: 3014, token: issueLoginToken(secret, pid, 'HS') }), 'TokenWrongPlayer', 'a login token of another player');
  const short = issueToken(secret, { kind: 'login', pid, source: '', destination: 'HS', home: 'HS', epoch: 0 }, 200);
  await eventually(async () => { if (Date.now() <= short.claims.expiresAt) throw new Error('not yet expired'); }, 'the login token to expire', 10_000, 25);
  expectRefused(await hs.exchange({ type: 'login', pid, token: short.token }), 'TokenExpired', 'an expired login token');
  expectRefused(await hs.exchange({ type: 'go', server: 'GS1' }), 'NotLoggedIn', 'go before login');
  const gs1 = await RawConnection.open(cluster.gateway('GS1'));
  expectRefused(await gs1.exchange({ type: 'login', pid, token: issueLoginToken(secret, pid, 'HS') }), 'TokenWrongDestination', 'a login token for HS at GS1');
  expectRefused(await gs1.exchange({ type: 'login', pid, token: issueLoginToken(secret, pid, 'GS1') }), 'TokenInvalid', 'a login at a server that is not his home');
  assert.equal(await cluster.state(pid), state, 'the refusals changed nothing');
  assert.is(first.closeCode, null, 'the logged-in connection is not disturbed');
  assert.equal(await holders(pid), ['HS']);
});

// ---- races --------------------------------------------------------------------------------------

test('a second login while a transfer is pending: he logs in at home, and the pending token no longer applies', async () => {
  const pid = 3020;
  const { conn } = await rawLogin(pid);
  assert.is(await cluster.invoke(pid, ['addgold'], [5, 'test:pending']), 5);
  const move = await rawGo(conn, 'GS1'); // HS saved him, let go of him, GS1 expects him: pending
  assert.equal((await cluster.state(pid)).route, { home: 'HS', at: '', epoch: 1, online: true });

  const again = cluster.client(pid, 'HS');
  const e = await again.login();
  checkEntered(e, { pid, server: 'HS', epoch: 2, go: '', data: {}, gold: 5 });
  const { reply } = await rawEnter('GS1', pid, move.token);
  expectRefused(reply, 'TokenInvalid', 'the pending token after he logged in elsewhere');
  await checkWhere(pid, { home: 'HS', at: '', epoch: 2, online: true }, '');
  assert.equal(await holders(pid), ['HS']);
  assert.is(await cluster.invoke(pid, ['addgold'], [1, 'test:pending']), 1);
  assert.is((await cluster.stored(pid)).gold, 6);
});

test('two transfers of one player requested at once: exactly one wins, and the client gets exactly one connect_to', async () => {
  for (const [round, pid] of [[1, 3030], [2, 3031]] as const) {
    const { conn, entered } = await rawLogin(pid);
    assert.is(await cluster.invoke(pid, ['addgold'], [9, 'test:twice']), 9);
    // Round 1: both asked of his owner; round 2: the client's go and an operator's request through another server.
    const requests = round === 1
      ? [cluster.peers.HS!.call('transfer.request', { pid, to: 'GS1' }), cluster.peers.HS!.call('transfer.request', { pid, to: 'GS2' })]
      : [(conn.send({ type: 'go', server: 'GS1' }), Promise.resolve('go')), cluster.peers.GS2!.call('transfer.request', { pid, to: 'GS2' })];
    const outcomes = await within(Promise.allSettled(requests), EVENT_DEADLINE_MS, 'both requests to be answered');
    const messages: any[] = [];
    await within(conn.closed, EVENT_DEADLINE_MS, 'the source to close the connection');
    for (;;) {
      const message = await conn.next().catch(() => null);
      if (!message) break;
      messages.push(message);
    }
    const moves = messages.filter((m) => m.type === 'connect_to') as ConnectTo[];
    assert.is(moves.length, 1, `round ${round}: exactly one connect_to: ${JSON.stringify(messages)}`);
    const to = moves[0]!.go_srvname;
    const refused = (o: PromiseSettledResult<unknown>) => {
      assert.is(o.status, 'rejected', `the losing request must be refused: ${JSON.stringify(o)}`);
      const reason = (o as PromiseRejectedResult).reason as Error;
      assert.ok(reason instanceof PlayerMovedError || reason instanceof PlayerOfflineError, `refused as moving: ${String(reason)}`);
    };
    if (round === 1) {
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      assert.is(won.length, 1, `round 1: exactly one request succeeds: ${JSON.stringify(outcomes.map((o) => o.status === 'fulfilled' ? o.value : String((o as PromiseRejectedResult).reason)))}`);
      assert.is((won[0] as PromiseFulfilledResult<{ to: string }>).value.to, to, 'the winner is where the client is sent');
      refused(outcomes.find((o) => o.status === 'rejected')!);
    } else if (to === 'GS2') {
      assert.is(outcomes[1]!.status, 'fulfilled', `the operator's request won: ${String((outcomes[1] as PromiseRejectedResult).reason)}`);
    } else {
      refused(outcomes[1]!); // the client's go won
    }
    const { reply } = await rawEnter(to, pid, moves[0]!.token);
    checkEntered(reply, { pid, server: to, epoch: entered.epoch + 1, go: to, data: homeData(pid), gold: 9 });
    await checkWhere(pid, { home: 'HS', at: to, epoch: entered.epoch + 1, online: true }, to);
    assert.equal(await holders(pid), [to]);
  }
});

test('a call made while the player is between two servers follows him to where he arrives', async () => {
  const pid = 3040;
  const { conn } = await rawLogin(pid);
  assert.is(await cluster.invoke(pid, ['addgold'], [5, 'test:between']), 5);
  const move = await rawGo(conn, 'GS1'); // he is online, on his way to GS1
  const call = cluster.invoke(pid, ['addgold'], [1, 'test:between']).then(
    (value) => ({ ok: true as const, value }), (error: Error) => ({ ok: false as const, error }));
  const { reply } = await rawEnter('GS1', pid, move.token);
  assert.is(reply.server, 'GS1', JSON.stringify(reply));
  const outcome = await within(call, EVENT_DEADLINE_MS, 'the call to finish');
  assert.ok(outcome.ok, `a call to an online player in transit must reach him, not fail with ${outcome.ok ? '' : `${outcome.error.name}: ${outcome.error.message}`}`);
  assert.is((await cluster.stored(pid)).gold, 6);
});

test('a call follows a player who keeps moving for at most 8 tries, then fails with PlayerMoved; one who stops by the 8th is reached', async () => {
  // Two stand-ins for game servers (real RPC servers of the cluster, in its config and registry) between which
  // the player moves on each time a call reaches him: each claims him for the other one (the route's
  // compare-and-set, published like any move) and answers that he moved there.
  const tries: { server: string; id: string; epoch: number }[] = [];
  let reachedAt = Number.POSITIVE_INFINITY;
  const log = await quietly(async () => createLogger('stand-in'));
  const standIns: RpcServer[] = [];
  for (const [name, other] of [['HOP-A', 'HOP-B'], ['HOP-B', 'HOP-A']] as const) {
    const server = new RpcServer({
      name, secret: cluster.config.secret, host: '127.0.0.1', port: 0, log,
      methods: {
        'player.invoke': async (arg: { pid: number; id: string }) => {
          const route = (await cluster.store.getRoute(arg.pid))!;
          tries.push({ server: name, id: arg.id, epoch: route.epoch });
          if (tries.length >= reachedAt) return `reached at ${name}`;
          await cluster.store.claimRoute(arg.pid, { expectEpoch: route.epoch, at: other, online: true });
          throw new PlayerMovedError(`Player ${arg.pid} moved on to ${other}; the call follows him there.`, { pid: arg.pid, at: other });
        },
      },
    });
    await server.listen();
    standIns.push(server);
    await cluster.store.announceServer({ name, roles: ['game'], rpc: server.url, gateway: '', pid: process.pid }, 600_000);
  }
  const movingFrom = async (pid: number) => {
    await cluster.store.ensureRoute(pid, 'HS');
    await cluster.store.claimRoute(pid, { expectEpoch: 0, at: 'HOP-A', online: true });
  };
  try {
    // He never stops: the call gives up after its 8th try, each one where his route had moved.
    await movingFrom(3045);
    const error = await rejectionOf(cluster.invoke(3045, ['addgold'], [1, 'test:hops']), 60_000, 'the call to give up');
    assert.is(tries.length, 8, `tries: ${JSON.stringify(tries)}`);
    assert.instance(error, PlayerMovedError, `${error.name}: ${error.message}`);
    assert.match(error.message, /after 8 tries/);
    assert.equal(tries.map((t) => t.server), ['HOP-A', 'HOP-B', 'HOP-A', 'HOP-B', 'HOP-A', 'HOP-B', 'HOP-A', 'HOP-B'], 'each try followed him');
    assert.equal(tries.map((t) => t.epoch), [1, 2, 3, 4, 5, 6, 7, 8], 'each try found him one move later');
    assert.is(new Set(tries.map((t) => t.id)).size, 1, 'every try is the same call (one id)');

    // He stops on the 8th: the call reaches him there.
    tries.length = 0;
    reachedAt = 8;
    await movingFrom(3046);
    assert.is(await within(cluster.invoke(3046, ['addgold'], [1, 'test:hops']), 60_000, 'the call to reach him'), 'reached at HOP-B');
    assert.is(tries.length, 8, `tries: ${JSON.stringify(tries)}`);
  } finally {
    for (const server of standIns) await server.close();
    for (const name of ['HOP-A', 'HOP-B']) await cluster.store.withdrawServer(name);
  }
});

/**
 * Witnesses of the home's heartbeat: players who went from HS to GS2. `run()` logs them out in
 * turn and waits until HS has taken each back — so at least one full beat began after `run()` was
 * called (the second witness cannot be taken back by the beat that took the first).
 */
async function heartbeatWitnesses(pids: number[]): Promise<{ run(): Promise<void> }> {
  const clients: KuafuClient[] = [];
  for (const pid of pids) {
    const c = cluster.client(pid, 'HS');
    await c.login();
    await c.go('GS2');
    await cluster.until(pid, 'marked at GS2', ({ mark }) => mark?.go === 'GS2');
    clients.push(c);
  }
  return {
    async run() {
      for (const [i, c] of clients.entries()) {
        await c.logout();
        await cluster.until(pids[i]!, "HS's heartbeat to take him back", ({ route }) => route?.at === '');
      }
    },
  };
}

test("the home's heartbeat does not take back a player who is hopping from one GS to another", async () => {
  const pid = 3050;
  const witnesses = await heartbeatWitnesses([3051, 3052]);
  const { conn } = await rawLogin(pid);
  const toGs1 = await rawGo(conn, 'GS1');
  const atGs1 = await rawEnter('GS1', pid, toGs1.token);
  assert.is(atGs1.reply.server, 'GS1');
  await checkWhere(pid, { home: 'HS', at: 'GS1', epoch: 2, online: true }, 'GS1');
  const hop = await rawGo(atGs1.conn, 'GS2'); // on his way from GS1 to GS2 (his client may take a while to get there)
  // Two control players log out at GS2 in turn and are taken back: HS's heartbeat ran at least one
  // full beat since the hop began, and looked at him too.
  await witnesses.run();
  const { route } = await cluster.state(pid);
  assert.equal(route, { home: 'HS', at: 'GS1', epoch: 2, online: true }, 'the heartbeat left the hop alone');
  const { reply } = await rawEnter('GS2', pid, hop.token);
  assert.is(reply.type, 'entered', `the hop completes: ${JSON.stringify(reply)}`);
  await checkWhere(pid, { home: 'HS', at: 'GS2', epoch: 3, online: true }, 'GS2');
});

// ---- fencing and read-only copies --------------------------------------------------------------

test('a save by a server that lost the player is refused (StaleOwner) and the stored data stays as it was', async () => {
  // Real processes: GS1 holds him, then the store gives him back to his home behind GS1's back
  // (what HS's heartbeat does when GS1 stops answering); GS1's next save is refused.
  const pid = 3060;
  const c = cluster.client(pid, 'HS');
  await c.login();
  await c.go('GS1');
  assert.is(await cluster.invoke(pid, ['addgold'], [50, 'test:stale']), 50);
  const doc = await cluster.store.loadDocument(pid);
  await cluster.store.releaseToHome(pid, 2);
  const kicked = nextEvent<{ reason: string }>(c, 'kicked');
  const error = await rejectionOf(cluster.peers.GS1!.call('player.invoke', { pid, path: ['addgold'], args: [1000, 'test:stale'], id: 'stale-1' }));
  assert.instance(error, StaleOwnerError, String(error));
  assert.equal(await cluster.store.loadDocument(pid), doc, 'the stored document is unchanged');
  assert.ok((await kicked).reason.length > 0, 'GS1 drops its copy and tells the client');
  assert.equal(await holders(pid), []);
  const e = await cluster.client(pid, 'HS').login();
  checkEntered(e, { pid, server: 'HS', epoch: 4, go: '', data: {}, gold: 50 });

  // In process: GX's PlayerHost holds a player whose route another server has claimed since.
  const gx = cluster.node('GX').game!;
  const other = 3061;
  const g = cluster.client(other, 'GX');
  await g.login();
  assert.is(await cluster.invoke(other, ['addgold'], [20, 'test:stale']), 20);
  const loaded = gx.host.get(other)!;
  const stored = await cluster.store.loadDocument(other);
  await cluster.store.claimRoute(other, { expectEpoch: loaded.epoch, at: 'GS1', online: false });
  loaded.player.addgold(5, 'test:stale-late');
  assert.instance(await rejectionOf(gx.host.save(loaded)), StaleOwnerError);
  assert.equal(await cluster.store.loadDocument(other), stored, 'the late save reached nothing');
  assert.is(gx.host.get(other), undefined, 'GX dropped the copy it lost');
  // He logs in again (at GX, which sends him on to GS1, where the route says he is): 20 gold.
  const back = await cluster.client(other, 'GX').login();
  assert.is(back.server, 'GS1');
  assert.is(back.player.gold, 20);
});

test('a copy loaded offline is read-only: every write throws ReadOnlyPlayerError and nothing is saved', async () => {
  const pid = 3070;
  const c = cluster.client(pid, 'HS');
  await c.login();
  await c.go('GS2');
  assert.is(await cluster.invoke(pid, ['addgold'], [30, 'test:offline']), 30);
  assert.is(await cluster.invoke(pid, ['itemdb', 'additembytype'], [ITEM, 2, null, 'test:offline']), 2);
  await cluster.until(pid, 'marked at GS2', ({ mark }) => mark?.go === 'GS2');
  const before = await cluster.store.loadDocument(pid);
  const host = cluster.node('GX').game!.host;
  const copy = await host.loadOffline(pid);
  assert.ok(copy.readOnly);
  assert.is(copy.getgold(), 30);
  assert.is(copy.itemdb.getitemcount(ITEM), 2);
  assert.is(copy.home_srvname, 'HS');
  assert.is(copy.go_srvname, 'GS2');
  const writes: [string, () => unknown][] = [
    ['addgold', () => copy.addgold(1, 'test:offline')],
    ['setlevel', () => copy.setlevel(9, 'test:offline')],
    ['itemdb.additembytype', () => copy.itemdb.additembytype(ITEM, 1, null, 'test:offline')],
    ['itemdb.removeitembytype', () => copy.itemdb.removeitembytype(ITEM, 1, 'test:offline')],
    ['mail.send', () => copy.mail.send({ title: 'hi', body: 'there' }, 'test:offline')],
  ];
  for (const [what, write] of writes) {
    let thrown: unknown = null;
    try {
      write();
    } catch (error) {
      thrown = error;
    }
    assert.instance(thrown, ReadOnlyPlayerError, `${what} on an offline copy`);
  }
  assert.is(copy.dirty, false);
  assert.is(copy.getgold(), 30, 'nothing changed locally either');
  assert.is(copy.itemdb.getitemcount(ITEM), 2);
  assert.equal(await cluster.store.loadDocument(pid), before, 'nothing reached the store');
  assert.is(await cluster.invoke(pid, ['getgold'], []), 30, 'his owner still has him as he was');
  assert.instance(await rejectionOf(host.loadOffline(3079)), PlayerOfflineError, 'a player who never logged in has nothing to load');
});

test.run();
