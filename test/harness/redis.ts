/**
 * A real redis-server for tests (node built-ins only).
 *
 *   const redis = await startRedis();
 *   // ... use redis.url (redis://127.0.0.1:PORT) ...
 *   await redis.restart(); // same port, same data dir (data kept)
 *   await redis.stop();
 *
 * If redis-server is missing and we are root with apt-get available, it is
 * installed with apt-get (guarded by a lock file so parallel test processes
 * don't install twice). Otherwise an Error tells the user what to run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface RedisHandle {
  /** redis://127.0.0.1:PORT */
  url: string;
  port: number;
  /** SIGTERM, wait for exit, remove the data dir. Idempotent. */
  stop(): Promise<void>;
  /** Stop (SIGTERM) if running, then start again on the same port and data dir. */
  restart(): Promise<void>;
  /** SIGKILL, wait for exit. The data dir is kept so restart() can follow. */
  kill(): Promise<void>;
}

export interface StartRedisOptions {
  /**
   * Append-only persistence (fsync always) in the temp data dir, so data
   * survives restart() and, as far as redis guarantees it, kill()+restart().
   * Default true. With false the server is purely in-memory and a restart
   * comes back empty.
   */
  persistent?: boolean;
}

const INSTALL_HINT = 'redis-server is not installed. Install it with: sudo apt-get install -y redis-server';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const INSTALL_LOCK_STALE_MS = 15 * 60_000;

// ---------------------------------------------------------------------------
// Locating / installing the binary
// ---------------------------------------------------------------------------

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function which(name: string, extra: string[] = []): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(extra);
  for (const d of dirs) {
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function findRedisServer(): string | undefined {
  return which('redis-server', ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/bin']);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Acquire an exclusive lock file; returns a release function. */
async function acquireLock(path: string): Promise<() => void> {
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
      if ((Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) || age > INSTALL_LOCK_STALE_MS) {
        unlinkSync(path);
        continue;
      }
    } catch {
      // lock vanished or is being written; just retry
    }
    if (!announced) {
      process.stderr.write(`[redis harness] waiting for another process installing redis-server (${path})\n`);
      announced = true;
    }
    await sleep(250);
  }
}

function run(cmd: string, args: string[]): number | null {
  process.stderr.write(`[redis harness] $ ${cmd} ${args.join(' ')}\n`);
  // Output goes to our stderr so it can never be mistaken for test output.
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 2, 2],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.error) process.stderr.write(`[redis harness] ${cmd} failed to run: ${r.error.message}\n`);
  return r.status;
}

let binaryPromise: Promise<string> | undefined;

/** Path to redis-server, installing it with apt-get when possible. */
export function ensureRedisServerBinary(): Promise<string> {
  binaryPromise ??= locateOrInstall().catch((err: unknown) => {
    binaryPromise = undefined; // allow a later retry
    throw err;
  });
  return binaryPromise;
}

async function locateOrInstall(): Promise<string> {
  const found = findRedisServer();
  if (found) return found;

  const apt = which('apt-get', ['/usr/bin', '/bin']);
  if (process.getuid?.() !== 0 || !apt) throw new Error(INSTALL_HINT);

  const release = await acquireLock(join(tmpdir(), 'kuafu-redis-server-install.lock'));
  try {
    // Another process may have installed it while we waited for the lock.
    const again = findRedisServer();
    if (again) return again;

    process.stderr.write('[redis harness] redis-server not found; installing it with apt-get (running as root)\n');
    const up = run(apt, ['update']);
    if (up !== 0) process.stderr.write(`[redis harness] apt-get update exited with ${up}; trying the install anyway\n`);
    const inst = run(apt, ['install', '-y', 'redis-server']);

    // The package's postinst may fail trying to start a service (no systemd
    // here); what matters is whether the binary is there now.
    const installed = findRedisServer();
    if (installed) {
      if (inst !== 0) {
        process.stderr.write(
          `[redis harness] apt-get install exited with ${inst}, but ${installed} exists; continuing\n`,
        );
      }
      process.stderr.write(`[redis harness] using ${installed}\n`);
      return installed;
    }
    throw new Error(`${INSTALL_HINT} (automatic install with apt-get failed, exit code ${inst})`);
  } finally {
    release();
  }
}

// ---------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

/** One PING over a raw socket; resolves true on +PONG. */
function ping(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    let buf = '';
    const sock = createConnection({ host: '127.0.0.1', port });
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\r\n')) finish(buf.startsWith('+PONG'));
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
  });
}

interface Server {
  child: ChildProcess;
  exited: Promise<void>;
  hasExited: () => boolean;
}

/** Live servers and their data dirs, cleaned up when the process exits. */
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) {
      try {
        c.kill('SIGKILL');
      } catch {
        // ignore
      }
    }
    for (const d of liveDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // ignore
      }
    }
  });
}

function logTail(dir: string): string {
  try {
    const text = readFileSync(join(dir, 'redis.log'), 'utf8');
    return text.split('\n').slice(-20).join('\n').trim();
  } catch {
    return '';
  }
}

function spawnServer(bin: string, port: number, dir: string, persistent: boolean): Server {
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--save', '',
    '--appendonly', persistent ? 'yes' : 'no',
    '--appendfsync', 'always',
    '--dir', dir,
    '--daemonize', 'no',
    '--protected-mode', 'yes',
    '--loglevel', 'warning',
    '--logfile', join(dir, 'redis.log'),
  ];
  const child = spawn(bin, args, { stdio: 'ignore', cwd: dir });
  let exited = false;
  const exitedP = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      liveChildren.delete(child);
      resolve();
    });
    child.once('error', () => {
      exited = true;
      liveChildren.delete(child);
      resolve();
    });
  });
  liveChildren.add(child);
  // Don't keep the test process alive just because a server is running; the
  // exit hook kills it. (We ref() again while waiting for it to exit.)
  child.unref();
  return { child, exited: exitedP, hasExited: () => exited };
}

async function waitReady(server: Server, port: number, dir: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (server.hasExited()) {
      const tail = logTail(dir);
      throw new Error(
        `redis-server on port ${port} exited during startup (code ${server.child.exitCode}, signal ${server.child.signalCode})` +
          (tail ? `:\n${tail}` : ''),
      );
    }
    if (await ping(port)) return;
    if (Date.now() > deadline) {
      server.child.kill('SIGKILL');
      const tail = logTail(dir);
      throw new Error(
        `redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms` + (tail ? `:\n${tail}` : ''),
      );
    }
    await sleep(50);
  }
}

async function stopServer(server: Server, signal: NodeJS.Signals): Promise<void> {
  if (server.hasExited()) return;
  server.child.ref(); // keep the event loop alive until it is gone
  try {
    server.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      server.exited.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  } finally {
    server.child.unref();
  }
}

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisHandle> {
  const persistent = options.persistent ?? true;
  const bin = await ensureRedisServerBinary();
  installExitHook();

  const dir = mkdtempSync(join(tmpdir(), 'kuafu-redis-'));
  liveDirs.add(dir);

  // The free port could be grabbed between probing and redis binding it:
  // retry with a fresh port a few times.
  let port = 0;
  let server: Server | undefined;
  let lastErr: unknown;
  for (let attempt = 0; attempt < 5 && !server; attempt++) {
    port = await freePort();
    const s = spawnServer(bin, port, dir, persistent);
    try {
      await waitReady(s, port, dir);
      server = s;
    } catch (e) {
      lastErr = e;
      await stopServer(s, 'SIGKILL');
    }
  }
  if (!server) {
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
    throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
  }

  let current: Server | undefined = server;
  let stopped = false;
  // Serialize lifecycle operations on this handle.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  const handle: RedisHandle = {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () =>
      serial(async () => {
        if (current) await stopServer(current, 'SIGTERM');
        current = undefined;
        if (!stopped) {
          stopped = true;
          rmSync(dir, { recursive: true, force: true });
          liveDirs.delete(dir);
        }
      }),
    kill: () =>
      serial(async () => {
        if (current) await stopServer(current, 'SIGKILL');
        current = undefined;
      }),
    restart: () =>
      serial(async () => {
        if (current) await stopServer(current, 'SIGTERM');
        current = undefined;
        if (stopped || !existsSync(dir)) {
          // After stop() the data dir is gone: come back empty.
          mkdirSync(dir, { recursive: true });
          liveDirs.add(dir);
          stopped = false;
        }
        // The port was just released; if redis cannot bind it yet (it exits
        // at once), try again for a little while.
        for (let attempt = 1; ; attempt++) {
          const s = spawnServer(bin, port, dir, persistent);
          try {
            await waitReady(s, port, dir);
            current = s;
            return;
          } catch (e) {
            const exitedEarly = s.hasExited();
            await stopServer(s, 'SIGKILL');
            if (!exitedEarly || attempt >= 10) throw e;
            await sleep(200);
          }
        }
      }),
  };
  return handle;
}
