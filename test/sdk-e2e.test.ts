/**
 * The scripting SDK end to end (issue 4): designer scripts in the sandbox on HS (a `kuafu serve`
 * process) reaching players on other `kuafu serve` processes through proxy objects, over real
 * JSON-RPC and Redis. The story of each test is the seed's: "a script on HS gives gold to C, who
 * is on GS1".
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KuafuError, ScriptFailedError } from '../runtime/errors.js';
import { bundleScript } from '../runtime/sandbox/index.js';
import { eventually, ROOT, runKuafu } from './harness/cluster.js';
import { GameCluster } from './harness/game-cluster.js';

const test = suite('sdk end to end');
let cluster: GameCluster;
let nextPid = 4_000_001;
const dir = mkdtempSync(join(tmpdir(), 'kuafu-sdk-e2e-'));

/** Loads a script (TypeScript source) on server `on` under `name`. */
async function load(on: string, name: string, source: string): Promise<void> {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, source);
  const bundle = await bundleScript(file);
  await cluster.peers[on]!.call('script.load', { name, code: bundle.code, map: typeof bundle.map === 'string' ? bundle.map : JSON.stringify(bundle.map), file });
}

/** Runs `fn` of bundle `name` on server `on`. */
function run<T = unknown>(on: string, name: string, fn: string, args: unknown[], timeoutMs = 20_000): Promise<T> {
  return cluster.peers[on]!.call<T>('script.run', { bundle: name, fn, args }, { timeoutMs });
}

/** A player logged in at HS and moved to `to`. */
async function playerOn(to: string): Promise<{ pid: number; client: ReturnType<GameCluster['client']> }> {
  const pid = nextPid++;
  const client = cluster.client(pid, 'HS');
  await client.login();
  if (to !== 'HS') await client.go(to);
  assert.is(client.server, to);
  return { pid, client };
}

test.before(async () => {
  cluster = await GameCluster.start({ games: ['HS', 'GS1', 'GS2'], rpcTimeoutMs: 1500 });
});

test.after(async () => {
  await cluster?.stop();
});

test('test_rpc.ts on HS against C on GS1 returns 10, and the gold and the item are on GS1\'s player', async () => {
  const { pid } = await playerOn('GS1');
  const examples = join(ROOT, 'scripts/examples/test_rpc.ts');
  await load('HS', 'test_rpc', (await import('node:fs')).readFileSync(examples, 'utf8'));
  assert.is(await run('HS', 'test_rpc', 'main', [pid]), 10);
  const where = await cluster.where(pid);
  assert.is(where.route?.at, 'GS1', 'C is still on GS1');
  assert.is(await cluster.peers.GS1!.call('player.invoke', { pid, path: ['getgold'], args: [], id: 'read-1' }), 10, 'GS1 holds the gold');
  assert.is(await cluster.invoke(pid, ['itemdb', 'getitemcount'], [105001]), 10, 'and the item');
  assert.equal((await cluster.stored(pid)).gold, 10, 'acknowledged means saved');
  // A player at home, on the server the script runs on, is no cross-server player: the example returns early.
  const home = await playerOn('HS');
  assert.is(await run('HS', 'test_rpc', 'main', [home.pid]), undefined);
});

test('kuafu script run prints the result, and a script error points at the designer\'s .ts line', async () => {
  const { pid } = await playerOn('GS2');
  const config = ['--config', cluster.config.path, '--redis', cluster.redis.url];
  const ok = await runKuafu(['script', 'run', join(ROOT, 'scripts/examples/test_rpc.ts'), '--on', 'HS', '--args', JSON.stringify([pid]), ...config]);
  assert.is(ok.code, 0, ok.describe());
  assert.is(ok.stdout.trim(), '10', ok.describe());
  const broken = join(dir, 'broken.ts');
  writeFileSync(broken, [
    'export async function main(pid: number) {',
    '  const player = cproxyplayer.new(pid);',
    '  const gold = await player.getgold();',
    '  if (gold >= 0) throw new Error(`too rich: ${gold}`);',
    '}',
    '',
  ].join('\n'));
  const failed = await runKuafu(['script', 'run', broken, '--on', 'HS', '--args', JSON.stringify([pid]), ...config]);
  assert.is(failed.code, 1, failed.describe());
  assert.match(failed.stderr, /broken\.ts:4/, `the error names broken.ts line 4:\n${failed.stderr}`);
  assert.match(failed.stderr, /too rich: 10/);
});

test('the calls follow C when he hops from GS1 to GS2 in the middle of a script: every gold added once', async () => {
  const { pid, client } = await playerOn('GS1');
  await load('HS', 'many_adds', `export async function main(pid: number, n: number) {
    const player = cproxyplayer.new(pid);
    let total = 0;
    for (let i = 0; i < n; i++) total += await player.addgold(1, "test:hop");
    return total;
  }`);
  const N = 300;
  const script = run<number>('HS', 'many_adds', 'main', [pid, N], 60_000);
  // Once the script is under way on GS1, C hops to GS2.
  await eventually(async () => {
    if ((await cluster.stored(pid)).gold < 20) throw new Error('not under way yet');
  }, 'the script to have added some gold on GS1', 30_000, 10);
  await client.go('GS2');
  assert.is(await script, N, 'every call was answered');
  assert.is((await cluster.where(pid)).route?.at, 'GS2');
  assert.is((await cluster.stored(pid)).gold, N, 'each addgold counted exactly once');
});

test('a retried call runs once, even when the retry reaches the server C moved to', async () => {
  const { pid, client } = await playerOn('GS1');
  const id = `test-retry-${pid}`;
  assert.is(await cluster.invoke(pid, ['addgold'], [5, 'test:retry'], id), 5);
  assert.is(await cluster.invoke(pid, ['addgold'], [5, 'test:retry'], id), 5, 'the retry answers the remembered result');
  assert.is((await cluster.stored(pid)).gold, 5);
  await client.go('GS2');
  assert.is(await cluster.invoke(pid, ['addgold'], [5, 'test:retry'], id), 5, 'GS2 knows the result from the stored document');
  assert.is((await cluster.stored(pid)).gold, 5, 'no double gold');
});

test('a reply lost while the owner is paused: the caller retries with the same id and the gold is added once', async () => {
  const { pid } = await playerOn('GS1');
  await cluster.invoke(pid, ['addgold'], [1, 'test:before']);
  const gs1 = cluster.servers.GS1!;
  await gs1.pause();
  // The call reaches GS1's socket, but GS1 is paused: the caller times out (1.5 s) and retries.
  const call = cluster.invoke(pid, ['addgold'], [7, 'test:lost-reply']);
  const resumed = new Promise<void>((resolve) => setTimeout(() => { gs1.resume(); resolve(); }, 2000));
  const added = await call.catch((error: Error) => error);
  await resumed;
  assert.is(added, 7, `the call ended with ${String(added)}`);
  assert.is((await cluster.stored(pid)).gold, 8, 'added once, although the request reached GS1 more than once');
});

test('a bundle that loops forever or eats memory is stopped; HS keeps serving players and other scripts', async () => {
  const { pid } = await playerOn('GS1');
  await load('HS', 'loop', 'export async function main() { while (true) {} }');
  await load('HS', 'bomb', 'export async function main() { const a: string[] = []; for (;;) a.push("x".repeat(1 << 20) + a.length); }');
  await load('HS', 'fine', 'export async function main(pid: number) { return cproxyplayer.new(pid).addgold(3, "test:fine"); }');
  for (const name of ['loop', 'bomb']) {
    const error = await run('HS', name, 'main', []).then(() => null, (e: Error) => e);
    assert.ok(error instanceof ScriptFailedError, `${name}: ${String(error)}`);
    assert.match((error as KuafuError).message, /limit|deadline|memory|stopped/i);
  }
  assert.is(await run('HS', 'fine', 'main', [pid]), 3, 'another script still runs');
  assert.ok(await cluster.peers.HS!.call('cluster.ping'), 'HS still answers');
  assert.is(await run('HS', 'fine', 'main', [pid]), 3);
});

test('the owner killed with SIGKILL right after acknowledging a call loses nothing that was acknowledged', async () => {
  const { pid, client } = await playerOn('GS1');
  assert.is(await cluster.invoke(pid, ['addgold'], [9, 'test:acked']), 9);
  assert.is(await cluster.invoke(pid, ['itemdb', 'additembytype'], [105002, 2, null, 'test:acked']), 2);
  await cluster.servers.GS1!.kill('SIGKILL');
  // HS's heartbeat gets no answer from GS1 and takes C home; his client logs in there.
  await cluster.until(pid, 'C back home', (s) => s.route?.at === '' && !s.mark);
  client.close();
  const again = cluster.client(pid, 'HS');
  const entered = await again.login();
  assert.is(entered.server, 'HS');
  assert.is(entered.player.gold, 9, 'the acknowledged gold survived');
  assert.is(await cluster.invoke(pid, ['itemdb', 'getitemcount'], [105002]), 2);
  await cluster.serve('GS1');
});

test.run();
