/**
 * The function services in the sandbox (DESIGN §6, issue 5 item 2): the global `services`, with
 * real isolates and the recording ScriptServices (the unit boundary; test/sdk-services.test.ts runs
 * the same against real guild, rank, datacenter and battle servers).
 *
 * The story: the global is a fixed, frozen surface that is exactly the host's allowlist; each call
 * reaches `callService` with its service, target, method and a copy of its arguments, the calls
 * of one tick in one loop; what is not a value never leaves; the services' errors arrive with their
 * kinds; the guild donation example gives gold to a guild once per request id.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InsufficientResourceError, InvalidArgumentError, NotExportedError } from '../runtime/errors.js';
import { ScriptError, ScriptHost } from '../runtime/sandbox/index.js';
import { SCRIPT_SERVICE_SURFACE } from '../runtime/services/script-surface.js';
import { RecordingServices, quietLogger, rejection } from './fixtures/script-services.js';

const test = suite('sandbox services');

const hosts: ScriptHost[] = [];
test.after.each(async () => {
  for (const host of hosts.splice(0)) await host.close();
});

function makeHost() {
  const services = new RecordingServices();
  const hostLog: string[] = [];
  const host = new ScriptHost({ services, logger: quietLogger(hostLog) });
  hosts.push(host);
  return { host, services, hostLog };
}


test('services is a frozen, fixed surface: exactly the methods the host allows, nothing to change or add', async () => {
  const { host, services } = makeHost();
  await host.reload('surface', `
    const attempt = (change) => { try { change(); return 'changed'; } catch (error) { return error.name; } };
    export function main() {
      const handles = { guild: services.guild('wolves'), rank: services.rank('level'), profile: services.profile(7), battle: services.battle() };
      const methods = {};
      for (const [name, handle] of Object.entries(handles)) methods[name] = Object.keys(handle);
      return {
        services: Object.keys(services),
        methods,
        frozen: [Object.isFrozen(services), ...Object.values(handles).map((handle) => Object.isFrozen(handle))],
        tamper: [
          attempt(() => { services.guild = () => 1; }),
          attempt(() => { services.account = () => 1; }),
          attempt(() => { handles.guild.deduct = () => 1; }),
          attempt(() => { handles.guild.create = () => 1; }),
          attempt(() => { globalThis.services = {}; }),
          attempt(() => { delete globalThis.services; }),
        ],
        create: typeof services.guild('wolves').create,
        account: typeof services.account,
        shown: String(services.guild('wolves')) + ' ' + String(services.profile(7)) + ' ' + String(services.battle()),
      };
    }`);
  assert.equal(await host.run('surface', 'main'), {
    services: ['guild', 'rank', 'profile', 'battle'],
    methods: Object.fromEntries(Object.entries(SCRIPT_SERVICE_SURFACE).map(([name, methods]) => [name, [...methods]])),
    frozen: [true, true, true, true, true],
    tamper: ['TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError'],
    create: 'undefined',
    account: 'undefined',
    shown: '[services.guild("wolves")] [services.profile(7)] [services.battle()]',
  });
  assert.equal(Object.keys(SCRIPT_SERVICE_SURFACE), ['guild', 'rank', 'profile', 'battle'], 'the host allows the same services');
  assert.is(services.serviceCalls.length, 0, 'looking sends nothing');
});

test('each call reaches callService with its service, target, method and arguments; the calls of one tick in one loop', async () => {
  const { host, services } = makeHost();
  services.addGuild('wolves', { wood: 10 });
  const answers: Record<string, unknown> = {
    'rank.top': [{ rank: 1, pid: 7, score: 30 }],
    'rank.of': { rank: 1, pid: 7, score: 30 },
    'rank.submit': { rank: 2, pid: 8, score: 12 },
    'profile.get': { pid: 7, version: 3, fields: { name: 'Hana', level: 30 } },
    'profile.update': { pid: 7, version: 4, fields: { name: 'Hana', level: 30, title: 'Dragon slayer' } },
    'battle.resolve': { winner: 7, loser: 8, digest: 'abc' },
    'battle.replay': { winner: 7, loser: 8, digest: 'abc' },
  };
  for (const [key, answer] of Object.entries(answers)) services.serviceMethods.set(key, () => answer);
  await host.reload('calls', `
    export async function main() {
      const guild = services.guild('wolves');
      const fields = { title: 'Dragon slayer', since: new Date(86400000) };
      const sent = [
        guild.deposit('wood', 5, 'donation', 'req-1'),
        guild.deduct('wood', 3, 'build:wall'),
        services.rank('level').top(3),
        services.rank('level').of(7),
        services.rank('arena').submit(8, 12),
        services.profile(7).get(),
        services.profile(7).update(fields),
      ];
      fields.title = 'changed after the call'; // the call took a copy
      const first = await Promise.all(sent);
      const second = await Promise.all([
        services.battle().resolve(7, 8, 'duel-1'),
        services.battle().replay({ a: { pid: 7 }, b: { pid: 8 }, seed: 'duel-1' }),
        guild.get(),
      ]);
      return [...first, ...second];
    }`);
  const results = await host.run('calls', 'main') as unknown[];
  assert.equal(results.slice(0, 2), [
    { gid: 'wolves', requestId: 'req-1', kind: 'deposit', resource: 'wood', amount: 5, balance: 15, replayed: false },
    { gid: 'wolves', requestId: 'req-2', kind: 'deduct', resource: 'wood', amount: 3, balance: 12, replayed: false },
  ]);
  assert.equal(results.slice(2, 9), Object.values(answers), 'every answer reached the script');
  assert.equal((results[9] as { treasury: unknown }).treasury, { wood: 12 });
  assert.equal(services.serviceCalls.map(({ service, target, method, args }) => [service, target, method, args]), [
    ['guild', 'wolves', 'deposit', ['wood', 5, 'donation', 'req-1']],
    ['guild', 'wolves', 'deduct', ['wood', 3, 'build:wall']],
    ['rank', 'level', 'top', [3]],
    ['rank', 'level', 'of', [7]],
    ['rank', 'arena', 'submit', [8, 12]],
    ['profile', '7', 'get', []],
    ['profile', '7', 'update', [{ title: 'Dragon slayer', since: new Date(86400000) }]],
    ['battle', '', 'resolve', [7, 8, 'duel-1']],
    ['battle', '', 'replay', [{ a: { pid: 7 }, b: { pid: 8 }, seed: 'duel-1' }]],
    ['guild', 'wolves', 'get', []],
  ]);
  const loops = [...new Set(services.serviceCalls.map((call) => call.loop))];
  assert.is(loops.length, 2, 'two ticks of calls, two loops');
  assert.equal(services.serviceCalls.map((call) => call.loop), [...Array(7).fill(loops[0]), ...Array(3).fill(loops[1])]);
});

test('what is not a value is refused inside the sandbox, naming the call and the argument; bad targets fail at once', async () => {
  const { host, services } = makeHost();
  services.addGuild('wolves', { wood: 10 });
  await host.reload('refusals', `
    class Reward { constructor(gold) { this.gold = gold; } }
    const cyclic = { name: 'loop' }; cyclic.self = cyclic;
    const cases = {
      fn: () => services.guild('wolves').deduct('wood', () => 5, 'x'),
      instance: () => services.profile(7).update({ reward: new Reward(5) }),
      symbol: () => services.rank('level').submit(7, Symbol('score')),
      cycle: () => services.battle().replay(cyclic),
      remote: () => services.battle().replay({ a: cproxyplayer.new(7) }),
      huge: () => services.guild('wolves').deposit('wood', 1, 'x'.repeat(2 * 1024 * 1024)),
      guildTarget: () => services.guild(42).get(),
      emptyGuild: () => services.guild('').get(),
      rankTarget: () => services.rank({ board: 'level' }).top(),
      profileTarget: () => services.profile('7').get(),
      profileZero: () => services.profile(0).get(),
    };
    export async function main(name) {
      try { await cases[name](); return 'sent'; }
      catch (error) { return { kind: error.kind ?? null, name: error.name, message: error.message, path: error.details ? error.details.path : null }; }
    }`);
  const valueType: Record<string, RegExp> = {
    fn: /^services\.guild\("wolves"\)\.deduct: args\[1\] is a function; only value types cross servers/,
    instance: /^services\.profile\(7\)\.update: args\[0\]\.reward is an instance of Reward/,
    symbol: /^services\.rank\("level"\)\.submit: args\[1\] is a symbol \(score\)/,
    cycle: /^services\.battle\(\)\.replay: args\[0\]\.self is a cycle/,
    remote: /^services\.battle\(\)\.replay: args\[0\]\.a is a proxy \(a remote player cannot be sent: send its pid instead\)/,
    huge: /^services\.guild\("wolves"\)\.deposit: args\[2\] is too large/,
  };
  for (const [name, pattern] of Object.entries(valueType)) {
    const result = await host.run('refusals', 'main', [name]) as { kind: string; name: string; message: string };
    assert.is(result.kind, 'ValueType', name);
    assert.is(result.name, 'ValueTypeError', name);
    assert.match(result.message, pattern, `${name}: ${result.message}`);
  }
  const targets: Record<string, RegExp> = {
    guildTarget: /^services\.guild: the guild's id must be a non-empty string, got 42$/,
    emptyGuild: /^services\.guild: the guild's id must be a non-empty string/,
    rankTarget: /^services\.rank: the board's name .* must be a non-empty string/,
    profileTarget: /^services\.profile: pid must be a positive integer player id, got "7"/,
    profileZero: /^services\.profile: pid must be a positive integer player id, got 0/,
  };
  for (const [name, pattern] of Object.entries(targets)) {
    const result = await host.run('refusals', 'main', [name]) as { kind: string | null; name: string; message: string };
    assert.is(result.name, 'TypeError', name);
    assert.is(result.kind, null, name);
    assert.match(result.message, pattern, `${name}: ${result.message}`);
  }
  assert.is(services.serviceCalls.length, 0, 'nothing reached the services');
});

test("the services' errors arrive with their kinds and details; an uncaught one fails the run with its kind", async () => {
  const { host, services, hostLog } = makeHost();
  services.addGuild('wolves', { wood: 4 });
  services.serviceMethods.set('rank.top', () => {
    throw new NotExportedError('services.rank(…).top is not callable from scripts here');
  });
  services.serviceMethods.set('profile.update', () => {
    throw new InvalidArgumentError('services.profile(7).update: at most 64 fields at a time, not 65');
  });
  services.serviceMethods.set('battle.resolve', () => {
    throw new Error('arena on fire');
  });
  services.serviceMethods.set('rank.of', () => ({ handle: () => 'host function' }));
  await host.reload('errors', `
    async function attempt(call) {
      try { await call(); return 'ok'; } catch (error) { return { kind: error.kind, name: error.name, message: error.message, details: error.details, isError: error instanceof Error }; }
    }
    export async function main() {
      return [
        await attempt(() => services.guild('wolves').deduct('wood', 5, 'build:wall', 'wall-1')),
        await attempt(() => services.guild('bears').get()),
        await attempt(() => services.guild('wolves').deposit('wood', 2, 'a', 'twice')),
        await attempt(() => services.guild('wolves').deposit('wood', 3, 'b', 'twice')),
        await attempt(() => services.rank('level').top(3)),
        await attempt(() => services.profile(7).update({})),
        await attempt(() => services.battle().resolve(7, 8)),
        await attempt(() => services.rank('level').of(7)),
      ];
    }
    export async function uncaught() {
      await services.guild('wolves').deduct('wood', 500, 'build:castle');
    }`);
  const [insufficient, missing, first, conflict, notExported, invalid, internal, leaky] = await host.run('errors', 'main') as Record<string, unknown>[];
  assert.equal(insufficient, {
    kind: 'InsufficientResource', name: 'InsufficientResourceError',
    message: 'Guild wolves holds 4 wood, less than the 5 this deduction needs: nothing was deducted.',
    details: { gid: 'wolves', resource: 'wood', balance: 4, needed: 5, requestId: 'wall-1', replayed: false }, isError: true,
  });
  assert.is(missing!.kind, 'NotFound');
  assert.equal(missing!.details, { gid: 'bears' });
  assert.is(first, 'ok');
  assert.is(conflict!.kind, 'RequestConflict');
  assert.is(notExported!.kind, 'NotExported');
  assert.is(invalid!.kind, 'InvalidArgument');
  assert.match(String(invalid!.message), /at most 64 fields/);
  assert.is(internal!.kind, 'Internal');
  assert.match(String(internal!.message), /services\.battle\(\)\.resolve failed on the server: arena on fire\. This is a server bug, not a script bug/);
  assert.ok(hostLog.some((line) => line.includes('arena on fire')), 'the host logged its own failure');
  assert.is(leaky!.kind, 'ValueType');
  assert.match(String(leaky!.message), /the answer to services\.rank\("level"\)\.of: result\.handle is a function/);

  const error = await rejection(host.run('errors', 'uncaught')) as ScriptError;
  assert.instance(error, ScriptError);
  assert.is(error.kind, 'InsufficientResource');
  assert.match(error.message, /^errors\.uncaught failed at errors\.bundle\.js:\d+:\d+: InsufficientResourceError: Guild wolves holds 6 wood/);
  assert.is(services.guilds.get('wolves')!.treasury.wood, 6, 'a refused deduction took nothing');
});

test('a service call at the top level of a bundle is refused, like a player call', async () => {
  const { host, services } = makeHost();
  services.addGuild('wolves', { wood: 4 });
  await host.reload('top', `
    export const early = services.guild('wolves').get().then(() => 'sent', (error) => error.kind + ': ' + error.message);
    export async function main() { return early; }`);
  assert.match(String(await host.run('top', 'main')), /^Sandbox: bundle top made a request while none of its calls was running/);
  assert.is(services.serviceCalls.length, 0);
});

test('guild_donation.ts: the gold leaves the player and reaches the treasury once per request id', async () => {
  const { host, services } = makeHost();
  const player = services.addPlayer(11, { at: 'GS1', gold: 100 });
  services.addGuild('wolves', { gold: 1 });
  await host.loadFile('scripts/examples/guild_donation.ts');
  assert.equal(await host.run('guild_donation', 'main', [11, 'wolves', 20, 'don-11-1', 'wood']),
    { donated: 200, resource: 'wood', balance: 200, replayed: false });
  assert.is(player.gold, 80);
  assert.equal(await host.run('guild_donation', 'main', [11, 'wolves', 20, 'don-11-1', 'wood']),
    { donated: 0, resource: 'wood', balance: 200, replayed: true }, 'the same donation again');
  assert.is(player.gold, 80, 'its gold went back');
  assert.equal(await host.run('guild_donation', 'main', [11, 'wolves', 30, 'don-11-2']),
    { donated: 30, resource: 'gold', balance: 31, replayed: false });
  assert.is(player.gold, 50);
  assert.equal(services.guilds.get('wolves')!.treasury, { gold: 31, wood: 200 });

  const missing = await rejection(host.run('guild_donation', 'main', [11, 'bears', 10, 'don-11-3'])) as ScriptError;
  assert.is(missing.kind, 'NotFound');
  assert.match(missing.message, /scripts\/examples\/guild_donation\.ts:\d+:\d+: NotFoundError: There is no guild bears/);
  assert.is(player.gold, 50, 'a refused deposit gives the gold back');
  const tooMuch = await rejection(host.run('guild_donation', 'main', [11, 'wolves', 500, 'don-11-4'])) as ScriptError;
  assert.instance(tooMuch, ScriptError);
  assert.is(player.gold, 50, 'he cannot give more than he has');
  assert.equal(services.guilds.get('wolves')!.treasury, { gold: 31, wood: 200 });
  assert.is(services.serviceCalls.filter((call) => call.method === 'deposit').length, 4, 'the refused donation never reached the guild');
});

test.run();
