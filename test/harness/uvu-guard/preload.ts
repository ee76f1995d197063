/**
 * Loaded by the test runner (test/run.ts) into every test process with `--import`, before the test
 * file: it sends the file's `import … from 'uvu'` to the guarded uvu (./uvu.ts), and at exit prints
 * what the runner checks, one line each:
 *
 *   [uvu-guard] suites: 3 defined, 3 ran; isolated-vm loaded: yes
 *   [uvu-guard] NOT RUN: suite "name" (defined at file:line:col, 2 tests): its run() was never called
 *
 * and sets a failing exit code when a suite was defined but never ran.
 */
import { createRequire, register } from 'node:module';
import { suites } from './registry.js';

register('./hooks.js', import.meta.url);

const require = createRequire(import.meta.url);

/** Whether isolated-vm's native module was loaded in this process (the runner's re-run rule needs it). */
function isolatedVmLoaded(): boolean {
  return Object.keys(require.cache).some((path) => path.includes('isolated-vm') || path.endsWith('isolated_vm.node'));
}

process.on('exit', () => {
  const defined = suites().filter((s) => !s.implicit || s.tests > 0 || s.runCalled);
  const notRun = defined.filter((s) => !s.ran);
  const lines = [`[uvu-guard] suites: ${defined.length} defined, ${defined.length - notRun.length} ran; isolated-vm loaded: ${isolatedVmLoaded() ? 'yes' : 'no'}`];
  for (const s of notRun) {
    const why = s.runCalled ? 'its run() was called but uvu never ran it' : 'its run() was never called';
    lines.push(`[uvu-guard] NOT RUN: suite ${JSON.stringify(s.name)} (defined at ${s.where}, ${s.tests} test${s.tests === 1 ? '' : 's'}): ${why}`);
  }
  // On a line of its own whatever was printed before. stdout is a pipe under the runner: on Linux a
  // pipe write is synchronous, so this lands before the exit.
  process.stdout.write('\n' + lines.join('\n') + '\n');
  if (notRun.length > 0) process.exitCode = 1;
});
