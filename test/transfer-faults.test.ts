/**
 * Transfer under faults (issue 3; DESIGN §3, §4): real `kuafu serve` game servers (HS, GS1, GS2)
 * on one real redis-server, killed with SIGKILL or paused with SIGSTOP at the worst moments, and
 * real KuafuClients. In every case the player can log in again and his gold and items are exactly
 * what was last acknowledged; a paused server that lost the player cannot write him any more; a
 * home (HS2, in the test process, whose heartbeat's questions the test sees) takes a player back
 * after exactly three beats his server did not answer.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ConnectTo, Entered, KuafuClient } from '../runtime/client/kuafu-client.js';
import { StaleOwnerError } from '../runtime/errors.js';
import type { CallOptions } from '../runtime/rpc/peer-client.js';
import type { Route } from '../runtime/store/store.js';
import { EVENT_DEADLINE_MS, eventually, rejectionOf, within } from './harness/cluster.js';
import { GameCluster } from './harness/game-cluster.js';

const test = suite('transfer faults');

let cluster: GameCluster;
const ITEM = 105001;

test.before(async () => {
  // A short RPC deadline, so a paused server's missed heartbeats add up quickly.
  // HS2, a home in the test process, so a test can watch what its heartbeat asks.
  cluster = await GameCluster.start({ games: ['HS', 'GS1', 'GS2'], inProcessGames: ['HS2'], heartbeatMs: 250, rpcTimeoutMs: 2000 });
});

test.after(async () => {
  await cluster?.stop();
});

/** Adds gold and items through player RPC wherever he is; returns what is now acknowledged. */
async function give(pid: number, gold: number, items: number, acked: { gold: number; items: number }): Promise<void> {
  assert.is(await cluster.invoke(pid, ['addgold'], [gold, 'test:faults']), gold);
  acked.gold += gold;
  assert.is(await cluster.invoke(pid, ['itemdb', 'additembytype'], [ITEM, items, null, 'test:faults']), acked.items + items);
  acked.items += items;
}

/** The player logs in again at home and has exactly what was acknowledged (stored and live). */
async function logsInWithEverything(pid: number, acked: { gold: number; items: number }, client?: KuafuClient): Promise<Entered> {
  assert.equal(await cluster.stored(pid), { gold: acked.gold, items: { [ITEM]: acked.items } }, 'stored: exactly what was acknowledged');
  const c = client ?? cluster.client(pid, 'HS');
  const e = await c.login();
  assert.is(e.server, 'HS', `he logs in at home: ${JSON.stringify(e)}`);
  assert.is(e.player.gold, acked.gold);
  assert.is(await cluster.invoke(pid, ['getgold'], []), acked.gold);
  assert.is(await cluster.invoke(pid, ['itemdb', 'getitemcount'], [ITEM]), acked.items);
  const { route, mark } = await cluster.state(pid);
  assert.equal(route, { home: 'HS', at: '', epoch: e.epoch, online: true });
  assert.is(mark, null);
  return e;
}

/** SIGKILLs game server `name`, waits for its exit; `restart()` brings it back (new ports). */
async function kill(name: string): Promise<void> {
  const proc = cluster.servers[name]!;
  proc.kill('SIGKILL');
  const exit = await proc.waitForExit();
  assert.is(exit.signal, 'SIGKILL');
}

test('the destination is killed after the token was sent: the client falls back home and logs in there, nothing lost', async () => {
  const pid = 4001;
  const acked = { gold: 0, items: 0 };
  const c = cluster.client(pid, 'HS');
  await c.login();
  await give(pid, 40, 4, acked);
  const fallbacks: string[] = [];
  c.on('fallback', (problem: string) => fallbacks.push(problem));
  let killed: Promise<void> | null = null;
  c.once('connect_to', (move: ConnectTo) => {
    assert.is(move.go_srvname, 'GS2');
    killed = kill('GS2'); // the token is in the client's hands; its destination dies now
  });
  const e = await c.go('GS2');
  await killed;
  assert.ok(killed, 'the client was sent on');
  assert.is(e.server, 'HS', `it ended at home: ${JSON.stringify(e)}`);
  assert.ok(fallbacks.length >= 1, 'the client reported falling back');
  assert.is(e.epoch, 2, 'his home claimed him again (epoch 1 → 2)');
  await logsInWithEverything(pid, acked, cluster.client(pid, 'HS'));
  await cluster.serve('GS2');
});

test('the destination is killed after it claimed the player: after K missed beats the home takes him back; he logs in at home', async () => {
  const pid = 4002;
  const acked = { gold: 0, items: 0 };
  const c = cluster.client(pid, 'HS');
  await c.login();
  await give(pid, 10, 1, acked);
  const e = await c.go('GS2');
  assert.is(e.server, 'GS2');
  await give(pid, 25, 3, acked); // acknowledged by GS2: saved before it answered
  await cluster.until(pid, 'marked at GS2', ({ mark }) => mark?.go === 'GS2');
  await kill('GS2');
  const back = await cluster.until(pid, "HS's heartbeat to clear the mark after GS2 missed its beats",
    ({ route, mark }) => route?.at === '' && mark === null);
  assert.equal(back.route, { home: 'HS', at: '', epoch: 3, online: false });
  const again = await logsInWithEverything(pid, acked);
  assert.is(again.epoch, 4);
  await cluster.serve('GS2');
});

test('the home takes a player back after exactly three beats his server did not answer, not fewer', async () => {
  const pid = 4007;
  const home = cluster.node('HS2');
  const c = cluster.client(pid, 'HS2');
  await c.login();
  const e = await c.go('GS2');
  assert.is(e.server, 'GS2');
  await cluster.until(pid, 'marked at GS2 by HS2', ({ mark }) => mark?.go === 'GS2');
  // Each question HS2's heartbeat asks GS2 about him: where he stood as it was asked, and whether GS2 answered.
  const asks: { route: Route | null; answered: boolean }[] = [];
  const call = home.call;
  home.call = (async (server: string, method: string, arg?: unknown, options?: CallOptions) => {
    if (method !== 'player.status' || server !== 'GS2' || !(arg as { pids: number[] }).pids.includes(pid)) {
      return call.call(home, server, method, arg, options);
    }
    const route = await cluster.store.getRoute(pid);
    try {
      const answer = await call.call(home, server, method, arg, options);
      asks.push({ route, answered: true });
      return answer;
    } catch (error) {
      asks.push({ route, answered: false });
      throw error;
    }
  }) as typeof home.call;
  let killed = false;
  try {
    await eventually(async () => {
      if (!asks.some((ask) => ask.answered)) throw new Error(`asks so far: ${JSON.stringify(asks)}`);
    }, 'HS2 to ask GS2 about him (and be answered) while GS2 runs');
    await kill('GS2');
    killed = true;
    const back = await cluster.until(pid, "HS2's heartbeat to take him back after GS2 stopped answering",
      ({ route, mark }) => route?.at === '' && mark === null);
    assert.equal(back.route, { home: 'HS2', at: '', epoch: e.epoch + 1, online: false });
    // Beats never overlap, and he is taken back before the beat that took him ends: what was asked
    // until now is all there will be.
    const missed = asks.filter((ask) => !ask.answered);
    assert.is(missed.length, 3, `taken back after ${missed.length} unanswered beats; asks: ${JSON.stringify(asks)}`);
    for (const [i, ask] of missed.entries()) {
      assert.equal(ask.route, { home: 'HS2', at: 'GS2', epoch: e.epoch, online: true }, `still away at GS2 when unanswered beat ${i + 1} asked`);
    }
  } finally {
    home.call = call;
    if (killed) await cluster.serve('GS2'); // for the tests after this one, whatever happened here
  }
});

test('login at home while marked at a server that just died: the mark is cleared and he logs in at home', async () => {
  const pid = 4003;
  const acked = { gold: 0, items: 0 };
  const c = cluster.client(pid, 'HS');
  await c.login();
  await c.go('GS1');
  await give(pid, 12, 2, acked);
  await cluster.until(pid, 'marked at GS1', ({ mark }) => mark?.go === 'GS1');
  await kill('GS1');
  await logsInWithEverything(pid, acked); // at once, without waiting for the heartbeat
  await cluster.serve('GS1');
});

test('the source is killed after it sent the token: the client still arrives, the mark follows him, nothing lost', async () => {
  const pid = 4004;
  const acked = { gold: 0, items: 0 };
  const c = cluster.client(pid, 'HS');
  await c.login();
  await c.go('GS1');
  await give(pid, 8, 1, acked);
  let killed: Promise<void> | null = null;
  c.once('connect_to', () => { killed = kill('GS1'); });
  const e = await c.go('GS2');
  await killed;
  assert.ok(killed, 'the client was sent on');
  assert.is(e.server, 'GS2', JSON.stringify(e));
  assert.is(e.epoch, 3);
  assert.is(e.go_srvname, 'GS2');
  await cluster.until(pid, "HS's mark to move to GS2", ({ route, mark }) => route?.at === 'GS2' && mark?.go === 'GS2' && mark.epoch === 3);
  await give(pid, 1, 1, acked);
  await c.logout();
  await cluster.until(pid, "HS's heartbeat to take him back", ({ route, mark }) => route?.at === '' && mark === null);
  await logsInWithEverything(pid, acked);
  await cluster.serve('GS1');
});

test('the owner is paused: the home takes him back after missed beats, he plays at home, and the resumed server\'s late write is refused', async () => {
  const pid = 4005;
  const acked = { gold: 0, items: 0 };
  const c = cluster.client(pid, 'HS');
  await c.login();
  const e = await c.go('GS1');
  assert.is(e.epoch, 2);
  await give(pid, 60, 6, acked);
  await cluster.until(pid, 'marked at GS1', ({ mark }) => mark?.go === 'GS1');
  const gs1 = cluster.servers.GS1!;
  await gs1.pause();
  try {
    const back = await cluster.until(pid, "HS's heartbeat to give up on the paused GS1 and take him back",
      ({ route, mark }) => route?.at === '' && mark === null);
    assert.equal(back.route, { home: 'HS', at: '', epoch: 3, online: false });
    // He logs in at home (his old client is still connected to the paused GS1) and plays there.
    const home = cluster.client(pid, 'HS');
    const there = await home.login();
    assert.is(there.server, 'HS');
    assert.is(there.epoch, 4);
    await give(pid, 5, 1, acked);
  } finally {
    gs1.resume();
  }
  // GS1 wakes up still holding its old copy; a write there runs into the fence.
  const kicked = within(new Promise((resolve) => c.once('kicked', resolve)), EVENT_DEADLINE_MS, 'GS1 to kick the client of the copy it lost');
  const late = await rejectionOf(cluster.peers.GS1!.call('player.invoke', { pid, path: ['addgold'], args: [1000, 'test:late'], id: 'late-1' }, { timeoutMs: 15_000 }));
  assert.instance(late, StaleOwnerError, String(late));
  await kicked;
  assert.equal(await cluster.stored(pid), { gold: acked.gold, items: { [ITEM]: acked.items } }, 'the late write did not overwrite newer data');
  assert.is(await cluster.invoke(pid, ['getgold'], []), acked.gold);
  const { route } = await cluster.state(pid);
  assert.equal(route, { home: 'HS', at: '', epoch: 4, online: true }, 'he stays at home');
  await logsInWithEverything(pid, acked);
});

test('the home is down while the player arrives on another server: the destination tells it until it hears, and the mark follows', async () => {
  const pid = 4006;
  const c = cluster.client(pid, 'HS');
  await c.login();
  await c.go('GS1');
  await cluster.until(pid, 'marked at GS1', ({ mark }) => mark?.go === 'GS1');
  const gs2 = cluster.servers.GS2!;
  await kill('HS');
  const there = await c.go('GS2'); // GS1 → GS2 needs nothing of HS but the news
  assert.is(there.server, 'GS2');
  await eventually(async () => {
    if (!gs2.stderr.includes(`could not tell home HS that player ${pid} arrived`)) throw new Error('GS2 has not failed three times yet');
  }, 'GS2 to fail three times to tell HS, which is down');
  await cluster.serve('HS');
  await cluster.until(pid, 'HS to hear from GS2 once it is back, and mark him there', ({ mark }) => mark?.go === 'GS2');
  await c.logout();
  await cluster.until(pid, "HS's heartbeat to take him back after his logout at GS2", ({ route, mark }) => route?.at === '' && mark === null);
});

test.run();
