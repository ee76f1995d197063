/**
 * A program from a Debian package that tests need (redis-server, chromium): found on the machine,
 * or installed with apt-get when the tests run as root with apt, else a clear error with the exact
 * command to run. An install lock in the temp folder keeps two test processes from installing at
 * once; what counts after an install is whether the program is there (a package's postinst may fail
 * to start a service where there is no systemd).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** A program and the Debian package it comes in. */
export interface DebianProgram {
  /** For messages: `[<label> harness] …`. */
  label: string;
  /** The package to install. */
  packageName: string;
  /** Finds the program's path on this machine. */
  find: () => string | undefined;
  /** The error message when it is missing and cannot be installed: the exact command to run. */
  hint: string;
  /** A lock older than this is taken to be left behind by a dead install, ms. */
  lockStaleMs: number;
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The first executable `name` on PATH (then in `extra` folders). */
export function which(name: string, extra: string[] = []): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(extra);
  for (const dir of dirs) {
    const path = join(dir, name);
    if (isExecutable(path)) return path;
  }
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes an exclusive lock file; returns its release. */
async function acquireLock(program: DebianProgram, path: string): Promise<() => void> {
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // Someone else holds it. Break it if its owner is dead or it is ancient.
    try {
      const owner = Number(readFileSync(path, 'utf8').trim());
      const age = Date.now() - statSync(path).mtimeMs;
      if ((Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) || age > program.lockStaleMs) {
        unlinkSync(path);
        continue;
      }
    } catch {
      // the lock vanished or is being written: try again
    }
    if (!announced) {
      process.stderr.write(`[${program.label} harness] waiting for another process installing ${program.packageName} (${path})\n`);
      announced = true;
    }
    await sleep(250);
  }
}

function run(program: DebianProgram, cmd: string, args: string[]): number | null {
  process.stderr.write(`[${program.label} harness] $ ${cmd} ${args.join(' ')}\n`);
  // Output goes to our stderr so it can never be mistaken for test output.
  const result = spawnSync(cmd, args, { stdio: ['ignore', 2, 2], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.error) process.stderr.write(`[${program.label} harness] ${cmd} failed to run: ${result.error.message}\n`);
  return result.status;
}

async function locateOrInstall(program: DebianProgram): Promise<string> {
  const found = program.find();
  if (found) return found;
  const apt = which('apt-get', ['/usr/bin', '/bin']);
  if (process.getuid?.() !== 0 || !apt) throw new Error(program.hint);
  const release = await acquireLock(program, join(tmpdir(), `kuafu-${program.packageName}-install.lock`));
  try {
    // Another process may have installed it while we waited for the lock.
    const again = program.find();
    if (again) return again;
    const tag = `[${program.label} harness]`;
    process.stderr.write(`${tag} ${program.packageName} not found; installing it with apt-get (running as root)\n`);
    const updated = run(program, apt, ['update']);
    if (updated !== 0) process.stderr.write(`${tag} apt-get update exited with ${updated}; trying the install anyway\n`);
    const installedWith = run(program, apt, ['install', '-y', program.packageName]);
    const installed = program.find();
    if (installed) {
      if (installedWith !== 0) process.stderr.write(`${tag} apt-get install exited with ${installedWith}, but ${installed} exists; continuing\n`);
      process.stderr.write(`${tag} using ${installed}\n`);
      return installed;
    }
    throw new Error(`${program.hint} (automatic install with apt-get failed, exit code ${installedWith})`);
  } finally {
    release();
  }
}

const located = new Map<string, Promise<string>>();

/** The program's path, installing its package with apt-get when it is missing and that is possible. */
export function ensureDebianProgram(program: DebianProgram): Promise<string> {
  let path = located.get(program.packageName);
  if (!path) {
    path = locateOrInstall(program).catch((error: unknown) => {
      located.delete(program.packageName); // a later call may try again
      throw error;
    });
    located.set(program.packageName, path);
  }
  return path;
}
