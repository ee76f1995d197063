/**
 * The chaos cluster: one real redis-server (appendonly yes, appendfsync always) and one
 * `kuafu serve` process per server — game servers HS, GS1, GS2 (HS is every player's home), the
 * datacenter DC and the account server ACCOUNT with its login gateway — on fixed ports (so a
 * restarted server is where the clients and peers knew it), plus what the runner needs to drive it
 * from outside: an authenticated PeerClient per server and a RedisStore of its own for reading
 * routes, registry records and documents.
 *
 * Every process is started through the test harness (spawnServe), so cleanupCluster() ends them.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { RedisStore } from '../../runtime/store/redis-store.js';
import type { PeerClient } from '../../runtime/rpc/peer-client.js';
import { connect, onCleanup, spawnServe, writeClusterConfig, type ServeProcess } from '../harness/cluster.js';
import { startRedis, type RedisHandle } from '../harness/redis.js';
import { CHAOS_SCRIPT, CHAOS_SCRIPT_NAME } from './script.js';

export const GAMES = ['HS', 'GS1', 'GS2'] as const;
export const HOME = 'HS';
export const ACCOUNT = 'ACCOUNT';
export const DATACENTER = 'DC';
export const SERVERS = [...GAMES, DATACENTER, ACCOUNT] as const;

export interface ChaosClusterOptions {
  rpcTimeoutMs: number;
  heartbeatMs: number;
  /** The designer scripts' per-call deadline (awaits included), ms. */
  scriptDeadlineMs: number;
  log: (line: string) => void;
}

type State = 'up' | 'down' | 'paused' | 'starting';

/** Whether `port` can be listened on now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A free port below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768
 * and up by default): a killed server must find its port again when it restarts, and a port in the
 * ephemeral range may meanwhile be the local end of some outgoing connection.
 */
async function freePort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: keep the default
  }
  const from = Math.max(1024, Math.min(20_000, low - 2000));
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = from + Math.floor(Math.random() * Math.max(1, low - from));
    if (taken.has(port)) continue;
    if (await canListen(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free port from ${from} to ${low}`);
}

export class ChaosCluster {
  readonly procs: Record<string, ServeProcess> = {};
  /** Every process each server ran as, oldest first (their output goes to the artifacts). */
  readonly history: Record<string, ServeProcess[]> = {};
  readonly peers: Record<string, PeerClient> = {};
  readonly state: Record<string, State> = {};
  redisState: 'up' | 'down' = 'up';
  readonly gateways: Record<string, string> = {};
  /** Processes that exited without being killed by the run (a crash is a finding). */
  readonly crashes: string[] = [];
  /** Set once the run is over: exits from then on are the cleanup's. */
  closing = false;
  private readonly t0 = Date.now();
  private constructor(
    readonly redis: RedisHandle,
    readonly configPath: string,
    readonly secret: string,
    readonly store: RedisStore,
    readonly options: ChaosClusterOptions,
  ) {}

  static async start(options: ChaosClusterOptions): Promise<ChaosCluster> {
    const redis = await startRedis({ persistent: true }); // appendonly yes, appendfsync always
    onCleanup(() => redis.stop());
    // The harness writes (and later removes) the config's temp folder; the chaos config adds fixed
    // ports, the scripts folder and the script limits to it.
    const written = writeClusterConfig({
      servers: SERVERS.map((name) => ({ name, roles: [roleOf(name)] })),
      store: { kind: 'redis', url: redis.url },
      rpcTimeoutMs: options.rpcTimeoutMs,
      heartbeatMs: options.heartbeatMs,
    });
    const scriptsDir = join(dirname(written.path), 'scripts');
    mkdirSync(scriptsDir);
    writeFileSync(join(scriptsDir, `${CHAOS_SCRIPT_NAME}.ts`), CHAOS_SCRIPT);
    const config = JSON.parse(readFileSync(written.path, 'utf8')) as { servers: Record<string, unknown>[] } & Record<string, unknown>;
    for (const server of config.servers) {
      server.rpcPort = await freePort();
      if ((GAMES as readonly string[]).includes(server.name as string) || server.name === ACCOUNT) server.gatewayPort = await freePort();
    }
    config.scriptsDir = scriptsDir;
    config.scriptLimits = { deadlineMs: options.scriptDeadlineMs };
    // Every chaos client logs in from 127.0.0.1, one source address: the per-source login limits
    // (made for strangers on the internet) are lifted, or they would refuse the soak's own players.
    config.loginLimits = { loginsPerSourcePerMinute: 1_000_000, failedLoginsPerAccountPerSource: 1_000_000, registrationsPerSourcePerHour: 1_000_000, hashesInFlightPerSource: 64 };
    writeFileSync(written.path, JSON.stringify(config, null, 2));

    const store = new RedisStore({ url: redis.url, commandTimeoutMs: 2000 });
    await store.connect();
    onCleanup(() => store.close());
    const cluster = new ChaosCluster(redis, written.path, written.secret, store, options);
    for (const server of config.servers) {
      const name = server.name as string;
      cluster.peers[name] = connect(name, `ws://127.0.0.1:${server.rpcPort as number}`, written.secret, { timeoutMs: options.rpcTimeoutMs });
      if (server.gatewayPort !== undefined) cluster.gateways[name] = `ws://127.0.0.1:${server.gatewayPort as number}`;
    }
    await Promise.all(SERVERS.map((name) => cluster.serve(name)));
    return cluster;
  }

  /** Starts (or starts again) the `kuafu serve` process of `name`; a port still held a moment after a kill is tried again. */
  async serve(name: string): Promise<ServeProcess> {
    this.state[name] = 'starting';
    let last: unknown;
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        const proc = await spawnServe(this.configPath, name, this.redis.url);
        this.procs[name] = proc;
        void proc.exited.then((exit) => {
          if (this.closing || this.procs[name] !== proc || this.state[name] === 'down') return;
          this.state[name] = 'down';
          this.crashes.push(`${name} (pid ${proc.pid}) exited by itself ${((Date.now() - this.t0) / 1000).toFixed(1)} s into the run: ${JSON.stringify(exit)}; last stderr: ${proc.stderr.trim().split('\n').slice(-3).join(' | ')}`);
          this.options.log(`${name} exited by itself: ${JSON.stringify(exit)}`);
        });
        (this.history[name] ??= []).push(proc);
        this.state[name] = 'up';
        return proc;
      } catch (error) {
        last = error;
        this.options.log(`${name} did not start (attempt ${attempt}): ${(error as Error).message.split('\n')[0]}`);
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
    this.state[name] = 'down';
    throw last;
  }

  isUp(name: string): boolean {
    return this.state[name] === 'up';
  }

  /** SIGKILL, and waits for the exit. */
  async kill(name: string): Promise<void> {
    const proc = this.procs[name];
    if (!proc || this.state[name] === 'down') return;
    this.state[name] = 'down';
    proc.kill('SIGKILL');
    await proc.waitForExit();
  }

  /** SIGSTOP, and waits until the kernel shows it stopped. */
  async pause(name: string): Promise<void> {
    this.state[name] = 'paused';
    await this.procs[name]!.pause();
  }

  resume(name: string): void {
    this.procs[name]!.resume();
    this.state[name] = 'up';
  }

  async killRedis(): Promise<void> {
    this.redisState = 'down';
    await this.redis.kill();
  }

  async restartRedis(): Promise<void> {
    await this.redis.restart();
    this.redisState = 'up';
  }

  /** Brings back whatever is down or paused (the end of a run). */
  async restoreAll(): Promise<void> {
    if (this.redisState === 'down') await this.restartRedis();
    for (const name of SERVERS) {
      if (this.state[name] === 'paused') this.resume(name);
      const proc = this.procs[name];
      if (this.state[name] === 'down' || (proc && proc.exit)) await this.serve(name);
    }
  }

  /** Whether `name` is in the registry now (null when the store cannot be asked). */
  async registered(name: string): Promise<boolean | null> {
    try {
      return (await this.store.getServer(name)) !== null;
    } catch {
      return null;
    }
  }

  /** Every output of every process, by server, for the artifacts. */
  outputs(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, procs] of Object.entries(this.history)) {
      out[name] = procs.map((p, i) => `==== ${name} process ${i + 1} (pid ${p.pid}) ${p.exit ? `exit ${JSON.stringify(p.exit)}` : 'running'}\n-- stdout\n${p.stdout}\n-- stderr\n${p.stderr}`).join('\n');
    }
    return out;
  }
}

function roleOf(name: string): string {
  if (name === DATACENTER) return 'datacenter';
  if (name === ACCOUNT) return 'account';
  return 'game';
}
