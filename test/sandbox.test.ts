/**
 * The script host and its bridge (issue 4 items 1-2; DESIGN §5, §7), with real isolates and a
 * recording ScriptServices (the unit boundary: routing and the wire are the game server's).
 *
 * The story: a designer's script runs the example and reaches the player; values cross
 * exactly; the calls of one tick reach the services in one loop; the remote player proxy sends
 * only calls; host errors arrive with their kind; what is not a value never leaves the sandbox;
 * a bundle reloads while calls are in flight; the host reports load time and memory.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, NotExportedError, NotFoundError, ValueTypeError } from '../runtime/errors.js';
import { ScriptError, ScriptHost, type ScriptHostOptions } from '../runtime/sandbox/index.js';
import { RecordingServices, quietLogger, rejection } from './fixtures/script-services.js';

const test = suite('script host');

function makeHost(options: Partial<ScriptHostOptions> = {}) {
  const services = new RecordingServices();
  const hostLog: string[] = [];
  const host = new ScriptHost({ services, logger: quietLogger(hostLog), ...options });
  return { host, services, hostLog };
}


const hosts: ScriptHost[] = [];
test.after.each(async () => {
  for (const host of hosts.splice(0)) await host.close();
});
function track<T extends { host: ScriptHost }>(made: T): T {
  hosts.push(made.host);
  return made;
}

test('the issue example, on a player online on another server, adds the item and 10 gold and returns 10', async () => {
  const { host, services } = track(makeHost());
  const player = services.addPlayer(42, { at: 'GS1', gold: 5 });
  const info = await host.loadFile('scripts/examples/test_rpc.ts');
  assert.equal(info.exports, ['main']);
  assert.is(await host.run('test_rpc', 'main', [42]), 10);
  assert.is(player.gold, 15);
  assert.is(player.items.get(105001), 10);
  assert.equal(services.calls.map((call) => [call.pid, call.path.join('.'), call.args]), [
    [42, 'itemdb.additembytype', [105001, 10, null, 'test:rpc']],
    [42, 'addgold', [10, 'test:rpc']],
  ]);
  assert.equal(services.lookups, [{ op: 'kuafu', pid: 42 }]);
  assert.equal(services.logs, [{ level: 'info', bundle: 'test_rpc', message: '10' }]);
});

test('the issue example returns nothing and calls nothing when the player is not on another server', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(7, { at: 'HS' });
  await host.loadFile('scripts/examples/test_rpc.ts');
  assert.is(await host.run('test_rpc', 'main', [7]), undefined);
  assert.is(await host.run('test_rpc', 'main', [8]), undefined, 'unknown player: getkuafuplayer answers null');
  assert.is(services.calls.length, 0);
});

test('the examples a designer copies run: a cross-server mail reward and a GM command', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(1, { at: 'GS1' });
  services.addPlayer(2, { at: 'GS2' });
  await host.loadFile('scripts/examples/mail_reward.ts');
  const reward = await host.run('mail_reward', 'main', [[1, 2, 3], 'arena-s3']) as { sent: { pid: number }[]; offline: number[] };
  assert.equal(reward.sent.map((sent) => sent.pid), [1, 2]);
  assert.equal(reward.offline, [3], 'the offline winner comes back for a retry');
  assert.is(services.players.get(1)!.mails[0]!.gold, 500);
  assert.is(services.loops().length, 1, 'the three mails went out in one loop');

  await host.loadFile('scripts/examples/gm_command.ts');
  assert.equal(await host.run('gm_command', 'main', [1, 'addgold 100']), { added: 100, gold: 100 });
  assert.equal(await host.run('gm_command', 'main', [1, 'give 105001 3']), { count: 3 });
  const info = await host.run('gm_command', 'main', [1, 'info']) as { info: { gold: number }; profile: { pid: number } };
  assert.is(info.info.gold, 100);
  assert.is(info.profile.pid, 1);
  const wrong = await rejection(host.run('gm_command', 'main', [1, 'fly']));
  assert.instance(wrong, ScriptError);
  assert.match(wrong.message, /unknown GM command "fly"/);
  assert.match(wrong.message, /scripts\/examples\/gm_command\.ts:\d+/);
});

test('value types cross exactly, both ways: Map, Set, Date, bigint, undefined, nested data', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(5);
  services.methods.set('echo', (_player, args) => args[0]);
  await host.reload('echo', `
    export async function main(value) {
      const back = await cproxyplayer.new(5).echo(value);
      return { back, kinds: [back.m instanceof Map, back.s instanceof Set, back.d instanceof Date, typeof back.b, 'u' in back, back.u] };
    }`);
  const value = { m: new Map<unknown, unknown>([[1, 'a'], ['k', [1, 2]]]), s: new Set([1, 'x']), d: new Date(86400000), b: 2n ** 70n, u: undefined, n: { deep: [null, true, -1.5, 'ü'] } };
  const result = await host.run('echo', 'main', [value]) as { back: typeof value; kinds: unknown[] };
  assert.equal(result.kinds, [true, true, true, 'bigint', true, undefined]);
  assert.equal(result.back, value);
  assert.equal(services.calls[0]!.args, [value], 'the services got the values as they were');
});

test('calls made in one tick reach the services in one synchronous loop (one batch per server)', async () => {
  const { host, services } = track(makeHost());
  for (let pid = 1; pid <= 8; pid++) services.addPlayer(pid);
  await host.reload('burst', `
    export async function main(pids) {
      const added = await Promise.all(pids.map((pid) => cproxyplayer.new(pid).addgold(pid, 'burst')));
      const counts = await Promise.all(pids.map((pid) => cproxyplayer.new(pid).itemdb.getitemcount(1)));
      return { added, counts };
    }`);
  const result = await host.run('burst', 'main', [[1, 2, 3, 4, 5, 6, 7, 8]]);
  assert.equal(result, { added: [1, 2, 3, 4, 5, 6, 7, 8], counts: [0, 0, 0, 0, 0, 0, 0, 0] });
  const loops = services.loops();
  assert.is(loops.length, 2, 'two ticks of calls, two loops');
  assert.equal(loops[0]!.map((call) => call.path.join('.')), Array(8).fill('addgold'));
  assert.equal(loops[1]!.map((call) => call.path.join('.')), Array(8).fill('itemdb.getitemcount'));
});

test('many calls of one bundle in flight at once each get their own answer', async () => {
  const { host, services } = track(makeHost());
  for (let pid = 1; pid <= 64; pid++) services.addPlayer(pid);
  await host.reload('each', `export async function main(pid) { return [pid, await cproxyplayer.new(pid).addgold(pid * 2, 'x')]; }`);
  const results = await Promise.all(Array.from({ length: 64 }, (_, i) => host.run('each', 'main', [i + 1])));
  assert.equal(results, Array.from({ length: 64 }, (_, i) => [i + 1, (i + 1) * 2]));
  assert.is(services.calls.length, 64);
});

test('the remote player proxy: await on a namespace, symbols and string conversion send nothing; paths are memoized', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(9);
  await host.reload('proxy', `
    export async function main() {
      const player = cproxyplayer.new(9);
      const awaited = await player.itemdb;                 // then is undefined: nothing sent
      const resolved = await Promise.resolve(player);
      return {
        awaitedIsPlayerDb: awaited === player.itemdb,
        resolvedIsPlayer: resolved === player,
        same: player.itemdb === player.itemdb && player.itemdb.additembytype === player.itemdb.additembytype,
        text: String(player.itemdb) + ' ' + \`\${player}\`,
        iterator: player[Symbol.iterator],
        json: JSON.stringify({ p: player }),
        keys: Object.keys(player).length,
        hasGold: 'addgold' in player,
      };
    }
    export async function writes() {
      const player = cproxyplayer.new(9);
      try { player.gold = 5; } catch (error) { return error.message; }
      return 'assigned';
    }
    export async function callRoot() {
      return await cproxyplayer.new(9)();
    }`);
  const result = await host.run('proxy', 'main');
  assert.equal(result, {
    awaitedIsPlayerDb: true, resolvedIsPlayer: true, same: true,
    text: '[remote player 9: itemdb] [remote player 9]', iterator: undefined, json: '{}', keys: 0, hasGold: false,
  });
  assert.match(String(await host.run('proxy', 'writes')), /cannot be set: a remote player only takes method calls/);
  const root = await rejection(host.run('proxy', 'callRoot'));
  assert.match(root.message, /is a remote player, not a function: call one of its methods/);
  assert.is(services.calls.length, 0, 'none of that sent a call');
});

test('host errors arrive in the sandbox with their kind and a message that says what to do', async () => {
  const { host, services, hostLog } = track(makeHost());
  services.addPlayer(3);
  services.methods.set('broken', () => {
    throw new Error('disk on fire');
  });
  await host.reload('errors', `
    async function attempt(call) {
      try { await call(); return 'ok'; } catch (error) { return { kind: error.kind, name: error.name, message: error.message, details: error.details, isError: error instanceof Error }; }
    }
    export async function main() {
      return [
        await attempt(() => cproxyplayer.new(404).addgold(1, 'x')),
        await attempt(() => cproxyplayer.new(3).constructor()),
        await attempt(() => cproxyplayer.new(3).broken()),
      ];
    }`);
  const [offline, notExported, internal] = await host.run('errors', 'main') as Record<string, unknown>[];
  assert.equal(offline, {
    kind: 'PlayerOffline', name: 'PlayerOfflineError', message: 'player 404 is offline; try again when he logs in',
    details: { pid: 404 }, isError: true,
  });
  assert.is(notExported!.kind, 'NotExported');
  assert.match(String(notExported!.message), /player\.constructor is not exported/);
  assert.is(internal!.kind, 'Internal');
  assert.match(String(internal!.message), /player\.broken failed on the server: disk on fire\. This is a server bug, not a script bug/);
  assert.ok(hostLog.some((line) => line.includes('disk on fire')), 'the host logged its own failure');
});

test('an uncaught remote error fails the run with its kind, at the line of the call', async () => {
  const { host } = track(makeHost());
  await host.reload('uncaught', `export async function main() {\n  const player = cproxyplayer.new(77);\n  await player.addgold(1, 'x');\n}`);
  const error = await rejection(host.run('uncaught', 'main')) as ScriptError;
  assert.instance(error, ScriptError);
  assert.is(error.kind, 'PlayerOffline');
  assert.is(error.errorName, 'PlayerOfflineError');
  assert.match(error.message, /^uncaught\.main failed at uncaught\.bundle\.js:3:\d+: PlayerOfflineError: player 77 is offline/);
});

test("the caller's own mistakes: unknown bundle, unexported function, arguments that are not values", async () => {
  const { host } = track(makeHost());
  await host.reload('small', `export function main(x) { return x; }\nexport const notAFunction = 1;`);
  const missing = await rejection(host.run('nope', 'main'));
  assert.instance(missing, NotFoundError);
  assert.match(missing.message, /no script bundle named "nope" is loaded on this server; load it first \(loaded: small\)/);
  const unexported = await rejection(host.run('small', 'notAFunction'));
  assert.instance(unexported, NotExportedError);
  assert.match(unexported.message, /bundle small exports no function "notAFunction"; it exports main/);
  const proto = await rejection(host.run('small', '__proto__'));
  assert.instance(proto, NotExportedError);
  const args = await rejection(host.run('small', 'main', [{ f: () => 1 }]));
  assert.instance(args, ValueTypeError);
  assert.match(args.message, /small\.main: args\[0\]\.f is a function/);
  assert.instance(await rejection(host.load('small', 'export function main() {}')), ConfigError, 'load refuses a name already loaded');
  assert.instance(await rejection(host.reload('../etc', 'export function main() {}')), ConfigError, 'bundle names are plain');
});

test('what is not a value is refused inside the sandbox, naming the argument and its path, and nothing is sent', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(1);
  await host.reload('refusals', `
    class Reward { constructor(gold) { this.gold = gold; } }
    const cyclic = { name: 'loop' }; cyclic.self = cyclic;
    const player = () => cproxyplayer.new(1);
    const cases = {
      fn: () => player().mail.send({ title: 't', body: 'b', items: [{ type: 1, count: () => 2 }] }, 'x'),
      nestedFn: () => player().itemdb.additembytype(1, 1, { items: [() => 1] }, 'x'),
      instance: () => player().itemdb.additembytype(1, 1, new Reward(5), 'x'),
      symbol: () => player().addgold(Symbol('gold'), 'x'),
      symbolKey: () => player().itemdb.additembytype(1, 1, { [Symbol('k')]: 1 }, 'x'),
      cycle: () => player().itemdb.additembytype(1, 1, cyclic, 'x'),
      huge: () => player().addgold(1, 'x'.repeat(10 * 1024 * 1024)),
      proxy: () => player().itemdb.additembytype(1, 1, new Proxy({}, {}), 'x'),
      remotePlayer: () => player().itemdb.additembytype(1, 1, { who: player() }, 'x'),
      regexp: () => player().addgold(1, /x/),
      typed: () => player().addgold(1, new Uint8Array(4)),
    };
    export async function main(name) {
      try { await cases[name](); return 'sent'; }
      catch (error) { return { kind: error.kind, name: error.name, message: error.message, path: error.details && error.details.path }; }
    }`);
  const expect: Record<string, RegExp> = {
    fn: /^player\.mail\.send: args\[0\]\.items\[0\]\.count is a function \(count\); only value types cross servers \(.*\)\. Pass plain data instead\.$/,
    nestedFn: /^player\.itemdb\.additembytype: args\[2\]\.items\[0\] is a function/,
    instance: /^player\.itemdb\.additembytype: args\[2\] is an instance of Reward/,
    symbol: /^player\.addgold: args\[0\] is a symbol \(gold\)/,
    symbolKey: /args\[2\] is an object with symbol keys/,
    cycle: /args\[2\]\.self is a cycle/,
    huge: /^player\.addgold: args\[1\] is too large \(over 1048576 bytes in all\)/,
    proxy: /args\[2\] is a proxy/,
    remotePlayer: /args\[2\]\.who is a proxy \(a remote player cannot be sent: send its pid instead\)/,
    regexp: /args\[1\] is an instance of RegExp/,
    typed: /args\[1\] is an instance of Uint8Array/,
  };
  for (const [name, pattern] of Object.entries(expect)) {
    const result = await host.run('refusals', 'main', [name]) as { kind: string; name: string; message: string };
    assert.is(result.kind, 'ValueType', name);
    assert.is(result.name, 'ValueTypeError', name);
    assert.match(result.message, pattern, `${name}: ${result.message}`);
  }
  assert.is(services.calls.length, 0, 'nothing reached the services');
});

test('results that are not values are refused too: from the script and from the services', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(1);
  services.methods.set('leaky', () => ({ handle: () => 'host function' }));
  await host.reload('results', `
    export function fn() { return { later: () => 1 }; }
    export async function leaky() {
      try { await cproxyplayer.new(1).leaky(); } catch (error) { return [error.kind, error.message]; }
    }`);
  const fromScript = await rejection(host.run('results', 'fn')) as ScriptError;
  assert.instance(fromScript, ScriptError);
  assert.is(fromScript.kind, 'ValueType');
  assert.match(fromScript.message, /results\.fn: result\.later is a function/);
  const [kind, message] = await host.run('results', 'leaky') as string[];
  assert.is(kind, 'ValueType');
  assert.match(message!, /the answer to player\.leaky: result\.handle is a function/);
});

test('a bundle loads only when it is sound: no remote calls at top level, top-level errors name the line, a failed reload keeps the old version', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(1);
  await host.reload('top', `
    export const early = cproxyplayer.new(1).addgold(1, 'top level').then(() => 'sent', (error) => error.message);
    export async function main() { return early; }`);
  assert.match(String(await host.run('top', 'main')), /made a request while none of its calls was running \(at its top level/);
  assert.is(services.calls.length, 0);

  await host.reload('versioned', `export function main() { return 'v1'; }`);
  const broken = await rejection(host.reload('versioned', `export function main() { return 'v2'; }\nnull.boom;`)) as ScriptError;
  assert.instance(broken, ScriptError);
  assert.match(broken.message, /^bundle versioned failed to load at versioned\.bundle\.js:2:\d+: TypeError: Cannot read properties of null/);
  assert.is(await host.run('versioned', 'main'), 'v1', 'the old version keeps serving');

  const imports = await rejection(host.reload('imports', `import fs from 'fs';\nexport function main() { return fs; }`));
  assert.match(imports.message, /bundle imports imports "fs": a script bundle must be self-contained; bundle it with `kuafu bundle`/);
  const syntax = await rejection(host.reload('syntax', `export function main( { return 1 }`));
  assert.match(syntax.message, /bundle syntax failed to load.*SyntaxError/);
});

test('reload while calls are in flight: they finish on their version, new calls run the new one, the old isolate goes when they end', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(1, { gold: 100 });
  services.hold('getgold');
  const source = (version: string) => `export async function main() { const gold = await cproxyplayer.new(1).getgold(); return '${version}:' + gold; }`;
  const v1 = await host.reload('live', source('v1'));
  const first = host.run('live', 'main');
  const second = host.run('live', 'main');
  const heldV1 = await services.held('getgold', 2);

  const info = await host.reload('live', source('v2'));
  assert.ok(info.version > v1.version, 'a new version number');
  let stats = host.stats('live');
  assert.is(stats.retiring, 1, 'the old isolate is kept for its calls');
  assert.is(stats.retiringInFlight, 2);

  const third = host.run('live', 'main');
  const [heldV2] = await services.held('getgold', 1);
  heldV2!.answer(300);
  assert.is(await third, 'v2:300', 'a new call runs the new version');

  heldV1[0]!.answer(100);
  assert.is(await first, 'v1:100', 'a call in flight finishes on the version it started on');
  stats = host.stats('live');
  assert.is(stats.retiring, 1, 'one v1 call still in flight');
  heldV1[1]!.answer(200);
  assert.is(await second, 'v1:200');
  stats = host.stats('live');
  assert.is(stats.retiring, 0, 'the old isolate is disposed once its calls ended');
  assert.is(stats.inFlight, 0);
});

test('stats and cold-load measurement report load time and idle memory of a bundle', async () => {
  const { host } = track(makeHost());
  await host.loadFile('scripts/examples/test_rpc.ts');
  const stats = host.stats('test_rpc');
  assert.is(stats.live, true);
  assert.ok(stats.coldLoadMs! > 0);
  assert.ok(stats.heapUsedMiB! > 0 && stats.heapUsedMiB! < 64, `heap ${stats.heapUsedMiB} MiB`);
  const measured = await host.measureColdLoad('test_rpc', 3);
  assert.is(measured.samples, 3);
  assert.ok(measured.minMs > 0 && measured.minMs <= measured.medianMs && measured.medianMs <= measured.maxMs);
  assert.ok(measured.idleMiB > 0 && measured.idleMiB < 64);
  assert.is(host.stats('test_rpc').isolatesMade, 0, 'measuring does not touch the live isolate');
  console.log(`  cold load ${measured.medianMs.toFixed(2)} ms (median of 3), idle ${measured.idleMiB.toFixed(2)} MiB`);
});

test('calls leave nothing behind: the isolate holds as many handles after a thousand calls as after ten', async () => {
  const { host, services } = track(makeHost());
  services.addPlayer(1);
  services.methods.set('echo', (_player, args) => new Map([[1, args[0]]]));
  await host.reload('steady', `
    export async function main(i) {
      const player = cproxyplayer.new(1);
      const [echoed, gold] = await Promise.all([player.echo({ i, at: new Date(0) }), player.addgold(1, 'steady')]);
      log.debug(echoed);
      try { await cproxyplayer.new(999).addgold(1, 'x'); } catch {}
      return { size: echoed.size, gold };
    }`);
  for (let i = 0; i < 10; i++) await host.run('steady', 'main', [i]);
  const before = host.stats('steady').references;
  for (let i = 0; i < 1000; i++) assert.equal(await host.run('steady', 'main', [i]), { size: 1, gold: 1 });
  assert.is(host.stats('steady').references, before);
  assert.is(host.stats('steady').inFlight, 0);
});

test('close stops calls in flight with a clear error and refuses new ones', async () => {
  const { host, services } = makeHost();
  services.addPlayer(1);
  services.hold('getgold');
  await host.reload('closing', `export async function main() { return cproxyplayer.new(1).getgold(); }`);
  const pending = host.run('closing', 'main');
  await services.held('getgold');
  await host.close();
  const stopped = await rejection(pending) as ScriptError;
  assert.is(stopped.kind, 'Stopped');
  assert.match(stopped.message, /call main was stopped: the script host was closed; it did not finish/);
  assert.instance(await rejection(host.run('closing', 'main')), ConfigError);
});

test.run();
