/**
 * `npm run bench -- sdk-call`, on Redis (appendonly yes, appendfsync everysec): a designer script
 * in the sandbox on HS calls `addgold` on players who are on GS1 (a `kuafu serve` process), each
 * call acknowledged only once saved; the reference does the same work by hand — raw jayson over
 * one WebSocket to a handler that adds the gold and saves the player's document with one ioredis
 * SET before answering (sdk-call-raw-server.ts).
 *
 * Figures, each ours against the reference, three or more rounds, medians:
 * - many players, 64 in flight (the main figure and the target): PLAYERS players on GS1; worker w
 *   of 64 calls players w, w+64, w+128, … in turn, so the 64 calls in flight are always to 64
 *   different players and no save merges two calls: one write of a player document per call on
 *   both sides (counted from Redis's commandstats, and reported).
 * - one hot player, 64 in flight (a second figure): every call to one player. kuafu's save queue
 *   merges that player's saves of one tick into one write while the reference does one SET per
 *   call, so this compares about one write per 64 calls with 64 writes: it shows what merging
 *   buys, not equal work.
 * - one call at a time: p50 of 5,000 calls each (one script run per call, run overhead included),
 *   ours and the reference interleaved call by call (both meet the same machine), over the players
 *   in turn.
 * Also the bundle's cold load and idle memory; per case, Redis commands and WebSocket messages per
 * call (on a run of their own). The run fails unless every player's gold, live and stored, equals
 * the adds acknowledged to him, on both sides.
 */
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { rawJaysonClient } from './raw-jayson.js';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { loadConfig } from '../runtime/cluster/config.js';
import { startServers } from '../runtime/cluster/start.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { alternate, alternateThroughput, countMessages, latencies, round, writeResults } from './measure.js';
import { commandCounts, countsSince, cpuMicros, redisPid, serve, startBenchRedis, track, writeConfig } from './processes.js';

const FIRST_PID = 3_000_001;
/** Players of the many-players case: a multiple of IN_FLIGHT, so each worker has players of its own. */
const PLAYERS = 256;
const IN_FLIGHT = 64;
const ROUNDS = 4;
const C1_CALLS = 5_000;
const C64_CALLS = 20_000;
const COUNTED_CALLS = 10_000;
const SCRIPT = `export async function add(pid: number) {
  const player = cproxyplayer.new(pid);
  return player.addgold(1, "bench:sdk-call");
}

/**
 * Keeps \`inFlight\` addgold calls in flight until \`total\` have been answered. Worker w calls
 * pids[w], pids[w + inFlight], … in turn (with one pid: all call him). Returns the gold added to
 * each pid, as acknowledged.
 */
export async function flood(pids: number[], total: number, inFlight: number) {
  const players = pids.map((pid) => cproxyplayer.new(pid));
  const added = pids.map(() => 0);
  let started = 0;
  const worker = async (w: number) => {
    for (let turn = 0; started < total; turn++) {
      started++;
      const i = (w + inFlight * turn) % pids.length;
      const amount = await players[i].addgold(1, "bench:sdk-call");
      added[i] += amount; // after the await: \`added[i] += await …\` would read added[i] before it
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
  return added;
}
`;
/** Calls per script run at 64 in flight (well inside the script deadline). */
const FLOOD_CHUNK = 2_000;

async function rawServer(redisUrl: string): Promise<{ url: string; pid: number; stop: () => void }> {
  const child = track(spawn(process.execPath, [fileURLToPath(new URL('./sdk-call-raw-server.js', import.meta.url)), redisUrl], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`raw server exited early (${code})`)));
  });
  return { url: JSON.parse(line).url, pid: child.pid!, stop: () => child.kill('SIGKILL') };
}

/** Gold acknowledged per pid, by one side. */
class Ledger {
  readonly added = new Map<number, number>();
  add(pid: number, amount: unknown): void {
    if (amount !== 1) throw new Error(`addgold(1) for player ${pid} answered ${JSON.stringify(amount)}`);
    this.credit(pid, 1);
  }
  credit(pid: number, amount: number): void {
    this.added.set(pid, (this.added.get(pid) ?? 0) + amount);
  }
}

/** Checks every pid's gold (as `goldOf` reads it) against the ledger; throws naming the first few that differ. */
async function checkGold(side: string, ledger: Ledger, pids: number[], goldOf: (pid: number) => Promise<unknown>): Promise<number> {
  const wrong: string[] = [];
  let total = 0;
  for (const pid of pids) {
    const [gold, expected] = [await goldOf(pid), ledger.added.get(pid) ?? 0];
    total += expected;
    if (gold !== expected) wrong.push(`player ${pid}: gold ${JSON.stringify(gold)}, acknowledged adds ${expected}`);
  }
  if (wrong.length > 0) throw new Error(`${side}: ${wrong.length} of ${pids.length} players' gold differs from the acknowledged adds (${wrong.slice(0, 5).join('; ')})`);
  return total;
}

export async function runSdkCallBench(): Promise<Record<string, number | string>> {
  process.env.KUAFU_LOG_LEVEL ??= 'warn';
  const redis = await startBenchRedis();
  const { path } = writeConfig([
    { name: 'HS', roles: ['game'], gateway: true },
    { name: 'GS1', roles: ['game'], gateway: true },
  ], redis.url);
  const config = loadConfig(path);
  config.scriptsDir = '';
  // KUAFU_BENCH_SCRIPT_WORKER=1|0 measures the other placement of the isolates than the config's default.
  if (process.env.KUAFU_BENCH_SCRIPT_WORKER) config.scriptWorker = process.env.KUAFU_BENCH_SCRIPT_WORKER === '1';
  // HS runs in this process (its script host is what we measure); GS1 is a process of its own.
  const gs1 = await serve(path, 'GS1', redis.url);
  const running = await startServers(config, ['HS']);
  const hs = running.nodes[0]!;
  const pids = Array.from({ length: PLAYERS }, (_, i) => FIRST_PID + i);
  const hot = [FIRST_PID];
  const clients = pids.map((pid) => new KuafuClient({ pid, homeUrl: hs.gatewayUrl, loginToken: () => issueLoginToken(config.secret, pid, 'HS') }));
  for (let i = 0; i < clients.length; i += 32) {
    await Promise.all(clients.slice(i, i + 32).map(async (client) => {
      await client.login();
      await client.go('GS1');
    }));
  }

  const scriptFile = join(mkdtempSync(join(tmpdir(), 'kuafu-bench-')), 'bench_sdk_call.ts');
  writeFileSync(scriptFile, SCRIPT);
  const scripts = hs.game!.scripts.host;
  await scripts.loadFile(scriptFile, 'bench_sdk_call');
  const raw = await rawServer(redis.url);
  const rawClient = await rawJaysonClient(raw.url, 'addgold', []);
  const ledger = { ours: new Ledger(), raw: new Ledger() };

  // One call at a time, over the players in turn.
  let nextOurs = 0;
  let nextRaw = 0;
  const ours = async () => {
    const pid = pids[nextOurs++ % PLAYERS]!;
    ledger.ours.add(pid, await scripts.run('bench_sdk_call', 'add', [pid]));
  };
  const rawCall = async () => {
    const pid = pids[nextRaw++ % PLAYERS]!;
    ledger.raw.add(pid, await rawClient.callWith([pid, 1, 'bench:raw']));
  };
  // 64 in flight from inside the sandbox: one script keeps 64 SDK calls going (in chunks of runs).
  const oursC64 = (players: number[]) => async (total: number): Promise<number> => {
    const start = process.hrtime.bigint();
    for (let done = 0; done < total; done += FLOOD_CHUNK) {
      const added = await scripts.run('bench_sdk_call', 'flood', [players, Math.min(FLOOD_CHUNK, total - done), IN_FLIGHT]) as number[];
      let sum = 0;
      added.forEach((n, i) => {
        ledger.ours.credit(players[i]!, n);
        sum += n;
      });
      if (sum !== Math.min(FLOOD_CHUNK, total - done)) throw new Error(`flood added ${sum} (${JSON.stringify(added).slice(0, 300)}), not ${Math.min(FLOOD_CHUNK, total - done)}`);
    }
    return total / (Number(process.hrtime.bigint() - start) / 1e9);
  };
  // The reference's 64 in flight: the same workers over the same players.
  const rawC64 = (players: number[]) => async (total: number): Promise<number> => {
    let started = 0;
    const worker = async (w: number) => {
      for (let turn = 0; started < total; turn++) {
        started++;
        const pid = players[(w + IN_FLIGHT * turn) % players.length]!;
        ledger.raw.add(pid, await rawClient.callWith([pid, 1, 'bench:raw']));
      }
    };
    const start = process.hrtime.bigint();
    await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)));
    return total / (Number(process.hrtime.bigint() - start) / 1e9);
  };

  // Warm-up (every player once on both sides first: his document exists on both).
  for (let i = 0; i < PLAYERS; i++) await ours();
  for (let i = 0; i < PLAYERS; i++) await rawCall();
  for (const call of [ours, rawCall]) await latencies(call, 1000);
  for (const players of [pids, hot]) {
    await oursC64(players)(6_000);
    await rawC64(players)(6_000);
  }

  const compared = await alternate(ROUNDS, {
    ours: { c1: ours, c64: oursC64(pids) },
    raw: { c1: rawCall, c64: rawC64(pids) },
  }, C1_CALLS, C64_CALLS);
  const hotCompared = await alternateThroughput(ROUNDS, 'one hot player', { ours: oursC64(hot), raw: rawC64(hot) }, C64_CALLS);

  // What each figure is made of: Redis commands and WebSocket messages per call, on runs of their own.
  const stats = new Redis(redis.url);
  const hsToGs1 = (hs.peer('GS1') as unknown as { ws: Parameters<typeof countMessages>[0] | null }).ws;
  if (!hsToGs1) throw new Error('HS has no connection to GS1 to count messages on');
  const redisProcess = await redisPid(stats);
  const processes = {
    ours: { 'bench (HS: script host, caller)': process.pid, 'GS1 (owner)': gs1.child.pid!, redis: redisProcess },
    raw: { 'bench (jayson client)': process.pid, 'raw server': raw.pid, redis: redisProcess },
  };
  const counted = async (side: 'ours' | 'raw', ws: Parameters<typeof countMessages>[0], run: (total: number) => Promise<number>) => {
    const messages = countMessages(ws);
    const before = await commandCounts(stats);
    const cpuBefore = Object.values(processes[side]).map(cpuMicros);
    const start = process.hrtime.bigint();
    await run(COUNTED_CALLS);
    const wallUs = Number(process.hrtime.bigint() - start) / 1000;
    const cpu = Object.values(processes[side]).map((pid, i) => cpuMicros(pid) - cpuBefore[i]!);
    const commands = countsSince(before, await commandCounts(stats));
    messages.stop();
    delete commands.info;
    const all = Object.values(commands).reduce((a, b) => a + b, 0);
    return {
      writes: round(((commands.evalsha ?? 0) + (commands.set ?? 0)) / COUNTED_CALLS, 3),
      commands: round(all / COUNTED_CALLS, 3),
      messages: round((messages.sent + messages.received) / COUNTED_CALLS, 3),
      breakdown: Object.entries(commands).map(([name, n]) => `${name} ${round(n / COUNTED_CALLS, 3)}`).join(', '),
      wallUsPerCall: round(wallUs / COUNTED_CALLS, 1),
      cpuUsPerCall: Object.fromEntries(Object.keys(processes[side]).map((name, i) => [name, round(cpu[i]! / COUNTED_CALLS, 1)])),
    };
  };
  const per = {
    oursMany: await counted('ours', hsToGs1, oursC64(pids)),
    rawMany: await counted('raw', rawClient.ws, rawC64(pids)),
    oursHot: await counted('ours', hsToGs1, oursC64(hot)),
    rawHot: await counted('raw', rawClient.ws, rawC64(hot)),
  };
  const cpuOf = (p: { cpuUsPerCall: Record<string, number> }, name: string) => p.cpuUsPerCall[name]!;
  const cold = await scripts.measureColdLoad('bench_sdk_call', 10);

  // Every acknowledged add is there, live on GS1 and in the stored document, on both sides.
  const checkedOurs = await checkGold('kuafu (live, on GS1)', ledger.ours, pids, (pid) => hs.players.invoke(pid, ['getgold'], []));
  await checkGold('kuafu (stored document)', ledger.ours, pids, async (pid) => ((await hs.store.loadDocument(pid))?.data as { gold?: unknown } | undefined)?.gold);
  const checkedRaw = await checkGold('reference (stored document)', ledger.raw, pids, async (pid) => {
    const text = await stats.get(`raw:{${pid}}:doc`);
    return text === null ? undefined : (JSON.parse(text) as { gold?: unknown }).gold;
  });
  stats.disconnect();

  rawClient.close();
  raw.stop();
  // GS1 logs the players out as their clients go: let it finish before Redis goes.
  for (const client of clients) client.close();
  await running.stop();
  await gs1.stopped();
  await redis.stop();

  const results = {
    players: PLAYERS,
    in_flight: IN_FLIGHT,
    rounds: ROUNDS,
    redis: redis.persistence,
    sdk_calls_per_s_c64_many_players: compared.oursPerS,
    raw_calls_per_s_c64_many_players: compared.rawPerS,
    throughput_ratio_c64_many_players: compared.throughputRatio,
    sdk_calls_per_s_c64_one_player: hotCompared.oursPerS,
    raw_calls_per_s_c64_one_player: hotCompared.rawPerS,
    throughput_ratio_c64_one_player: hotCompared.throughputRatio,
    sdk_p50_us_c1: compared.oursP50Us,
    raw_p50_us_c1: compared.rawP50Us,
    latency_ratio_c1: compared.latencyRatio,
    sdk_doc_writes_per_call_many_players: per.oursMany.writes,
    raw_doc_writes_per_call_many_players: per.rawMany.writes,
    sdk_doc_writes_per_call_one_player: per.oursHot.writes,
    raw_doc_writes_per_call_one_player: per.rawHot.writes,
    sdk_redis_commands_per_call_many_players: per.oursMany.commands,
    raw_redis_commands_per_call_many_players: per.rawMany.commands,
    sdk_cpu_us_per_call_many_players_caller: cpuOf(per.oursMany, 'bench (HS: script host, caller)'),
    sdk_cpu_us_per_call_many_players_owner: cpuOf(per.oursMany, 'GS1 (owner)'),
    sdk_cpu_us_per_call_many_players_redis: cpuOf(per.oursMany, 'redis'),
    raw_cpu_us_per_call_many_players_caller: cpuOf(per.rawMany, 'bench (jayson client)'),
    raw_cpu_us_per_call_many_players_server: cpuOf(per.rawMany, 'raw server'),
    raw_cpu_us_per_call_many_players_redis: cpuOf(per.rawMany, 'redis'),
    sdk_cpu_us_per_call_many_players_total: round(Object.values(per.oursMany.cpuUsPerCall).reduce((a, b) => a + b, 0), 1),
    raw_cpu_us_per_call_many_players_total: round(Object.values(per.rawMany.cpuUsPerCall).reduce((a, b) => a + b, 0), 1),
    sdk_messages_per_call_many_players: per.oursMany.messages,
    raw_messages_per_call_many_players: per.rawMany.messages,
    sdk_messages_per_call_one_player: per.oursHot.messages,
    raw_messages_per_call_one_player: per.rawHot.messages,
    gold_checked_sdk: checkedOurs,
    gold_checked_raw: checkedRaw,
    bundle_cold_load_ms: round(cold.medianMs, 2),
    isolate_idle_mib: round(cold.idleMiB, 2),
  };
  const file = writeResults('sdk-call', results);
  for (const [name, p] of Object.entries(per)) {
    console.log(`  ${name.padEnd(8)} per call: ${p.writes} document writes, ${p.commands} Redis commands (${p.breakdown}), ${p.messages} WebSocket messages`);
    console.log(`           ${p.wallUsPerCall} µs wall, CPU µs: ${Object.entries(p.cpuUsPerCall).map(([n, us]) => `${n} ${us}`).join(', ')}`);
  }
  console.log(`  gold checked: ${checkedOurs} acknowledged adds (kuafu) and ${checkedRaw} (reference) over ${PLAYERS} players, live and stored`);
  console.log(`  throughput ratio (c64, ${PLAYERS} players) ${results.throughput_ratio_c64_many_players}x (target >= 1.0); one hot player ${results.throughput_ratio_c64_one_player}x (merged saves against one SET per call)`);
  console.log(`  latency ratio (c1) ${results.latency_ratio_c1}x (target <= 2), cold load ${results.bundle_cold_load_ms} ms (target <= 50), idle isolate ${results.isolate_idle_mib} MiB`);
  console.log(`  wrote ${file}`);
  return results;
}
