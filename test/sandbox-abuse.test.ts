/**
 * Escape and abuse (issue 4): scripts that try to leave the sandbox or break the server. Each gets
 * a clear error, the host stays alive, and other bundles keep answering — the ones in flight
 * included. Real isolates; a recording ScriptServices.
 *
 * Hardening (issue 10, findings 2-4): a buggy script cannot freeze or bloat a server. Those tests
 * run real game servers (in this process, on the memory store: every answer a script awaits is
 * settled without I/O) and check by events, never by elapsed time: a bystander's call is answered
 * while the runaway call is still running.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KuafuClient } from '../runtime/client/kuafu-client.js';
import { loadConfig } from '../runtime/cluster/config.js';
import { startServers } from '../runtime/cluster/start.js';
import type { ServerNode } from '../runtime/cluster/server-node.js';
import { ScriptFailedError } from '../runtime/errors.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { PeerClient } from '../runtime/rpc/peer-client.js';
import { ScriptError, ScriptHost, ScriptLimitError, type ScriptHostOptions } from '../runtime/sandbox/index.js';
import { quietly } from './harness/cluster.js';
import { RecordingServices, quietLogger, rejection } from './fixtures/script-services.js';

const test = suite('sandbox abuse');

const hosts: ScriptHost[] = [];
const closers: Array<() => unknown> = [];
test.after.each(async () => {
  // A failure while closing is reported, not thrown: a throwing hook would end the suite early.
  for (const close of [...hosts.splice(0).map((host) => () => host.close()), ...closers.splice(0).reverse()]) {
    try {
      await close();
    } catch (error) {
      console.error('  closing after the test failed:', error);
    }
  }
});

function makeHost(options: Partial<ScriptHostOptions> = {}) {
  const services = new RecordingServices();
  const hostLog: string[] = [];
  const host = new ScriptHost({ services, logger: quietLogger(hostLog), ...options });
  hosts.push(host);
  return { host, services, hostLog };
}


/** A well-behaved bundle that reaches a player: it must keep answering through everything below. */
const GOOD = `export async function main(pid) { return 'good:' + await cproxyplayer.new(pid).addgold(1, 'good'); }`;

/** Loads GOOD and starts a call of it that waits (held) on the services: in flight while the abuse happens. */
async function goodInFlight(host: ScriptHost, services: RecordingServices) {
  services.addPlayer(1);
  services.hold('addgold');
  await host.reload('good', GOOD);
  const call = host.run('good', 'main', [1]);
  call.catch(() => {}); // awaited in finish(); a test that fails earlier must not crash the file
  const [held] = await services.held('addgold');
  return {
    call,
    /** Answers the held call, and checks the bundle still answers fresh calls too. */
    async finish() {
      held!.answer(1);
      assert.is(await call, 'good:1', 'the call in flight of the other bundle finished');
      const fresh = host.run('good', 'main', [1]);
      const [again] = await services.held('addgold');
      again!.answer(1);
      assert.is(await fresh, 'good:1', 'and it takes new calls');
    },
  };
}

test('the sandbox has exactly the script globals: no process, require, timers, console or host objects', async () => {
  const { host } = makeHost();
  await host.reload('globals', `
    export function main() {
      const names = Object.getOwnPropertyNames(globalThis);
      return {
        script: ['playermgr', 'cproxyplayer', 'services', 'log'].filter((name) => names.includes(name)),
        missing: ['process', 'require', 'module', 'global', 'Buffer', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask',
          'console', 'fetch', 'WebAssembly', 'SharedArrayBuffer', 'Atomics', '_ivm', 'ivm', '__kuafuSdk']
          .filter((name) => name in globalThis || typeof globalThis[name] !== 'undefined'),
        unexpected: names.filter((name) => !STANDARD.has(name)),
        typeofs: [typeof process, typeof require, typeof setTimeout, typeof console],
      };
    }
    const STANDARD = new Set(['Object', 'Function', 'Array', 'Number', 'parseFloat', 'parseInt', 'Infinity', 'NaN', 'undefined',
      'Boolean', 'String', 'Symbol', 'Date', 'Promise', 'RegExp', 'Error', 'AggregateError', 'EvalError', 'RangeError',
      'ReferenceError', 'SyntaxError', 'TypeError', 'URIError', 'globalThis', 'JSON', 'Math', 'Intl', 'ArrayBuffer',
      'Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array',
      'Uint8ClampedArray', 'BigUint64Array', 'BigInt64Array', 'DataView', 'Map', 'BigInt', 'Set', 'WeakMap', 'WeakSet',
      'Proxy', 'Reflect', 'FinalizationRegistry', 'WeakRef', 'decodeURI', 'decodeURIComponent', 'encodeURI',
      'encodeURIComponent', 'escape', 'unescape', 'eval', 'isFinite', 'isNaN', 'playermgr', 'cproxyplayer', 'services', 'log']);`);
  assert.equal(await host.run('globals', 'main'), {
    script: ['playermgr', 'cproxyplayer', 'services', 'log'],
    missing: [],
    unexpected: [],
    typeofs: ['undefined', 'undefined', 'undefined', 'undefined'],
  });
});

test('process, require and constructor.constructor("return process")() each fail with a clear error', async () => {
  const { host, services } = makeHost();
  const good = await goodInFlight(host, services);
  await host.reload('escape', `
    export function usesProcess() { return process.env; }
    export function usesRequire() { return require('fs').readFileSync('/etc/passwd', 'utf8'); }
    export function viaConstructor() { return ({}).constructor.constructor('return process')().env; }
    export function viaFunctionThis() { return Function('return this')().process; }
    export function viaImport() { return import('fs'); }`);
  const processError = await rejection(host.run('escape', 'usesProcess')) as ScriptError;
  assert.instance(processError, ScriptError);
  assert.match(processError.message, /^escape\.usesProcess failed at escape\.bundle\.js:2:\d+: ReferenceError: process is not defined$/);
  const requireError = await rejection(host.run('escape', 'usesRequire'));
  assert.match(requireError.message, /ReferenceError: require is not defined/);
  const viaConstructor = await rejection(host.run('escape', 'viaConstructor'));
  assert.match(viaConstructor.message, /ReferenceError: process is not defined/);
  assert.is(await host.run('escape', 'viaFunctionThis'), undefined, 'the global object of the sandbox has no process');
  const viaImport = await rejection(host.run('escape', 'viaImport'));
  assert.instance(viaImport, ScriptError);
  assert.match(viaImport.message, /escape\.viaImport failed at escape\.bundle\.js:6:\d+: Error: Not supported/);
  await good.finish();
});

test('an endless loop is stopped at the synchronous-work limit; the bundle is made again on its next call', async () => {
  const { host, services } = makeHost({ syncLimitMs: 500 });
  const good = await goodInFlight(host, services);
  await host.reload('spin', `
    let calls = 0;
    export function main() { calls++; while (true) {} }
    export function count() { return ++calls; }
    export async function later() { await null; for (;;) {} }`);
  assert.is(await host.run('spin', 'count'), 1);
  const error = await rejection(host.run('spin', 'main')) as ScriptLimitError;
  assert.instance(error, ScriptLimitError);
  assert.is(error.limit, 'cpu');
  assert.is(error.kind, 'Timeout');
  assert.match(error.message, /^bundle spin ran JavaScript for more than 500 ms without awaiting during call main .*its isolate was stopped and will be made again on its next call\. Look for an endless loop\.$/);
  assert.is(host.stats('spin').live, false, 'the isolate is gone');
  assert.is(await host.run('spin', 'count'), 1, 'a fresh isolate: its state starts over');
  assert.is(host.stats('spin').isolatesMade, 1);
  const afterAwait = await rejection(host.run('spin', 'later')) as ScriptLimitError;
  assert.is(afterAwait.limit, 'cpu', 'a loop after an await is stopped too');
  await good.finish();
});

test('an allocation bomb breaks the memory limit: stopped with an error naming the limit and the bundle', async () => {
  const { host, services } = makeHost({ memoryLimitMiB: 16, syncLimitMs: 20_000, deadlineMs: 30_000 });
  const good = await goodInFlight(host, services);
  await host.reload('bomb', `
    export function main() { const keep = []; for (;;) keep.push(new Array(100000).fill(Math.random())); }
    export function ok() { return 'ok'; }`);
  const error = await rejection(host.run('bomb', 'main')) as ScriptLimitError;
  assert.instance(error, ScriptLimitError);
  assert.is(error.limit, 'memory');
  assert.is(error.kind, 'MemoryLimit');
  assert.match(error.message, /^bundle bomb broke its memory limit \(16 MiB\) during call main; its isolate was stopped/);
  assert.is(await host.run('bomb', 'ok'), 'ok', 'made again on the next call');
  await good.finish();
});

test('an await that never settles hits the wall-clock deadline while other bundles keep answering', async () => {
  const { host, services } = makeHost({ deadlineMs: 3000 });
  services.addPlayer(2);
  await host.reload('hang', `
    export async function main() { await new Promise(() => {}); return 'never'; }
    export async function quick() { return 'quick'; }`);
  await host.reload('other', GOOD);
  let settled = false;
  const hung = host.run('hang', 'main').finally(() => {
    settled = true;
  });
  // Meanwhile (the hung call is still waiting), the other bundle answers, twice, with remote calls.
  assert.is(await host.run('other', 'main', [2]), 'good:1');
  assert.is(await host.run('other', 'main', [2]), 'good:1');
  assert.is(settled, false, 'the hung call was still waiting while the other bundle answered');
  const error = await rejection(hung) as ScriptLimitError;
  assert.instance(error, ScriptLimitError);
  assert.is(error.limit, 'deadline');
  assert.match(error.message, /^bundle hang did not finish call main within its 3000 ms deadline \(wall clock, awaits included; it used [\d.]+ ms of CPU meanwhile\); .*Look for an await that never settles/);
  assert.is(await host.run('hang', 'quick'), 'quick', 'the bundle answers again, on a new isolate');
});

test('a remote call that never answers is bounded by the deadline too, and other calls of that isolate are stopped with a clear error', async () => {
  const { host, services } = makeHost({ deadlineMs: 2500 });
  services.addPlayer(3);
  services.hold('getgold');
  await host.reload('slow', `
    export async function main() { return await cproxyplayer.new(3).getgold(); }
    export async function waits() { await cproxyplayer.new(3).getgold(); return 'late'; }`);
  const first = host.run('slow', 'main');
  await services.held('getgold', 1);
  const second = host.run('slow', 'waits');
  const [late] = await services.held('getgold', 1);
  const deadline = await rejection(first) as ScriptLimitError;
  assert.is(deadline.limit, 'deadline');
  const stopped = await rejection(second) as ScriptError;
  assert.is(stopped.kind, 'Stopped');
  assert.match(stopped.message, /^bundle slow: call waits was stopped: call main of the same bundle broke its 2500 ms deadline and the bundle's isolate was disposed; retry it; it did not finish$/);
  late!.answer(5); // an answer after the isolate was disposed is dropped
  const [fresh] = await Promise.all([host.run('slow', 'main'), services.held('getgold', 1).then(([held]) => held!.answer(7))]);
  assert.is(fresh, 7);
});

test('globalThis tampering stays inside its own bundle: other bundles, and the SDK of the same bundle, are unaffected', async () => {
  const { host, services } = makeHost();
  const good = await goodInFlight(host, services);
  services.hold('itemdb.additembytype');
  void services.held('itemdb.additembytype').then(([held]) => held!.answer(2));
  await host.reload('tamper', `
    export async function main() {
      const attempts = {};
      try { cproxyplayer = { new() { return 'fake'; } }; attempts.assign = 'assigned'; } catch (error) { attempts.assign = error.constructor.name; }
      try { Object.defineProperty(globalThis, 'playermgr', { value: 1 }); attempts.define = 'defined'; } catch (error) { attempts.define = error.constructor.name; }
      try { cproxyplayer.new = () => 'fake'; attempts.method = 'assigned'; } catch (error) { attempts.method = error.constructor.name; }
      try { delete globalThis.log; attempts.deleted = 'deleted'; } catch (error) { attempts.deleted = error.constructor.name; }
      Object.prototype.polluted = 'yes';
      Array.prototype.push = function () { throw new Error('push is broken'); };
      Array.prototype[Symbol.iterator] = function () { throw new Error('iteration is broken'); };
      Map.prototype.set = function () { throw new Error('Map.set is broken'); };
      Object.keys = () => { throw new Error('keys is broken'); };
      Promise.prototype.then = function () { throw new Error('then is broken'); };
      JSON.stringify = () => 'broken';
      return attempts;
    }
    export async function after() {
      // The SDK captured what it needs before the script ran: remote calls and checks still work.
      const player = cproxyplayer.new(1);
      let refusal = 'sent';
      try { await player.addgold(() => 1, 'x'); } catch (error) { refusal = error.message; }
      let thenBroken = false;
      try { Promise.resolve(1).then(() => 1); } catch { thenBroken = true; }
      return { polluted: ({}).polluted, refusal, thenBroken, count: await player.itemdb.additembytype(5, 2, { quality: [1, 2] }, 'x') };
    }`);
  assert.equal(await host.run('tamper', 'main'), { assign: 'TypeError', define: 'TypeError', method: 'TypeError', deleted: 'TypeError' });
  const after = await host.run('tamper', 'after') as { polluted: string; refusal: string; thenBroken: boolean; count: number };
  assert.is(after.polluted, 'yes', 'the pollution is there, in its own isolate');
  assert.is(after.thenBroken, true, 'and Promise.prototype.then is broken there');
  assert.is(after.count, 2, 'yet a remote call with an array argument went out and came back');
  assert.match(after.refusal, /player\.addgold: args\[0\] is a function/);
  await host.reload('clean', `export function main() { return { polluted: ({}).polluted, keys: Object.keys({ a: 1 }), cproxy: typeof cproxyplayer.new, json: JSON.stringify([1]) }; }`);
  assert.equal(await host.run('clean', 'main'), { polluted: undefined, keys: ['a'], cproxy: 'function', json: '[1]' });
  await good.finish();
});

test('a script that throws, or throws what is not an Error, gives a ScriptError and nothing else changes', async () => {
  const { host, services } = makeHost();
  const good = await goodInFlight(host, services);
  await host.reload('throws', `
    export function plain() { throw new TypeError('bad input'); }
    export async function rejects() { throw new RangeError('too far'); }
    export function string() { throw 'just a string'; }
    export function object() { throw { toString() { throw new Error('nope'); } }; }
    export function deep() { return deep(); }
    export function fine() { return 'fine'; }`);
  const plain = await rejection(host.run('throws', 'plain')) as ScriptError;
  assert.is(plain.kind, 'Script');
  assert.is(plain.errorName, 'TypeError');
  assert.match(plain.message, /^throws\.plain failed at throws\.bundle\.js:2:\d+: TypeError: bad input$/);
  assert.match((await rejection(host.run('throws', 'rejects'))).message, /RangeError: too far/);
  assert.match((await rejection(host.run('throws', 'string'))).message, /the script threw a value that is not an Error: just a string \(throw new Error\("…"\) to get a stack\)/);
  assert.match((await rejection(host.run('throws', 'object'))).message, /the script threw a value that is not an Error/);
  assert.match((await rejection(host.run('throws', 'deep'))).message, /RangeError: Maximum call stack size exceeded/);
  assert.is(await host.run('throws', 'fine'), 'fine', 'the isolate survives a thrown error');
  assert.is(host.stats('throws').isolatesMade, 0);
  await good.finish();
});

test('a promise the script leaves unhandled is reported in the log; its call and the isolate go on', async () => {
  const { host, services } = makeHost();
  services.addPlayer(1);
  await host.reload('careless', `
    export async function main() {
      cproxyplayer.new(404).addgold(1, 'fire and forget');   // rejects later: PlayerOffline
      Promise.reject(new RangeError('nobody listens'));       // rejects now
      const gold = await cproxyplayer.new(1).addgold(5, 'awaited');
      return 'done:' + gold;
    }`);
  assert.is(await host.run('careless', 'main'), 'done:5');
  assert.is(await host.run('careless', 'main'), 'done:5');
  const unhandled = services.logs.filter((line) => line.level === 'error').map((line) => line.message);
  assert.ok(unhandled.length >= 2, JSON.stringify(unhandled));
  assert.ok(unhandled.every((line) => line.startsWith('a promise the script did not handle was rejected (await it, or add .catch): ')));
  assert.ok(unhandled.some((line) => /RangeError: nobody listens\n {4}at main \(careless\.bundle\.js:4:\d+\)/.test(line)), JSON.stringify(unhandled));
  assert.ok(unhandled.some((line) => line.includes('player 404 is offline')), JSON.stringify(unhandled));
  assert.is(host.stats('careless').isolatesMade, 0, 'the isolate was not stopped');
});

test('a flood of remote calls is held to the limit of calls waiting at once; the rest are refused with a clear error', async () => {
  const { host, services } = makeHost({ maxRequestsInFlight: 100 });
  services.addPlayer(1);
  await host.reload('flood', `
    export async function main(count) {
      const player = cproxyplayer.new(1);
      const results = await Promise.allSettled(Array.from({ length: count }, () => player.addgold(1, 'flood')));
      const refused = results.filter((result) => result.status === 'rejected');
      return { sent: count - refused.length, refused: refused.length, kind: refused[0] && refused[0].reason.kind, message: refused[0] && refused[0].reason.message };
    }`);
  const result = await host.run('flood', 'main', [250]) as { sent: number; refused: number; kind: string; message: string };
  assert.is(result.sent, 100);
  assert.is(result.refused, 150);
  assert.is(result.kind, 'Sandbox');
  assert.match(result.message, /^bundle flood has 100 remote calls waiting for answers, the most it may; await some before making more/);
  assert.is(services.calls.length, 100, 'only the allowed ones reached the services');
  assert.equal(await host.run('flood', 'main', [100]), { sent: 100, refused: 0, kind: undefined, message: undefined }, 'answered calls make room again');
});

test('log floods are cut to the line limit, and a script cannot log host objects it does not have', async () => {
  const { host, services } = makeHost({ maxLogChars: 200 });
  await host.reload('chatty', `
    export function main() {
      log.info('x'.repeat(10000));
      log.warn({ a: [1, { b: new Map([[1, new Set([2])]]) }], d: new Date(0), n: 10n, u: undefined, f: function named() {} });
      log.debug(cproxyplayer.new(5), cproxyplayer.new(5).itemdb);
      const cyclic = {}; cyclic.self = cyclic; log.error(cyclic);
      return 'logged';
    }`);
  assert.is(await host.run('chatty', 'main'), 'logged');
  const lines = services.logs.map((line) => [line.level, line.bundle, line.message]);
  assert.is(lines.length, 4);
  assert.match(String(lines[0]![2]), /^x{200}… \(cut: the line had 10000 characters\)$/);
  assert.equal(lines[1], ['warn', 'chatty', '{ a: [1, { b: Map(1) { 1 => Set(1) { 2 } } }], d: 1970-01-01T00:00:00.000Z, n: 10n, u: undefined, f: [Function: named] }']);
  assert.equal(lines[2], ['debug', 'chatty', '[remote player 5] [remote player 5: itemdb]']);
  assert.equal(lines[3], ['error', 'chatty', '{ self: [Circular] }']);
  assert.is(services.calls.length, 0, 'printing a remote player calls nothing');
});

test('a script that logs in a loop is held to the lines-per-second limit; the dropped lines are counted', async () => {
  const { host, services } = makeHost({ maxLogLinesPerSecond: 50 });
  await host.reload('spam', `export function main(n) { for (let i = 0; i < n; i++) log.info('line', i); return n; }`);
  assert.is(await host.run('spam', 'main', [10_000]), 10_000);
  assert.ok(services.logs.length <= 100, `${services.logs.length} lines reached the log`);
  assert.ok(services.logs.length >= 50);
  assert.is(services.logs[0]!.message, 'line 0');
  // The next line written once the window has passed says how many were dropped.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await host.run('spam', 'main', [1]);
  assert.match(services.logs.at(-1)!.message, /^\(\d+ line\(s\) dropped before this one: more than 50 a second\) line 0$/);
});

// ---- hardening (issue 10): a buggy script cannot freeze or bloat a server ------------------------

const SECRET = 'sandbox-abuse-secret-0123456789';

/**
 * A real game server HS in this process on the memory store (so a script's awaits are answered
 * without I/O), with a gateway and an RPC port; `login(pid)` logs a player in at HS, `bystander`
 * asks HS over RPC for an unrelated player's gold.
 */
async function gameServer(config: { scriptLimits?: Record<string, number>; scriptWorker?: boolean }) {
  const dir = mkdtempSync(join(tmpdir(), 'kuafu-sandbox-abuse-'));
  const path = join(dir, 'cluster.json');
  writeFileSync(path, JSON.stringify({
    secret: SECRET, host: '127.0.0.1', store: { kind: 'memory' }, scriptsDir: '', heartbeatMs: 1000, ...config,
    servers: [{ name: 'HS', roles: ['game'], rpcPort: 0, gatewayPort: 0 }],
  }));
  const running = await quietly(() => startServers(loadConfig(path, {}), ['HS']));
  closers.push(() => running.stop());
  const hs: ServerNode = running.nodes[0]!;
  const peer = new PeerClient({ self: 'abuse-test', peer: 'HS', secret: SECRET, resolveUrl: () => hs.rpcUrl });
  closers.push(() => peer.close());
  let calls = 0;
  return {
    hs,
    peer,
    scripts: hs.game!.scripts.host,
    async login(pid: number): Promise<void> {
      const client = new KuafuClient({ pid, homeUrl: hs.gatewayUrl, loginToken: () => issueLoginToken(SECRET, pid, 'HS') });
      closers.push(() => client.close());
      await client.login();
    },
    bystander: (pid: number) => peer.call<number>('player.invoke', { pid, path: ['getgold'], args: [], id: `bystander-${++calls}` }, { timeoutMs: 60_000 }),
    /** Resolves when the server's log gets a script line containing `text` (script log lines go to the server's log). */
    logged(text: string): Promise<void> {
      return new Promise((resolve) => {
        for (const level of ['info', 'warn'] as const) {
          const original = hs.log[level];
          hs.log[level] = (message: string) => {
            if (message.includes(text)) resolve();
            original.call(hs.log, message);
          };
        }
      });
    },
  };
}

/** Marks when `promise` settles (without handling its outcome for the caller). */
function watch<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  return { promise, settled: () => done };
}

for (const scriptWorker of [false, true]) {
  const where = scriptWorker ? 'in the script worker' : 'on the main thread';
  test(`finding 2 (${where}): a script looping on awaits answered without I/O is stopped at its deadline, and the server answers others meanwhile`, async () => {
    const server = await gameServer({ scriptWorker, scriptLimits: { deadlineMs: 1500 } });
    await server.login(101);
    await server.login(102);
    await server.scripts.reload('await_loop', `
      export async function main(pid, forMs) {
        const player = cproxyplayer.new(pid);   // on this server: each getgold is answered without I/O
        const end = Date.now() + forMs;
        let rounds = 0;
        while (Date.now() < end) { await player.getgold(); rounds++; }
        return rounds;
      }`);
    // Left alone, it loops for 8 s; its deadline is 1.5 s.
    const loop = watch(server.scripts.run('await_loop', 'main', [101, 8000]));
    for (let i = 0; i < 3; i++) {
      assert.is(await server.bystander(102), 0, 'an unrelated player\'s call is answered');
      assert.is(loop.settled(), false, 'while the looping call is still running');
    }
    const error = await rejection(loop.promise) as ScriptLimitError;
    assert.instance(error, ScriptLimitError, String(error));
    assert.is(error.limit, 'deadline');
    assert.match(error.message, /^bundle await_loop did not finish call main within its 1500 ms deadline \(wall clock, awaits included/);
    assert.is(await server.bystander(102), 0);
  });
}

test('finding 3: with the script worker, a script spinning in a sync loop does not stall the server: others are answered while it spins', async () => {
  const server = await gameServer({ scriptWorker: true, scriptLimits: { syncLimitMs: 3000, deadlineMs: 5000 } });
  await server.login(201);
  await server.scripts.reload('spin', `export function main() { log.info('spinning now'); for (;;) {} }`);
  const spinning = server.logged('spinning now');
  const spin = watch(server.scripts.run('spin', 'main'));
  await spinning; // the log line crossed from the isolate: the loop has begun
  for (let i = 0; i < 3; i++) {
    assert.is(await server.bystander(201), 0, 'an unrelated player\'s call is answered');
    assert.is(spin.settled(), false, 'while the spinning call is still running');
  }
  const error = await rejection(spin.promise) as ScriptLimitError;
  assert.instance(error, ScriptLimitError);
  assert.is(error.limit, 'cpu');
  assert.is(await server.bystander(201), 0);
});

for (const worker of [false, true]) {
  test(`finding 3 (${worker ? 'script worker' : 'main thread'}): a bundle that keeps breaking its limits is quarantined: its callers get kind Quarantined at once, the host logs one line, a reload lifts it`, async () => {
    const { host, services, hostLog } = makeHost({ worker, syncLimitMs: 100, quarantineAfterBreaks: 3, quarantineWindowMs: 60_000, quarantineMs: 60_000 } as Partial<ScriptHostOptions>);
    const good = await goodInFlight(host, services);
    const source = (label: string) => `let runs = 0; export function spin() { runs++; for (;;) {} } export function ok() { return '${label}'; }`;
    await host.reload('runaway', source('v1'));
    for (let i = 0; i < 3; i++) {
      const broke = await rejection(host.run('runaway', 'spin')) as ScriptLimitError;
      assert.is(broke.limit, 'cpu', `break ${i + 1}`);
    }
    const refused = await rejection(host.run('runaway', 'ok')) as ScriptError;
    assert.instance(refused, ScriptError);
    assert.is(refused.kind, 'Quarantined');
    assert.match(refused.message, /^bundle runaway is quarantined for \d+ s more: its calls broke their limits 3 times within 60 s \(the last: spin broke its CPU limit\)\. Its calls are refused until then; fix the script and reload it/);
    assert.ok(Number(refused.details.retryAfterMs) > 0);
    assert.is(host.stats('runaway').isolatesMade, 2, 'no isolate was made for the refused call (made again twice, after breaks 1 and 2)');
    const lines = hostLog.filter((line) => line.includes('quarantined'));
    assert.is(lines.length, 1, JSON.stringify(hostLog));
    assert.match(lines[0]!, /^warn bundle runaway \(version \d+\) quarantined for 60 s: its calls broke their limits 3 times within 60 s/);
    await host.reload('runaway', source('v2'));
    assert.is(await host.run('runaway', 'ok'), 'v2', 'a reload lifts the quarantine');
    await good.finish();
  });
}

test('finding 3: top-level code that breaks a limit when its isolate is made again is quarantined at once, not re-run on every call', async () => {
  const { host, hostLog } = makeHost({ syncLimitMs: 100 });
  // The top level spins only in isolates made after LATER (its first isolate loads fine).
  const later = Date.now() + 300;
  await host.reload('flaky', `
    if (Date.now() > ${later}) { for (;;) {} }
    export function spin() { for (;;) {} }
    export function ok() { return 'ok'; }`);
  assert.is(await host.run('flaky', 'ok'), 'ok');
  while (Date.now() <= later + 10) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.is((await rejection(host.run('flaky', 'spin')) as ScriptLimitError).limit, 'cpu');
  const atLoad = await rejection(host.run('flaky', 'ok')) as ScriptLimitError;
  assert.is(atLoad.limit, 'cpu');
  assert.match(atLoad.message, /while loading \(its top-level code\)/);
  const made = host.stats('flaky').isolatesMade;
  const refused = await rejection(host.run('flaky', 'ok')) as ScriptError;
  assert.is(refused.kind, 'Quarantined');
  assert.match(refused.message, /its top-level code broke its CPU limit when its isolate was made again/);
  assert.is(host.stats('flaky').isolatesMade, made, 'the top level did not run again');
  assert.is(hostLog.filter((line) => line.includes('quarantined')).length, 1);
});

test('finding 3 on a real server: a caller of script.run sees the quarantine as kind Quarantined', async () => {
  const server = await gameServer({ scriptLimits: { syncLimitMs: 100 } }); // quarantined after 3 breaks (the default)
  await server.scripts.reload('runaway', `export function spin() { for (;;) {} }`);
  const run = () => server.peer.call('script.run', { bundle: 'runaway', fn: 'spin', args: [] }, { timeoutMs: 30_000 });
  for (let i = 0; i < 3; i++) {
    const broke = await rejection(run()) as ScriptFailedError;
    assert.is(broke.details.scriptKind, 'Timeout');
  }
  const refused = await rejection(run()) as ScriptFailedError;
  assert.instance(refused, ScriptFailedError);
  assert.is(refused.details.scriptKind, 'Quarantined');
  assert.match(refused.message, /bundle runaway is quarantined for \d+ s more/);
});

for (const scriptWorker of [false, true]) {
  test(`finding 4 (${scriptWorker ? 'script worker' : 'main thread'}): requests sharing one big string are bounded before the host copies them, each counted with its own size, with an error naming the limit`, async () => {
    const server = await gameServer({ scriptWorker }); // maxBytesInFlight: 16 MiB (the default)
    await server.login(301);
    await server.scripts.reload('bloat', `
      export async function main(pid, count) {
        const big = 'x'.repeat(500000);          // held once in the isolate; 200 requests would copy it 200 times
        const player = cproxyplayer.new(pid);
        const results = await Promise.allSettled(Array.from({ length: count }, () => player.addgold(1, big)));
        const refused = results.filter((r) => r.status === 'rejected' && r.reason.kind === 'Sandbox');
        return { sent: count - refused.length, refused: refused.length, message: refused[0] && refused[0].reason.message, setting: refused[0] && refused[0].reason.details.setting };
      }`);
    const result = await server.scripts.run('bloat', 'main', [301, 200]) as { sent: number; refused: number; message: string; setting: string };
    assert.ok(result.sent <= 34, `${result.sent} requests of 500 kB reached the host under a 16 MiB bound`);
    assert.ok(result.sent >= 1);
    assert.is(result.refused, 200 - result.sent);
    assert.is(result.setting, 'maxBytesInFlight');
    assert.match(result.message, /^player\.addgold: bundle bloat has \d+ bytes of requests waiting for answers \(and results sent just now\), and this one is 500\d+ bytes: more than the 16777216 bytes it may \(the host's limit scriptLimits\.maxBytesInFlight; every request counts the size of its own arguments, even when requests share a value\)/);
    assert.is(await server.bystander(301), result.sent, 'the server answers on (the gold of the requests that went out)');
  });
}

test('finding 4: a script cannot reach the outbox or a checked copy through setters on Array.prototype / Object.prototype', async () => {
  const { host, services } = makeHost();
  services.addPlayer(1);
  services.methods.set('echo', (_player, args) => args[0]);
  await host.reload('grab', `
    export async function main() {
      const captured = [];
      for (const index of ['0', '1', '2', '3', '4', '5']) {
        Object.defineProperty(Array.prototype, index, { set(value) { captured.push(this); Object.defineProperty(this, index, { value, writable: true, enumerable: true, configurable: true }); }, configurable: true });
      }
      Object.defineProperty(Object.prototype, 'a', { set(value) { captured.push(this); Object.defineProperty(this, 'a', { value, writable: true, enumerable: true, configurable: true }); }, configurable: true });
      const echoed = await cproxyplayer.new(1).echo({ a: [1, 2, 3] });
      return { captured: captured.length, echoed };
    }`);
  assert.equal(await host.run('grab', 'main'), { captured: 0, echoed: { a: [1, 2, 3] } });
});

test.run();
