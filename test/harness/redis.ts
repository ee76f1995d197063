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
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianProgram, which, type DebianProgram } from './debian-package.js';

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
  /**
   * When persistent, how often the append-only file is fsynced: 'always' (default; every write,
   * what the tests rely on for kill()+restart()) or 'everysec' (once a second, as production
   * hosts commonly run it; the benchmarks use it).
   */
  appendfsync?: 'always' | 'everysec';
  /**
   * Start it as a Redis Cluster node (cluster-enabled, no slots yet: redis-cluster.ts forms the
   * cluster). Default false.
   */
  clusterNode?: boolean;
}

const INSTALL_HINT = 'redis-server is not installed. Install it with: sudo apt-get install -y redis-server';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const INSTALL_LOCK_STALE_MS = 15 * 60_000;

// ---------------------------------------------------------------------------
// Locating / installing the binary
// ---------------------------------------------------------------------------

const REDIS_SERVER: DebianProgram = {
  label: 'redis',
  packageName: 'redis-server',
  find: () => which('redis-server', ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/bin']),
  hint: INSTALL_HINT,
  lockStaleMs: INSTALL_LOCK_STALE_MS,
};

/** Path to redis-server, installing it with apt-get when possible. */
export function ensureRedisServerBinary(): Promise<string> {
  return ensureDebianProgram(REDIS_SERVER);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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

function spawnServer(bin: string, port: number, dir: string, persistent: boolean, clusterNode: boolean, appendfsync: 'always' | 'everysec'): Server {
  const cluster = clusterNode
    ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no']
    : [];
  const args = [
    ...cluster,
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--save', '',
    '--appendonly', persistent ? 'yes' : 'no',
    '--appendfsync', appendfsync,
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
  const clusterNode = options.clusterNode ?? false;
  const appendfsync = options.appendfsync ?? 'always';
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
    const s = spawnServer(bin, port, dir, persistent, clusterNode, appendfsync);
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
          const s = spawnServer(bin, port, dir, persistent, clusterNode, appendfsync);
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
