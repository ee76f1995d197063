/**
 * What a host sets in the config for its game servers (docs/host-guide.md):
 * - the secret: the shipped development secret is refused for any server that listens beyond
 *   this machine (a config check, and `kuafu up` stops with exit code 2 before it listens);
 * - a player model of its own (`"playerModel": "<module>"`): `kuafu up` and `kuafu serve` run game
 *   servers with it, so its methods are callable through player RPC; a module that is missing, or
 *   exports no model, stops the command with a message that names the field and exit code 2;
 * - the limits of the designer scripts (`"scriptLimits"`), in force on every game server;
 * - what a player may hold (`"playerLimits"`), in force on every game server's players.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { DEVELOPMENT_SECRET, parseConfig } from '../runtime/cluster/config.js';
import { DEFAULT_PLAYER_LIMITS } from '../runtime/game/player.js';
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

test('the shipped development secret is refused for a server that listens beyond loopback, and only then', async () => {
  const config = (host: string, secret = DEVELOPMENT_SECRET, serverHost?: string) => ({
    secret, host, servers: [
      { name: 'HS', roles: ['game'], rpcPort: 0 },
      { name: 'DC', roles: ['datacenter'], rpcPort: 0, ...(serverHost === undefined ? {} : { host: serverHost }) },
    ],
  });
  const refused = (raw: unknown, env: NodeJS.ProcessEnv, message: RegExp) =>
    assert.throws(() => parseConfig(raw, 'test.json', env), (error: Error) => error instanceof ConfigError && message.test(error.message));
  const development = /listens on .*, beyond this machine, with the shipped development secret: set your own "secret" \(or KUAFU_SECRET\) first/;
  for (const host of ['0.0.0.0', '::', '10.0.0.21', 'game-1.example.com']) {
    refused(config(host), {}, new RegExp(`servers\\[0\\] listens on ${host.replace(/\./g, '\\.')}, beyond this machine`));
    refused(config(host), {}, development);
  }
  // One server of the cluster listening beyond this machine is enough, and is named.
  refused(config('127.0.0.1', DEVELOPMENT_SECRET, '0.0.0.0'), {}, /servers\[1\] listens on 0\.0\.0\.0, beyond this machine/);
  // On loopback it is fine; beyond it, a secret of one's own (in the config or KUAFU_SECRET) is.
  for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1']) {
    assert.is(parseConfig(config(host), 'test.json', {}).servers[0]!.host, host, `${host} is loopback`);
  }
  assert.is(parseConfig(config('0.0.0.0', 'our-own-secret-0123456789'), 'test.json', {}).servers[0]!.host, '0.0.0.0');
  assert.is(parseConfig(config('0.0.0.0'), 'test.json', { KUAFU_SECRET: 'our-own-secret-0123456789' }).secret, 'our-own-secret-0123456789');

  // As a user meets it: kuafu up stops with exit code 2 and the message, before it listens anywhere.
  const dir = mkdtempSync(join(tmpdir(), 'kuafu-devsecret-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'cluster.json');
  writeFileSync(file, JSON.stringify(config('0.0.0.0')));
  const up = spawnKuafu(['up', '--config', file]);
  onCleanup(() => { up.kill('SIGKILL'); });
  const exit = await up.waitForExit();
  assert.is(exit.code, 2, up.describe());
  assert.match(up.stderr, /servers\[0\] listens on 0\.0\.0\.0, beyond this machine, with the shipped development secret/, up.describe());
  assert.not.match(up.stdout, /rpc ws:\/\//, `it listened: ${up.describe()}`);
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

test('"playerLimits" are checked naming the field, and reach every game server\'s players (the rest keep their defaults)', async () => {
  const parse = (playerLimits: unknown) => parseConfig({ secret: 'host-config-secret-0123', scriptsDir: '', playerLimits, servers: [{ name: 'HS', roles: ['game'], rpcPort: 0 }] }, 'test.json', {});
  const refused = (playerLimits: unknown, message: RegExp) =>
    assert.throws(() => parse(playerLimits), (error: Error) => error instanceof ConfigError && message.test(error.message));
  refused([], /"playerLimits" must be an object with some of documentBytes, mails, mailTitleBytes, mailBodyBytes, mailItems, keptCallDays/);
  refused({ mailboxes: 5 }, /"playerLimits.mailboxes" is not a player limit; the limits are documentBytes, mails/);
  refused({ documentBytes: 1.5 }, /"playerLimits.documentBytes" must be a positive integer/);
  refused({ mails: 0 }, /"playerLimits.mails" must be a positive integer/);
  refused({ keptCallDays: 'forever' }, /"playerLimits.keptCallDays" must be a positive number of days/);
  assert.equal(parse({ keptCallDays: 0.5 }).playerLimits, { keptCallDays: 0.5 });

  const running = await quietly(() => startServers(parse({ mails: 7, documentBytes: 50_000 })));
  onCleanup(() => running.stop());
  assert.equal({ ...running.nodes[0]!.game!.host.limits }, { ...DEFAULT_PLAYER_LIMITS, mails: 7, documentBytes: 50_000 });
  await running.stop();
});

test.run();
