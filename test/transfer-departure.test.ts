/**
 * A player who leaves and never arrives (issue 10, finding 10): his client gets `connect_to` from
 * his home HS and drops, and never logs in again. HS (a real game server in this process, with a
 * short transfer token TTL so the test need not wait 30 s) and GS1 (a `kuafu serve` process) on one
 * real redis-server, a datacenter keeping profiles, a real KuafuClient. Once his token expired
 * unused, his route, his profile and HS's `player.status` all say offline within a heartbeat or
 * two — before the fix, route and profile said "online at HS" for good while `player.status` said
 * offline. The change is fenced by the epoch he left under: an arrival meanwhile is never undone.
 *
 * Every wait is on an event or a polled condition with a generous deadline; nothing sleeps.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ConnectTo } from '../runtime/client/kuafu-client.js';
import type { PeerClient } from '../runtime/rpc/peer-client.js';
import { connect, eventually } from './harness/cluster.js';
import { GameCluster, claimsOf } from './harness/game-cluster.js';

const test = suite('transfer: a departure that never arrives');

const TOKEN_TTL_MS = 3000;
let cluster: GameCluster;
let hs: PeerClient;

test.before(async () => {
  cluster = await GameCluster.start({ games: ['GS1'], inProcessGames: ['HS'], heartbeatMs: 250, game: { tokenTtlMs: TOKEN_TTL_MS } });
  hs = connect('HS', cluster.node('HS').rpcUrl, cluster.config.secret);
});

test.after(async () => {
  await cluster?.stop();
});

/** Route, profile and HS's `player.status`, as one view. */
async function views(pid: number): Promise<{ route: unknown; profileOnline: unknown; profileServer: unknown; status: boolean }> {
  const [route, profile, [status]] = await Promise.all([
    cluster.store.getRoute(pid), cluster.store.getProfile(pid), hs.call<{ pid: number; online: boolean }[]>('player.status', { pids: [pid] }),
  ]);
  return { route, profileOnline: profile?.fields.online, profileServer: profile?.fields.server, status: status!.online };
}

test('the client drops after connect_to from home: once the token expired, route, profile and player.status say offline', async () => {
  const pid = 4101;
  const c = cluster.client(pid, 'HS');
  const entered = await c.login();
  assert.is(entered.server, 'HS');
  await eventually(async () => {
    const now = await views(pid);
    if (now.profileOnline !== true || !now.status) throw new Error(JSON.stringify(now));
  }, 'him to be online at HS everywhere');

  // The client asks to go, gets its token, and drops without ever presenting it.
  c.sendRaw({ type: 'go', server: 'GS1' });
  const move = await c.nextMessage() as unknown as ConnectTo | null;
  assert.is(move?.type as unknown, 'connect_to', `the home sent him on: ${JSON.stringify(move)}`);
  assert.is(move!.go_srvname, 'GS1');
  c.close();
  const expiresAt = claimsOf(move!.token).expiresAt;

  const settled = await eventually(async () => {
    const now = await views(pid);
    if ((now.route as { online?: boolean } | null)?.online !== false || now.profileOnline !== false || now.status) throw new Error(`now ${JSON.stringify(now)}`);
    return now;
  }, 'route, profile and player.status to agree he is offline', 30_000, 50);
  assert.ok(Date.now() >= expiresAt, 'not before his token expired (until then he was on his way)');
  assert.equal(settled.route, { home: 'HS', at: '', epoch: entered.epoch, online: false }, 'the same epoch: nobody claimed him');
  assert.is(settled.profileServer, 'HS');
  assert.is((await cluster.state(pid)).mark, null);

  // He comes back some day: he logs in at home as after a logout.
  const again = await cluster.client(pid, 'HS').login();
  assert.is(again.server, 'HS');
  assert.is(again.epoch, entered.epoch + 1);
  await eventually(async () => {
    const now = await views(pid);
    if (now.profileOnline !== true || !now.status) throw new Error(JSON.stringify(now));
  }, 'him to be online at HS again everywhere');
});

test('a departure settled after he arrived somewhere changes nothing: fenced by the epoch he left under', async () => {
  const pid = 4102;
  const c = cluster.client(pid, 'HS');
  const home = await c.login();
  const there = await c.go('GS1');
  assert.is(there.server, 'GS1');
  await cluster.until(pid, 'marked at GS1', ({ route, mark }) => route?.at === 'GS1' && route.online && mark?.go === 'GS1');
  // HS forgot the departure when his route moved on; a late settle of it (as after a lost
  // publication) finds his route under a newer epoch and leaves it alone.
  const host = cluster.node('HS').game!.host;
  host.departed(pid, 'GS1', home.epoch, Date.now() - 1);
  await host.settleDepartures();
  const { route, mark } = await cluster.state(pid);
  assert.equal(route, { home: 'HS', at: 'GS1', epoch: there.epoch, online: true });
  assert.equal(mark, { go: 'GS1', epoch: there.epoch });
  assert.is(host.departure(pid), undefined);
  await c.logout();
  await cluster.until(pid, "HS's heartbeat to take him back after his logout at GS1", ({ route: r, mark: m }) => r?.at === '' && m === null);
});

test.run();
