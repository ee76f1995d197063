/**
 * `npm run bench -- sdk-call`, on Redis: a designer script in the sandbox on HS calls `addgold` on a
 * player who is on GS1 (a `kuafu serve` process), acknowledged only once saved; the reference does
 * the same work by hand — raw jayson over one WebSocket to a handler that adds the gold and saves
 * the document with one ioredis SET before answering. Concurrency 1 (p50 of 5,000 calls each: one
 * script run per call, run overhead included; ours and the reference interleaved call by call, so
 * both meet the same machine) and 64 in flight (20,000 calls: a script keeps 64 SDK calls going;
 * the reference keeps 64 requests going on its one connection; one side after the other), three
 * rounds, medians. Also the bundle's cold load and idle memory.
 */
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { rawJaysonClient } from './raw-jayson.js';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { loadConfig } from '../runtime/cluster/config.js';
import { startServers } from '../runtime/cluster/start.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { alternate, latencies, round, throughput, writeResults } from './measure.js';
import { serve, startRedis, track, writeConfig } from './processes.js';

const PID = 3_000_001;
const ROUNDS = 3;
const C1_CALLS = 5_000;
const C64_CALLS = 20_000;
const SCRIPT = `export async function add(pid: number) {
  const player = cproxyplayer.new(pid);
  return player.addgold(1, "bench:sdk-call");
}

/** Keeps \`inFlight\` addgold calls in flight until \`total\` have been answered. */
export async function flood(pid: number, total: number, inFlight: number) {
  const player = cproxyplayer.new(pid);
  let started = 0;
  let added = 0;
  const worker = async () => {
    while (started < total) {
      started++;
      const amount = await player.addgold(1, "bench:sdk-call");
      added += amount;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return added;
}
`;
/** Calls per script run at 64 in flight (well inside the script deadline). */
const FLOOD_CHUNK = 2_000;

async function rawServer(redisUrl: string): Promise<{ url: string; stop: () => void }> {
  const child = track(spawn(process.execPath, [fileURLToPath(new URL('./sdk-call-raw-server.js', import.meta.url)), redisUrl], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`raw server exited early (${code})`)));
  });
  return { url: JSON.parse(line).url, stop: () => child.kill('SIGKILL') };
}


export async function runSdkCallBench(): Promise<Record<string, number>> {
  process.env.KUAFU_LOG_LEVEL ??= 'warn';
  const redis = await startRedis({ persistent: false });
  const { path } = writeConfig([
    { name: 'HS', roles: ['game'], gateway: true },
    { name: 'GS1', roles: ['game'], gateway: true },
  ], redis.url);
  const config = loadConfig(path);
  config.scriptsDir = '';
  // HS runs in this process (its script host is what we measure); GS1 is a process of its own.
  const gs1 = await serve(path, 'GS1', redis.url);
  const running = await startServers(config, ['HS']);
  const hs = running.nodes[0]!;
  const client = new KuafuClient({ pid: PID, homeUrl: hs.gatewayUrl, loginToken: () => issueLoginToken(config.secret, PID, 'HS') });
  await client.login();
  await client.go('GS1');

  const scriptFile = join(mkdtempSync(join(tmpdir(), 'kuafu-bench-')), 'bench_sdk_call.ts');
  writeFileSync(scriptFile, SCRIPT);
  const scripts = hs.game!.scripts.host;
  await scripts.loadFile(scriptFile, 'bench_sdk_call');
  const ours = () => scripts.run('bench_sdk_call', 'add', [PID]);
  // 64 in flight from inside the sandbox: one script keeps 64 SDK calls going (in chunks of runs).
  const oursC64 = async (total: number): Promise<number> => {
    const start = process.hrtime.bigint();
    for (let done = 0; done < total; done += FLOOD_CHUNK) {
      const added = await scripts.run('bench_sdk_call', 'flood', [PID, FLOOD_CHUNK, 64]);
      if (added !== FLOOD_CHUNK) throw new Error(`flood added ${String(added)}, not ${FLOOD_CHUNK}`);
    }
    return total / (Number(process.hrtime.bigint() - start) / 1e9);
  };
  const raw = await rawServer(redis.url);
  const rawCall = await rawJaysonClient(raw.url, 'addgold', [PID, 1, 'bench:raw']);

  const check = [await ours(), await rawCall.call()];
  if (check[0] !== 1 || check[1] !== 1) throw new Error(`addgold answered ${JSON.stringify(check)}`);
  for (const call of [ours, rawCall.call]) await latencies(call, 1000);
  await oursC64(6_000);
  await throughput(rawCall.call, 6_000, 64);
  const compared = await alternate(ROUNDS, {
    ours: { c1: ours, c64: oursC64 },
    raw: { c1: rawCall.call, c64: (total) => throughput(rawCall.call, total, 64) },
  }, C1_CALLS, C64_CALLS);
  const cold = await scripts.measureColdLoad('bench_sdk_call', 10);
  const gold = await hs.players.invoke(PID, ['getgold'], []);

  rawCall.close();
  raw.stop();
  client.close();
  await running.stop();
  gs1.stop();
  await redis.stop();

  const results = {
    sdk_calls_per_s_c64: compared.oursPerS,
    raw_calls_per_s_c64: compared.rawPerS,
    throughput_ratio_c64: compared.throughputRatio,
    sdk_p50_us_c1: compared.oursP50Us,
    raw_p50_us_c1: compared.rawP50Us,
    latency_ratio_c1: compared.latencyRatio,
    bundle_cold_load_ms: round(cold.medianMs, 2),
    isolate_idle_mib: round(cold.idleMiB, 2),
  };
  const file = writeResults('sdk-call', results);
  console.log(`  player's gold after the run: ${String(gold)} (every acknowledged addgold)`);
  console.log(`  throughput ratio (c64) ${results.throughput_ratio_c64}x (target >= 1.0), latency ratio (c1) ${results.latency_ratio_c1}x (target <= 2), cold load ${results.bundle_cold_load_ms} ms (target <= 50), idle isolate ${results.isolate_idle_mib} MiB`);
  console.log(`  wrote ${file}`);
  return results;
}
