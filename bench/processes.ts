/** Bench helpers: a Redis of its own and `kuafu serve` processes, as production runs them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';
import { startRedis, type RedisHandle } from '../test/harness/redis.js';

export { startRedis, type RedisHandle };

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** A Redis for a benchmark, and its persistence mode as the server itself reports it. */
export interface BenchRedis extends RedisHandle {
  /** e.g. "appendonly yes, appendfsync everysec, save ''" (CONFIG GET): written into each results file. */
  persistence: string;
}

/**
 * Starts Redis as a production host would run it: append-only file on, fsynced once a second
 * (`appendonly yes`, `appendfsync everysec`; RDB snapshots off). The tests fsync every write
 * (`appendfsync always`) because they kill and restart Redis; a host rarely pays that.
 */
export async function startBenchRedis(): Promise<BenchRedis> {
  const redis = await startRedis({ persistent: true, appendfsync: 'everysec' });
  const persistence = await persistenceOf(redis.url);
  if (!persistence.startsWith('appendonly yes, appendfsync everysec')) {
    await redis.stop();
    throw new Error(`the bench Redis should run with appendonly yes, appendfsync everysec, but reports: ${persistence}`);
  }
  return Object.assign(redis, { persistence });
}

/** The persistence settings a Redis reports (CONFIG GET appendonly, appendfsync, save). */
export async function persistenceOf(url: string): Promise<string> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const get = async (name: string) => ((await redis.config('GET', name)) as string[])[1] ?? '?';
    return `appendonly ${await get('appendonly')}, appendfsync ${await get('appendfsync')}, save '${await get('save')}'`;
  } finally {
    redis.disconnect();
  }
}

/** Redis commands run so far, by command (INFO commandstats; commands that Lua scripts call count too). */
export async function commandCounts(redis: Redis): Promise<Record<string, number>> {
  const text = (await redis.info('commandstats')) as string;
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts[match[1]!] = Number(match[2]);
  return counts;
}

/** What `after` counts beyond `before`, leaving out zeros. */
export function countsSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const diff: Record<string, number> = {};
  for (const [name, n] of Object.entries(after)) {
    const d = n - (before[name] ?? 0);
    if (d > 0) diff[name] = d;
  }
  return diff;
}

/** CPU time (user + system) a process has used so far, in µs (/proc/<pid>/stat; Linux, 10 ms ticks). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}
const CLOCK_TICKS = 100;

/** The process id of the Redis at `redis` (INFO server). */
export async function redisPid(redis: Redis): Promise<number> {
  const text = (await redis.info('server')) as string;
  return Number(/^process_id:(\d+)/m.exec(text)?.[1]);
}

/** Writes a cluster config of game/other servers on free ports; returns its path and secret. */
export function writeConfig(servers: { name: string; roles: string[]; gateway?: boolean }[], redisUrl: string): { path: string; secret: string } {
  const secret = `bench-secret-${process.pid}-${Date.now()}`;
  const config = {
    secret,
    store: { kind: 'redis', url: redisUrl },
    heartbeatMs: 1000,
    servers: servers.map((s) => ({ name: s.name, roles: s.roles, rpcPort: 0, ...(s.gateway ? { gatewayPort: 0 } : {}) })),
  };
  const path = join(mkdtempSync(join(tmpdir(), 'kuafu-bench-')), 'cluster.json');
  writeFileSync(path, JSON.stringify(config));
  return { path, secret };
}

/** A running `kuafu serve` process with its addresses. */
export interface Served {
  name: string;
  rpc: string;
  gateway: string;
  child: ChildProcess;
  stop(): void;
  /** SIGTERM, and resolves once it has exited (after `timeoutMs`, SIGKILL). */
  stopped(timeoutMs?: number): Promise<void>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Kills `child` when this process exits, whatever happens to the benchmark. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Starts `kuafu serve --server NAME`; resolves once it prints where it listens. */
export function serve(configPath: string, name: string, redisUrl: string): Promise<Served> {
  // KUAFU_BENCH_NODE_ARGS adds node flags to the servers (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  const nodeArgs = (process.env.KUAFU_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, ['--no-node-snapshot', ...nodeArgs, join(ROOT, 'bin/kuafu.js'), 'serve', '--config', configPath, '--server', name, '--redis', redisUrl], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KUAFU_LOG_LEVEL: 'warn' },
  });
  children.add(child);
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const match = line.match(new RegExp(`^\\s*${name}\\s+\\S+\\s+rpc (ws://\\S+)(?:\\s+gateway (ws://\\S+))?`));
      if (match) {
        resolve({
          name, rpc: match[1]!, gateway: match[2] ?? '', child,
          stop: () => { child.kill('SIGTERM'); children.delete(child); },
          stopped: (timeoutMs = 10_000) => new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
            child.once('exit', () => { clearTimeout(timer); children.delete(child); done(); });
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`kuafu serve ${name} exited early (${code})`)));
  });
}
