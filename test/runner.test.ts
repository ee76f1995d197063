/**
 * The test runner itself (test/run.ts), run on small test files written for the purpose: what it
 * counts is what the whole suite's last line says, so each of its rules is checked here.
 * - a suite that is defined and never run fails (its tests count as failed), whether its run() was
 *   forgotten or it is uvu's default `test`;
 * - a file that prints no uvu summary, or whose summary reports no test, fails; so does one whose
 *   uvu the suite guard did not see;
 * - a `before` hook that throws fails its suite's tests, and its error is printed;
 * - a file is run a second time only for isolated-vm's teardown abort: every test passed, then the
 *   process died of SIGABRT or SIGSEGV at exit, after its exit handlers, with isolated-vm loaded;
 *   any other crash is a failure, and the last line counts the re-runs.
 *
 * Each case runs `dist/test/run.js` in its own process on a folder of such files (KUAFU_TEST_DIR);
 * their output is captured, never passed through (it holds uvu summaries of its own).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { within } from './harness/cluster.js';

const test = suite('the test runner');

const here = dirname(fileURLToPath(import.meta.url));
const RUNNER = join(here, 'run.js');
/** Under dist/ (so 'uvu' and 'isolated-vm' resolve from the project's node_modules), outside dist/test. */
const DIR = join(here, '..', `.runner-fixtures-${process.pid}`);

const FILES: Record<string, string> = {
  'honest.test.js': `
    import { suite } from 'uvu';
    import * as assert from 'uvu/assert';
    const test = suite('honest');
    test('one', () => assert.is(1, 1));
    test('two', () => assert.is(2, 2));
    test.run();
  `,
  'two-suites-one-forgotten.test.js': `
    import { suite } from 'uvu';
    const ran = suite('ran');
    ran('runs', () => {});
    ran.run();
    const forgotten = suite('forgotten');
    forgotten('never runs', () => {});
    forgotten('never runs either', () => {});
    // forgotten.run() is missing
  `,
  'only-forgotten.test.js': `
    import { suite } from 'uvu';
    const test = suite('alone');
    test('never runs', () => {});
  `,
  'default-forgotten.test.js': `
    import { test } from 'uvu';
    test('never runs', () => {});
  `,
  'no-uvu.test.js': `
    console.log('a test file that defines nothing');
  `,
  'empty-suite.test.js': `
    import { suite } from 'uvu';
    suite('empty').run();
  `,
  'abort-without-ivm.test.js': `
    import { suite } from 'uvu';
    const test = suite('passes, then aborts');
    test('passes', () => {});
    test.run();
    process.on('exit', () => process.kill(process.pid, 'SIGABRT'));
  `,
  'ivm-abort-once.test.js': `
    import { existsSync, writeFileSync } from 'node:fs';
    import ivm from 'isolated-vm';
    import { suite } from 'uvu';
    const test = suite('isolated-vm, aborts at exit the first time');
    test('passes', () => { new ivm.Isolate({ memoryLimit: 8 }).dispose(); });
    test.run();
    const marker = new URL('./ivm-abort-once.ran', import.meta.url);
    process.on('exit', () => {
      if (existsSync(marker)) return;
      writeFileSync(marker, '');
      process.kill(process.pid, 'SIGABRT');
    });
  `,
  'ivm-segv-always.test.js': `
    import ivm from 'isolated-vm';
    import { suite } from 'uvu';
    const test = suite('isolated-vm, dies at every exit');
    test('passes', () => { new ivm.Isolate({ memoryLimit: 8 }).dispose(); });
    test.run();
    process.on('exit', () => process.kill(process.pid, 'SIGSEGV'));
  `,
  'ivm-abort-during.test.js': `
    import ivm from 'isolated-vm';
    import { suite } from 'uvu';
    const test = suite('isolated-vm, aborts in a test');
    test('passes', () => {});
    test('aborts', () => { new ivm.Isolate({ memoryLimit: 8 }); process.kill(process.pid, 'SIGABRT'); });
    test.run();
  `,
  'ivm-sigterm-at-exit.test.js': `
    import ivm from 'isolated-vm';
    import { suite } from 'uvu';
    const test = suite('isolated-vm, killed by another signal at exit');
    test('passes', () => { new ivm.Isolate({ memoryLimit: 8 }).dispose(); });
    test.run();
    process.on('exit', () => process.kill(process.pid, 'SIGTERM'));
  `,
  'unguarded.test.js': `
    import { createRequire } from 'node:module';
    const { suite } = createRequire(import.meta.url)('uvu'); // past the guard: a uvu of its own
    const test = suite('unguarded');
    test('passes', () => {});
    test.run();
  `,
  'before-fails.test.js': `
    import { suite } from 'uvu';
    const test = suite('setup breaks');
    test.before(() => { throw new Error('the setup broke here'); });
    test('never gets to run', () => {});
    test.run();
  `,
  'failing.test.js': `
    import { suite } from 'uvu';
    import * as assert from 'uvu/assert';
    const test = suite('one fails');
    test('passes', () => {});
    test('fails', () => assert.is(1, 2));
    test.run();
  `,
};

interface RunnerRun {
  code: number | null;
  out: string;
  last: string;
  show(): string;
}

/** Runs the runner on the fixture files whose path contains `filter` (no core files, whatever the shell's limit). */
async function runner(filter: string): Promise<RunnerRun> {
  const child = spawn('/bin/sh', ['-c', 'ulimit -c 0; exec "$0" "$@"', process.execPath, '--no-node-snapshot', RUNNER, filter], {
    env: { ...process.env, KUAFU_TEST_DIR: DIR, KUAFU_TEST_FILE_TIMEOUT_MS: '60000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => { out += text; });
  child.stderr.setEncoding('utf8').on('data', (text: string) => { out += text; });
  const code = await within(new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c))), 120_000, `the runner on ${filter}`);
  const lines = out.trimEnd().split('\n');
  // Its output is shown indented, so that its uvu summaries never read as this file's own.
  return { code, out, last: lines[lines.length - 1] ?? '', show: () => `runner on ${filter}, exit ${code}:\n${out.replace(/^/gm, '    | ')}` };
}

test.before(() => {
  mkdirSync(DIR, { recursive: true });
  for (const [name, text] of Object.entries(FILES)) writeFileSync(join(DIR, name), text);
});

test.after(() => {
  rmSync(DIR, { recursive: true, force: true });
});

test('an honest file: its tests are counted and the run passes', async () => {
  const run = await runner('honest');
  assert.is(run.last, '2 passed, 0 failed, 0 re-run', run.show());
  assert.is(run.code, 0, run.show());
});

test('a file with a failing test fails the run', async () => {
  const run = await runner('failing');
  assert.is(run.last, '1 passed, 1 failed, 0 re-run', run.show());
  assert.is(run.code, 1, run.show());
});

test('a suite whose before hook throws fails its tests, and the error is printed (uvu prints nothing of it)', async () => {
  const run = await runner('before-fails');
  assert.is(run.last, '0 passed, 1 failed, 0 re-run', run.show());
  assert.is(run.code, 1, run.show());
  assert.match(run.out, /the before hook of suite "setup breaks" failed: Error: the setup broke here/, run.show());
});

test('a suite defined and never run fails the run: each of its tests counts as failed, and the suite is named', async () => {
  const run = await runner('two-suites');
  assert.is(run.last, '1 passed, 2 failed, 0 re-run', run.show());
  assert.is(run.code, 1, run.show());
  assert.match(run.out, /suite "forgotten" \(defined at \S*two-suites-one-forgotten\.test\.js:\d+:\d+\) never ran: its run\(\) was never called — 2 counted as failed/, run.show());

  const alone = await runner('only-forgotten');
  assert.is(alone.last, '0 passed, 1 failed, 0 re-run', alone.show());
  assert.is(alone.code, 1, alone.show());

  const byDefault = await runner('default-forgotten');
  assert.is(byDefault.last, '0 passed, 1 failed, 0 re-run', byDefault.show());
  assert.match(byDefault.out, /uvu's default test suite/, byDefault.show());
});

test('a file that prints no uvu summary, or whose summary reports no test, fails the run', async () => {
  const silent = await runner('no-uvu');
  assert.is(silent.last, '0 passed, 1 failed, 0 re-run', silent.show());
  assert.is(silent.code, 1, silent.show());
  assert.match(silent.out, /exited without a uvu summary/, silent.show());

  const empty = await runner('empty-suite');
  assert.is(empty.last, '0 passed, 1 failed, 0 re-run', empty.show());
  assert.is(empty.code, 1, empty.show());
  assert.match(empty.out, /reports no test/, empty.show());
});

test('a file whose uvu the suite guard did not see fails the run (its suites could not be checked)', async () => {
  const run = await runner('unguarded');
  assert.is(run.last, '1 passed, 1 failed, 0 re-run', run.show());
  assert.is(run.code, 1, run.show());
  assert.match(run.out, /suites the guard never saw/, run.show());
});

test("isolated-vm's teardown abort (passed, then SIGABRT or SIGSEGV at exit with isolated-vm loaded) is run once more, and counted", async () => {
  rmSync(join(DIR, 'ivm-abort-once.ran'), { force: true });
  const once = await runner('ivm-abort-once');
  assert.is(once.last, '1 passed, 0 failed, 1 re-run', once.show());
  assert.is(once.code, 0, once.show());
  assert.match(once.out, /CRASHED \(signal SIGABRT\) after every test passed/, once.show());

  const always = await runner('ivm-segv-always');
  assert.is(always.last, '1 passed, 1 failed, 1 re-run', `run once more, and only once: ${always.show()}`);
  assert.is(always.code, 1, always.show());
});

test('any other crash is a failure and is not run again', async () => {
  // (A file whose tests passed before it crashed at exit counts them as passed, and the crash as a failure.)
  for (const [filter, why, last] of [
    ['abort-without-ivm', 'SIGABRT at exit without isolated-vm', '1 passed, 1 failed, 0 re-run'],
    ['ivm-abort-during', 'SIGABRT during a test', '0 passed, 1 failed, 0 re-run'],
    ['ivm-sigterm-at-exit', 'SIGTERM at exit', '1 passed, 1 failed, 0 re-run'],
  ] as const) {
    const run = await runner(filter);
    assert.is(run.last, last, `${why}: ${run.show()}`);
    assert.is(run.code, 1, `${why}: ${run.show()}`);
    assert.not.match(run.out, /running the file once more/, `${why}: ${run.show()}`);
  }
});

test.run();
