/**
 * A server's metrics (runtime/cluster/metrics.ts): Prometheus text on GET /metrics of its
 * `metricsPort`, and the same from the `cluster.metrics` method. Real servers (in this process, on
 * the embedded store), a real client and a real script bundle; the figures are read back from the
 * text a scraper would get.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { parseConfig } from '../runtime/cluster/config.js';
import { startServers, type RunningServers } from '../runtime/cluster/start.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { cleanupCluster, connect, onCleanup, quietly } from './harness/cluster.js';

const test = suite('metrics');
const SECRET = 'metrics-test-secret-0123';
let running: RunningServers;

test.before(async () => {
  running = await quietly(() => startServers(parseConfig({
    secret: SECRET,
    scriptsDir: '',
    servers: [
      { name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0, metricsPort: 0 },
      { name: 'DC', roles: ['datacenter'], rpcPort: 0 },
    ],
  }, 'metrics-test.json', {})));
});
test.after(async () => {
  await cleanupCluster();
  await running?.stop();
});

/** The value of series `name` whose labels include `labels`, in Prometheus text; undefined when absent. */
function valueOf(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[3]);
  }
  return undefined;
}

test('GET /metrics: calls by method and outcome, logins, transfers of nothing yet, players online, scripts, the process', async () => {
  const [hs, dc] = running.nodes;
  const url = hs!.info().metrics;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  assert.is(dc!.info().metrics, '', 'a server without a metricsPort serves none');

  const pid = 6601;
  const client = new KuafuClient({ pid, homeUrl: hs!.gatewayUrl, loginToken: () => issueLoginToken(SECRET, pid, 'HS') });
  onCleanup(() => client.close());
  await client.login();
  const peer = connect('HS', hs!.rpcUrl, SECRET);
  await peer.call('cluster.ping');
  await peer.call('cluster.ping');
  await peer.call('player.invoke', { pid, path: ['addgold'], args: [5, 'metrics test'], id: 'm-1' });
  const refused = await peer.call('player.invoke', { pid, path: ['constructor'], args: [], id: 'm-2' }).then(() => null, (error: Error) => error);
  assert.ok(refused, 'an unexported path is refused');

  const dir = mkdtempSync(join(tmpdir(), 'kuafu-metrics-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'counter.ts'), 'export function main() { return 1; }\n');
  await hs!.game!.scripts.host.loadFile(join(dir, 'counter.ts'), 'counter');
  assert.is(await hs!.game!.scripts.host.run('counter', 'main', []), 1);

  const response = await fetch(url);
  assert.is(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await response.text();
  const on = { server: 'HS' };
  assert.is(valueOf(text, 'kuafu_rpc_calls_total', { ...on, method: 'cluster.ping', outcome: 'ok' }), 2);
  assert.is(valueOf(text, 'kuafu_rpc_calls_total', { ...on, method: 'player.invoke', outcome: 'ok' }), 1);
  assert.is(valueOf(text, 'kuafu_rpc_calls_total', { ...on, method: 'player.invoke', outcome: 'NotExported' }), 1);
  assert.is(valueOf(text, 'kuafu_logins_total', { ...on, outcome: 'ok' }), 1);
  assert.is(valueOf(text, 'kuafu_players_online', on), 1);
  assert.is(valueOf(text, 'kuafu_player_saves_total', { ...on, outcome: 'stored' }), 2, 'the new player at login, and addgold');
  assert.is(valueOf(text, 'kuafu_store_up', on), 1);
  assert.is(valueOf(text, 'kuafu_script_isolates_remade', { ...on, bundle: 'counter' }), 0, 'loaded once, never broken');
  assert.is(valueOf(text, 'kuafu_script_calls_in_flight', { ...on, bundle: 'counter' }), 0);
  assert.ok((valueOf(text, 'kuafu_script_heap_used_bytes', { ...on, bundle: 'counter' }) ?? 0) > 0, 'the isolate heap');
  assert.ok(valueOf(text, 'process_cpu_user_seconds_total', on) !== undefined, "prom-client's process metrics");

  // The same text through the cluster method; anything but GET /metrics is a 404 that says where they are.
  const viaRpc = await peer.call<string>('cluster.metrics');
  assert.ok((valueOf(viaRpc, 'kuafu_rpc_calls_total', { ...on, method: 'cluster.ping', outcome: 'ok' }) ?? 0) >= 2);
  const elsewhere = await fetch(url.replace('/metrics', '/'));
  assert.is(elsewhere.status, 404);
  assert.match(await elsewhere.text(), /GET \/metrics/);

  await client.logout();
  const after = await (await fetch(url)).text();
  assert.is(valueOf(after, 'kuafu_players_online', on), 0, 'logged out');
});

test.run();
