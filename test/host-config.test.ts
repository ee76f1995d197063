/**
 * What a host sets in the config for its game servers (docs/host-guide.md):
 * - a player model of its own (`"playerModel": "<module>"`): `kuafu up` and `kuafu serve` run game
 *   servers with it, so its methods are callable through player RPC; a module that is missing, or
 *   exports no model, stops the command with a message that names the field and exit code 2;
 * - the limits of the designer scripts (`"scriptLimits"`), in force on every game server.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { parseConfig } from '../runtime/cluster/config.js';
import { startServers } from '../runtime/cluster/start.js';
import { ConfigError } from '../runtime/errors.js';
import { ScriptLimitError } from '../runtime/sandbox/script-error.js';
import { cleanupCluster, connect, onCleanup, quietly, runKuafu, spawnKuafu, writeClusterConfig } from './harness/cluster.js';

const test = suite('host options from the config');
const MODEL = fileURLToPath(new URL('./fixtures/player-model.js', import.meta.url));

test.after(async () => { await cleanupCluster(); });

test('kuafu up with "playerModel": the host\'s methods answer through player RPC, beside the reference ones', async () => {
  const config = writeClusterConfig({
    servers: [{ name: 'HS', roles: ['game'], gatewayPort: 0, metricsPort: 0 }, { name: 'DC', roles: ['datacenter'] }],
    playerModel: MODEL,
  });
  const up = spawnKuafu(['up', '--config', config.path]);
  onCleanup(() => { up.kill('SIGTERM'); });
  const [, rpc, gateway, metrics] = await up.waitForOutput(
    /HS\s+game\s+rpc (ws:\/\/\S+)\s+gateway (ws:\/\/\S+)\s+metrics (http:\/\/\S+)/, 'the HS line with its gateway and metrics');
  const pid = 8801;
  const client = new KuafuClient({ pid, homeUrl: gateway!, loginToken: () => issueLoginToken(config.secret, pid, 'HS') });
  onCleanup(() => client.close());
  await client.login();

  const hs = connect('HS', rpc!, config.secret);
  const invoke = (path: string[], args: unknown[], id: string) => hs.call('player.invoke', { pid, path, args, id });
  assert.equal(await invoke(['addexp'], [150, 'quest'], 'exp-1'), { level: 2, exp: 50 });
  assert.is(await invoke(['getexp'], [], 'exp-2'), 50);
  assert.is(await invoke(['addgold'], [7, 'quest'], 'gold-1'), 7, 'the reference surface is still there');
  assert.equal(await invoke(['addexp'], [150, 'quest'], 'exp-1'), { level: 2, exp: 50 }, 'a retried call id answers its remembered result');
  assert.is(await invoke(['getexp'], [], 'exp-3'), 50, 'and does not run again');
  const refused = await invoke(['addexp'], [-1, 'quest'], 'exp-4').then(() => null, (error: Error) => error);
  assert.match(String(refused?.message), /amount must be a positive integer/);
  // The host's methods are counted like the others, on the metrics port kuafu up printed.
  const text = await (await fetch(metrics!)).text();
  assert.match(text, /kuafu_rpc_calls_total\{method="player\.invoke",outcome="InvalidArgument",server="HS"\} 1/);
});

test('a "playerModel" that is missing, or exports no model, stops kuafu up with exit code 2 and says what to fix', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kuafu-model-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const servers = [{ name: 'HS', roles: ['game'] }];
  const missing = writeClusterConfig({ servers, playerModel: join(dir, 'nowhere.js') });
  const gone = await runKuafu(['up', '--config', missing.path]);
  assert.is(gone.code, 2, gone.describe());
  assert.match(gone.stderr, /"playerModel" .*nowhere\.js does not exist/);

  const empty = join(dir, 'empty.mjs');
  writeFileSync(empty, 'export const somethingElse = 1;\n');
  const noModel = writeClusterConfig({ servers, playerModel: empty });
  const wrong = await runKuafu(['up', '--config', noModel.path]);
  assert.is(wrong.code, 2, wrong.describe());
  assert.match(wrong.stderr, /must export playerModel \(or a default export\): a PlayerModel/);
});

test('"scriptLimits" reach every game server\'s script host: a bundle fine under the default 64 MiB breaks a 16 MiB limit', async () => {
  const parse = (scriptLimits: unknown) => parseConfig({ secret: 'host-config-secret-0123', scriptsDir: '', scriptLimits, servers: [{ name: 'HS', roles: ['game'], rpcPort: 0 }] }, 'test.json', {});
  const refused = (scriptLimits: unknown, message: RegExp) =>
    assert.throws(() => parse(scriptLimits), (error: Error) => error instanceof ConfigError && message.test(error.message));
  refused({ memoryLimitMiB: 'lots' }, /"scriptLimits.memoryLimitMiB" must be a positive number/);
  refused({ cpu: 5 }, /"scriptLimits.cpu" is not a script limit; the limits are memoryLimitMiB, deadlineMs, syncLimitMs, maxValueBytes, cpuLimitMs, maxRequestsInFlight, maxBytesInFlight, quarantineAfterBreaks, quarantineWindowMs, quarantineMs/);
  refused({ memoryLimitMiB: 4 }, /at least 8/);

  const dir = mkdtempSync(join(tmpdir(), 'kuafu-limits-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'hungry.ts');
  // About 32 MiB of arrays, kept alive until the function returns.
  writeFileSync(file, 'export function main() { const kept: number[][] = []; for (let i = 0; i < 400; i++) kept.push(new Array(10000).fill(i)); return kept.length; }\n');
  for (const [limits, fits] of [[{}, true], [{ memoryLimitMiB: 16, deadlineMs: 3000 }, false]] as const) {
    const running = await quietly(() => startServers(parse(limits)));
    onCleanup(() => running.stop());
    const scripts = running.nodes[0]!.game!.scripts.host;
    assert.is(scripts.settings.memoryLimitMiB, 'memoryLimitMiB' in limits ? 16 : 64);
    assert.is(scripts.settings.deadlineMs, 'deadlineMs' in limits ? 3000 : 5000);
    await scripts.loadFile(file, 'hungry');
    const outcome = await scripts.run('hungry', 'main', []).then((value) => value, (error: Error) => error);
    if (fits) assert.is(outcome, 400, 'fits in the default 64 MiB');
    else assert.ok(outcome instanceof ScriptLimitError && outcome.limit === 'memory', `breaks the 16 MiB limit: ${String(outcome)}`);
    await running.stop();
  }
});

test.run();
