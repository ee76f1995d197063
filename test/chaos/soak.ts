/**
 * The chaos soak (issue 9): `runChaos({seed, minutes})` starts the chaos cluster (cluster.ts),
 * registers the players and lets them move (players.ts), keeps calls going at them — direct by id,
 * from the designer script, recharge orders (calls.ts) — injects the aimed faults one after
 * another (faults.ts), then restores everything, logs every player in again and checks what the
 * players hold against what the callers were told (checker.ts).
 *
 * Every choice (players, calls, amounts, faults, their order and delays) comes from generators
 * seeded by the seed; the timing of real processes is not, so two runs of one seed make the same
 * choices but need not end the same way.
 */
import { DEFAULT_TOKEN_TTL_MS } from '../../runtime/game/tokens.js';
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cleanupCluster } from '../harness/cluster.js';
import { seeded } from '../harness/random.js';
import { ACCOUNT, ChaosCluster, GAMES, HOME } from './cluster.js';
import { invokeById, invokeByScript, recharge, type CallEnv, type Op, type OpKind, type Via } from './calls.js';
import { FAULTS, runFault, type CallKind, type FaultContext, type FaultName, type FaultRecord } from './faults.js';
import { ChaosPlayer, playerLoop, type PlayerStats } from './players.js';
import { check, type CheckResult } from './checker.js';

export interface ChaosOptions {
  seed: number;
  /** How long calls and faults go on, minutes (the set-up and the final check come on top). */
  minutes: number;
  players?: number;
  /**
   * The faults, injected in this order (and again from the start while time is left); by default
   * every fault that fits the run, in a seeded shuffle each round.
   */
  faults?: FaultName[];
  /** The pause between two faults, ms: [least, most] (default [2000, 4000]). */
  faultGapMs?: [number, number];
  /** Print progress lines (default true). */
  verbose?: boolean;
  /** Where to write the journal and the servers' output (default test/artifacts/chaos-<seed>-<time>). */
  artifacts?: string | false;
  /** Keep the artifacts only when the checker found a violation or the run could not finish (default: keep them). */
  artifactsOnFailure?: boolean;
}

export interface ChaosReport {
  seed: number;
  violations: string[];
  summary: string;
  artifacts: string;
}

const RPC_TIMEOUT_MS = 3000;
const HEARTBEAT_MS = 1000;
const STEP_TIMEOUT_MS = 8000;
const SCRIPT_DEADLINE_MS = 25_000;
const MAX_IN_FLIGHT = 24;
/** The transfer token lifetime the soak's servers run with (the default one). */
const TOKEN_TTL_MS = DEFAULT_TOKEN_TTL_MS;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const seed = options.seed >>> 0;
  const verbose = options.verbose ?? true;
  const t0 = Date.now();
  const elapsed = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  const artifacts = options.artifacts === false ? ''
    : options.artifacts ?? join(ROOT, 'test', 'artifacts', `chaos-${seed}-${new Date(t0).toISOString().replace(/[:.]/g, '-')}`);
  if (artifacts) mkdirSync(artifacts, { recursive: true });
  const log = (line: string) => {
    const text = `[chaos ${elapsed()}s] ${line}`;
    if (artifacts) appendFileSync(join(artifacts, 'run.log'), `${text}\n`);
    if (verbose) console.log(text);
  };
  const workloadMs = Math.max(20_000, Math.round(options.minutes * 60_000));
  const playerCount = options.players ?? 24;
  log(`seed ${seed}: ${playerCount} players, ${(workloadMs / 60_000).toFixed(2)} min of calls and faults (replay: npm run chaos -- --seed ${seed} --minutes ${options.minutes})`);

  const rngCalls = seeded(seed ^ 0x85ebca6b);
  const rngFaults = seeded(seed ^ 0xc2b2ae35);

  const ops: Op[] = [];
  const faults: FaultRecord[] = [];
  const stats: PlayerStats = { logins: 0, loginFailures: 0, moves: 0, moveFailures: 0, fallbacks: 0, kicks: 0, logouts: 0, errors: {} };
  let cluster: ChaosCluster | undefined;
  let clean = false;
  try {
    cluster = await ChaosCluster.start({ rpcTimeoutMs: RPC_TIMEOUT_MS, heartbeatMs: HEARTBEAT_MS, scriptDeadlineMs: SCRIPT_DEADLINE_MS, log });
    const c = cluster;
    log(`cluster up: ${Object.entries(c.procs).map(([name, p]) => `${name} (pid ${p.pid})`).join(', ')}; redis ${c.redis.url} (appendonly, fsync always)`);

    const accountGateway = c.gateways[ACCOUNT]!;
    const players: ChaosPlayer[] = new Array(playerCount);
    for (let i = 0; i < playerCount; i += 4) {
      await Promise.all([i, i + 1, i + 2, i + 3].filter((j) => j < playerCount).map(async (j) => {
        players[j] = await ChaosPlayer.register(accountGateway, `chaos-${seed}-${j}`, stats, STEP_TIMEOUT_MS);
      }));
    }
    const byPid = new Map(players.map((p) => [p.pid, p]));
    const pidList = players.map((p) => p.pid);
    log(`${players.length} accounts registered (players ${Math.min(...pidList)}…${Math.max(...pidList)}, home ${HOME})`);

    let stopCalls = false;
    let stopPlayers = false;
    let currentFault = '';
    let inFlight = 0;
    const running = new Set<Promise<void>>();

    const env: CallEnv = {
      peer: (name) => c.peers[name]!,
      rpcTimeoutMs: RPC_TIMEOUT_MS,
      stopping: () => stopCalls,
      owner: async (pid) => {
        try {
          const route = await c.store.getRoute(pid);
          if (route) return route.at || route.home;
        } catch {
          // Redis is down: what the runner last saw
        }
        return byPid.get(pid)?.at ?? HOME;
      },
    };

    const upGames = () => GAMES.filter((g) => c.isUp(g));
    const start = (pid: number, kind: CallKind, scriptOn?: string, firstTarget = ''): Op => {
      const n = ops.length + 1;
      const base: Op = {
        n, kind: 'gold', via: 'direct', pid, amount: 0, typeId: 0, count: 0, title: '', id: '', server: '', retryStore: false, firstTarget,
        startedAt: Date.now() - t0, endedAt: 0, outcome: 'running', tries: [], value: undefined, fault: currentFault, answered: '',
        finalState: '', unclassified: false,
      };
      const op = base;
      let work: Promise<void>;
      const set = (kind2: OpKind, via: Via) => {
        op.kind = kind2;
        op.via = via;
      };
      switch (kind) {
        case 'gold':
          set('gold', 'direct');
          op.amount = 1 + Math.floor(rngCalls() * 100);
          op.id = `kept:chaos:${seed}:${n}`;
          op.retryStore = rngCalls() < 0.5;
          work = invokeById(env, op, ['addgold'], [op.amount, `chaos:${n}`]);
          break;
        case 'item':
          set('item', 'direct');
          op.typeId = 1_000_000 + n;
          op.count = 1 + Math.floor(rngCalls() * 5);
          op.id = `chaos:${seed}:${n}`;
          op.retryStore = rngCalls() < 0.5;
          work = invokeById(env, op, ['itemdb', 'additembytype'], [op.typeId, op.count, null, `chaos:${n}`]);
          break;
        case 'mail':
          set('mail', 'direct');
          op.title = `chaos-${seed}-${n}`;
          op.id = `chaos:${seed}:${n}`;
          op.retryStore = rngCalls() < 0.5;
          work = invokeById(env, op, ['mail', 'send'], [{ title: op.title, body: 'chaos' }, `chaos:${n}`]);
          break;
        case 'script-gold':
        case 'script-item': {
          const ups = upGames();
          op.server = scriptOn && c.isUp(scriptOn) ? scriptOn : ups.length > 0 ? ups[Math.floor(rngCalls() * ups.length)]! : HOME;
          if (kind === 'script-gold') {
            set('gold', 'script');
            op.amount = 1 + Math.floor(rngCalls() * 100);
            work = invokeByScript(env, op, 'gold', [pid, op.amount, `chaos:${n}`], SCRIPT_DEADLINE_MS + 5000);
          } else {
            set('item', 'script');
            op.typeId = 1_000_000 + n;
            op.count = 1 + Math.floor(rngCalls() * 5);
            work = invokeByScript(env, op, 'item', [pid, op.typeId, op.count, `chaos:${n}`], SCRIPT_DEADLINE_MS + 5000);
          }
          break;
        }
        case 'recharge':
          set('recharge', 'account');
          op.amount = 10 + Math.floor(rngCalls() * 191);
          op.id = `chaos-${seed}-order-${n}`;
          work = recharge(env, op, ACCOUNT);
          break;
      }
      ops.push(op);
      inFlight++;
      const done = work.catch((error: unknown) => {
        op.tries.push(`runner error ${(error as Error).message}`);
        op.outcome = 'unknown';
        op.unclassified = true;
      }).finally(() => {
        op.endedAt = Date.now() - t0;
        inFlight--;
        running.delete(done);
      });
      running.add(done);
      return op;
    };

    const ctx: FaultContext = {
      cluster: c,
      random: rngFaults,
      rpcTimeoutMs: RPC_TIMEOUT_MS,
      tokenTtlMs: TOKEN_TTL_MS,
      log,
      fire: (pid, kinds, scriptOn, firstTarget) => kinds.map((kind) => start(pid, kind, scriptOn, firstTarget)),
      reserve: async (where) => {
        const candidates = players.filter((p) => p.at !== null && !p.reserved && where(p.at));
        // Seeded order, so the same seed reaches for the same players when it can.
        for (let tries = 0; tries < 3 && candidates.length > 0; tries++) {
          const p = candidates.splice(Math.floor(rngFaults() * candidates.length), 1)[0]!;
          p.reserved = true;
          if ((await p.idle()) && p.at !== null && where(p.at)) return p;
          p.reserved = false;
        }
        return null;
      },
      release: (p) => { p.reserved = false; },
      onlineAt: (server) => players.filter((p) => p.at === server),
    };

    // Players log in and move.
    // One generator per player, by pid (the account server hands out the same pids each run).
    const loops = players.map((p) => playerLoop(p, seeded(((seed ^ 0x9e3779b9) + p.pid) >>> 0), () => stopPlayers));
    const firstLogins = Date.now() + 30_000;
    while (players.some((p) => p.at === null) && Date.now() < firstLogins) await sleep(100);
    log(`${players.filter((p) => p.at !== null).length} of ${players.length} players logged in; calls start`);

    // Calls at random players, mostly the ones online.
    const mix: [CallKind, number][] = [['gold', 0.28], ['item', 0.24], ['mail', 0.08], ['script-gold', 0.13], ['script-item', 0.15], ['recharge', 0.12]];
    const callLoop = (async () => {
      while (!stopCalls) {
        await sleep(60 + rngCalls() * 120);
        if (inFlight >= MAX_IN_FLIGHT) continue;
        const online = players.filter((p) => p.at !== null);
        const pool = online.length > 0 && rngCalls() < 0.9 ? online : players;
        const p = pool[Math.floor(rngCalls() * pool.length)]!;
        let roll = rngCalls();
        let kind: CallKind = 'gold';
        for (const [k, w] of mix) {
          if (roll < w) {
            kind = k;
            break;
          }
          roll -= w;
        }
        start(p.pid, kind);
      }
    })();

    // Faults, one at a time, from a seeded shuffle of those that fit.
    const callsEnd = Date.now() + workloadMs;
    const faultsEnd = callsEnd - 5000;
    const allowed = (options.faults ?? [...FAULTS]).filter((f) => f !== 'pause-owner-past-token-lifetime' || options.faults || workloadMs >= 120_000);
    const faultLoop = (async () => {
      await sleep(3000);
      let round: FaultName[] = [];
      while (Date.now() < faultsEnd) {
        if (round.length === 0) round = options.faults ? [...allowed] : shuffle(rngFaults, allowed);
        const name = round.shift()!;
        // A fault that cannot finish before the calls stop waits for the next run.
        const needs = name === 'pause-owner-past-token-lifetime' ? TOKEN_TTL_MS + 8000 : 8000;
        if (Date.now() + needs > callsEnd) {
          if (name !== 'pause-owner-past-token-lifetime') break; // nothing fits any more
          await sleep(50);
          continue;
        }
        currentFault = name;
        const record: FaultRecord = { name, startedAt: Date.now() - t0, endedAt: 0, detail: '', injected: false };
        log(`fault ${name}…`);
        try {
          const outcome = await runFault(ctx, name);
          record.detail = outcome.detail;
          record.injected = outcome.injected;
        } catch (error) {
          record.detail = `fault failed: ${(error as Error).message.split('\n')[0]}`;
          await c.restoreAll().catch((e: Error) => log(`restore failed: ${e.message}`));
        }
        record.endedAt = Date.now() - t0;
        currentFault = '';
        faults.push(record);
        log(`fault ${name}: ${record.detail}`);
        const [leastGap, mostGap] = options.faultGapMs ?? [2000, 4000];
        await sleep(leastGap + rngFaults() * (mostGap - leastGap));
      }
    })();

    while (Date.now() < callsEnd) await sleep(200);
    stopCalls = true;
    await callLoop;
    await faultLoop;
    await c.restoreAll();
    log(`calls stopped (${ops.length} made); waiting for ${running.size} still running`);
    const drain = Date.now() + 90_000;
    while (running.size > 0 && Date.now() < drain) await sleep(100);
    stopPlayers = true;
    await Promise.all(loops);
    for (const p of players) p.client.close();
    log(`players stopped: ${stats.logins} logins (${stats.loginFailures} failed), ${stats.moves} moves (${stats.moveFailures} failed), ${stats.fallbacks} fallbacks home, ${stats.kicks} kicks`);

    const result: CheckResult = await check({ cluster: c, players, ops, log, accountGateway, stepTimeoutMs: STEP_TIMEOUT_MS });
    c.closing = true;
    for (const crash of c.crashes) result.violations.push(`server crash: ${crash}`);
    const summary = summarize(seed, ops, faults, stats, result, running.size);
    if (artifacts) {
      writeFileSync(join(artifacts, 'players.json'), JSON.stringify(result.players, null, 2));
      writeFileSync(join(artifacts, 'summary.txt'), `${summary}\n`);
    }
    clean = options.artifactsOnFailure === true && result.violations.length === 0;
    return { seed, violations: result.violations, summary, artifacts: clean ? '' : artifacts };
  } catch (error) {
    log(`the run could not finish: ${(error as Error).stack ?? String(error)}`);
    throw new Error(`chaos seed ${seed}: the run could not finish (${(error as Error).message.split('\n')[0]}); see ${artifacts || 'its log'}`);
  } finally {
    if (cluster) cluster.closing = true;
    if (artifacts) {
      writeFileSync(join(artifacts, 'ops.jsonl'), ops.map((op) => JSON.stringify(op)).join('\n') + '\n');
      writeFileSync(join(artifacts, 'faults.json'), JSON.stringify(faults, null, 2));
      if (cluster) for (const [name, text] of Object.entries(cluster.outputs())) writeFileSync(join(artifacts, `${name}.log`), text);
    }
    await cleanupCluster();
    if (clean && artifacts) rmSync(artifacts, { recursive: true, force: true });
  }
}

function shuffle<T>(random: () => number, list: readonly T[]): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function summarize(seed: number, ops: Op[], faults: FaultRecord[], stats: PlayerStats, result: CheckResult, stillRunning: number): string {
  const out: string[] = [];
  out.push(`== chaos summary, seed ${seed}`);
  out.push(`calls by outcome (${ops.length} in all${stillRunning ? `, ${stillRunning} never ended` : ''}):`);
  const groups = new Map<string, Op[]>();
  for (const op of ops) {
    const key = `${op.via} ${op.kind}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(op);
  }
  for (const [key, list] of [...groups].sort()) {
    const count = (o: string) => list.filter((op) => op.outcome === o).length;
    const failedKinds = new Map<string, number>();
    for (const op of list) {
      if (op.outcome !== 'failed') continue;
      const last = op.tries[op.tries.length - 1] ?? '';
      const kind = last.includes(':') ? last.split(':').pop()! : last.replace(/^script (saw |\.run )/, '');
      failedKinds.set(kind, (failedKinds.get(kind) ?? 0) + 1);
    }
    const failed = [...failedKinds].map(([k, n]) => `${k} ${n}`).join(', ');
    const unclassified = list.filter((op) => op.unclassified).length;
    out.push(`  ${key.padEnd(18)} ok ${String(count('ok')).padStart(4)}  unknown ${String(count('unknown')).padStart(3)}  failed ${String(count('failed')).padStart(3)}${failed ? ` (${failed})` : ''}${unclassified ? `  unclassified ${unclassified}` : ''}${count('running') ? `  still running ${count('running')}` : ''}`);
  }
  const orders = ops.filter((op) => op.kind === 'recharge');
  if (orders.length > 0) {
    const state = (s: string) => orders.filter((o) => o.finalState === s).length;
    out.push(`  recharge orders at the end: delivered ${state('delivered')}, pending ${state('pending')}, never stored ${state('missing')}; answered delivered ${orders.filter((o) => o.answered === 'delivered').length}`);
  }
  out.push(`faults injected (${faults.filter((f) => f.injected).length}${faults.some((f) => !f.injected) ? `; ${faults.filter((f) => !f.injected).length} found no moment` : ''}):`);
  for (const f of faults) out.push(`  ${(f.startedAt / 1000).toFixed(1).padStart(6)}s ${f.name}: ${f.detail}`);
  out.push(`players: ${stats.logins} logins (${stats.loginFailures} failed), ${stats.moves} moves (${stats.moveFailures} failed), ${stats.fallbacks} fallbacks home, ${stats.kicks} kicks, ${stats.logouts} logouts`);
  const errors = Object.entries(stats.errors).sort((a, b) => b[1] - a[1]);
  if (errors.length > 0) out.push(`  why logins and moves failed: ${errors.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  out.push(...result.lines);
  if (result.violations.length === 0) {
    out.push(`checker: no violation (${result.players.length} players checked)`);
  } else {
    out.push(`checker: ${result.violations.length} violations:`);
    for (const v of result.violations) out.push(`  ${v}`);
  }
  return out.join('\n');
}
