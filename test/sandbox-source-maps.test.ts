/**
 * Script errors point at the designer's own TypeScript (DESIGN §7), and `kuafu bundle` makes the
 * bundles the host loads (issue 4 item 5): the command as a user runs it, its output loaded into a
 * host, and its error output for a script that does not bundle.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BundleError, ScriptError, ScriptHost, bundleScript } from '../runtime/sandbox/index.js';
import { RecordingServices, quietLogger, rejection } from './fixtures/script-services.js';

const test = suite('script source maps and kuafu bundle');

const FIXTURE = 'test/fixtures/scripts/throws.ts';
const HELPER = 'test/fixtures/scripts/helpers/reward.ts';

let services: RecordingServices;
let host: ScriptHost;
let out: string;

test.before(() => {
  services = new RecordingServices();
  host = new ScriptHost({ services, logger: quietLogger() });
  out = mkdtempSync(join(tmpdir(), 'kuafu-bundle-'));
});

test.after(async () => {
  await host.close();
  rmSync(out, { recursive: true, force: true });
});


/** Runs the `kuafu` command as a user does; resolves with its exit code and output. */
function kuafu(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/kuafu.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test("a script's error names the designer's .ts file and line, in the message, the location and the stack", async () => {
  await host.loadFile(FIXTURE);
  const error = await rejection<ScriptError>(host.run('throws', 'main', [1]));
  assert.instance(error, ScriptError);
  assert.equal(error.location, { file: FIXTURE, line: 14, column: error.location!.column });
  assert.match(error.message, /^throws\.main failed at test\/fixtures\/scripts\/throws\.ts:14:\d+: TypeError: Cannot read properties of undefined \(reading 'gold'\)$/);
  assert.match(error.stack!, /\n {4}at main \(test\/fixtures\/scripts\/throws\.ts:14:\d+\)/);
  assert.not.match(error.stack!, /bundle\.js|kuafu-sdk/, 'no bundle positions and no SDK frames');
});

test('an uncaught remote error points at the line of the remote call', async () => {
  const error = await rejection<ScriptError>(host.run('throws', 'remote', [404]));
  assert.is(error.kind, 'PlayerOffline');
  assert.equal(error.location && [error.location.file, error.location.line], [FIXTURE, 19]);
  assert.match(error.message, /throws\.ts:19:\d+: PlayerOfflineError: player 404 is offline/);
});

test('an error in an imported module points at that module, and the stack walks back to the caller', async () => {
  const error = await rejection<ScriptError>(host.run('throws', 'nested', [3]));
  assert.equal(error.location && [error.location.file, error.location.line], [HELPER, 4]);
  assert.match(error.message, /RangeError: no reward for player 3$/);
  const frames = error.frames.join('\n');
  assert.match(frames, /at rewardFor \(test\/fixtures\/scripts\/helpers\/reward\.ts:4:\d+\)/);
  assert.match(frames, /at nested \(test\/fixtures\/scripts\/throws\.ts:24:\d+\)/);
});

test('an error logged with its stack is mapped to the .ts lines too', async () => {
  assert.is(await host.run('throws', 'logs', [8]), 'logged');
  const line = services.logs.at(-1)!;
  assert.is(line.level, 'error');
  assert.match(line.message, /^caught Error: for 8\n {4}at logs \(test\/fixtures\/scripts\/throws\.ts:28:\d+\)/);
});

test('kuafu bundle writes one self-contained module and its source map per script, and prints each with its size', async () => {
  const result = await kuafu(['bundle', 'scripts/examples/test_rpc.ts', FIXTURE, '--out', out]);
  assert.is(result.code, 0, result.stderr);
  for (const name of ['test_rpc', 'throws']) {
    const file = join(out, `${name}.js`);
    assert.ok(statSync(file).size > 0);
    assert.match(result.stdout, new RegExp(`${name}\\.js {2}[\\d.]+ (B|KiB) {2}\\(map [\\d.]+ (B|KiB)\\)`));
    const code = readFileSync(file, 'utf8');
    assert.not.match(code, /^\s*import\s/m, 'no imports left: self-contained');
    assert.match(code, new RegExp(`//# sourceMappingURL=${name}\\.js\\.map\\s*$`));
    const map = JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { version: number; sources: string[]; sourcesContent: string[] };
    assert.is(map.version, 3);
    assert.is(map.sources.length, map.sourcesContent.length, 'sources embedded');
  }
  const throwsMap = JSON.parse(readFileSync(join(out, 'throws.js.map'), 'utf8')) as { sources: string[] };
  assert.ok(throwsMap.sources.some((source) => source.endsWith('helpers/reward.ts')), 'the imported helper is in the bundle');
});

test("kuafu bundle's output loads into a host, runs, and its errors still name the .ts lines", async () => {
  services.addPlayer(42, { at: 'GS1' });
  await host.loadFile(join(out, 'test_rpc.js'), 'bundled_rpc');
  assert.is(await host.run('bundled_rpc', 'main', [42]), 10);
  await host.loadFile(join(out, 'throws.js'), 'bundled_throws');
  const error = await rejection<ScriptError>(host.run('bundled_throws', 'main', [1]));
  assert.equal(error.location && [error.location.file, error.location.line], [FIXTURE, 14]);
  // Given as text with its map (as `kuafu script run` sends it), the lines are there too.
  await host.reload('sent', {
    code: readFileSync(join(out, 'throws.js'), 'utf8'),
    map: readFileSync(join(out, 'throws.js.map'), 'utf8'),
    file: join(out, 'throws.js'),
  });
  const sent = await rejection<ScriptError>(host.run('sent', 'nested', [1]));
  assert.equal(sent.location && [sent.location.file, sent.location.line], [HELPER, 4]);
});

test('a script that does not bundle: esbuild\'s message with file:line, exit code 1', async () => {
  const bad = join(out, 'bad_syntax.ts');
  writeFileSync(bad, 'export async function main(pid: number) {\n  const x = ;\n  return x;\n}\n');
  const node = join(out, 'uses_fs.ts');
  writeFileSync(node, "import { readFileSync } from 'node:fs';\nexport function main() { return readFileSync('/etc/passwd', 'utf8'); }\n");
  const result = await kuafu(['bundle', bad, node, 'scripts/examples/test_rpc.ts', '--out', join(out, 'more')]);
  assert.is(result.code, 1);
  const shown = (file: string) => relative(process.cwd(), file).startsWith('..') ? file : relative(process.cwd(), file);
  assert.match(result.stderr, /Unexpected ";"/);
  assert.ok(result.stderr.includes(`${relative(process.cwd(), bad)}:2:12`), result.stderr);
  assert.match(result.stderr, /cannot import "node:fs": scripts run in a sandbox without Node's modules/);
  assert.ok(result.stderr.includes(`${relative(process.cwd(), node)}:1:29`), result.stderr);
  assert.match(result.stderr, /kuafu bundle: 2 of 3 script\(s\) did not bundle/);
  assert.ok(result.stdout.includes(shown(join(out, 'more', 'test_rpc.js'))), 'the good one was still written');
  const missing = await kuafu(['bundle']);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /kuafu bundle needs at least one script/);
});

test('the host bundles a .ts file itself, and refuses one that does not bundle with the same message', async () => {
  const bad = join(out, 'bad_host.ts');
  writeFileSync(bad, 'export function main() {\n  return 1 +;\n}\n');
  let failure: unknown;
  try {
    await host.loadFile(bad);
  } catch (error) {
    failure = error;
  }
  assert.instance(failure, BundleError);
  assert.ok((failure as Error).message.includes(':2:12'), (failure as Error).message);
  assert.is(host.has('bad_host'), false);
  const bundle = await bundleScript(FIXTURE);
  assert.match(bundle.code, /function rewardFor/);
});

test.run();
