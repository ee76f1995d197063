/** Bench helpers: a Redis of its own and `kuafu serve` processes, as production runs them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export { startRedis, type RedisHandle } from '../test/harness/redis.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

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
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`kuafu serve ${name} exited early (${code})`)));
  });
}
