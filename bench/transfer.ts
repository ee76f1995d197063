/**
 * `npm run bench -- transfer`: concurrent real WebSocket clients each doing HS → GS1 → HS round
 * trips over `kuafu serve` processes sharing one Redis. One transfer is one hop: from the client
 * asking to go until it has connected to the new server and entered. Redis runs as a production host
 * would (appendonly yes, appendfsync everysec). kuafu's own figures only: there is no reference
 * (a hand-made transfer to compare with) yet. Writes bench/results/transfer.json.
 */
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { percentile, round, writeResults } from './measure.js';
import { serve, startBenchRedis, writeConfig } from './processes.js';

const CLIENTS = Number(process.env.KUAFU_BENCH_CLIENTS ?? 3);
const WARMUP_HOPS = 400;
const MEASURED_HOPS = 4000;

export async function runTransferBench(): Promise<Record<string, number | string>> {
  const redis = await startBenchRedis();
  const { path, secret } = writeConfig([
    { name: 'HS', roles: ['game'], gateway: true },
    { name: 'GS1', roles: ['game'], gateway: true },
  ], redis.url);
  const [hs, gs1] = await Promise.all([serve(path, 'HS', redis.url), serve(path, 'GS1', redis.url)]);
  const clients = Array.from({ length: CLIENTS }, (_, i) => {
    const pid = 2_000_001 + i;
    return new KuafuClient({ pid, homeUrl: hs.gateway, loginToken: () => issueLoginToken(secret, pid, 'HS') });
  });
  await Promise.all(clients.map((client) => client.login()));

  const samples: number[] = [];
  let hops = 0;
  let measuring = false;
  let target = WARMUP_HOPS;
  const run = async (client: KuafuClient) => {
    while (hops < target) {
      hops++;
      const to = client.server === 'HS' ? 'GS1' : 'HS';
      const start = process.hrtime.bigint();
      const entered = await client.go(to);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (entered.server !== to) throw new Error(`client ${client.pid} asked for ${to} but entered ${entered.server}`);
      if (measuring) samples.push(ms);
    }
  };
  await Promise.all(clients.map(run));
  hops = 0;
  target = MEASURED_HOPS;
  measuring = true;
  const start = process.hrtime.bigint();
  await Promise.all(clients.map(run));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;

  // The servers log the players out as their clients go: let them finish before Redis goes.
  for (const client of clients) client.close();
  await Promise.all([hs.stopped(), gs1.stopped()]);
  await redis.stop();

  samples.sort((a, b) => a - b);
  const results = {
    clients: CLIENTS,
    transfers: samples.length,
    transfer_p50_ms: round(percentile(samples, 50), 2),
    transfer_p99_ms: round(percentile(samples, 99), 2),
    transfers_per_s: Math.round(samples.length / seconds),
    redis: redis.persistence,
  };
  const file = writeResults('transfer', results);
  console.log(`  ${CLIENTS} clients, ${samples.length} hops: p50 ${results.transfer_p50_ms} ms (target <= 5), p99 ${results.transfer_p99_ms} ms, ${results.transfers_per_s} transfers/s (target >= 500)`);
  console.log(`  wrote ${file}`);
  return results;
}
