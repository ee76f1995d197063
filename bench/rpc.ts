/**
 * `npm run bench -- rpc`: one server-to-server call (an echo of a player-call-shaped payload),
 * kuafu against raw jayson (jayson.Server over its WebSocket transport, jayson.Client.websocket on one
 * connection, one request per call), same payload, same process layout (server in a child process).
 * Concurrency 1 (p50 of 10,000 calls after warm-up) and 64 in flight (50,000 calls); ours and raw
 * alternate for three rounds; the medians are reported.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { rawJaysonClient } from './raw-jayson.js';
import { PeerClient } from '../runtime/rpc/peer-client.js';
import { latencies, median, percentile, round, throughput, writeResults } from './measure.js';
import { track } from './processes.js';

const PAYLOAD = { pid: 1000001, path: 'itemdb.additembytype', args: [105001, 10, null, 'test:rpc'] };
const ROUNDS = 3;
const C1_CALLS = 10_000;
const C64_CALLS = 50_000;

async function startServers(): Promise<{ kuafu: string; raw: string; secret: string; stop: () => void }> {
  const child = track(spawn(process.execPath, ['--no-node-snapshot', fileURLToPath(new URL('./rpc-servers.js', import.meta.url))], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KUAFU_LOG_LEVEL: 'warn' },
  }));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`bench servers exited early (${code})`)));
  });
  return { ...JSON.parse(line), stop: () => child.kill('SIGKILL') };
}


export async function runRpcBench(): Promise<Record<string, number>> {
  const servers = await startServers();
  const kuafu = new PeerClient({ self: 'bench', peer: 'GS1', secret: servers.secret, resolveUrl: () => servers.kuafu, timeoutMs: 10_000 });
  const ours = () => kuafu.call('cluster.echo', PAYLOAD);
  const raw = await rawJaysonClient(servers.raw, 'echo', [PAYLOAD]);

  // Same answer from both, then warm-up.
  const check = [await ours(), await raw.call()];
  if (JSON.stringify(check[0]) !== JSON.stringify(PAYLOAD) || JSON.stringify(check[1]) !== JSON.stringify(PAYLOAD)) {
    throw new Error(`echo mismatch: ${JSON.stringify(check)}`);
  }
  for (const call of [ours, raw.call]) {
    await latencies(call, 3000);
    await throughput(call, 20_000, 64);
  }

  const p50 = { ours: [] as number[], raw: [] as number[] };
  const rate = { ours: [] as number[], raw: [] as number[] };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, call] of [['ours', ours], ['raw', raw.call]] as const) {
      const lat = await latencies(call, C1_CALLS);
      const cps = await throughput(call, C64_CALLS, 64);
      p50[name].push(percentile(lat, 50));
      rate[name].push(cps);
      console.log(`  round ${round} ${name.padEnd(4)}  c1 p50 ${percentile(lat, 50).toFixed(1)} µs  p99 ${percentile(lat, 99).toFixed(1)} µs   c64 ${Math.round(cps)} calls/s`);
    }
  }
  kuafu.close();
  raw.close();
  servers.stop();

  const results = {
    kuafu_calls_per_s_c64: Math.round(median(rate.ours)),
    raw_calls_per_s_c64: Math.round(median(rate.raw)),
    throughput_ratio_c64: round(median(rate.ours) / median(rate.raw)),
    kuafu_p50_us_c1: round(median(p50.ours), 1),
    raw_p50_us_c1: round(median(p50.raw), 1),
    latency_ratio_c1: round(median(p50.ours) / median(p50.raw)),
  };
  const file = writeResults('rpc', results);
  console.log(`  throughput ratio (c64) ${results.throughput_ratio_c64}x (target >= 1.5), latency ratio (c1) ${results.latency_ratio_c1}x (target <= 1.5)`);
  console.log(`  wrote ${file}`);
  return results;
}
