/**
 * Helpers for the durability tests (issue 9): a small cluster of real `kuafu serve` processes on a
 * persistent redis-server (appendonly yes, appendfsync always), or one `kuafu up` process on the
 * memory store; and a ledger of player calls that checks the three outcome rules against what the
 * store holds.
 *
 * The ledger gives every call its own item type, added once (count 1): the stored count of that
 * type says whether the call was applied (1), not applied (0) or applied twice (2+). Every try of a
 * call (same id) is recorded with its outcome:
 *   ok       — answered with a result;
 *   unknown  — Timeout, ServerUnavailable or OutcomeUnknown: the call may or may not have run;
 *   failed   — any other error (a domain error, StoreUnavailable, StaleOwner, PlayerMoved…): a clear
 *              "not done".
 * The rules checked against the stored counts (`violations`):
 *   - nothing is applied twice;
 *   - a call answered OK is in the store, and every OK answer of it is the same;
 *   - after an OK, no later try of the same id is told it failed;
 *   - a call whose last answer is a clear failure is not in the store;
 *   - a call whose every answer was "unknown" is in the store at most once.
 *
 *   const cluster = await DurableCluster.start({ store: 'redis', games: ['HS', 'GS1'] });
 *   const ledger = new Ledger(pid, firstType);
 *   const call = ledger.call('paused');
 *   await ledger.attempt(call, 'GS1', cluster.peer('GS1'));
 *   ledger.check(await cluster.storedItems(pid), 'after the retry');
 *   await cluster.stop();
 */
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { KuafuClient } from '../../runtime/client/kuafu-client.js';
import { KuafuError, RpcProtocolError } from '../../runtime/errors.js';
import { issueLoginToken } from '../../runtime/game/tokens.js';
import type { PeerClient } from '../../runtime/rpc/peer-client.js';
import { RedisStore } from '../../runtime/store/redis-store.js';
import {
  EVENT_DEADLINE_MS, cleanupCluster, connect, eventually, onCleanup, spawnKuafu, spawnServe, startWsTap, writeClusterConfig,
  type ClusterConfigFile, type KuafuProcess, type ServeProcess, type WsTap,
} from './cluster.js';
import { stateOf, untilState, type PlayerState } from './game-cluster.js';
import { startRedis, type RedisHandle } from './redis.js';

// ---- outcomes -----------------------------------------------------------------------------------

/** The error kinds that mean "the call may or may not have run: retry with the same id". */
export const UNKNOWN_KINDS: ReadonlySet<string> = new Set(['Timeout', 'ServerUnavailable', 'OutcomeUnknown']);
/** OutcomeUnknown's JSON-RPC code (a kind today's errors.ts does not know yet). */
export const OUTCOME_UNKNOWN_CODE = -32035;

/** The kind an error reports: a KuafuError's kind, a wire error's data.kind, else its name. */
export function kindOf(error: unknown): string {
  if (error instanceof KuafuError) return error.kind;
  if (error instanceof RpcProtocolError) {
    const data = error.data as { kind?: unknown } | undefined;
    if (data && typeof data.kind === 'string') return data.kind;
    if (error.code === OUTCOME_UNKNOWN_CODE) return 'OutcomeUnknown';
    return `JSON-RPC ${error.code}`;
  }
  return error instanceof Error ? error.name : typeof error;
}

export type Outcome = 'ok' | 'unknown' | 'failed';

/** One try of a call. */
export interface Try {
  /** Where it was sent (for messages). */
  via: string;
  outcome: Outcome;
  value?: unknown;
  kind?: string;
  message?: string;
}

/** A call the ledger follows: one id, one item type, the same path and arguments on every try. */
export interface TrackedCall {
  name: string;
  id: string;
  type: number;
  path: string[];
  args: unknown[];
  tries: Try[];
}

function shown(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function describeTry(t: Try): string {
  return t.outcome === 'ok' ? `OK ${shown(t.value)} from ${t.via}` : `${t.kind} (${t.outcome}) from ${t.via}: ${t.message}`;
}

export class Ledger {
  readonly calls: TrackedCall[] = [];

  /** `firstType`: the item type of the first call (the next calls take the next types). */
  constructor(readonly pid: number, private readonly firstType: number, readonly label = `player ${pid}`) {}

  /**
   * A new call: by default `itemdb.additembytype(type, 1, null, reason)`; `how` may name another
   * path and its arguments (given the call's item type) that adds one item of that type when applied.
   */
  call(name: string, how?: (type: number) => { path: string[]; args: unknown[] }): TrackedCall {
    const type = this.firstType + this.calls.length;
    const reason = `durability:${name}`;
    const { path, args } = how ? how(type) : { path: ['itemdb', 'additembytype'], args: [type, 1, null, reason] };
    const call: TrackedCall = { name, id: `durability-${this.pid}-${type}-${name}`, type, path, args, tries: [] };
    this.calls.push(call);
    return call;
  }

  /** Sends one try of `call` (its own id, path and arguments) as `player.invoke` to `peer`; records and returns how it ended. */
  async attempt(call: TrackedCall, via: string, peer: PeerClient, timeoutMs = 60_000): Promise<Try> {
    let t: Try;
    try {
      const value = await peer.call('player.invoke', { pid: this.pid, path: call.path, args: call.args, id: call.id }, { timeoutMs });
      t = { via, outcome: 'ok', value };
    } catch (error) {
      const kind = kindOf(error);
      t = { via, outcome: UNKNOWN_KINDS.has(kind) ? 'unknown' : 'failed', kind, message: (error as Error)?.message ?? String(error) };
    }
    call.tries.push(t);
    console.log(`  [${this.label}] ${call.name} (id ${call.id}, item ${call.type}) try ${call.tries.length}: ${describeTry(t)}`);
    return t;
  }

  /** The call's history, for messages. */
  history(call: TrackedCall): string {
    return call.tries.map((t, i) => `try ${i + 1}: ${describeTry(t)}`).join('; ') || 'never tried';
  }

  /** What breaks the outcome rules, given the stored item counts. */
  violations(counts: Record<string, number>): string[] {
    const problems: string[] = [];
    for (const call of this.calls) {
      if (call.tries.length === 0) continue;
      const stored = counts[call.type] ?? 0;
      const what = `${call.name} (id ${call.id}, item ${call.type}; ${this.history(call)})`;
      const oks = call.tries.filter((t) => t.outcome === 'ok');
      if (stored > 1) problems.push(`${what}: applied ${stored} times (the store has ${stored} of item ${call.type})`);
      if (oks.length > 0) {
        if (stored === 0) problems.push(`${what}: answered OK, but it is not in the store (0 of item ${call.type})`);
        const first = shown(oks[0]!.value);
        if (oks.some((t) => shown(t.value) !== first)) problems.push(`${what}: tries with the same id were answered different results`);
        const firstOk = call.tries.indexOf(oks[0]!);
        const laterFailure = call.tries.slice(firstOk + 1).find((t) => t.outcome === 'failed');
        if (laterFailure) problems.push(`${what}: answered OK, then a retry with the same id was told it failed (${laterFailure.kind})`);
      } else {
        const last = call.tries[call.tries.length - 1]!;
        if (last.outcome === 'failed' && stored !== 0) {
          problems.push(`${what}: last answered ${last.kind} (a clear failure: not applied, now or later), yet it is in the store (${stored} of item ${call.type})`);
        }
      }
    }
    return problems;
  }

  /** Asserts the outcome rules hold for the stored counts; the message lists every breach. */
  check(counts: Record<string, number>, moment: string): void {
    const problems = this.violations(counts);
    const summary = this.calls.map((c) => `${c.name}=${counts[c.type] ?? 0}`).join(' ');
    console.log(`  [${this.label}] ${moment}: stored ${summary}: ${problems.length === 0 ? 'rules hold' : `${problems.length} broken`}`);
    assert.ok(problems.length === 0, `${this.label}, ${moment}: ${problems.length} outcome rule(s) broken:\n  ${problems.join('\n  ')}`);
  }
}

/** The JSON-RPC ids of the frames in `frames` (single messages or batches) that `pick` accepts. */
function rpcIds(frames: string[], pick: (message: Record<string, unknown>) => boolean): Set<unknown> {
  const ids = new Set<unknown>();
  for (const frame of frames) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(frame);
    } catch {
      continue;
    }
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
      if (message && typeof message === 'object' && pick(message as Record<string, unknown>)) ids.add((message as { id?: unknown }).id);
    }
  }
  return ids;
}

/** Whether the server behind `tap` has answered every `player.invoke` try of call id `callId` that went through it. */
export function answeredAll(tap: WsTap, callId: string): boolean {
  const asked = rpcIds(tap.sent, (m) => m.method === 'player.invoke' && JSON.stringify(m.params).includes(JSON.stringify(callId)));
  const answered = rpcIds(tap.received, (m) => m.method === undefined && ('result' in m || 'error' in m));
  return asked.size > 0 && [...asked].every((id) => answered.has(id));
}

// ---- the cluster --------------------------------------------------------------------------------

/** The compiled player model of these tests (test/fixtures/durability-model.ts). */
export const DURABILITY_MODEL = fileURLToPath(new URL('../fixtures/durability-model.js', import.meta.url));

export interface DurableClusterOptions {
  /** 'redis': one `kuafu serve` per game server on a persistent redis-server; 'memory': one `kuafu up`. */
  store: 'redis' | 'memory';
  games: string[];
  rpcTimeoutMs?: number;
  heartbeatMs?: number;
}

/** A server line of `kuafu up`: name, roles, rpc and gateway. */
function upLine(name: string): RegExp {
  return new RegExp(`^\\s*${name}\\s+\\S+\\s+rpc (ws://\\S+)\\s+gateway (ws://\\S+)`, 'm');
}

export class DurableCluster {
  /** The `kuafu serve` processes by server name (store 'redis'). */
  readonly servers: Record<string, ServeProcess> = {};
  /** The `kuafu up` process (store 'memory'). */
  up: KuafuProcess | null = null;
  private readonly upUrls: Record<string, { rpc: string; gateway: string }> = {};
  private readonly peers: Record<string, PeerClient> = {};
  private reads = 0;
  redis: RedisHandle | null = null;
  /** The test's own connection to Redis, to read what is stored. */
  reader: RedisStore | null = null;

  private constructor(readonly options: DurableClusterOptions, readonly config: ClusterConfigFile) {}

  static async start(options: DurableClusterOptions): Promise<DurableCluster> {
    let redis: RedisHandle | null = null;
    try {
      if (options.store === 'redis') redis = await startRedis({ persistent: true });
      const config = writeClusterConfig({
        servers: options.games.map((name) => ({ name, roles: ['game'], gatewayPort: 0 })),
        store: redis ? { kind: 'redis', url: redis.url } : { kind: 'memory' },
        heartbeatMs: options.heartbeatMs ?? 250,
        rpcTimeoutMs: options.rpcTimeoutMs ?? 2000,
        playerModel: DURABILITY_MODEL,
      });
      const cluster = new DurableCluster(options, config);
      cluster.redis = redis;
      if (redis) {
        const reader = new RedisStore({ url: redis.url });
        await reader.connect();
        onCleanup(() => reader.close());
        cluster.reader = reader;
        for (const name of options.games) await cluster.serve(name);
      } else {
        const up = spawnKuafu(['up', '--config', config.path], { label: 'kuafu up (memory store)' });
        cluster.up = up;
        for (const name of options.games) {
          const [, rpc, gateway] = await up.waitForOutput(upLine(name), `its "${name} … rpc ws://… gateway ws://…" line`);
          cluster.upUrls[name] = { rpc: rpc!, gateway: gateway! };
        }
      }
      return cluster;
    } catch (error) {
      await cleanupCluster();
      await redis?.stop();
      throw error;
    }
  }

  /** Starts (again, after a kill) the `kuafu serve` process of `name` (store 'redis'). */
  async serve(name: string): Promise<ServeProcess> {
    if (!this.redis) throw new Error('serve() is for the redis cluster');
    const proc = await spawnServe(this.config.path, name, this.redis.url);
    if (!proc.gateway) throw new Error(`${name} printed no gateway address:\n${proc.describe()}`);
    this.servers[name] = proc;
    return proc;
  }

  /** The process that hosts server `name`. */
  process(name: string): KuafuProcess {
    const proc = this.up ?? this.servers[name];
    if (!proc) throw new Error(`no process hosts ${name}`);
    return proc;
  }

  /** Where server `name` listens for RPC now. */
  url(name: string): string {
    return this.up ? this.upUrls[name]!.rpc : this.servers[name]!.url;
  }

  /** Its client gateway now. */
  gateway(name: string): string {
    return this.up ? this.upUrls[name]!.gateway : this.servers[name]!.gateway;
  }

  /** A PeerClient to `name` that follows it to its new address after a restart. */
  peer(name: string): PeerClient {
    return (this.peers[name] ??= connect(name, this.url(name), this.config.secret, { resolveUrl: () => this.url(name), timeoutMs: 60_000 }));
  }

  /**
   * A PeerClient to `name` through a recording relay (its `delivered` count says which frames are
   * in the server's socket), connected and authenticated (one cluster.ping answered) before this resolves.
   */
  async tapped(name: string): Promise<{ tap: WsTap; peer: PeerClient }> {
    const tap = await startWsTap(this.url(name));
    const peer = connect(name, tap.url, this.config.secret, { timeoutMs: 60_000 });
    await peer.call('cluster.ping');
    return { tap, peer };
  }

  /** A KuafuClient for `pid`, home `home` (its gateway as it is now). */
  client(pid: number, home = 'HS'): KuafuClient {
    const client = new KuafuClient({
      pid, homeUrl: this.gateway(home), loginToken: () => issueLoginToken(this.config.secret, pid, home), stepTimeoutMs: 20_000,
    });
    onCleanup(() => client.close());
    return client;
  }

  /** SIGKILLs the process of `name` and waits for its exit. */
  async kill(name: string): Promise<void> {
    const proc = this.process(name);
    proc.kill('SIGKILL');
    const exit = await proc.waitForExit();
    assert.is(exit.signal, 'SIGKILL', `${proc.label} was killed`);
  }

  /** The item counts in the player's stored document, read from Redis (waits for Redis to answer). */
  async storedItems(pid: number): Promise<Record<string, number>> {
    const reader = this.reader;
    if (!reader) throw new Error('storedItems() reads Redis: use itemsAt() on the memory store');
    return eventually(async () => {
      const stored = await reader.loadDocument(pid);
      if (!stored) throw new Error(`player ${pid} has no stored document`);
      return { ...(stored.data as { items: Record<string, number> }).items };
    }, `Redis to answer with player ${pid}'s document`, 60_000);
  }

  /** The item counts as the owner `server` holds them (for the memory store: a fresh owner has just loaded them). */
  async itemsAt(server: string, pid: number): Promise<Record<string, number>> {
    return this.peer(server).call<Record<string, number>>('player.invoke', { pid, path: ['getitems'], args: [], id: `read-${pid}-${++this.reads}` });
  }

  /** The route and mark as Redis holds them. */
  state(pid: number): Promise<PlayerState> {
    return stateOf(this.reader!, pid);
  }

  /** Waits until Redis shows `check` true of the player's route and mark. */
  until(pid: number, what: string, check: (state: PlayerState) => boolean, ms = 60_000): Promise<PlayerState> {
    return untilState(this.reader!, pid, what, check, ms);
  }

  /** What every process printed, for failure messages. */
  describe(): string {
    return (this.up ? [this.up] : Object.values(this.servers)).map((p) => p.describe()).join('\n');
  }

  async stop(): Promise<void> {
    await cleanupCluster();
    await this.redis?.stop();
  }
}

export { EVENT_DEADLINE_MS };
