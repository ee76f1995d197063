/**
 * Faults aimed at the moments that matter (issue 9), one at a time, each restoring what it broke:
 *
 * - `kill-destination-at-connect_to`: a player asks to move; the moment his client holds the
 *   token (`connect_to`), the destination is SIGKILLed; it comes back 1-2.5 s later.
 * - `kill-destination-after-entered`: a player arrives at GS1/GS2; right after `entered` calls
 *   are fired at him and, 0-150 ms later, that server is SIGKILLed; back 1.5-3 s later.
 * - `pause-owner-past-rpc-timeout`: the owner S (GS1/GS2) of a player is SIGSTOPped; calls to him
 *   (direct by id, from scripts, a recharge) wait in S's socket and time out; once S has left the
 *   registry and the callers' retries (same id) are on their way to S, the player logs in at home,
 *   which takes him back; then S gets SIGCONT while those retries are still waiting.
 * - `pause-owner-past-token-lifetime`: the same, with S paused past the transfer token lifetime
 *   (30 s + 2 s); near its end, calls whose first try goes to S (a caller with a stale route)
 *   wait there for its stale copy. Only in runs long enough for it.
 * - `kill-redis-then-game-server`: calls go to the players of a game server S; Redis is SIGKILLed
 *   (saves fail; some callers retry their id); 1.2-2 s later S is SIGKILLed; Redis comes back
 *   (same data: appendfsync always), then S.
 * - `kill-home-mid-hop`: a player hops GS1 → GS2 (or back); his home HS is SIGKILLed at
 *   `connect_to` or right after `entered`; calls are fired at him; HS comes back 1.5-3 s later.
 */
import type { ChaosCluster } from './cluster.js';
import { GAMES, HOME } from './cluster.js';
import type { Op } from './calls.js';
import type { ChaosPlayer } from './players.js';
import type { ConnectTo, Entered } from '../../runtime/client/kuafu-client.js';

export type CallKind = 'gold' | 'item' | 'mail' | 'script-gold' | 'script-item' | 'recharge';

export interface FaultContext {
  cluster: ChaosCluster;
  random: () => number;
  rpcTimeoutMs: number;
  tokenTtlMs: number;
  log(line: string): void;
  /**
   * Starts calls at the player now (not awaited); `scriptOn` picks the script's server,
   * `firstTarget` the server the first try of a direct call goes to (a caller with a stale route).
   */
  fire(pid: number, kinds: CallKind[], scriptOn?: string, firstTarget?: string): Op[];
  /** Reserves an online player whose server passes `where`, once his loop is idle; null if none. */
  reserve(where: (at: string) => boolean): Promise<ChaosPlayer | null>;
  release(player: ChaosPlayer): void;
  /** Online players the runner believes are on `server`. */
  onlineAt(server: string): ChaosPlayer[];
}

export interface FaultRecord {
  name: string;
  startedAt: number;
  endedAt: number;
  detail: string;
  /** Whether it struck at its moment (false: it found none, see detail). */
  injected: boolean;
}

export const FAULTS = [
  'kill-destination-at-connect_to',
  'kill-destination-after-entered',
  'pause-owner-past-rpc-timeout',
  'kill-redis-then-game-server',
  'kill-home-mid-hop',
  'pause-owner-past-token-lifetime',
] as const;
export type FaultName = (typeof FAULTS)[number];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}

/** Between `lo` and `hi` ms. */
function between(random: () => number, lo: number, hi: number): number {
  return Math.round(lo + random() * (hi - lo));
}

/** A reserved player on GS1 or GS2 (moving one there from home when nobody is). */
async function playerAway(ctx: FaultContext): Promise<ChaosPlayer | null> {
  const away = await ctx.reserve((at) => at !== HOME);
  if (away) return away;
  const p = await ctx.reserve(() => true);
  if (!p) return null;
  const to = pick(ctx.random, ['GS1', 'GS2']);
  if ((await p.go(to)) !== to) {
    ctx.release(p);
    return null;
  }
  return p;
}

/** What came of a fault: whether it was injected at its moment, and what happened. */
export interface FaultOutcome {
  injected: boolean;
  detail: string;
}

/** Runs fault `name`; one that found no moment to strike (the move ended otherwise) is tried again, up to 3 times. */
export async function runFault(ctx: FaultContext, name: FaultName): Promise<FaultOutcome> {
  const missed: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const detail = await runOnce(ctx, name);
    if (!detail.startsWith('missed: ')) return { injected: true, detail: missed.length > 0 ? `${detail} (after ${missed.length} missed: ${missed.join('; ')})` : detail };
    missed.push(detail.slice('missed: '.length));
    await sleep(300);
  }
  return { injected: false, detail: `not injected: ${missed.join('; ')}` };
}

async function runOnce(ctx: FaultContext, name: FaultName): Promise<string> {
  switch (name) {
    case 'kill-destination-at-connect_to': return killDestinationAtConnectTo(ctx);
    case 'kill-destination-after-entered': return killDestinationAfterEntered(ctx);
    case 'pause-owner-past-rpc-timeout': return pauseOwner(ctx, false);
    case 'pause-owner-past-token-lifetime': return pauseOwner(ctx, true);
    case 'kill-redis-then-game-server': return killRedisThenGameServer(ctx);
    case 'kill-home-mid-hop': return killHomeMidHop(ctx);
  }
}

async function killDestinationAtConnectTo(ctx: FaultContext): Promise<string> {
  const p = await ctx.reserve(() => true);
  if (!p) return 'missed: no idle online player';
  const from = p.at!;
  const to = pick(ctx.random, GAMES.filter((g) => g !== from && ctx.cluster.isUp(g)));
  if (!to) {
    ctx.release(p);
    return 'missed: no destination up';
  }
  ctx.fire(p.pid, ['gold', 'item', 'script-gold']);
  let killed: Promise<void> | null = null;
  const onMove = (move: ConnectTo) => {
    if (move.go_srvname === to && !killed) killed = ctx.cluster.kill(to);
  };
  p.client.on('connect_to', onMove);
  let ended: string | null;
  try {
    ended = await p.go(to);
  } finally {
    p.client.off('connect_to', onMove);
  }
  ctx.release(p);
  if (!killed) return `missed: player ${p.pid} ${from} → ${to} got no connect_to (the move ended ${ended ?? 'offline'})`;
  await killed;
  ctx.fire(p.pid, ['gold', 'script-item']);
  await sleep(between(ctx.random, 1000, 2500));
  await ctx.cluster.serve(to);
  return `player ${p.pid} ${from} → ${to}: ${to} killed at connect_to; he ended ${ended ?? 'offline'}; ${to} restarted`;
}

async function killDestinationAfterEntered(ctx: FaultContext): Promise<string> {
  const p = await ctx.reserve(() => true);
  if (!p) return 'missed: no idle online player';
  const from = p.at!;
  const to = pick(ctx.random, GAMES.filter((g) => g !== from && g !== HOME && ctx.cluster.isUp(g)));
  if (!to) {
    ctx.release(p);
    return 'missed: no destination up';
  }
  const ended = await p.go(to);
  if (ended !== to) {
    ctx.release(p);
    return `missed: player ${p.pid} ${from} → ${to} ended ${ended ?? 'offline'}`;
  }
  const other = GAMES.find((g) => g !== to && ctx.cluster.isUp(g));
  ctx.fire(p.pid, ['gold', 'gold', 'item', 'mail', 'script-item', 'script-gold', 'recharge'], other);
  const delay = between(ctx.random, 0, 150);
  await sleep(delay);
  await ctx.cluster.kill(to);
  ctx.release(p);
  await sleep(between(ctx.random, 1500, 3000));
  await ctx.cluster.serve(to);
  return `player ${p.pid} ${from} → ${to}: ${to} killed ${delay} ms after entered, calls in flight; ${to} restarted`;
}

async function pauseOwner(ctx: FaultContext, pastTokenLifetime: boolean): Promise<string> {
  const p = await playerAway(ctx);
  if (!p) return 'missed: no player could be moved away from home';
  const owner = p.at!;
  const others = ctx.onlineAt(owner).filter((o) => o !== p).slice(0, 3);
  const scriptOn = GAMES.filter((g) => g !== owner && ctx.cluster.isUp(g));
  await ctx.cluster.pause(owner);
  const pausedAt = Date.now();
  // These wait in the paused server's socket; their first tries time out, their retries (same id) follow.
  ctx.fire(p.pid, ['gold', 'gold', 'item', 'mail', 'recharge']);
  ctx.fire(p.pid, ['script-gold'], scriptOn[0]);
  ctx.fire(p.pid, ['script-item'], scriptOn[1] ?? scriptOn[0]);
  for (const o of others) ctx.fire(o.pid, ['gold', 'item']);
  // Wait until the first tries have timed out (their retries are now on their way to the paused
  // server, whose route still names it) and it has left the registry (so the home takes him back at once).
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && (Date.now() - pausedAt < ctx.rpcTimeoutMs + 300 || (await ctx.cluster.registered(owner)) !== false)) await sleep(50);
  const ok = await p.login();
  const home = p.at;
  let detail = `player ${p.pid} on ${owner}: ${owner} paused; his home login after ${((Date.now() - pausedAt) / 1000).toFixed(1)} s ${ok ? `entered ${home}` : 'failed'}`;
  if (pastTokenLifetime) {
    ctx.fire(p.pid, ['gold', 'item']);
    while (Date.now() - pausedAt < ctx.tokenTtlMs) await sleep(100);
    // Callers whose route cache still names the paused server: their first tries wait in its socket
    // and reach its stale copy when it resumes (their retries follow the route home).
    ctx.fire(p.pid, ['gold', 'item', 'mail'], undefined, owner);
    while (Date.now() - pausedAt < ctx.tokenTtlMs + 2000) await sleep(100);
  }
  ctx.cluster.resume(owner);
  detail += `; ${owner} resumed after ${((Date.now() - pausedAt) / 1000).toFixed(1)} s`;
  ctx.fire(p.pid, ['gold', 'script-item']);
  ctx.release(p);
  await sleep(1000);
  return detail;
}

async function killRedisThenGameServer(ctx: FaultContext): Promise<string> {
  const candidates = GAMES.filter((g) => ctx.cluster.isUp(g) && ctx.onlineAt(g).length > 0);
  const owner = candidates.length > 0 ? pick(ctx.random, candidates) : pick(ctx.random, GAMES);
  const targets = ctx.onlineAt(owner).slice(0, 5);
  let firing = true;
  const burst = (async () => {
    while (firing && targets.length > 0) {
      const t = pick(ctx.random, targets);
      ctx.fire(t.pid, [pick(ctx.random, ['gold', 'gold', 'item', 'mail', 'script-gold', 'script-item'] as CallKind[])], owner);
      await sleep(120);
    }
  })();
  await sleep(300);
  await ctx.cluster.killRedis();
  const outage = between(ctx.random, 1200, 2000);
  await sleep(outage);
  await ctx.cluster.kill(owner);
  firing = false;
  await burst;
  await sleep(between(ctx.random, 300, 1000));
  await ctx.cluster.restartRedis();
  await sleep(between(ctx.random, 300, 1200));
  await ctx.cluster.serve(owner);
  return `Redis killed with calls going to ${targets.length} players on ${owner}; ${owner} killed ${outage} ms later; Redis restarted, then ${owner}`;
}

async function killHomeMidHop(ctx: FaultContext): Promise<string> {
  const p = await playerAway(ctx);
  if (!p) return 'missed: no player could be moved away from home';
  const from = p.at!;
  const to = from === 'GS1' ? 'GS2' : 'GS1';
  const atConnectTo = ctx.random() < 0.5;
  let killed: Promise<void> | null = null;
  const onMove = (move: ConnectTo) => {
    if (atConnectTo && move.go_srvname === to && !killed) killed = ctx.cluster.kill(HOME);
  };
  const onEntered = (e: Entered) => {
    if (!atConnectTo && e.server === to && !killed) killed = ctx.cluster.kill(HOME);
  };
  p.client.on('connect_to', onMove);
  p.client.on('entered', onEntered);
  let ended: string | null;
  try {
    ended = await p.go(to);
  } finally {
    p.client.off('connect_to', onMove);
    p.client.off('entered', onEntered);
  }
  if (!killed) {
    ctx.release(p);
    return `missed: player ${p.pid} ${from} → ${to} ended ${ended ?? 'offline'} before the home could be killed`;
  }
  await killed;
  ctx.fire(p.pid, ['gold', 'item', 'mail', 'recharge']);
  ctx.fire(p.pid, ['script-gold'], to);
  ctx.release(p);
  await sleep(between(ctx.random, 1500, 3000));
  await ctx.cluster.serve(HOME);
  return `player ${p.pid} ${from} → ${to}: home ${HOME} killed at ${atConnectTo ? 'connect_to' : 'entered'}; he ended ${ended ?? 'offline'}; ${HOME} restarted`;
}
