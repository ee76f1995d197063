/**
 * The chaos run's checker. Once every server and Redis are back and every call has ended:
 *
 * 1. every player logs in again (a fresh client, through the account server) and is then online
 *    on exactly one game server: the one he entered, the one his route names, the only one whose
 *    `player.status` says so;
 * 2. his recharge orders are given time to be delivered (he is online), then each order's state
 *    is read — before the documents, so a delivery in between can only widen the bounds;
 * 3. his stored document is read, and:
 *    - gold lies in [acknowledged, acknowledged + unknown]: acknowledged = addgold calls answered
 *      OK (direct and from scripts) + orders delivered; unknown = addgold calls whose outcome is
 *      unknown + orders still pending. A clear failure adds nothing to either bound;
 *    - each item add (a type id of its own) is there exactly once when answered OK, once or not at
 *      all when unknown, not at all after a clear failure; never twice; no item nobody added;
 *    - each mail (a title of its own) likewise;
 *    - where the document keeps the ids of the calls that changed him (`calls`): each direct
 *      addgold answered OK (a `kept:` id) and each order delivered (`kept:recharge:<order>`) is
 *      there, and none that failed clearly or was never stored;
 *    - his live gold (asked of the server he is on) lies in the same bounds.
 */
import type { KuafuClient } from '../../runtime/client/kuafu-client.js';
import type { StoredDocument } from '../../runtime/store/store.js';
import { ACCOUNT, GAMES, type ChaosCluster } from './cluster.js';
import { kindOf, type Op } from './calls.js';
import type { ChaosPlayer } from './players.js';

export interface CheckInput {
  cluster: ChaosCluster;
  players: ChaosPlayer[];
  ops: Op[];
  log(line: string): void;
  accountGateway: string;
  stepTimeoutMs: number;
}

export interface PlayerResult {
  pid: number;
  server: string | null;
  onlineOn: string[];
  gold: number | null;
  liveGold: number | null;
  lower: number;
  upper: number;
  items: { ok: number; unknownApplied: number; unknownNot: number; failed: number };
  violations: string[];
}

export interface CheckResult {
  violations: string[];
  players: PlayerResult[];
  /** Lines for the summary. */
  lines: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function describeOp(op: Op): string {
  const what = op.kind === 'item' ? `item add #${op.n} (type ${op.typeId} ×${op.count})`
    : op.kind === 'mail' ? `mail #${op.n} ("${op.title}")`
      : op.kind === 'recharge' ? `recharge order ${op.id} (${op.amount} gold)`
        : `addgold #${op.n} (${op.amount})`;
  const via = op.via === 'script' ? `script on ${op.server}` : op.via;
  return `${what} [${via}, ${op.outcome}, ${(op.startedAt / 1000).toFixed(1)}-${(op.endedAt / 1000).toFixed(1)}s${op.fault ? `, during ${op.fault}` : ''}; tries ${op.tries.join(' → ') || '-'}]`;
}

function itemCounts(data: unknown): Map<number, number> {
  const items = (data as { items?: unknown } | null)?.items;
  const counts = new Map<number, number>();
  if (items instanceof Map) for (const [type, count] of items) counts.set(Number(type), Number(count));
  else if (items && typeof items === 'object') for (const [type, count] of Object.entries(items as Record<string, unknown>)) counts.set(Number(type), Number(count));
  return counts;
}

function mailTitles(data: unknown): Map<string, number> {
  const mails = (data as { mails?: unknown } | null)?.mails;
  const titles = new Map<string, number>();
  if (Array.isArray(mails)) for (const mail of mails) {
    const title = String((mail as { title?: unknown })?.title);
    titles.set(title, (titles.get(title) ?? 0) + 1);
  }
  return titles;
}

async function retrying<T>(what: () => Promise<T>, tries = 10, pause = 500): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      return await what();
    } catch (error) {
      last = error;
      await sleep(pause);
    }
  }
  throw last;
}

export async function check(input: CheckInput): Promise<CheckResult> {
  const { cluster, players, ops, log } = input;
  const violations: string[] = [];
  const lines: string[] = [];
  const results = new Map<number, PlayerResult>();
  for (const p of players) {
    results.set(p.pid, {
      pid: p.pid, server: null, onlineOn: [], gold: null, liveGold: null, lower: 0, upper: 0,
      items: { ok: 0, unknownApplied: 0, unknownNot: 0, failed: 0 }, violations: [],
    });
  }
  const flag = (pid: number, text: string) => {
    results.get(pid)!.violations.push(text);
    violations.push(`player ${pid}: ${text}`);
  };

  // 1. Everyone logs in again.
  log('check: every player logs in again');
  const clients = new Map<number, KuafuClient>();
  for (const p of players) {
    let lastError = '';
    for (let attempt = 0; attempt < 6 && !clients.has(p.pid); attempt++) {
      let client: KuafuClient | null = null;
      try {
        client = await p.freshClient(input.accountGateway, input.stepTimeoutMs);
        const e = await client.login();
        results.get(p.pid)!.server = e.server;
        clients.set(p.pid, client);
      } catch (error) {
        client?.close();
        lastError = `${kindOf(error)}: ${(error as Error).message}`;
        await sleep(1000);
      }
    }
    if (!clients.has(p.pid)) flag(p.pid, `could not log in again (6 tries; last: ${lastError})`);
  }

  // 2. Orders: give the online players' pending orders time to go out, then read every order.
  const orders = ops.filter((op) => op.kind === 'recharge');
  const withOrders = [...new Set(orders.map((o) => o.pid))];
  const until = Date.now() + 20_000;
  for (;;) {
    let pending = 0;
    for (const pid of withOrders) {
      try {
        pending += (await cluster.peers[ACCOUNT]!.call<unknown[]>('account.pending', { pid })).length;
      } catch {
        pending++;
      }
    }
    if (pending === 0 || Date.now() > until) {
      if (pending > 0) log(`check: ${pending} orders still pending after 20 s`);
      break;
    }
    await sleep(500);
  }
  for (const order of orders) {
    try {
      const found = await retrying(() => cluster.peers[ACCOUNT]!.call<{ state: string }>('account.order', { order: order.id }).catch((error: unknown) => {
        if (kindOf(error) === 'NotFound') return { state: 'missing' };
        throw error;
      }));
      order.finalState = found.state;
    } catch (error) {
      order.finalState = 'unreadable';
      violations.push(`recharge order ${order.id}: its state cannot be read (${kindOf(error)})`);
    }
    if (order.answered === 'delivered' && order.finalState !== 'delivered') {
      flag(order.pid, `${describeOp(order)} was answered delivered, but its state is now ${order.finalState}`);
    }
  }

  // 3. Exactly one server holds each player.
  const pids = players.map((p) => p.pid);
  const onlineOn = new Map<number, string[]>(pids.map((pid) => [pid, []]));
  for (const game of GAMES) {
    try {
      const status = await retrying(() => cluster.peers[game]!.call<{ pid: number; online: boolean }[]>('player.status', { pids }));
      for (const s of status) if (s.online) onlineOn.get(Number(s.pid))?.push(game);
    } catch (error) {
      violations.push(`${game} does not answer player.status (${kindOf(error)})`);
    }
  }
  for (const p of players) {
    const r = results.get(p.pid)!;
    r.onlineOn = onlineOn.get(p.pid)!;
    if (r.server === null) continue;
    if (r.onlineOn.length !== 1 || r.onlineOn[0] !== r.server) {
      flag(p.pid, `entered ${r.server}, but online on [${r.onlineOn.join(', ')}] by player.status`);
    }
    try {
      const route = await retrying(() => cluster.store.getRoute(p.pid));
      const owner = route ? route.at || route.home : null;
      if (!route || !route.online || owner !== r.server) flag(p.pid, `entered ${r.server}, but his route is ${JSON.stringify(route)}`);
    } catch (error) {
      violations.push(`player ${p.pid}: route unreadable (${kindOf(error)})`);
    }
    try {
      r.liveGold = await cluster.peers[r.server]!.call<number>('player.invoke', { pid: p.pid, path: ['getgold'], args: [], id: `chaos-check-${p.pid}-${Date.now()}` });
    } catch (error) {
      flag(p.pid, `getgold on ${r.server} failed: ${kindOf(error)}`);
    }
  }

  // 4. The documents against the journal.
  let keptChecked = 0;
  let docsWithCalls = 0;
  let lostGoldCalls = 0;
  let lostGold = 0;
  const totals = { itemsLost: 0, itemsDouble: 0, itemsAfterFailure: 0, mailsLost: 0, mailsDouble: 0, mailsAfterFailure: 0, ordersLost: 0, goldOut: 0 };
  const byPid = new Map<number, Op[]>(pids.map((pid) => [pid, []]));
  for (const op of ops) byPid.get(op.pid)?.push(op);
  for (const p of players) {
    const r = results.get(p.pid)!;
    let stored: StoredDocument | null;
    try {
      stored = await retrying(() => cluster.store.loadDocument(p.pid));
    } catch (error) {
      flag(p.pid, `document unreadable (${kindOf(error)})`);
      continue;
    }
    const mine = byPid.get(p.pid)!;
    if (!stored) {
      if (mine.some((op) => op.outcome === 'ok')) flag(p.pid, 'has no document, but calls to him were answered OK');
      continue;
    }
    const data = stored.data as { gold?: unknown };
    const gold = Number(data?.gold ?? NaN);
    r.gold = gold;
    const calls = stored.calls ? new Set(stored.calls.map(([id]) => id)) : null;
    if (calls) docsWithCalls++;

    // Gold bounds.
    let acked = 0;
    let unknown = 0;
    for (const op of mine) {
      if (op.kind === 'gold') {
        if (op.outcome === 'ok') acked += op.amount;
        else if (op.outcome !== 'failed') unknown += op.amount;
      } else if (op.kind === 'recharge') {
        if (op.finalState === 'delivered') acked += op.amount;
        else if (op.finalState !== 'missing') unknown += op.amount;
      }
    }
    r.lower = acked;
    r.upper = acked + unknown;
    if (!(gold >= r.lower && gold <= r.upper)) {
      totals.goldOut++;
      const how = gold < r.lower ? `short by ${r.lower - gold}: acknowledged gold lost` : `over by ${gold - r.upper}: applied twice or after a clear failure`;
      flag(p.pid, `gold ${gold} outside [${r.lower}, ${r.upper}] (acknowledged ${acked}, unknown ${unknown}): ${how}`);
    }
    // (Read before the document: an order delivered in between may make them differ, within the bounds.)
    if (r.liveGold !== null && !(r.liveGold >= r.lower && r.liveGold <= r.upper)) {
      flag(p.pid, `live gold ${r.liveGold} on ${r.server} outside [${r.lower}, ${r.upper}] (stored: ${gold})`);
    }

    // Items: one type id per call.
    const counts = itemCounts(stored.data);
    const itemOps = new Map<number, Op>();
    for (const op of mine) if (op.kind === 'item') itemOps.set(op.typeId, op);
    for (const [type, count] of counts) {
      if (type >= 1_000_000 && !itemOps.has(type)) flag(p.pid, `has ${count} of item type ${type}, which no call of his added`);
    }
    for (const op of itemOps.values()) {
      const have = counts.get(op.typeId) ?? 0;
      if (have !== 0 && have !== op.count) {
        totals.itemsDouble++;
        flag(p.pid, `${describeOp(op)}: he has ${have}, not 0 or ${op.count}${have % op.count === 0 ? ` (applied ${have / op.count} times)` : ''}`);
      } else if (op.outcome === 'ok') {
        if (have === 0) {
          totals.itemsLost++;
          flag(p.pid, `${describeOp(op)} answered OK but is not in his document: LOST`);
        } else r.items.ok++;
      } else if (op.outcome === 'failed') {
        if (have !== 0) {
          totals.itemsAfterFailure++;
          flag(p.pid, `${describeOp(op)} failed clearly but is in his document: APPLIED AFTER A CLEAR FAILURE`);
        } else r.items.failed++;
      } else if (have !== 0) r.items.unknownApplied++;
      else r.items.unknownNot++;
    }

    // Mails: one title per call.
    const titles = mailTitles(stored.data);
    for (const op of mine) {
      if (op.kind !== 'mail') continue;
      const have = titles.get(op.title) ?? 0;
      if (have > 1) {
        totals.mailsDouble++;
        flag(p.pid, `${describeOp(op)}: ${have} copies in his mailbox (applied ${have} times)`);
      } else if (op.outcome === 'ok' && have === 0) {
        totals.mailsLost++;
        flag(p.pid, `${describeOp(op)} answered OK but is not in his mailbox: LOST`);
      } else if (op.outcome === 'failed' && have !== 0) {
        totals.mailsAfterFailure++;
        flag(p.pid, `${describeOp(op)} failed clearly but is in his mailbox: APPLIED AFTER A CLEAR FAILURE`);
      }
    }

    // The document's own record of the calls that changed him (kept ids).
    if (calls) {
      for (const op of mine) {
        if (op.kind === 'gold' && op.via === 'direct') {
          keptChecked++;
          const ran = calls.has(op.id);
          if (op.outcome === 'ok' && !ran) {
            lostGoldCalls++;
            lostGold += op.amount;
            flag(p.pid, `${describeOp(op)} answered OK but his document has no record of call ${op.id}: LOST`);
          } else if (op.outcome === 'failed' && ran) {
            flag(p.pid, `${describeOp(op)} failed clearly but his document records call ${op.id}: APPLIED AFTER A CLEAR FAILURE`);
          }
        } else if (op.kind === 'recharge') {
          keptChecked++;
          const ran = calls.has(`kept:recharge:${op.id}`);
          if (op.finalState === 'delivered' && !ran) {
            totals.ordersLost++;
            flag(p.pid, `${describeOp(op)} is delivered (answered ${op.answered || 'nothing'}) but its gold never reached his document: LOST`);
          } else if (op.finalState === 'missing' && ran) {
            flag(p.pid, `${describeOp(op)} was never stored as an order, but its delivery is in his document`);
          }
        }
      }
    }
  }

  for (const client of clients.values()) {
    try {
      await client.logout();
    } catch {
      client.close();
    }
  }

  const all = [...results.values()];
  const sum = (f: (r: PlayerResult) => number) => all.reduce((a, r) => a + f(r), 0);
  lines.push(`checked ${all.length} players: ${all.filter((r) => r.server !== null).length} logged in again (${GAMES.map((g) => `${g} ${all.filter((r) => r.server === g).length}`).join(', ')}), ${all.filter((r) => r.onlineOn.length === 1).length} online on exactly one server`);
  lines.push(`  item adds: ${sum((r) => r.items.ok)} OK and there, ${sum((r) => r.items.failed)} failed and absent, unknown ${sum((r) => r.items.unknownApplied)} applied / ${sum((r) => r.items.unknownNot)} not`);
  lines.push(`  losses: items ${totals.itemsLost}, mails ${totals.mailsLost}, direct addgold calls ${lostGoldCalls} (${lostGold} gold), recharge orders ${totals.ordersLost}; players with gold out of bounds ${totals.goldOut}`);
  lines.push(`  applied after a clear failure: items ${totals.itemsAfterFailure}, mails ${totals.mailsAfterFailure}; applied twice: items ${totals.itemsDouble}, mails ${totals.mailsDouble}`);
  if (docsWithCalls === 0) lines.push('  (no document keeps call ids: the per-call gold and recharge check was skipped; the gold bounds still hold)');
  else lines.push(`  ${keptChecked} direct addgold calls and orders checked against the documents' call records`);
  const outOfBounds = all.filter((r) => r.gold !== null && (r.gold < r.lower || r.gold > r.upper));
  if (outOfBounds.length > 0) {
    lines.push('  bounds of the players out of them:');
    for (const r of outOfBounds) lines.push(`    player ${r.pid}: gold ${r.gold} not in [${r.lower}, ${r.upper}]`);
  }
  return { violations, players: all, lines };
}
