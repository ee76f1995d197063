/**
 * `npm run bench -- isolation`, on Redis: can a buggy script freeze or bloat a game server? GS is a
 * `kuafu serve` process. A bystander — an unrelated player's `getgold`, asked of GS over RPC one
 * call at a time — is timed with no script running (idle), then while other scripts on GS
 *  (a) spin in a sync loop (`for (;;) {}`), called again and again by 3 callers, and
 *  (b) loop on awaits answered without I/O (`for (;;) await cproxyplayer.new(localPid).getgold()`),
 *      3 callers too;
 * then a script makes 2,500 calls sharing one 1 MB string (the outbox case) and GS's peak RSS is read.
 * Every runaway call's end is timed too: how far past its limit (syncLimitMs for a spin, deadlineMs
 * for an await loop) its caller heard of it.
 *
 * Both placements of the isolates are measured in the one run: the script worker
 * (`"scriptWorker": true`, the first set of figures) and the main thread (the default, `main_thread_*`).
 * The quarantine is set high here (`quarantineAfterBreaks`) so the runaway scripts keep running
 * for the whole phase: with the default (3 breaks in 60 s) they would be refused after 3 calls.
 */
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { PeerClient } from '../runtime/rpc/peer-client.js';
import { bundleScript } from '../runtime/sandbox/index.js';
import { percentile, round, writeResults } from './measure.js';
import { serve, startRedis, type Served } from './processes.js';

const IDLE_MS = 6_000;
const SPIN_MS = 10_000;
const AWAIT_LOOP_MS = 12_000;
const CALLERS = 3;
const SYNC_LIMIT_MS = 1000;
const DEADLINE_MS = 5000;
const BYSTANDER = 5_000_001;
const LOOPER = 5_000_002;

const SCRIPTS: Record<string, string> = {
  bench_spin: 'export function main() { for (;;) {} }\n',
  bench_await_loop: `export async function main(pid: number) {
  const player = cproxyplayer.new(pid); // on this server: every getgold is answered without I/O
  for (;;) await player.getgold();
}
`,
  bench_outbox: `export async function main(pid: number, count: number) {
  const big = 'x'.repeat(1_000_000); // held once in the isolate; each request would copy it
  const player = cproxyplayer.new(pid);
  const results = await Promise.allSettled(Array.from({ length: count }, () => player.addgold(1, big)));
  return results.filter((r) => r.status === 'rejected' && (r.reason as { kind?: string }).kind === 'Sandbox').length;
}
`,
};

interface ModeFigures {
  idle: number[];
  spin: number[];
  awaitLoop: number[];
  failures: number;
  overruns: number[];
  waits: number[];
  rssPeakMiB: number;
  rssBeforeMiB: number;
  outboxRefused: number;
}

function writeConfig(redisUrl: string, scriptWorker: boolean): { path: string; secret: string } {
  const secret = `bench-secret-${process.pid}-${Date.now()}`;
  const path = join(mkdtempSync(join(tmpdir(), 'kuafu-bench-isolation-')), 'cluster.json');
  writeFileSync(path, JSON.stringify({
    secret,
    store: { kind: 'redis', url: redisUrl },
    heartbeatMs: 1000,
    scriptsDir: '',
    scriptWorker,
    scriptLimits: { syncLimitMs: SYNC_LIMIT_MS, deadlineMs: DEADLINE_MS, quarantineAfterBreaks: 1_000_000 },
    servers: [{ name: 'GS', roles: ['game'], rpcPort: 0, gatewayPort: 0 }],
  }));
  return { path, secret };
}

/** Peak and current RSS of a process, MiB (Linux /proc). */
function rssOf(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { peak: kib('VmHWM') / 1024, now: kib('VmRSS') / 1024 };
}

async function measureMode(redisUrl: string, scriptWorker: boolean): Promise<ModeFigures> {
  const { path, secret } = writeConfig(redisUrl, scriptWorker);
  const gs: Served = await serve(path, 'GS', redisUrl);
  const peer = (self: string) => new PeerClient({ self, peer: 'GS', secret, resolveUrl: () => gs.rpc, timeoutMs: 30_000 });
  const bystanderPeer = peer('bench-bystander');
  const controlPeer = peer('bench-control');
  const clients = [BYSTANDER, LOOPER].map((pid) => new KuafuClient({ pid, homeUrl: gs.gateway, loginToken: () => issueLoginToken(secret, pid, 'GS') }));
  await Promise.all(clients.map((client) => client.login()));
  const dir = mkdtempSync(join(tmpdir(), 'kuafu-bench-isolation-scripts-'));
  for (const [name, source] of Object.entries(SCRIPTS)) {
    const file = join(dir, `${name}.ts`);
    writeFileSync(file, source);
    const bundle = await bundleScript(file);
    await controlPeer.call('script.load', { name, code: bundle.code, map: typeof bundle.map === 'string' ? bundle.map : JSON.stringify(bundle.map), file });
  }

  let failures = 0;
  let calls = 0;
  const bystander = async (forMs: number): Promise<number[]> => {
    const samples: number[] = [];
    const end = performance.now() + forMs;
    while (performance.now() < end) {
      const start = performance.now();
      try {
        await bystanderPeer.call('player.invoke', { pid: BYSTANDER, path: ['getgold'], args: [], id: `bystander-${++calls}` }, { timeoutMs: 30_000 });
        samples.push(performance.now() - start);
      } catch (error) {
        failures++;
        console.log(`  bystander call failed: ${(error as Error).message}`);
      }
    }
    return samples.sort((a, b) => a - b);
  };

  const overruns: number[] = [];
  /** How long past the limit each runaway call's caller waited (queueing behind the other runaway calls included). */
  const waits: number[] = [];
  /** `CALLERS` callers running `bundle` again and again until `stop()`; each call's end past `limitMs` is an overrun. */
  const runaways = (bundle: string, args: unknown[], limitMs: number) => {
    let stopped = false;
    const callers = Array.from({ length: CALLERS }, async (_, i) => {
      const caller = peer(`bench-runaway-${bundle}-${i}`);
      while (!stopped) {
        const start = performance.now();
        try {
          await caller.call('script.run', { bundle, fn: 'main', args }, { timeoutMs: 60_000 });
          console.log(`  ${bundle} returned without breaking a limit`);
        } catch (error) {
          const details = (error as { details?: { scriptKind?: string; overrunMs?: number } }).details;
          // The server says how far past its limit the call that broke it ended (the other calls
          // of that isolate are stopped with it: kind Stopped).
          if (typeof details?.overrunMs === 'number') overruns.push(details.overrunMs);
          else if (details?.scriptKind !== 'Stopped') console.log(`  ${bundle} ended with ${details?.scriptKind ?? (error as Error).message}`);
          waits.push(performance.now() - start - limitMs);
        }
      }
      caller.close();
    });
    return async () => {
      stopped = true;
      await Promise.all(callers);
    };
  };

  await bystander(1500); // warm-up
  const idle = await bystander(IDLE_MS);
  let stop = runaways('bench_spin', [], SYNC_LIMIT_MS);
  const spin = await bystander(SPIN_MS);
  await stop();
  stop = runaways('bench_await_loop', [LOOPER], DEADLINE_MS);
  const awaitLoop = await bystander(AWAIT_LOOP_MS);
  await stop();

  const before = rssOf(gs.child.pid!);
  const outboxRefused = await controlPeer.call<number>('script.run', { bundle: 'bench_outbox', fn: 'main', args: [LOOPER, 2500] }, { timeoutMs: 120_000 });
  const after = rssOf(gs.child.pid!);

  for (const client of clients) client.close();
  bystanderPeer.close();
  controlPeer.close();
  gs.stop();
  return { idle, spin, awaitLoop, failures, overruns, waits, rssPeakMiB: after.peak, rssBeforeMiB: before.now, outboxRefused };
}

export async function runIsolationBench(): Promise<Record<string, number>> {
  process.env.KUAFU_LOG_LEVEL ??= 'warn';
  const redis = await startRedis({ persistent: false });
  const figures: Record<string, number> = {};
  try {
    for (const scriptWorker of [true, false]) {
      const m = await measureMode(redis.url, scriptWorker);
      const prefix = scriptWorker ? '' : 'main_thread_';
      const p99 = (samples: number[]) => round(percentile(samples, 99), 2);
      const idle = p99(m.idle);
      Object.assign(figures, {
        [`${prefix}bystander_p99_ms_idle`]: idle,
        [`${prefix}bystander_p99_ms_spin`]: p99(m.spin),
        [`${prefix}bystander_p99_ms_await_loop`]: p99(m.awaitLoop),
        [`${prefix}bystander_max_ms_spin`]: round(m.spin.at(-1) ?? 0, 2),
        [`${prefix}bystander_max_ms_await_loop`]: round(m.awaitLoop.at(-1) ?? 0, 2),
        [`${prefix}spin_p99_ratio`]: round(p99(m.spin) / idle, 2),
        [`${prefix}await_loop_p99_ratio`]: round(p99(m.awaitLoop) / idle, 2),
        [`${prefix}bystander_calls`]: m.idle.length + m.spin.length + m.awaitLoop.length,
        [`${prefix}bystander_failures`]: m.failures,
        [`${prefix}deadline_overrun_ms_max`]: round(Math.max(0, ...m.overruns), 1),
        [`${prefix}runaway_calls_broke_limit`]: m.overruns.length,
        [`${prefix}runaway_caller_wait_past_limit_ms_max`]: round(Math.max(0, ...m.waits), 1),
        [`${prefix}outbox_host_rss_peak_mib`]: round(m.rssPeakMiB, 1),
        [`${prefix}outbox_host_rss_before_mib`]: round(m.rssBeforeMiB, 1),
        [`${prefix}outbox_requests_refused`]: m.outboxRefused,
      });
      const label = scriptWorker ? 'script worker' : 'main thread  ';
      console.log(`  ${label}: bystander p99 idle ${idle} ms, spin ${p99(m.spin)} ms (${figures[`${prefix}spin_p99_ratio`]}x, max ${figures[`${prefix}bystander_max_ms_spin`]} ms), await loop ${p99(m.awaitLoop)} ms (${figures[`${prefix}await_loop_p99_ratio`]}x); ${m.failures} failures of ${figures[`${prefix}bystander_calls`]}; worst overrun ${figures[`${prefix}deadline_overrun_ms_max`]} ms of ${m.overruns.length} runaway calls; outbox case: RSS peak ${figures[`${prefix}outbox_host_rss_peak_mib`]} MiB (${figures[`${prefix}outbox_host_rss_before_mib`]} before), ${m.outboxRefused} of 2500 requests refused`);
    }
  } finally {
    await redis.stop();
  }
  figures.script_worker = 1;
  const file = writeResults('isolation', figures);
  console.log(`  targets (script worker): spin_p99_ratio <= 3 (${figures.spin_p99_ratio}), await_loop_p99_ratio <= 3 (${figures.await_loop_p99_ratio}), bystander_failures == 0 (${figures.bystander_failures}), deadline_overrun_ms_max <= 200 (${figures.deadline_overrun_ms_max})`);
  console.log(`  wrote ${file}`);
  return figures;
}
