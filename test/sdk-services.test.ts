/**
 * The function services from designer scripts, end to end (issue 5 item 2; DESIGN §6): scripts in
 * the sandbox of game server HS reach a guild living on the guild server GUILD, the leaderboards
 * of RANK, profiles through the datacenter DC and HS's own battle server, over real JSON-RPC and a
 * real redis-server. HS, GS1 and the function servers are started in this process from one config
 * (`startServers`), each group with its own store connection, as separate processes have; players
 * are real KuafuClients on the gateways.
 *
 * The story: a script deposits to and deducts from a guild on GUILD, a retried request counts
 * once, and a deduction the treasury cannot cover arrives in the script as InsufficientResource;
 * scores and profiles a script writes are read back across servers; battles agree; the guild
 * donation example moves gold from a player on GS1 into the treasury once per request id.
 *
 * Nothing sleeps to let time pass: what travels by push is polled until it holds, with generous
 * deadlines (a loaded 2-core machine).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { parseConfig, type ClusterConfig } from '../runtime/cluster/config.js';
import type { ServerNode } from '../runtime/cluster/server-node.js';
import { startServers } from '../runtime/cluster/start.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { ScriptError } from '../runtime/sandbox/index.js';
import { servicesOf, type BattleResult, type TreasuryReceipt } from '../runtime/services/index.js';
import { guildServerFor, rankServerFor } from '../runtime/services/placement.js';
import type { Guild, LedgerEntry, RankEntry } from '../runtime/store/store.js';
import { EVENT_DEADLINE_MS, ROOT, cleanupCluster, eventually, onCleanup, quietly, rejectionOf } from './harness/cluster.js';
import { startRedis, type RedisHandle } from './harness/redis.js';

const test = suite('sdk services');

const SECRET = `sdk-services-secret-${process.pid}`;
let redis: RedisHandle;
let config: ClusterConfig;
const nodes: Record<string, ServerNode> = {};
const dir = mkdtempSync(join(tmpdir(), 'kuafu-sdk-services-'));
let nextPid = 6_000_001;
let nextGuild = 1;

test.before(async () => {
  redis = await startRedis({ persistent: false });
  config = parseConfig({
    secret: SECRET,
    store: { kind: 'redis', url: redis.url },
    heartbeatMs: 250,
    rpcTimeoutMs: 5000,
    servers: [
      { name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0, battle: 'HS-battle' },
      { name: 'GS1', roles: ['game'], rpcPort: 0, gatewayPort: 0 },
      { name: 'DC', roles: ['datacenter'], rpcPort: 0 },
      { name: 'GUILD', roles: ['guild'], rpcPort: 0 },
      { name: 'RANK', roles: ['rank'], rpcPort: 0 },
      { name: 'HS-battle', roles: ['battle'], rpcPort: 0 },
    ],
  }, 'sdk-services test config');
  // The function servers first (the game servers' callers find them up), then each game server
  // on its own store connection.
  await quietly(async () => {
    for (const group of [['DC', 'GUILD', 'RANK', 'HS-battle'], ['HS'], ['GS1']]) {
      const running = await startServers(config, group);
      onCleanup(() => running.stop());
      for (const node of running.nodes) nodes[node.name] = node;
    }
  });
  assert.is(guildServerFor(config, 'wolves-1'), 'GUILD');
  assert.is(rankServerFor(config, 'level'), 'RANK');
});

test.after(async () => {
  await cleanupCluster();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The script host of game server `on`. */
function hostOf(on: 'HS' | 'GS1') {
  const game = nodes[on]!.game;
  assert.ok(game, `${on} is a game server`);
  return game!.scripts.host;
}

/** Loads TypeScript `source` as bundle `name` on `on` (bundled with esbuild, with its source map). */
async function load(on: 'HS' | 'GS1', name: string, source: string): Promise<void> {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, source);
  await hostOf(on).loadFile(file, name);
}

/** Runs `fn` of bundle `name` on `on`. */
function run<T = unknown>(on: 'HS' | 'GS1', name: string, fn: string, args: unknown[]): Promise<T> {
  return hostOf(on).run(name, fn, args) as Promise<T>;
}

/** The rejection of `promise`: fails the test if it resolves (or does neither within the deadline). */
function rejection(promise: Promise<unknown>): Promise<Error> {
  return rejectionOf(promise, EVENT_DEADLINE_MS, 'the script to fail');
}

/** A new guild, created on its guild server. */
async function newGuild(): Promise<string> {
  const gid = `wolves-${nextGuild++}`;
  await servicesOf(nodes.GS1!).guild(gid).create('Wolves');
  return gid;
}

/** A player logged in at home HS with a real client, moved to `to`, holding `gold`. */
async function playerOn(to: 'HS' | 'GS1', gold = 0): Promise<number> {
  const pid = nextPid++;
  const client = new KuafuClient({
    pid, homeUrl: nodes.HS!.gatewayUrl, stepTimeoutMs: 15_000, loginToken: () => issueLoginToken(SECRET, pid, 'HS'),
  });
  onCleanup(() => client.close());
  await client.login();
  if (to !== 'HS') await client.go(to);
  assert.is(client.server, to);
  if (gold > 0) await nodes.HS!.players.invoke(pid, ['addgold'], [gold, 'test:setup']);
  return pid;
}

test('a script on HS deposits to and deducts from a guild on GUILD; a retry counts once; what the treasury cannot cover arrives as InsufficientResource', async () => {
  const gid = await newGuild();
  await load('HS', 'treasury', `
    export async function main(gid: string) {
      const guild = services.guild(gid);
      const deposit = await guild.deposit("wood", 10, "script:fund", "fund-1");
      const [deduct, again] = await Promise.all([
        guild.deduct("wood", 4, "script:wall", "wall-1"),
        guild.deduct("wood", 4, "script:wall", "wall-1"),
      ]);
      let refused: unknown = null;
      try {
        await guild.deduct("wood", 7, "script:castle", "castle-1");
      } catch (error) {
        const e = error as KuafuError;
        refused = { kind: e.kind, name: e.name, message: e.message, details: e.details };
      }
      const ledger = await guild.ledger(10);
      const after = await guild.get();
      return { deposit, deduct, again, refused, ledger, treasury: after.treasury };
    }
    export async function greedy(gid: string) {
      await services.guild(gid).deduct("wood", 1000, "script:palace");
    }`);
  const result = await run<{
    deposit: TreasuryReceipt; deduct: TreasuryReceipt; again: TreasuryReceipt;
    refused: { kind: string; name: string; message: string; details: Record<string, unknown> };
    ledger: LedgerEntry[]; treasury: Record<string, number>;
  }>('HS', 'treasury', 'main', [gid]);
  assert.equal(result.deposit, { gid, requestId: 'fund-1', kind: 'deposit', resource: 'wood', amount: 10, balance: 10, replayed: false });
  assert.equal([result.deduct, result.again].map((r) => [r.balance, r.requestId]), [[6, 'wall-1'], [6, 'wall-1']], 'both answers are the one deduction');
  assert.equal([result.deduct.replayed, result.again.replayed].sort(), [false, true], 'the second of the same request id is a replay');
  assert.is(result.refused.kind, 'InsufficientResource');
  assert.is(result.refused.name, 'InsufficientResourceError');
  assert.match(result.refused.message, new RegExp(`^Guild ${gid} holds 6 wood, less than the 7 this deduction needs: nothing was deducted`));
  assert.equal(result.refused.details, { gid, resource: 'wood', balance: 6, needed: 7, requestId: 'castle-1', replayed: false });
  assert.equal(result.ledger.map((e) => [e.kind, e.amount, e.balance, e.reason]), [['deduct', 4, 6, 'script:wall'], ['deposit', 10, 10, 'script:fund']],
    'the ledger: one deduction, one deposit, newest first');
  assert.equal(result.treasury, { wood: 6 });
  // The guild server holds it, as any other server reads it.
  assert.equal((await servicesOf(nodes.GS1!).guild(gid).get()).treasury, { wood: 6 });

  // Not caught: the run fails with the kind, at the script's line.
  const error = await rejection(run('HS', 'treasury', 'greedy', [gid])) as ScriptError;
  assert.instance(error, ScriptError);
  assert.is(error.kind, 'InsufficientResource');
  assert.match(error.message, /^treasury\.greedy failed at .*treasury\.ts:\d+:\d+: InsufficientResourceError: Guild wolves-\d+ holds 6 wood, less than the 1000/);
  assert.equal((await servicesOf(nodes.HS!).guild(gid).get()).treasury, { wood: 6 }, 'nothing was deducted');
});

test('arguments the services refuse arrive as InvalidArgument, missing things as NotFound, and a game server without a battle server as Config', async () => {
  const gid = await newGuild();
  await load('HS', 'mistakes', `
    async function attempt(call: () => Promise<unknown>) {
      try { await call(); return 'ok'; } catch (error) { return [(error as KuafuError).kind, (error as KuafuError).message]; }
    }
    export async function main(gid: string) {
      const guild = services.guild(gid);
      const loose = guild as unknown as { deduct(...args: unknown[]): Promise<unknown> };
      return {
        zero: await attempt(() => guild.deduct("wood", 0, "nothing")),
        order: await attempt(() => loose.deduct(5, "wood", "x")),
        noReason: await attempt(() => guild.deposit("wood", 5, "")),
        missing: await attempt(() => services.guild("no-such-guild").get()),
        noProfile: await attempt(() => services.battle().resolve(999_999_901, 999_999_902)),
      };
    }
    export async function battleOnGS1() {
      return attempt(() => services.battle().resolve(1, 2));
    }`);
  const result = await run<Record<string, [string, string]>>('HS', 'mistakes', 'main', [gid]);
  assert.is(result.zero![0], 'InvalidArgument', JSON.stringify(result.zero));
  assert.match(result.zero![1], /^services\.guild\("wolves-\d+"\)\.deduct: guild\.deduct needs "amount", a positive integer/);
  assert.is(result.order![0], 'InvalidArgument', JSON.stringify(result.order));
  assert.match(result.order![1], /the resource must be a string, not 5/);
  assert.is(result.noReason![0], 'InvalidArgument', JSON.stringify(result.noReason));
  assert.is(result.missing![0], 'NotFound', JSON.stringify(result.missing));
  assert.match(result.missing![1], /There is no guild no-such-guild/);
  assert.is(result.noProfile![0], 'NotFound', JSON.stringify(result.noProfile));
  await hostOf('GS1').loadFile(join(dir, 'mistakes.ts'), 'mistakes');
  const [kind, message] = await run<[string, string]>('GS1', 'mistakes', 'battleOnGS1', []);
  assert.is(kind, 'Config', message);
  assert.match(message, /GS1 has no battle server/);
  assert.equal((await servicesOf(nodes.HS!).guild(gid).get()).treasury, {}, 'nothing refused changed the treasury');
});

test('scores and profiles a script writes are read across servers; battles from scripts agree with each other and with replays', async () => {
  const [a, b] = [await playerOn('HS'), await playerOn('GS1')];
  const board = `arena-${process.pid}`;
  await load('HS', 'boards', `
    export async function submit(board: string, scores: [number, number][]) {
      return Promise.all(scores.map(([pid, score]) => services.rank(board).submit(pid, score)));
    }
    export async function read(board: string, pid: number) {
      const [top, place] = await Promise.all([services.rank(board).top(3), services.rank(board).of(pid)]);
      return { top, place };
    }
    export async function train(pid: number, level: number, power: number) {
      const profile = await services.profile(pid).update({ level, power, title: "Dragon slayer" });
      return { profile, read: await services.profile(pid).get() };
    }
    export async function fight(a: number, b: number, seed: string) {
      const battle = services.battle();
      const first = await battle.resolve(a, b, seed);
      const second = await battle.resolve(a, b, seed);
      const replayed = await battle.replay(first.input);
      return { first, second, replayed };
    }`);
  // Scores from the script on HS and from GS1's own caller: one board on RANK.
  await run('HS', 'boards', 'submit', [board, [[a, 30], [b, 50]]]);
  await servicesOf(nodes.GS1!).rank(board).submit(6_999_999, 40);
  const { top, place } = await run<{ top: RankEntry[]; place: RankEntry }>('HS', 'boards', 'read', [board, a]);
  assert.equal(top, [{ rank: 1, pid: b, score: 50 }, { rank: 2, pid: 6_999_999, score: 40 }, { rank: 3, pid: a, score: 30 }]);
  assert.equal(place, { rank: 3, pid: a, score: 30 });

  // A profile a script changes on HS: GS1's cache gets the push, and the power board follows it.
  type Trained = { profile: { fields: Record<string, unknown> }; read: { fields: Record<string, unknown> } };
  const trained = await run<Trained>('HS', 'boards', 'train', [a, 40, 120]);
  assert.equal([trained.profile.fields.title, trained.profile.fields.power], ['Dragon slayer', 120]);
  assert.equal([trained.read.fields.title, trained.read.fields.power], ['Dragon slayer', 120], 'read back through HS');
  await run<Trained>('HS', 'boards', 'train', [b, 12, 30]);
  await eventually(async () => {
    const seen = await servicesOf(nodes.GS1!).profiles.get(a);
    if (seen?.fields.title !== 'Dragon slayer' || seen.fields.power !== 120) throw new Error(`GS1 sees ${JSON.stringify(seen)}`);
  }, "GS1 to see the script's profile change");
  await eventually(async () => {
    const { place: power } = await run<{ place: RankEntry | null }>('HS', 'boards', 'read', ['power', a]);
    if (power?.score !== 120) throw new Error(`the power board has ${JSON.stringify(power)}`);
  }, 'the power board to follow the profile');

  // A battle between a player of HS and one on GS1, on HS's battle server: the same every time.
  // (Their profiles may still be gaining fields pushed by their logins: fight until two resolves read the same input.)
  const fight = await eventually(async () => {
    const result = await run<{ first: BattleResult; second: BattleResult; replayed: BattleResult }>('HS', 'boards', 'fight', [a, b, 'duel-1']);
    if (JSON.stringify(result.first.input) !== JSON.stringify(result.second.input)) throw new Error('the profiles changed between the two');
    return result;
  }, 'two resolves of the same settled input');
  assert.equal(fight.second, fight.first, 'the same input, the same battle');
  assert.equal(fight.replayed, fight.first, 'a replay of its input, the same battle');
  assert.equal([fight.first.input.a.pid, fight.first.input.a.power, fight.first.input.b.pid, fight.first.input.b.power], [a, 120, b, 30],
    'read from the profiles the script set');
  assert.ok([a, b].includes(fight.first.winner) && fight.first.winner !== fight.first.loser);
});

test('guild_donation.ts on HS: gold leaves a player on GS1 and reaches the treasury on GUILD, once per request id', async () => {
  const gid = await newGuild();
  const pid = await playerOn('GS1', 100);
  const source = (await import('node:fs')).readFileSync(join(ROOT, 'scripts/examples/guild_donation.ts'), 'utf8');
  await load('HS', 'guild_donation', source);
  const gold = () => nodes.HS!.players.invoke(pid, ['getgold'], []);

  assert.equal(await run('HS', 'guild_donation', 'main', [pid, gid, 20, `don-${pid}-1`, 'wood']),
    { donated: 200, resource: 'wood', balance: 200, replayed: false });
  assert.is(await gold(), 80);
  assert.equal(await run('HS', 'guild_donation', 'main', [pid, gid, 20, `don-${pid}-1`, 'wood']),
    { donated: 0, resource: 'wood', balance: 200, replayed: true }, 'the same donation sent again');
  assert.is(await gold(), 80, 'counted once: the gold taken again went back');
  assert.equal(await run('HS', 'guild_donation', 'main', [pid, gid, 30, `don-${pid}-2`]),
    { donated: 30, resource: 'gold', balance: 30, replayed: false });
  assert.is(await gold(), 50);

  const tooMuch = await rejection(run('HS', 'guild_donation', 'main', [pid, gid, 500, `don-${pid}-3`])) as ScriptError;
  assert.is(tooMuch.kind, 'InvalidArgument', tooMuch.message);
  assert.match(tooMuch.message, /guild_donation\.ts:\d+:\d+: InvalidArgumentError: player \d+ has 50 gold and cannot spend 500/);
  const noGuild = await rejection(run('HS', 'guild_donation', 'main', [pid, 'no-such-guild', 10, `don-${pid}-4`])) as ScriptError;
  assert.is(noGuild.kind, 'NotFound', noGuild.message);
  assert.is(await gold(), 50, 'a refused deposit gave the gold back');

  const guild: Guild = await servicesOf(nodes.GS1!).guild(gid).get();
  assert.equal(guild.treasury, { wood: 200, gold: 30 });
  const ledger = await servicesOf(nodes.GS1!).guild(gid).ledger(10);
  assert.equal(ledger.map((e) => [e.requestId, e.resource, e.amount]), [[`don-${pid}-2`, 'gold', 30], [`don-${pid}-1`, 'wood', 200]]);
});

test.run();
