/**
 * What a client can make a gateway keep (issue 10, findings 6 and 7; DESIGN §8). Real servers in
 * this process on the embedded store, real WebSockets and raw TCP sockets on their gateways:
 *
 * - `go` to a server name that is not in the cluster config is refused with NotFound and leaves
 *   nothing behind: no peer connection, no metric series, the player still usable;
 * - (finding 7) the per-gateway connection cap, the login deadline, and the HTTP header timeout of
 *   a half-sent upgrade, on a game gateway and on the login gateway.
 *
 * Nothing sleeps to let time pass: every wait is on an event (an answer, a close) with a generous
 * deadline; no assertion is on elapsed time.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as tcpConnect, type Socket } from 'node:net';
import { DEFAULT_GATEWAY_LIMITS, DEFAULT_LOGIN_LIMITS, parseConfig } from '../runtime/cluster/config.js';
import type { ServerNode } from '../runtime/cluster/server-node.js';
import { startServers, type RunningServers } from '../runtime/cluster/start.js';
import { ConfigError, NotFoundError } from '../runtime/errors.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { EVENT_DEADLINE_MS, RawConnection, cleanupCluster, connect, eventually, onCleanup, quietly, rejectionOf, within } from './harness/cluster.js';

const test = suite('gateway-limits');
const SECRET = 'gateway-limits-test-secret';
/**
 * The limits of TIGHT's gateway (and, with 2 connections, ACCOUNT's). The login deadline leaves a
 * client that logs in at once plenty of time on a loaded machine; the header timeout is short,
 * since nothing legitimate is waited for there.
 */
const TIGHT = { maxConnections: 3, loginTimeoutMs: 4000, headersTimeoutMs: 1000, requestTimeoutMs: 1000, connectionsCheckingIntervalMs: 200 };
let running: RunningServers;

function node(name: string): ServerNode {
  const found = running.nodes.find((n) => n.name === name);
  if (!found) throw new Error(`no server ${name}`);
  return found;
}

/** The peer connections a node keeps (private: what finding 6 grew). */
function peersOf(server: ServerNode): Map<string, unknown> {
  return (server as unknown as { peers: Map<string, unknown> }).peers;
}

test.before(async () => {
  running = await quietly(() => startServers(parseConfig({
    secret: SECRET,
    scriptsDir: '',
    servers: [
      { name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0, metricsPort: 0 },
      { name: 'GS1', roles: ['game'], rpcPort: 0, gatewayPort: 0 },
      { name: 'DC', roles: ['datacenter'], rpcPort: 0 },
      { name: 'TIGHT', roles: ['game'], rpcPort: 0, gatewayPort: 0, gatewayLimits: TIGHT },
      { name: 'ACCOUNT', roles: ['account'], rpcPort: 0, gatewayPort: 0, gatewayLimits: { ...TIGHT, maxConnections: 2 } },
    ],
  }, 'gateway-limits-test.json', {})));
});

test.after(async () => {
  await cleanupCluster();
  await running?.stop();
});

/** Logs player `pid` in at `home` on a raw WebSocket. */
async function logIn(pid: number, home: string): Promise<RawConnection> {
  const conn = await RawConnection.open(node(home).gatewayUrl);
  const entered = await conn.exchange({ type: 'login', pid, token: issueLoginToken(SECRET, pid, home) }, `player ${pid}'s entered`);
  assert.is(entered.type, 'entered', JSON.stringify(entered));
  return conn;
}

test('go to a server that is not in the config: NotFound, and no peer, metric series or map entry is kept for it', async () => {
  const hs = node('HS');
  const conn = await logIn(7001, 'HS');
  const peersBefore = new Set(peersOf(hs).keys());

  const names = [
    ...Array.from({ length: 300 }, (_, i) => `made-up-${i}`),
    'x'.repeat(60_000), // a long one: the answer does not repeat it whole
    '', 'HS ', 'hs',
  ];
  for (const server of names) {
    const answer = await conn.exchange({ type: 'go', server }, `the answer to go ${server.slice(0, 20)}`);
    assert.is(answer.type, 'error', JSON.stringify(answer).slice(0, 300));
    assert.is(answer.kind, 'NotFound', `go ${JSON.stringify(server.slice(0, 20))}: ${JSON.stringify(answer).slice(0, 300)}`);
    assert.ok(String(answer.message).length < 400, `a short message: ${String(answer.message).slice(0, 100)}…`);
  }
  // A server of the config that is not a game server: NotFound too, without calling it first.
  const dc = await conn.exchange({ type: 'go', server: 'DC' });
  assert.is(dc.kind, 'NotFound', JSON.stringify(dc));

  // Operators and other servers name servers too: transfer.request and cluster.probe.
  const rpc = connect('HS', hs.rpcUrl, SECRET);
  const moved = await rejectionOf(rpc.call('transfer.request', { pid: 7001, to: 'made-up-x' }), undefined, 'transfer.request to a made-up server');
  assert.instance(moved, NotFoundError, `${moved.name}: ${moved.message}`);
  const probed = await rejectionOf(rpc.call('cluster.probe', { server: 'made-up-y' }), undefined, 'cluster.probe of a made-up server');
  assert.instance(probed, NotFoundError, `${probed.name}: ${probed.message}`);
  const called = await rejectionOf(hs.call('made-up-z', 'cluster.ping'), undefined, 'a call to a made-up server');
  assert.instance(called, NotFoundError, `${called.name}: ${called.message}`);
  const direct = await rejectionOf(hs.peer('made-up-w').call('cluster.ping'), undefined, 'a call on peer(made-up)');
  assert.instance(direct, NotFoundError, `${direct.name}: ${direct.message}`);

  // Nothing was kept for any of them.
  const kept = [...peersOf(hs).keys()].filter((name) => !peersBefore.has(name));
  assert.equal(kept.filter((name) => name !== 'DC'), [], 'no peer connection for a made-up name');
  const metrics = await (await fetch(hs.info().metrics)).text();
  assert.not.match(metrics, /made-up|xxxxxxxx/, 'no metric series names a made-up server');
  assert.not.ok(hs.info().connectedPeers.some((name) => name.startsWith('made-up')));

  // The player is still here and can go where he may.
  const connectTo = await conn.exchange({ type: 'go', server: 'GS1' }, 'connect_to GS1');
  assert.is(connectTo.type, 'connect_to', JSON.stringify(connectTo));
  assert.is(connectTo.go_srvname, 'GS1');
  const arrival = await RawConnection.open(connectTo.addr as string);
  const entered = await arrival.exchange({ type: 'enter', pid: 7001, token: connectTo.token }, 'entered at GS1');
  assert.is(entered.server, 'GS1', JSON.stringify(entered));
  assert.ok(peersOf(hs).has('GS1'), 'a real destination does get its connection');
  arrival.close();
  conn.close();
});

// ---- finding 7: the gateways' limits --------------------------------------------------------------

/** A raw TCP connection to a gateway; `closed` resolves with everything the server sent once it closes it. */
function rawTcp(url: string): Promise<{ socket: Socket; closed: Promise<string> }> {
  const { hostname, port } = new URL(url);
  const socket = tcpConnect(Number(port), hostname);
  onCleanup(() => { socket.destroy(); });
  let received = '';
  socket.on('data', (data) => { received += data.toString('latin1'); });
  socket.on('error', () => { /* close follows */ });
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(received)));
  return within(new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  }), EVENT_DEADLINE_MS, `a TCP connection to ${url}`);
}

/** A WebSocket that must not open: resolves with why (a 503 from a full gateway, or a reset). */
async function refusedOpen(url: string, what: string): Promise<string> {
  const error = await rejectionOf(RawConnection.open(url).then((conn) => {
    conn.close();
    return 'it opened';
  }), EVENT_DEADLINE_MS, `${what} to be refused`);
  assert.match(error.message, /503|ECONNRESET|socket hang up/, `${what}: ${error.message}`);
  return error.message;
}

test('a game gateway: a connection that does not log in in time is told so and closed; one that logged in stays', async () => {
  const tight = node('TIGHT');
  const player = await logIn(7101, 'TIGHT');
  const idle = await RawConnection.open(tight.gatewayUrl); // opened after the player's: its deadline comes later
  const told = await idle.next('the login deadline notice');
  assert.equal([told.type, told.kind], ['error', 'Timeout'], JSON.stringify(told));
  assert.match(String(told.message), /did not log in within 4 s/);
  assert.is(await within(idle.closed, EVENT_DEADLINE_MS, 'the idle connection to be closed'), 4001, 'closed with code 4001');

  // The player's deadline passed before the idle one's: he is still connected, and served.
  assert.is(player.closeCode, null, 'the logged-in connection is still open');
  const answer = await player.exchange({ type: 'go', server: 'nowhere' }, 'an answer on the logged-in connection');
  assert.is(answer.kind, 'NotFound', JSON.stringify(answer));
  const logout = await player.exchange({ type: 'logout' }, 'bye');
  assert.is(logout.type, 'bye');
});

test('a game gateway holds at most maxConnections, handshaking ones included; a half-sent upgrade is dropped by the header timeout', async () => {
  const tight = node('TIGHT');
  const url = tight.gatewayUrl;
  await eventually(async () => { if (tight.game!.gateway.connections !== 0) throw new Error(`${tight.game!.gateway.connections} open`); }, 'the earlier connections to be gone');
  const a = await logIn(7201, 'TIGHT');
  const b = await logIn(7202, 'TIGHT');
  // The third: an upgrade that never finishes its headers.
  const half = await rawTcp(url);
  half.socket.write(`GET / HTTP/1.1\r\nHost: ${new URL(url).host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
  await eventually(async () => { if (tight.game!.gateway.connections !== 3) throw new Error(`${tight.game!.gateway.connections} held`); }, 'the gateway to hold 3 connections');

  // Full: a fourth is refused, the three it holds are untouched.
  await refusedOpen(url, 'a fourth connection');
  assert.is((await a.exchange({ type: 'go', server: 'nowhere' })).kind, 'NotFound', 'the first player is still served');

  // The half-sent upgrade is answered 408 and dropped (the config's headersTimeoutMs, checked every
  // 200 ms; Node's defaults held it 60-90 s)...
  const sent = await within(half.closed, EVENT_DEADLINE_MS, 'the half-sent upgrade to be dropped');
  assert.match(sent, /^HTTP\/1\.1 408/, `what the server sent: ${JSON.stringify(sent)}`);
  // ...which makes room for a player.
  await eventually(async () => { if (tight.game!.gateway.connections > 2) throw new Error(`${tight.game!.gateway.connections} held`); }, 'room on the gateway');
  const c = await logIn(7203, 'TIGHT');
  await refusedOpen(url, 'a fourth connection again');

  // A player who leaves makes room too.
  const bye = await b.exchange({ type: 'logout' });
  assert.is(bye.type, 'bye');
  await within(b.closed, EVENT_DEADLINE_MS, 'the logged-out connection to close');
  await eventually(async () => { if (tight.game!.gateway.connections > 2) throw new Error(`${tight.game!.gateway.connections} held`); }, 'room on the gateway');
  const d = await logIn(7204, 'TIGHT');
  for (const conn of [a, c, d]) conn.close();
});

test('the login gateway: the same header timeout, cap and login deadline', async () => {
  const url = node('ACCOUNT').gatewayUrl;

  // A half-sent upgrade is dropped by the header timeout.
  const half = await rawTcp(url);
  half.socket.write('GET / HTTP/1.1\r\nUpgrade: websocket\r\n');
  assert.match(await within(half.closed, EVENT_DEADLINE_MS, 'the half-sent upgrade to be dropped'), /^HTTP\/1\.1 408/);

  // A client that logs in stays; an idle one opened after it is closed at its deadline.
  await connect('ACCOUNT', node('ACCOUNT').rpcUrl, SECRET).call('account.register', { account: 'limits-user', password: 'a long password', home: 'HS' });
  const user = await eventually(() => RawConnection.open(url), 'a connection once the dropped one is gone');
  const ticket = await user.exchange({ type: 'login', account: 'limits-user', password: 'a long password' }, 'login_token');
  assert.is(ticket.type, 'login_token', JSON.stringify(ticket));
  const idle = await RawConnection.open(url);
  // Full (2): a third is refused.
  await refusedOpen(url, 'a third connection to the login gateway');
  const told = await idle.next('the login deadline notice');
  assert.is(told.kind, 'Timeout', JSON.stringify(told));
  assert.is(await within(idle.closed, EVENT_DEADLINE_MS, 'the idle connection to be closed'), 4001);
  assert.is(user.closeCode, null, 'the client that logged in is still connected');
  user.close();
});

test('the config: gatewayLimits for all gateways (and loginLimits), a server\'s own over them, defaults, and messages that name the field', () => {
  const servers = [
    { name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0, gatewayLimits: { maxConnections: 50 } },
    { name: 'GS1', roles: ['game'], rpcPort: 0, gatewayPort: 0 },
  ];
  const parse = (extra: Record<string, unknown>, list: unknown[] = servers) => parseConfig({ secret: SECRET, scriptsDir: '', servers: list, ...extra }, 'limits.json', {});
  const plain = parse({});
  assert.equal(plain.gatewayLimits, DEFAULT_GATEWAY_LIMITS);
  assert.equal(DEFAULT_GATEWAY_LIMITS, { maxConnections: 10_000, loginTimeoutMs: 10_000, headersTimeoutMs: 10_000, requestTimeoutMs: 10_000, connectionsCheckingIntervalMs: 1000 });
  assert.is(plain.servers[0]!.gatewayLimits!.maxConnections, 50, "a server's own limit");
  assert.is(plain.servers[0]!.gatewayLimits!.loginTimeoutMs, 10_000, 'the rest from the cluster');
  const set = parse({ gatewayLimits: { loginTimeoutMs: 3000, requestTimeoutMs: 5000 } });
  assert.equal(set.servers[1]!.gatewayLimits, { ...DEFAULT_GATEWAY_LIMITS, loginTimeoutMs: 3000, requestTimeoutMs: 5000, headersTimeoutMs: 5000 }, 'headers within the request');
  assert.is(set.servers[0]!.gatewayLimits!.maxConnections, 50);
  assert.is(set.servers[0]!.gatewayLimits!.loginTimeoutMs, 3000);

  const refused = (extra: Record<string, unknown>, list?: unknown[]) => {
    try {
      parse(extra, list);
    } catch (error) {
      assert.instance(error, ConfigError);
      return (error as Error).message;
    }
    throw new Error(`accepted ${JSON.stringify(extra)}`);
  };
  assert.match(refused({ gatewayLimits: { maxConnections: 0 } }), /"gatewayLimits\.maxConnections" must be a positive whole number/);
  assert.match(refused({ gatewayLimits: { loginTimeout: 5 } }), /"gatewayLimits\.loginTimeout" is not a gateway limit; the limits are maxConnections, loginTimeoutMs/);
  assert.match(refused({ gatewayLimits: 5 }), /"gatewayLimits" must be an object/);
  assert.match(refused({ gatewayLimits: { headersTimeoutMs: 20_000 } }), /"gatewayLimits\.headersTimeoutMs" \(20000\) must not be longer than "gatewayLimits\.requestTimeoutMs" \(10000\)/);
  assert.match(refused({}, [{ name: 'HS', roles: ['game'], rpcPort: 0, gatewayLimits: { loginTimeoutMs: 'soon' } }]), /servers\[0\]\.gatewayLimits\.loginTimeoutMs must be a positive whole number of milliseconds, not "soon"/);

  // The account servers' loginLimits (finding 8) are checked the same way.
  assert.equal(plain.loginLimits, DEFAULT_LOGIN_LIMITS);
  assert.equal(DEFAULT_LOGIN_LIMITS, { loginsPerSourcePerMinute: 30, failedLoginsPerAccountPerSource: 5, registrationsPerSourcePerHour: 10, hashesInFlightPerSource: 2 });
  assert.equal(parse({ loginLimits: { registrationsPerSourcePerHour: 3 } }).loginLimits, { ...DEFAULT_LOGIN_LIMITS, registrationsPerSourcePerHour: 3 });
  assert.match(refused({ loginLimits: { loginsPerMinute: 3 } }), /"loginLimits\.loginsPerMinute" is not a login limit; the limits are loginsPerSourcePerMinute, /);
  assert.match(refused({ loginLimits: { hashesInFlightPerSource: 1.5 } }), /"loginLimits\.hashesInFlightPerSource" must be a positive whole number, not 1\.5/);
  assert.match(refused({ loginLimits: [] }), /"loginLimits" must be an object/);
});

test.run();
