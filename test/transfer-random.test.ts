/**
 * A randomized run of transfers (issue 3; DESIGN §3, §4): 50 players, each with a real
 * KuafuClient, homes spread over three `kuafu serve` game servers (HS, GS1, GS2) on one real
 * redis-server, at least 500 random transfers while gold and items are added through player RPC on
 * whichever server owns the player — some of them raced against the player's own transfer — and
 * now and then a logout wherever he is and a login at home.
 *
 * Seeded and reproducible: the seed is printed; KUAFU_TEST_SEED=<seed> replays the same choices
 * (the interleaving of concurrent steps is the machine's).
 *
 * Afterwards: every player's gold and items equal the sum of his acknowledged adds (each add is
 * retried with its own call id until acknowledged, so it counts exactly once); the recorded history
 * of route epochs (every route publication, heard by a store of the test's own) shows one owner
 * per epoch and epochs that only ever go up by one; every `entered` message has an epoch of its
 * own, given by that epoch's owner. Then everyone logs out, the homes take back those away, and
 * each logs in again at home with exactly his acknowledged gold.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Entered, KuafuClient } from '../runtime/client/kuafu-client.js';
import { KuafuError } from '../runtime/errors.js';
import type { RouteChange } from '../runtime/store/store.js';
import { GameCluster } from './harness/game-cluster.js';
import { seeded } from './harness/random.js';

const test = suite('transfer random');

const SERVERS = ['HS', 'GS1', 'GS2'];
const PLAYERS = 50;
const TRANSFERS = Number(process.env.KUAFU_TEST_TRANSFERS ?? 500);
const CONCURRENCY = 12;
const ITEMS = [105001, 105002, 105003];
const FIRST_PID = 5001;

const SEED = process.env.KUAFU_TEST_SEED ? Number(process.env.KUAFU_TEST_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
console.log(`transfer-random: seed ${SEED} (replay with KUAFU_TEST_SEED=${SEED})`);


type Add = { kind: 'gold'; amount: number } | { kind: 'item'; type: number; count: number };
type Step = { kind: 'go'; pick: number; race: Add | null } | { kind: 'add'; add: Add } | { kind: 'relog' };

/** The plan: per player, his steps in order (the same for the same seed). */
function plan(rand: () => number): Step[][] {
  const steps: Step[][] = Array.from({ length: PLAYERS }, () => []);
  const add = (): Add => rand() < 0.5
    ? { kind: 'gold', amount: 1 + Math.floor(rand() * 100) }
    : { kind: 'item', type: ITEMS[Math.floor(rand() * ITEMS.length)]!, count: 1 + Math.floor(rand() * 5) };
  let transfers = 0;
  while (transfers < TRANSFERS) {
    const player = Math.floor(rand() * PLAYERS);
    if (rand() < 0.6) {
      transfers++;
      // `pick` chooses among the two servers he is not on (decided when the step runs).
      steps[player]!.push({ kind: 'go', pick: Math.floor(rand() * 2), race: rand() < 0.35 ? add() : null });
    } else if (rand() < 0.1) {
      steps[player]!.push({ kind: 'relog' }); // log out wherever he is, log in again at home
    } else {
      steps[player]!.push({ kind: 'add', add: add() });
    }
  }
  return steps;
}

interface PlayerRecord {
  pid: number;
  home: string;
  client: KuafuClient;
  entered: Entered[];
  kicked: number;
  fallbacks: string[];
  /** True during a logout and login (a fallback there is not a transfer's). */
  relogging: boolean;
  gold: number;
  items: Map<number, number>;
}

let cluster: GameCluster;
const history = new Map<number, RouteChange[]>();
const players: PlayerRecord[] = [];
/** What did not go as asked (a hop that ended elsewhere, a go refused, a call that failed before it was acknowledged). */
const anomalies: string[] = [];
const callErrors = new Map<string, number>();
let transfersDone = 0;
let addsDone = 0;
let relogs = 0;

test.before(async () => {
  cluster = await GameCluster.start({ games: SERVERS, heartbeatMs: 250 });
  // Every route publication, in order, from before the first login.
  cluster.store.onRouteChange((change) => {
    let list = history.get(change.pid);
    if (!list) history.set(change.pid, (list = []));
    list.push(change);
  });
});

test.after(async () => {
  await cluster?.stop();
});

/** Runs `tasks` with at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Adds through player RPC wherever he is, retrying with the same call id until acknowledged (it runs at most once). */
async function add(player: PlayerRecord, what: Add): Promise<void> {
  const id = cluster.dc.players.newCallId();
  const [path, args] = what.kind === 'gold'
    ? [['addgold'], [what.amount, 'test:random']]
    : [['itemdb', 'additembytype'], [what.type, what.count, null, 'test:random']];
  const deadline = Date.now() + 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      await cluster.invoke(player.pid, path, args, id);
      break;
    } catch (error) {
      const kind = error instanceof KuafuError ? error.kind : (error as Error).name;
      callErrors.set(kind, (callErrors.get(kind) ?? 0) + 1);
      if (attempt === 1) anomalies.push(`player ${player.pid}: ${path.join('.')} failed (${kind}: ${(error as Error).message}); retried with the same id`);
      if (Date.now() > deadline) throw new Error(`player ${player.pid}: ${path.join('.')} (call ${id}) not acknowledged within 30 s: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  addsDone++;
  if (what.kind === 'gold') player.gold += what.amount;
  else player.items.set(what.type, (player.items.get(what.type) ?? 0) + what.count);
}

async function runSteps(player: PlayerRecord, steps: Step[]): Promise<void> {
  for (const step of steps) {
    if (step.kind === 'add') {
      await add(player, step.add);
      continue;
    }
    if (step.kind === 'relog') {
      // Logged out away from home, he is either taken back by his home's heartbeat or sent on
      // to where he was with a fresh token: both are right.
      player.relogging = true;
      await player.client.logout();
      await player.client.login();
      player.relogging = false;
      relogs++;
      continue;
    }
    const from = player.client.server!;
    const to = SERVERS.filter((s) => s !== from)[step.pick]!;
    const race = step.race ? add(player, step.race) : Promise.resolve();
    try {
      const entered = await player.client.go(to);
      if (entered.server !== to) anomalies.push(`player ${player.pid}: asked to go ${from} → ${to}, ended on ${entered.server}`);
    } catch (error) {
      anomalies.push(`player ${player.pid}: go ${from} → ${to} refused: ${(error as Error).message}`);
      if (!player.client.server) await player.client.login();
    }
    transfersDone++;
    await race;
  }
}

test(`${PLAYERS} players, ${TRANSFERS}+ random transfers with adds on whichever server owns each: nothing lost, nothing doubled, one owner per epoch`, async () => {
  const steps = plan(seeded(SEED));
  for (let i = 0; i < PLAYERS; i++) {
    const pid = FIRST_PID + i;
    const home = SERVERS[i % SERVERS.length]!;
    const record: PlayerRecord = {
      pid, home, client: cluster.client(pid, home), entered: [], kicked: 0, fallbacks: [], relogging: false, gold: 0, items: new Map(),
    };
    record.client.on('entered', (e: Entered) => record.entered.push(e));
    record.client.on('kicked', () => { record.kicked++; });
    record.client.on('fallback', (problem: string) => { if (!record.relogging) record.fallbacks.push(problem); });
    players.push(record);
  }
  const started = Date.now();
  await pool(players, CONCURRENCY, async (p) => {
    const e = await p.client.login();
    assert.is(e.server, p.home);
  });
  await pool(players, CONCURRENCY, (p) => runSteps(p, steps[p.pid - FIRST_PID]!));
  const seconds = (Date.now() - started) / 1000;

  // Gold and items: exactly the acknowledged adds, as stored and as his owner has him.
  let storedGold = 0;
  let ackedGold = 0;
  let storedItems = 0;
  let ackedItems = 0;
  for (const p of players) {
    const stored = await cluster.stored(p.pid);
    assert.is(stored.gold, p.gold, `player ${p.pid}: stored gold = acknowledged adds`);
    assert.equal(stored.items, Object.fromEntries(p.items), `player ${p.pid}: stored items = acknowledged adds`);
    assert.is(await cluster.invoke(p.pid, ['getgold'], []), p.gold, `player ${p.pid}: his owner has the same gold`);
    storedGold += stored.gold;
    ackedGold += p.gold;
    storedItems += Object.values(stored.items).reduce((a, b) => a + b, 0);
    ackedItems += [...p.items.values()].reduce((a, b) => a + b, 0);
  }
  assert.is(storedGold, ackedGold);
  assert.is(storedItems, ackedItems);

  // The history of epochs: per player, one owner per epoch, epochs up by exactly one per change.
  for (const p of players) {
    const changes = history.get(p.pid) ?? [];
    assert.ok(changes.length > 0, `player ${p.pid}: route publications were heard`);
    assert.is(changes[0]!.epoch, 0, `player ${p.pid}: the history starts with his new route`);
    const owners = new Map<number, string>();
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i]!;
      const owner = change.at || change.home;
      const known = owners.get(change.epoch);
      assert.ok(known === undefined || known === owner, `player ${p.pid}: epoch ${change.epoch} owned by ${known} and ${owner}`);
      owners.set(change.epoch, owner);
      if (i > 0) {
        const step = change.epoch - changes[i - 1]!.epoch;
        assert.ok(step === 0 || step === 1, `player ${p.pid}: epoch went ${changes[i - 1]!.epoch} → ${change.epoch}`);
      }
    }
    // Every entered message: an epoch of its own, rising, given by the owner of that epoch.
    const epochs = p.entered.map((e) => e.epoch);
    assert.is(new Set(epochs).size, epochs.length, `player ${p.pid}: each entered has its own epoch: ${epochs}`);
    for (let i = 1; i < epochs.length; i++) assert.ok(epochs[i]! > epochs[i - 1]!, `player ${p.pid}: entered epochs rise: ${epochs}`);
    for (const e of p.entered) {
      assert.is(owners.get(e.epoch), e.server, `player ${p.pid}: entered ${e.server} at epoch ${e.epoch}, whose owner is ${owners.get(e.epoch)}`);
      assert.is(e.home_srvname, p.home);
      assert.is(e.go_srvname, e.server === p.home ? '' : e.server);
    }
    const { route } = await cluster.state(p.pid);
    const last = p.entered[p.entered.length - 1]!;
    assert.equal(route, { home: p.home, at: last.server === p.home ? '' : last.server, epoch: last.epoch, online: true },
      `player ${p.pid}: the route is where his client is`);
    assert.is(p.client.server, last.server);
    assert.is(p.kicked, 0, `player ${p.pid}: never kicked (one client per player)`);
  }
  console.log(
    `transfer-random: seed ${SEED}: ${PLAYERS} players, ${transfersDone} transfers, ${addsDone} acknowledged adds, ${relogs} logouts and logins ` +
      `(gold ${ackedGold}, items ${ackedItems}) in ${seconds.toFixed(1)} s; errors before acknowledgement: ` +
      `${JSON.stringify(Object.fromEntries(callErrors))}; anomalies: ${anomalies.length}`,
  );
  assert.ok(transfersDone >= TRANSFERS);

  // Everyone logs out; the homes take back those who are away; each logs in again at home with
  // exactly his acknowledged gold and items.
  await pool(players, CONCURRENCY, (p) => p.client.logout());
  for (const p of players) {
    await cluster.until(p.pid, 'his home to take him back', ({ route, mark }) => route?.at === '' && route.online === false && mark === null);
  }
  await pool(players, CONCURRENCY, async (p) => {
    const e = await cluster.client(p.pid, p.home).login();
    assert.is(e.server, p.home);
    assert.is(e.player.gold, p.gold, `player ${p.pid}: logs in again with his acknowledged gold`);
  });
  for (const p of players) assert.equal((await cluster.stored(p.pid)).items, Object.fromEntries(p.items));
});

test('every transfer of the run landed where it was asked to go, and every call reached its online player', () => {
  assert.ok(players.length === PLAYERS, 'the run took place');
  const fallbacks = players.flatMap((p) => p.fallbacks.map((f) => `player ${p.pid}: his client fell back home: ${f}`));
  const all = [...anomalies, ...fallbacks];
  const kinds = new Map<string, number>();
  for (const line of all) {
    const kind = line.replace(/^player \d+: /, '').replace(/\d+/g, 'N').replace(/ \(.*$|: .*$/, '');
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const summary = [...kinds].map(([kind, n]) => `${n} × ${kind}`).join('; ');
  assert.is(all.length, 0, `seed ${SEED}: ${all.length} anomalies in ${transfersDone} transfers (${summary}), e.g.:\n  ${all.slice(0, 12).join('\n  ')}`);
});

test.run();
