/**
 * A game server loads the designer scripts of its config's scripts folder and reloads one when its
 * file changes, without a restart (issue 4: `kuafu up` watches `scripts/`).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfig } from '../runtime/cluster/config.js';
import { startServers, type RunningServers } from '../runtime/cluster/start.js';
import { eventually, within } from './harness/cluster.js';

const test = suite('scripts folder');
let running: RunningServers | undefined;
const dir = mkdtempSync(join(tmpdir(), 'kuafu-scripts-'));

test.after(async () => {
  await running?.stop();
});

test('a game server loads the folder at start and reloads a script when its file changes', async () => {
  writeFileSync(join(dir, 'greet.ts'), 'export async function main() { return "hello v1"; }\n');
  writeFileSync(join(dir, 'types.d.ts'), 'declare const nothing: number;\n');
  process.env.KUAFU_LOG_LEVEL ??= 'warn';
  const config = parseConfig({
    secret: 'scripts-folder-test-secret',
    scriptsDir: dir,
    servers: [{ name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0 }],
  }, join(dir, 'cluster.json'));
  running = await startServers(config);
  const host = running.nodes[0]!.game!.scripts.host;
  assert.equal(host.names(), ['greet'], 'the .ts script is loaded, the .d.ts is not');
  assert.is(await host.run('greet', 'main'), 'hello v1');
  writeFileSync(join(dir, 'greet.ts'), 'export async function main() { return "hello v2"; }\n');
  await eventually(async () => {
    const answer = await host.run('greet', 'main');
    if (answer !== 'hello v2') throw new Error(`still ${String(answer)}`);
  }, 'the changed script to be reloaded', 30_000, 50);
  writeFileSync(join(dir, 'more.ts'), 'export async function main() { return 42; }\n');
  await eventually(async () => {
    if (!host.has('more')) throw new Error('not loaded yet');
  }, 'a new script file to be loaded', 30_000, 50);
  assert.is(await host.run('more', 'main'), 42);
});

test('a script that does not compile is reported and the version before keeps serving', async () => {
  const node = running!.nodes[0]!;
  const host = node.game!.scripts.host;
  // What the server reports: its log's warnings, each awaited as it comes.
  const warnings: string[] = [];
  const waiting = new Set<() => void>();
  const warn = node.log.warn;
  node.log.warn = (message: string) => {
    warnings.push(message);
    for (const wake of [...waiting]) wake();
    warn(message);
  };
  const reported = (pattern: RegExp, what: string): Promise<string> => within(new Promise<string>((resolve) => {
    const check = () => {
      const found = warnings.find((line) => pattern.test(line));
      if (found === undefined) return;
      waiting.delete(check);
      resolve(found);
    };
    waiting.add(check);
    check();
  }), 30_000, () => `${what}; warnings so far: ${JSON.stringify(warnings)}`);
  try {
    writeFileSync(join(dir, 'greet.ts'), 'export async function main() { return "hello v3" \n');
    // The broken reload was tried, and said what is wrong and where.
    const report = await reported(/script \S*greet\.ts not loaded/, 'the broken greet.ts to be reported');
    assert.match(report, /does not bundle/, report);
    assert.match(report, /greet\.ts:\d+:\d+/, `the report points at the line: ${report}`);
    assert.is(await host.run('greet', 'main'), 'hello v2', 'the last good version still answers');
    // The watcher goes on after a broken file.
    writeFileSync(join(dir, 'more.ts'), 'export async function main() { return 43; }\n');
    await eventually(async () => {
      if ((await host.run('more', 'main')) !== 43) throw new Error('not reloaded yet');
    }, 'the watcher to go on after a broken file', 30_000, 50);
    assert.is(await host.run('greet', 'main'), 'hello v2', 'and the broken file was not loaded since');
  } finally {
    node.log.warn = warn;
  }
});

test.run();
