/**
 * What the bridge costs, measured and printed (not asserted: timings on a loaded 2-core machine
 * are not a test). The checks are that every call was answered, once, with the right value.
 *
 * The services answer at once (a resolved promise), so the figures are the sandbox's own cost:
 * entering the isolate, the SDK's proxy and value checks, copying values both ways, settling.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ScriptHost } from '../runtime/sandbox/index.js';
import type { ScriptServices } from '../runtime/sandbox/script-services.js';

const test = suite('sandbox overhead');

let invoked = 0;
const services: ScriptServices = {
  invokePlayer: (_pid, _path, args) => {
    invoked++;
    return Promise.resolve(args[0]);
  },
  getKuafuPlayer: async () => null,
  getProfile: async () => null,
  callService: async () => null,
  log: () => {},
};

let host: ScriptHost;

test.before(async () => {
  host = new ScriptHost({ services, deadlineMs: 120_000 });
  await host.reload('bench', `
    export async function one(pid) { return await cproxyplayer.new(pid).addgold(1, 'bench'); }
    export async function serial(pid, count) {
      const player = cproxyplayer.new(pid);
      let sum = 0;
      for (let i = 0; i < count; i++) sum += await player.addgold(1, 'bench');
      return sum;
    }
    export async function parallel(pid, count, width) {
      const player = cproxyplayer.new(pid);
      let sum = 0;
      for (let done = 0; done < count; done += width) {
        const added = await Promise.all(Array.from({ length: width }, () => player.addgold(1, 'bench')));
        for (const n of added) sum += n;
      }
      return sum;
    }
    export function nothing() { return 1; }`);
});

test.after(async () => {
  await host.close();
});

let cpuAtStart = process.cpuUsage();

/** Prints wall-clock and CPU time per call (CPU time is steadier on a loaded machine). */
function report(label: string, count: number, ms: number): void {
  const cpu = process.cpuUsage(cpuAtStart);
  const cpuUs = (cpu.user + cpu.system) / count;
  console.log(`  ${label}: ${((ms * 1000) / count).toFixed(2)} µs per call (${cpuUs.toFixed(2)} µs CPU), ${Math.round((count / ms) * 1000).toLocaleString('en')} calls/s`);
}

function now(): number {
  cpuAtStart = process.cpuUsage();
  return performance.now();
}

test('host.run of a script making one remote call: one at a time, then 64 in flight', async () => {
  const warm = 2000;
  for (let i = 0; i < warm; i++) await host.run('bench', 'one', [1]);
  invoked = 0;
  const count = 20_000;
  let started = now();
  for (let i = 0; i < count; i++) assert.is(await host.run('bench', 'one', [1]), 1);
  report('run + 1 remote call, one at a time', count, performance.now() - started);

  started = now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      if ((await host.run('bench', 'one', [1])) !== 1) throw new Error('wrong answer');
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  report('run + 1 remote call, 64 in flight', count, performance.now() - started);
  assert.is(invoked, count * 2, 'every call reached the services once');
});

test('a run with no remote call, one at a time (the cost of entering the isolate)', async () => {
  const count = 20_000;
  const started = now();
  for (let i = 0; i < count; i++) assert.is(await host.run('bench', 'nothing'), 1);
  report('run, no remote call', count, performance.now() - started);
});

test('remote calls inside one script: awaited one by one, then 64 at a time', async () => {
  invoked = 0;
  const count = 50_000;
  let started = now();
  assert.is(await host.run('bench', 'serial', [1, count]), count);
  report('remote call from a script, one at a time', count, performance.now() - started);
  const wide = 64 * 1000;
  started = now();
  assert.is(await host.run('bench', 'parallel', [1, wide, 64]), wide);
  report('remote calls from a script, 64 in flight', wide, performance.now() - started);
  assert.is(invoked, count + wide);
});

test.run();
