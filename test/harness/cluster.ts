/**
 * Helpers for tests that start real kuafu servers: temp cluster configs, `kuafu` child processes
 * (serve, up, status) whose output is awaited line by line, PeerClients for the test process, raw
 * WebSocket connections for hand-made JSON-RPC, and a tap that relays a connection and records its
 * frames (to see what travels in one message).
 *
 *   const config = writeClusterConfig({ servers: [{ name: 'HS', roles: ['game'] }], store: { kind: 'redis', url } });
 *   const hs = await spawnServe(config.path, 'HS', url);     // resolves once it prints "rpc ws://…"
 *   const client = connect('HS', hs.url, config.secret);
 *   await client.call('cluster.ping');
 *   await cleanupCluster();                                  // in test.after: everything below is gone
 *
 * Nothing here sleeps to let time pass: every wait is on an event (a line printed, a message
 * received, a process exit) with a generous deadline whose failure says what was awaited and shows
 * the process's output. Every process, client, socket and temp file made here is tracked;
 * `cleanupCluster()` ends them all, and a process-exit hook SIGKILLs any process still alive.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';
import { PeerClient, type PeerClientOptions } from '../../runtime/rpc/peer-client.js';
import type { StoreConfig } from '../../runtime/cluster/config.js';

/** Deadline of a process start, a message, an exit (generous: a loaded 2-core machine). */
export const EVENT_DEADLINE_MS = 20_000;

/** The project root: the nearest folder above this file whose package.json is kuafu's. */
export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'kuafu') return dir;
      } catch {
        // not ours; keep climbing
      }
    }
    if (dirname(dir) === dir) throw new Error(`cannot find kuafu's package.json above ${from}`);
  }
}

/** The kuafu command line, run by this Node with --no-node-snapshot (so bin/kuafu.js needs no re-exec). */
export const KUAFU_BIN = join(ROOT, 'bin', 'kuafu.js');

// ---- waiting ------------------------------------------------------------------------------------

/** `promise`, or a rejection saying `what` was not seen within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${typeof what === 'function' ? what() : what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** The error `promise` rejects with; fails if it resolves, or does neither within `ms`. */
export async function rejectionOf(promise: Promise<unknown>, ms = EVENT_DEADLINE_MS, what = 'the call to fail'): Promise<Error> {
  const outcome = await within(
    promise.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error })),
    ms,
    what,
  );
  if (outcome.ok) throw new Error(`expected ${what}, but it resolved with ${safeJson(outcome.value)}`);
  return outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
}

/**
 * Calls `attempt` until it resolves (a poll, not an assertion on time): returns its value, or fails
 * after `deadlineMs` with the last error.
 */
export async function eventually<T>(attempt: () => Promise<T>, what: string, deadlineMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`not within ${deadlineMs} ms: ${what}; last error: ${(last as Error)?.message ?? String(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

// ---- cleanup ------------------------------------------------------------------------------------

const liveProcesses = new Set<KuafuProcess>();
const closers = new Set<() => void | Promise<void>>();
const tempDirs = new Set<string>();

process.on('exit', () => {
  for (const proc of liveProcesses) {
    try {
      proc.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Ends everything this harness made: clients, sockets, taps, then every process (SIGTERM, then SIGKILL). */
export async function cleanupCluster(): Promise<void> {
  for (const close of [...closers]) {
    closers.delete(close);
    try {
      await close();
    } catch {
      // best effort
    }
  }
  await Promise.all([...liveProcesses].map((proc) => proc.stop().catch(() => undefined)));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

// ---- configs ------------------------------------------------------------------------------------

export interface ServerSpec {
  name: string;
  roles: string[];
  /** Client gateway port (game servers): 0 picks a free one; left out, the config has none. */
  gatewayPort?: number;
  /** Metrics port: 0 picks a free one; left out, the config has none. */
  metricsPort?: number;
}

export interface ClusterConfigOptions {
  servers: ServerSpec[];
  store?: StoreConfig;
  secret?: string;
  rpcTimeoutMs?: number;
  heartbeatMs?: number;
  /** The config's "playerModel" (a module path), when set. */
  playerModel?: string;
}

export interface ClusterConfigFile {
  path: string;
  secret: string;
}

/** Writes a cluster config to a temp file; every server gets rpcPort 0 (a free port, found in the registry). */
export function writeClusterConfig(options: ClusterConfigOptions): ClusterConfigFile {
  const dir = mkdtempSync(join(tmpdir(), 'kuafu-cluster-'));
  tempDirs.add(dir);
  const secret = options.secret ?? `test-secret-${process.pid}-${Date.now()}`;
  const config = {
    secret,
    host: '127.0.0.1',
    store: options.store ?? { kind: 'memory' },
    rpcTimeoutMs: options.rpcTimeoutMs ?? 5000,
    heartbeatMs: options.heartbeatMs ?? 1000,
    ...(options.playerModel === undefined ? {} : { playerModel: options.playerModel }),
    servers: options.servers.map((s) => ({
      name: s.name, roles: s.roles, rpcPort: 0, ...(s.gatewayPort === undefined ? {} : { gatewayPort: s.gatewayPort }),
      ...(s.metricsPort === undefined ? {} : { metricsPort: s.metricsPort }),
    })),
  };
  const path = join(dir, 'cluster.json');
  writeFileSync(path, JSON.stringify(config, null, 2));
  return { path, secret };
}

// ---- kuafu processes ----------------------------------------------------------------------------

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A `kuafu …` child process: its output so far, waits on its lines, and its exit. */
export class KuafuProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  exit: Exit | null = null;
  readonly exited: Promise<Exit>;
  private readonly watchers = new Set<() => void>();

  constructor(readonly label: string, args: string[], nodeArgs: string[] = ['--no-node-snapshot']) {
    const env = { ...process.env };
    delete env.KUAFU_SECRET; // the config's secret is the one under test
    this.child = spawn(process.execPath, [...nodeArgs, KUAFU_BIN, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    liveProcesses.add(this);
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (text: string) => { this.stdout += text; this.notify(); });
    this.child.stderr!.on('data', (text: string) => { this.stderr += text; this.notify(); });
    this.exited = new Promise<Exit>((resolve) => {
      // 'close' comes after the output is drained, so a waiter sees every line before the exit.
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        liveProcesses.delete(this);
        this.notify();
        resolve(this.exit);
      });
      this.child.once('error', (error) => {
        this.stderr += `\n[harness] could not start: ${error.message}`;
        this.exit ??= { code: null, signal: null };
        liveProcesses.delete(this);
        this.notify();
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Its output so far, for failure messages. */
  describe(): string {
    const tail = (text: string) => text.trimEnd().split('\n').slice(-30).join('\n    ');
    const status = this.exit ? `exited (code ${this.exit.code}, signal ${this.exit.signal})` : `running, pid ${this.pid}`;
    return `${this.label} [${status}]\n  stdout:\n    ${tail(this.stdout)}\n  stderr:\n    ${tail(this.stderr)}`;
  }

  /** Resolves with the first match of `pattern` in its stdout; fails if it exits first or the deadline passes. */
  waitForOutput(pattern: RegExp, what: string, ms = EVENT_DEADLINE_MS): Promise<RegExpMatchArray> {
    return within(
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const match = this.stdout.match(pattern);
          if (match) {
            this.watchers.delete(check);
            resolve(match);
          } else if (this.exit) {
            this.watchers.delete(check);
            reject(new Error(`${this.label} exited before printing ${what}\n${this.describe()}`));
          }
        };
        this.watchers.add(check);
        check();
      }),
      ms,
      () => `${this.label} to print ${what}\n${this.describe()}`,
    );
  }

  /** Its exit, within the deadline. */
  waitForExit(ms = EVENT_DEADLINE_MS): Promise<Exit> {
    return within(this.exited, ms, () => `${this.label} to exit\n${this.describe()}`);
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }

  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, …). */
  kill(signal: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(signal);
  }

  /** SIGSTOP, and waits until the kernel shows it stopped (so nothing it has not read yet gets an answer). */
  async pause(): Promise<void> {
    this.kill('SIGSTOP');
    const statFile = `/proc/${this.pid}/stat`;
    if (!existsSync(statFile)) return;
    await eventually(async () => {
      // "pid (comm) S …": the state follows the last ')'.
      const stat = readFileSync(statFile, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'T' && state !== 't') throw new Error(`state ${state}`);
    }, `${this.label} to stop after SIGSTOP`, EVENT_DEADLINE_MS, 5);
  }

  /** SIGCONT. */
  resume(): void {
    this.kill('SIGCONT');
  }

  /** SIGTERM (and SIGCONT, in case it is paused), waits for the exit; SIGKILL if it does not come. */
  async stop(ms = 15_000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.kill('SIGTERM');
    this.kill('SIGCONT');
    try {
      return await within(this.exited, ms, `${this.label} to exit after SIGTERM`);
    } catch {
      this.kill('SIGKILL');
      return this.exited;
    }
  }
}

/**
 * Starts `kuafu ARGS` (bin/kuafu.js under this Node) as a child process. `nodeArgs` defaults to
 * --no-node-snapshot; pass [] to run it as `npm start` does (bin/kuafu.js then starts itself again
 * with the flag, forwarding signals).
 */
export function spawnKuafu(args: string[], options: { label?: string; nodeArgs?: string[] } = {}): KuafuProcess {
  return new KuafuProcess(options.label ?? `kuafu ${args[0] ?? ''}`, args, options.nodeArgs);
}

/** A `kuafu serve` process and the addresses it listens on. */
export interface ServeProcess extends KuafuProcess {
  name: string;
  /** Its JSON-RPC address. */
  url: string;
  /** Its client gateway (`gateway ws://…` on its line), or '' when it has none. */
  gateway: string;
}

/** A server's line: `  NAME  roles  rpc ws://…` and, for a server with a client gateway, `  gateway ws://…`. */
function rpcLine(name: string): RegExp {
  return new RegExp(`^\\s*${name.replace(/[.]/g, '\\.')}\\s+\\S+\\s+rpc (ws://\\S+)(?:\\s+gateway (ws://\\S+))?(?:\\s+metrics (http://\\S+))?\\s*$`, 'm');
}

/** `kuafu serve --config F --server NAME --redis URL`; resolves once it prints its `rpc ws://…` line. */
export async function spawnServe(configPath: string, name: string, redisUrl: string): Promise<ServeProcess> {
  const proc = spawnKuafu(['serve', '--config', configPath, '--server', name, '--redis', redisUrl], { label: `kuafu serve ${name}` });
  try {
    const [, url, gateway] = await proc.waitForOutput(rpcLine(name), `its "${name} … rpc ws://" line`);
    return Object.assign(proc, { name, url: url!, gateway: gateway ?? '' });
  } catch (error) {
    // A start that was too slow must not live on holding its ports (a retry would find them taken).
    proc.kill('SIGKILL');
    await proc.waitForExit().catch(() => undefined);
    throw error;
  }
}

/** Where each named server of a `kuafu up` listens, once it has printed all of their lines. */
export async function waitForServers(proc: KuafuProcess, names: string[]): Promise<Record<string, string>> {
  const urls: Record<string, string> = {};
  for (const name of names) {
    urls[name] = (await proc.waitForOutput(rpcLine(name), `its "${name} … rpc ws://" line`))[1]!;
  }
  return urls;
}

/** Runs `kuafu ARGS` to its end: exit code and output. */
export async function runKuafu(args: string[], ms = 30_000): Promise<{ code: number | null; stdout: string; stderr: string; describe(): string }> {
  const proc = spawnKuafu(args);
  const exit = await proc.waitForExit(ms);
  return { code: exit.code, stdout: proc.stdout, stderr: proc.stderr, describe: () => proc.describe() };
}

// ---- clients ------------------------------------------------------------------------------------

/**
 * Runs `start` (servers started in the test process) with their logs at warnings and above, so the
 * test's output stays readable; the log level is restored afterwards.
 */
export async function quietly<T>(start: () => Promise<T>): Promise<T> {
  const level = process.env.KUAFU_LOG_LEVEL;
  process.env.KUAFU_LOG_LEVEL = 'warn';
  try {
    return await start();
  } finally {
    if (level === undefined) delete process.env.KUAFU_LOG_LEVEL;
    else process.env.KUAFU_LOG_LEVEL = level;
  }
}

/** Registers something for cleanupCluster to close (a game client, a store, an in-process server…). */
export function onCleanup(close: () => void | Promise<void>): void {
  closers.add(close);
}

let clientCount = 0;

/** A PeerClient from the test process to server `name` at `url` (closed by cleanupCluster). */
export function connect(name: string, url: string, secret: string, options: Partial<PeerClientOptions> = {}): PeerClient {
  const client = new PeerClient({ self: `test-${++clientCount}`, peer: name, secret, resolveUrl: () => url, ...options });
  const close = () => client.close();
  closers.add(close);
  return client;
}

/** A plain WebSocket to a server: send any text, read each message it sends, in order. */
export class RawConnection {
  private readonly inbox: string[] = [];
  private readonly waiters: Array<() => void> = [];
  closeCode: number | null = null;
  /** The reason the close frame gave ('' when none). */
  closeReason = '';
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket, readonly url: string) {
    ws.on('message', (data) => {
      this.inbox.push(data.toString());
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve(code);
      });
    });
    ws.on('error', () => { /* the close event follows */ });
  }

  /** Opens a WebSocket to `url`; `options` are ws's (`localAddress: '127.0.0.2'` makes it come from another loopback address). */
  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<RawConnection> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    const raw = new RawConnection(ws, url);
    const close = () => raw.close();
    closers.add(close);
    await within(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      }),
      EVENT_DEADLINE_MS,
      `a WebSocket to ${url} to open`,
    );
    return raw;
  }

  /** Sends a text frame: a string as it is, anything else as JSON. */
  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next message the server sends, parsed as JSON. */
  async next<T = any>(what = 'a message from the server'): Promise<T> {
    return JSON.parse(await this.nextText(what)) as T;
  }

  /** The next message the server sends, as text. */
  nextText(what = 'a message from the server'): Promise<string> {
    return within(
      new Promise<string>((resolve, reject) => {
        const check = () => {
          if (this.inbox.length > 0) resolve(this.inbox.shift()!);
          else if (this.closeCode !== null) reject(new Error(`${this.url} closed (code ${this.closeCode}) before sending ${what}`));
          else this.waiters.push(check);
        };
        check();
      }),
      EVENT_DEADLINE_MS,
      `${what} on ${this.url}`,
    );
  }

  /** Sends `message` and returns the next message (the server answers in order on one connection). */
  async exchange<T = any>(message: unknown, what = 'the answer'): Promise<T> {
    this.send(message);
    return this.next<T>(what);
  }

  close(): void {
    this.ws.terminate();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

/** A WebSocket relay in front of a server that records every frame each way. */
export interface WsTap {
  /** Connect here instead of to the server. */
  url: string;
  /** Frames the clients sent to the server, in order. */
  sent: string[];
  /** Frames the server sent to the clients, in order. */
  received: string[];
  /**
   * How many of `sent` the relay has written into the server's socket (its write completed: the
   * frame is in the kernel's buffers, so a paused server finds it there when it resumes).
   */
  delivered: number;
  /** Resolves once `count` frames have been written into the server's socket. */
  waitForDelivered(count: number, what?: string, ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a recording relay to `targetUrl` on a free loopback port. */
export async function startWsTap(targetUrl: string): Promise<WsTap> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await within(new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  }), EVENT_DEADLINE_MS, 'the tap to listen');
  const sockets = new Set<WebSocket>();
  const deliveryWatchers = new Set<() => void>();
  const delivered = () => {
    tap.delivered++;
    for (const watcher of [...deliveryWatchers]) watcher();
  };
  const tap: WsTap = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    sent: [],
    received: [],
    delivered: 0,
    waitForDelivered: (count, what = `${count} frames to reach ${targetUrl}`, ms = EVENT_DEADLINE_MS) => within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (tap.delivered < count) return;
          deliveryWatchers.delete(check);
          resolve();
        };
        deliveryWatchers.add(check);
        check();
      }),
      ms,
      () => `${what} (${tap.delivered} of ${tap.sent.length} frames written so far)`,
    ),
    close: async () => {
      closers.delete(tap.close);
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
  wss.on('connection', (down) => {
    const up = new WebSocket(targetUrl, { perMessageDeflate: false });
    sockets.add(down).add(up);
    const early: Array<[Buffer, boolean]> = [];
    down.on('message', (data: Buffer, isBinary) => {
      tap.sent.push(data.toString());
      if (up.readyState === WebSocket.OPEN) up.send(data, { binary: isBinary }, (error) => { if (!error) delivered(); });
      else early.push([data, isBinary]);
    });
    up.on('open', () => {
      for (const [data, isBinary] of early.splice(0)) up.send(data, { binary: isBinary }, (error) => { if (!error) delivered(); });
    });
    up.on('message', (data: Buffer, isBinary) => {
      tap.received.push(data.toString());
      if (down.readyState === WebSocket.OPEN) down.send(data, { binary: isBinary });
    });
    const end = () => {
      down.terminate();
      up.terminate();
    };
    for (const ws of [up, down]) {
      ws.on('close', end);
      ws.on('error', end);
      ws.on('close', () => sockets.delete(ws));
    }
  });
  closers.add(tap.close);
  return tap;
}
