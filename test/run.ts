/**
 * Test runner: runs every compiled `dist/test/**\/*.test.js` in its own child
 * process (sequentially), streams its output, and sums uvu's summaries.
 *
 *   node --no-node-snapshot dist/test/run.js [filter ...]
 *
 * Filters are substrings matched against the file's path relative to
 * dist/test (a file runs if it matches any filter). The last line printed is
 * `N passed, N failed, N re-run` (plus `, N skipped` when some were skipped).
 * Exit code is 1 if anything failed or no test ran.
 *
 * Every child runs with the suite guard (harness/uvu-guard/preload.js): its
 * `uvu` records each suite, and at exit it reports the suites that were
 * defined and never run. What counts as failed, besides uvu's own failures:
 * - each test of a suite that was defined but never ran (a forgotten `run()`);
 * - a file that exits without a uvu summary, or whose summary reports no test;
 * - a file whose suite guard did not report;
 * - a file that crashed, timed out or could not start.
 * One file is run a second time, and only then: every test passed, every suite
 * ran, the guard reported at exit, isolated-vm was loaded, and the process then
 * died of SIGABRT or SIGSEGV — isolated-vm's teardown abort at exit, rarely
 * seen. The second run's result is what counts; re-runs are counted in the
 * last line. Any other crash is a failure.
 *
 * Env: KUAFU_TEST_FILE_TIMEOUT_MS — per-file timeout (default 300000).
 *      KUAFU_TEST_DIR — where to look for *.test.js (default: this file's folder).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StringDecoder } from 'node:string_decoder';

const DEFAULT_TIMEOUT_MS = 300_000;
/** How long to wait for a child's stdio to drain after it exited. */
const DRAIN_GRACE_MS = 2_000;

interface FileResult {
  total: number;
  passed: number;
  skipped: number;
  failed: number;
  /**
   * Every test passed and every suite ran, the guard reported at exit, isolated-vm was loaded, and
   * then the process died of SIGABRT or SIGSEGV: isolated-vm's teardown abort (worth one re-run).
   */
  teardownAbort: boolean;
}

const here = dirname(fileURLToPath(import.meta.url));
/** Loaded into every test process before its file (`--import`): the suite guard. */
const GUARD = pathToFileURL(join(here, 'harness', 'uvu-guard', 'preload.js')).href;
/** The signals isolated-vm's teardown abort at exit ends a process with. */
const TEARDOWN_SIGNALS: readonly string[] = ['SIGABRT', 'SIGSEGV'];

function findTestFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.test.js')) out.push(full);
    }
  };
  walk(dir);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function timeoutMs(): number {
  const raw = process.env.KUAFU_TEST_FILE_TIMEOUT_MS;
  if (raw === undefined || raw.trim() === '') return DEFAULT_TIMEOUT_MS;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    process.stdout.write(
      `[run] ignoring invalid KUAFU_TEST_FILE_TIMEOUT_MS=${JSON.stringify(raw)}; using ${DEFAULT_TIMEOUT_MS}\n`,
    );
    return DEFAULT_TIMEOUT_MS;
  }
  return n;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;
const SUMMARY = /^\s*(Total|Passed|Skipped):\s+(\d+)\s*$/;
const GUARD_REPORT = /^\[uvu-guard\] suites: (\d+) defined, (\d+) ran; isolated-vm loaded: (yes|no)$/;
const GUARD_NOT_RUN = /^\[uvu-guard\] NOT RUN: suite (.*) \(defined at (.*), (\d+) tests?\): (.*)$/;

/** A suite the guard saw defined and never run. */
interface NotRun {
  name: string;
  where: string;
  tests: number;
  why: string;
}

/** Incremental parser of uvu summary lines and of the suite guard's report. */
class SummaryParser {
  total = 0;
  passed = 0;
  skipped = 0;
  summaries = 0;
  /** The guard's report at exit, once seen. */
  guard: { defined: number; ran: number; isolatedVm: boolean } | null = null;
  readonly notRun: NotRun[] = [];
  private buf = '';
  private decoder = new StringDecoder('utf8');

  push(chunk: Buffer): void {
    this.buf += this.decoder.write(chunk);
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) !== -1) {
      this.line(this.buf.slice(0, nl));
      this.buf = this.buf.slice(nl + 1);
    }
  }

  end(): void {
    this.buf += this.decoder.end();
    if (this.buf) this.line(this.buf);
    this.buf = '';
  }

  private line(raw: string): void {
    const text = raw.replace(ANSI, '').replace(/\r$/, '');
    const report = GUARD_REPORT.exec(text);
    if (report) {
      this.guard = { defined: Number(report[1]), ran: Number(report[2]), isolatedVm: report[3] === 'yes' };
      return;
    }
    const notRun = GUARD_NOT_RUN.exec(text);
    if (notRun) {
      this.notRun.push({ name: notRun[1]!, where: notRun[2]!, tests: Number(notRun[3]), why: notRun[4]! });
      return;
    }
    const m = SUMMARY.exec(text);
    if (!m) return;
    const n = Number(m[2]);
    if (m[1] === 'Total') {
      this.total += n;
      this.summaries++;
    } else if (m[1] === 'Passed') this.passed += n;
    else this.skipped += n;
  }
}

/** Process group of the child currently running (for cleanup on signals). */
let current: ChildProcess | undefined;

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // group already gone
  }
}

let lastByteWasNewline = true;
function passthrough(target: NodeJS.WriteStream, chunk: Buffer): void {
  if (chunk.length === 0) return;
  target.write(chunk);
  lastByteWasNewline = chunk[chunk.length - 1] === 0x0a;
}
function say(line: string): void {
  if (!lastByteWasNewline) process.stdout.write('\n');
  process.stdout.write(line + '\n');
  lastByteWasNewline = true;
}

function runFile(file: string, label: string, limitMs: number): Promise<FileResult> {
  return new Promise((resolve) => {
    const parser = new SummaryParser();
    const child = spawn(process.execPath, ['--no-node-snapshot', '--import', GUARD, file], {
      cwd: process.cwd(),
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout can kill everything it started
    });
    current = child;

    let timedOut = false;
    let spawnError: Error | undefined;
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    let exited = false;
    let finished = false;
    let teardownAbort = false;

    child.stdout!.on('data', (c: Buffer) => {
      parser.push(c);
      passthrough(process.stdout, c);
    });
    child.stderr!.on('data', (c: Buffer) => passthrough(process.stderr, c));

    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, limitMs);

    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      child.stdout!.destroy();
      child.stderr!.destroy();
      // Reap anything the test left behind in its process group.
      killGroup(child, 'SIGKILL');
      if (current === child) current = undefined;
      parser.end();

      const total = parser.total;
      const passed = parser.passed;
      const skipped = parser.skipped;
      // uvu's "Total" counts the tests that were run (skipped ones are not
      // included), so failures are Total - Passed.
      let failed = Math.max(0, total - passed);

      // Suites defined and never run: each of their tests is a failure (at least one per suite).
      for (const suite of parser.notRun) {
        const count = Math.max(1, suite.tests);
        say(`[run] ${label}: suite ${suite.name} (defined at ${suite.where}) never ran: ${suite.why} — ${count} counted as failed`);
        failed += count;
      }
      const crashed = exitCode !== 0 || exitSignal !== null;
      const how = exitSignal !== null ? `signal ${exitSignal}` : `exit code ${exitCode}`;

      if (spawnError) {
        say(`[run] ${label}: could not start: ${spawnError.message}`);
        failed = Math.max(failed, 1);
      } else if (timedOut) {
        say(`[run] ${label}: TIMED OUT after ${limitMs} ms (process group killed) — counted as 1 failed`);
        failed += 1;
      } else if (parser.summaries === 0) {
        if (parser.notRun.length === 0) {
          say(crashed
            ? `[run] ${label}: CRASHED (${how}) before printing a uvu summary — counted as 1 failed`
            : `[run] ${label}: exited without a uvu summary: no test ran — counted as 1 failed`);
          failed += 1;
        }
      } else if (total === 0) {
        if (parser.notRun.length === 0) {
          say(`[run] ${label}: its uvu summary reports no test (Total: 0) — counted as 1 failed`);
          failed += 1;
        }
      } else if (parser.guard === null || parser.guard.defined === 0) {
        say(parser.guard === null
          ? `[run] ${label}: the suite guard did not report at exit (${crashed ? how : 'it exited'} before it could): its suites were not checked — counted as 1 failed`
          : `[run] ${label}: uvu ran tests of suites the guard never saw (a uvu that did not come through harness/uvu-guard, e.g. require('uvu')): ` +
            'they were not checked — counted as 1 failed');
        failed += 1;
      } else if (crashed && failed === 0) {
        say(`[run] ${label}: CRASHED (${how}) after every test passed — counted as 1 failed`);
        failed = 1;
        // isolated-vm's teardown can abort the process at its exit, rarely: after the exit handlers
        // ran (the guard reported), with every suite run and passed, and isolated-vm loaded. Only that
        // is worth running the file again; any other crash stays a failure.
        teardownAbort = exitSignal !== null && TEARDOWN_SIGNALS.includes(exitSignal) && parser.guard.isolatedVm &&
          parser.notRun.length === 0 && passed === total;
      }
      resolve({ total, passed, skipped, failed, teardownAbort });
    };

    let drainTimer: NodeJS.Timeout | undefined;
    child.on('error', (err) => {
      spawnError = err;
      if (child.pid === undefined) finish();
    });
    child.on('exit', (code, signal) => {
      exited = true;
      exitCode = code;
      exitSignal = signal;
      // Normally 'close' follows at once; if a grandchild still holds the
      // pipes open, don't wait for it forever.
      drainTimer = setTimeout(finish, DRAIN_GRACE_MS);
    });
    child.on('close', () => {
      if (exited) finish();
    });
  });
}

function onSignal(signal: NodeJS.Signals): void {
  if (current) killGroup(current, 'SIGKILL');
  say(`[run] interrupted by ${signal}`);
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

async function main(): Promise<number> {
  const filters = process.argv.slice(2).filter((a) => a.length > 0);
  const root = process.env.KUAFU_TEST_DIR ? resolvePath(process.env.KUAFU_TEST_DIR) : here;
  const all = findTestFiles(root);
  const files = all.filter((f) => {
    if (filters.length === 0) return true;
    const rel = relative(root, f).split(sep).join('/');
    return filters.some((s) => rel.includes(s));
  });

  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    if (current) killGroup(current, 'SIGKILL');
  });

  const limitMs = timeoutMs();
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  let reruns = 0;

  for (const file of files) {
    const label = relative(process.cwd(), file) || file;
    say(`\n=== ${label}`);
    let r = await runFile(file, label, limitMs);
    if (r.teardownAbort) {
      say(`[run] ${label}: every test passed, then the process died at exit, after its exit handlers, with isolated-vm loaded ` +
        `(isolated-vm's teardown abort): running the file once more; that run counts (re-runs are counted in the last line)`);
      reruns++;
      r = await runFile(file, label, limitMs);
    }
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped;
  }

  if (files.length === 0) {
    say(
      all.length === 0
        ? `[run] no test files (*.test.js) found under ${root}`
        : `[run] no test file matches ${filters.map((f) => JSON.stringify(f)).join(' or ')}`,
    );
  } else if (passed + failed === 0) {
    say('[run] no test ran');
  }

  say(`${passed} passed, ${failed} failed, ${reruns} re-run` + (skipped > 0 ? `, ${skipped} skipped` : ''));
  return failed > 0 || passed + failed === 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    say(`[run] runner error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    say('0 passed, 1 failed, 0 re-run');
    process.exitCode = 1;
  },
);
