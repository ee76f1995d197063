/**
 * `npm run bench -- services`: the function services on one Redis, with the datacenter and a guild
 * server as `kuafu serve` processes and three game servers (HS, GS1, GS2) in this process, each
 * with its own store connections.
 *
 * - profile push: GS1 changes a profile (through the datacenter) and HS, which follows it, applies
 *   the push; one change at a time, from GS1's call until HS's listener runs (same clock).
 * - guild deductions: HS, GS1 and GS2 deduct 1 from one guild's treasury, many in flight from each;
 *   deductions applied per second, all servers together.
 *
 * Redis runs as a production host would (appendonly yes, appendfsync everysec). kuafu's own figures
 * only: there is no reference (the same push or deduction done by hand) yet.
 * Writes bench/results/services.json.
 */
import { loadConfig } from '../runtime/cluster/config.js';
import type { ServerNode } from '../runtime/cluster/server-node.js';
import { startServers, type RunningServers } from '../runtime/cluster/start.js';
import { servicesOf } from '../runtime/services/index.js';
import { percentile, round, writeResults } from './measure.js';
import { serve, startBenchRedis, writeConfig } from './processes.js';

const PUSH_WARMUP = 300;
const PUSH_SAMPLES = 3000;
const DEDUCTIONS = Number(process.env.KUAFU_BENCH_DEDUCTIONS ?? 30_000);
const IN_FLIGHT_PER_SERVER = 64;

export async function runServicesBench(): Promise<Record<string, number | string>> {
  const redis = await startBenchRedis();
  const { path } = writeConfig([
    { name: 'HS', roles: ['game'] },
    { name: 'GS1', roles: ['game'] },
    { name: 'GS2', roles: ['game'] },
    { name: 'DC', roles: ['datacenter'] },
    { name: 'GUILD', roles: ['guild'] },
  ], redis.url);
  const processes = await Promise.all([serve(path, 'DC', redis.url), serve(path, 'GUILD', redis.url)]);
  process.env.KUAFU_LOG_LEVEL = 'warn';
  const running: RunningServers[] = [];
  const nodes: Record<string, ServerNode> = {};
  try {
    for (const name of ['HS', 'GS1', 'GS2']) {
      const servers = await startServers(loadConfig(path, {}), [name]);
      running.push(servers);
      nodes[name] = servers.nodes[0]!;
    }
    const push = await measurePush(nodes.GS1!, nodes.HS!);
    const deductsPerSecond = await measureDeductions([nodes.HS!, nodes.GS1!, nodes.GS2!]);
    const results = {
      profile_push_samples: push.length,
      profile_push_p50_ms: round(percentile(push, 50), 3),
      profile_push_p99_ms: round(percentile(push, 99), 3),
      guild_deductions: DEDUCTIONS,
      guild_deducts_per_s: Math.round(deductsPerSecond),
      redis: redis.persistence,
    };
    const file = writeResults('services', results);
    console.log(`  profile push GS1 → HS (${push.length} changes): p50 ${results.profile_push_p50_ms} ms, p99 ${results.profile_push_p99_ms} ms (target p99 <= 10)`);
    console.log(`  guild deductions from 3 servers to one guild: ${results.guild_deducts_per_s}/s (${DEDUCTIONS} deductions, ${IN_FLIGHT_PER_SERVER} in flight per server)`);
    console.log(`  wrote ${file}`);
    return results;
  } finally {
    await Promise.all(running.map((servers) => servers.stop()));
    await Promise.all(processes.map((proc) => proc.stopped()));
    await redis.stop();
  }
}

/** Latencies (ms, sorted) of profile changes made on `writer` until applied on `reader`. */
async function measurePush(writer: ServerNode, reader: ServerNode): Promise<number[]> {
  const pid = 5_000_001;
  const profiles = servicesOf(writer).profiles;
  await profiles.update(pid, { name: 'bench', level: 0 });
  let waiting: { level: number; resolve: () => void } | null = null;
  const following = await servicesOf(reader).profiles.follow([pid], (event) => {
    if (waiting && event.profile?.fields.level === waiting.level) waiting.resolve();
  });
  const samples: number[] = [];
  for (let i = 1; i <= PUSH_WARMUP + PUSH_SAMPLES; i++) {
    const applied = new Promise<void>((resolve) => { waiting = { level: i, resolve }; });
    const start = process.hrtime.bigint();
    await profiles.update(pid, { level: i });
    await applied;
    if (i > PUSH_WARMUP) samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  following.close();
  return samples.sort((a, b) => a - b);
}

/** Deductions per second, all of `senders` deducting 1 at a time from one guild with many in flight. */
async function measureDeductions(senders: ServerNode[]): Promise<number> {
  const gid = 'bench-guild';
  const first = servicesOf(senders[0]!).guild(gid);
  await first.create('Bench');
  await first.deposit('wood', DEDUCTIONS, 'bench');
  // Warm the connections up.
  await Promise.all(senders.map((node) => servicesOf(node).guild(gid).get()));
  let started = 0;
  let applied = 0;
  const worker = async (node: ServerNode) => {
    const guild = servicesOf(node).guild(gid);
    while (started < DEDUCTIONS) {
      started++;
      await guild.deduct('wood', 1, 'bench');
      applied++;
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(senders.flatMap((node) => Array.from({ length: IN_FLIGHT_PER_SERVER }, () => worker(node))));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const left = (await first.get()).treasury.wood;
  if (applied !== DEDUCTIONS || left !== 0) throw new Error(`expected ${DEDUCTIONS} deductions and nothing left, got ${applied} and ${left} left`);
  return DEDUCTIONS / seconds;
}
