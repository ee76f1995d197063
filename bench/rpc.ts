/**
 * `npm run bench -- rpc`: one server-to-server call (an echo of a player-call-shaped payload),
 * kuafu against raw jayson (jayson.Server over its WebSocket transport, jayson.Client.websocket on one
 * connection, one request per call), same payload, same process layout (server in a child process).
 * Concurrency 1 (p50 of 10,000 calls each after warm-up, ours and raw interleaved call by call so
 * both meet the same machine) and 64 in flight (50,000 calls, one side after the other, the side
 * that goes first alternating from round to round); four rounds; the medians are reported.
 *
 * The two sides do not send the same messages, and the results say so: ours sends the calls of one
 * tick as one JSON-RPC batch in one unmasked frame (and skips the UTF-8 check, between two
 * authenticated servers); the reference is what a plain jayson user gets, one masked frame per
 * request and per reply. `*_messages_per_call` counts the WebSocket messages (each one frame) both
 * ways on each client's socket over a separate run of 20,000 calls at 64 in flight.
 * No Redis here: the server node runs on the memory store.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { rawJaysonClient } from './raw-jayson.js';
import { PeerClient } from '../runtime/rpc/peer-client.js';
import { alternate, countMessages, latencies, round, throughput, writeResults } from './measure.js';
import { track } from './processes.js';

const PAYLOAD = { pid: 1000001, path: 'itemdb.additembytype', args: [105001, 10, null, 'test:rpc'] };
const ROUNDS = 4;
const COUNTED_CALLS = 20_000;
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


/** WebSocket messages (both ways, on the client's socket) per call, over `total` calls at 64 in flight. */
async function messagesPerCall(ws: Parameters<typeof countMessages>[0], call: () => Promise<unknown>, total: number): Promise<number> {
  const counter = countMessages(ws);
  try {
    await throughput(call, total, 64);
    return round((counter.sent + counter.received) / total, 3);
  } finally {
    counter.stop();
  }
}

export async function runRpcBench(): Promise<Record<string, number | string>> {
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
  // What the ratio is made of: messages per call at 64 in flight, counted on a run of its own.
  const kuafuWs = (kuafu as unknown as { ws: Parameters<typeof countMessages>[0] | null }).ws;
  if (!kuafuWs) throw new Error('the kuafu client has no connection to count messages on');
  const kuafuMessages = await messagesPerCall(kuafuWs, ours, COUNTED_CALLS);
  const rawMessages = await messagesPerCall(raw.ws, raw.call, COUNTED_CALLS);
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
    kuafu_messages_per_call_c64: kuafuMessages,
    raw_messages_per_call_c64: rawMessages,
    rounds: ROUNDS,
    redis: 'none (the server node runs on the memory store)',
  };
  const file = writeResults('rpc', results);
  console.log(`  throughput ratio (c64) ${results.throughput_ratio_c64}x (target >= 1.5), latency ratio (c1) ${results.latency_ratio_c1}x (target <= 1.5)`);
  console.log(`  WebSocket messages per call at 64 in flight (both ways): kuafu ${kuafuMessages} (batches, unmasked frames), raw jayson ${rawMessages} (one masked frame per request and per reply)`);
  console.log(`  wrote ${file}`);
  return results;
}
