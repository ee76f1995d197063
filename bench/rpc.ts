/**
 * `npm run bench -- rpc`: one server-to-server call (an echo of a player-call-shaped payload),
 * kuafu against raw jayson (jayson.Server over its WebSocket transport, jayson.Client.websocket on one
 * connection, one request per call), same payload, same process layout (server in a child process).
 * Concurrency 1 (p50 of 10,000 calls each after warm-up, ours and raw interleaved call by call so
 * both meet the same machine) and 64 in flight (50,000 calls, one side after the other); three
 * rounds; the medians are reported.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { rawJaysonClient } from './raw-jayson.js';
import { PeerClient } from '../runtime/rpc/peer-client.js';
import { alternate, latencies, throughput, writeResults } from './measure.js';
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

  const at64 = (call: () => Promise<unknown>) => (total: number) => throughput(call, total, 64);
  const compared = await alternate(ROUNDS, { ours: { c1: ours, c64: at64(ours) }, raw: { c1: raw.call, c64: at64(raw.call) } }, C1_CALLS, C64_CALLS);
  kuafu.close();
  raw.close();
  servers.stop();

  const results = {
    kuafu_calls_per_s_c64: compared.oursPerS,
    raw_calls_per_s_c64: compared.rawPerS,
    throughput_ratio_c64: compared.throughputRatio,
    kuafu_p50_us_c1: compared.oursP50Us,
    raw_p50_us_c1: compared.rawP50Us,
    latency_ratio_c1: compared.latencyRatio,
  };
  const file = writeResults('rpc', results);
  console.log(`  throughput ratio (c64) ${results.throughput_ratio_c64}x (target >= 1.5), latency ratio (c1) ${results.latency_ratio_c1}x (target <= 1.5)`);
  console.log(`  wrote ${file}`);
  return results;
}
