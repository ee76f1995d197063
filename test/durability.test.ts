/**
 * Durability (issue 9; DESIGN §3): an acknowledged call is never lost, a failed call is never
 * applied. Real `kuafu serve` processes on a real redis-server (appendonly yes, appendfsync
 * always), paused with SIGSTOP and killed with SIGKILL at the exact step; and `kuafu up` on the
 * memory store for the rules that apply there.
 *
 * Every player call is followed by a ledger (test/harness/durability.ts): one item type per call,
 * every try with the same id recorded as ok / unknown (Timeout, ServerUnavailable, OutcomeUnknown)
 * / failed (any other error). The tests assert the rules, never an exact error:
 *   - answered OK: in the store (read from Redis, or from a fresh owner on the memory store), and a
 *     retry with the same id gets the same answer;
 *   - answered with a domain error or a clear failure: not applied, now or later;
 *   - outcome unknown: retrying with the same id gives exactly one of the two;
 *   - nothing is applied twice.
 *
 * Seeded: the seed (printed) picks the item types and so the call ids; KUAFU_TEST_SEED replays it.
 * Every wait is on an event (a frame written into a paused server's socket, an answer, a process
 * exit, a route in Redis), never on elapsed time.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DurableCluster, Ledger, answeredAll, type TrackedCall } from './harness/durability.js';
import { eventually } from './harness/cluster.js';
import { seeded } from './harness/random.js';

const SEED = process.env.KUAFU_TEST_SEED ? Number(process.env.KUAFU_TEST_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
console.log(`durability: seed ${SEED} (replay with KUAFU_TEST_SEED=${SEED})`);
const random = seeded(SEED);

/** The item type of a ledger's first call: a fresh block of 100 types per ledger. */
function firstType(): number {
  return 200_000 + Math.floor(random() * 7_000) * 100;
}

/** A first try's own deadline, short: the paused server cannot answer it anyway. */
const FIRST_TRY_TIMEOUT_MS = 1_500;
/** A try that must wait for a paused server to resume. */
const WAIT_FOR_RESUME_MS = 180_000;

/** A call of the test model that adds one item of its type, then refuses because the bag holds more than 0. */
const refusedAfterChange = (type: number) => ({ path: ['additemchecked'], args: [type, 1, 0, 'durability:refused'] });

/** Asserts a try answered OK (a step the story needs, not one of the rules). */
function mustBeOk(ledger: Ledger, call: TrackedCall, step: string): void {
  const last = call.tries[call.tries.length - 1];
  assert.ok(last?.outcome === 'ok', `${step}: expected OK (${ledger.history(call)})`);
}

// ---- the two losses -----------------------------------------------------------------------------

const losses = suite('durability: the two losses of issue 9 (redis)');

losses('owner paused while the player moves: a call and its retry (same id) wait in the paused owner\'s socket while home takes him back; nothing answered OK is lost', async () => {
  const cluster = await DurableCluster.start({ store: 'redis', games: ['HS', 'GS1'], heartbeatMs: 250, rpcTimeoutMs: 2000 });
  try {
    const pid = 9101;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (owner paused)`);
    const player = cluster.client(pid, 'HS');
    await player.login();
    const there = await player.go('GS1');
    assert.is(there.server, 'GS1');
    await cluster.until(pid, 'marked at GS1', ({ mark }) => mark?.go === 'GS1');
    const before = ledger.call('before-pause');
    await ledger.attempt(before, 'GS1', cluster.peer('GS1'));
    mustBeOk(ledger, before, 'a call at GS1 before the pause');
    ledger.check(await cluster.storedItems(pid), 'before the pause');

    const gs1 = cluster.servers.GS1!;
    const { tap, peer } = await cluster.tapped('GS1');
    const call = ledger.call('paused');
    let retry: Promise<unknown> = Promise.resolve();
    await gs1.pause();
    try {
      // The first try goes into the paused GS1's socket and times out; the retry, same id, follows it there.
      const sent = tap.delivered;
      const first = ledger.attempt(call, 'GS1 (first try, paused)', peer, FIRST_TRY_TIMEOUT_MS);
      await tap.waitForDelivered(sent + 1, 'the first try to be written into the paused GS1\'s socket');
      const firstTry = await first;
      assert.is(firstTry.outcome, 'unknown', `a paused server does not answer: ${ledger.history(call)}`);
      const delivered = tap.delivered;
      retry = ledger.attempt(call, 'GS1 (retry, same id, sent while paused)', peer, WAIT_FOR_RESUME_MS);
      await tap.waitForDelivered(delivered + 1, 'the retry to be written into the paused GS1\'s socket');
      // GS1 has left the registry: home gives up on it after its missed beats and takes him back.
      const back = await cluster.until(pid, "HS's heartbeat to give up on the paused GS1 and take him back",
        ({ route, mark }) => route?.at === '' && mark === null);
      assert.is(back.route?.epoch, 3);
      const home = cluster.client(pid, 'HS');
      const entered = await home.login();
      assert.is(entered.server, 'HS', JSON.stringify(entered));
      const atHome = ledger.call('at-home');
      await ledger.attempt(atHome, 'HS', cluster.peer('HS'));
      mustBeOk(ledger, atHome, 'a call at home while GS1 is paused');
    } finally {
      gs1.resume();
    }
    await retry;
    // The moment that matters: the retry's answer came from the resumed GS1.
    ledger.check(await cluster.storedItems(pid), 'right after the resumed GS1 answered the retry');
    // Once the resumed GS1 has answered both tries (the first one's answer, too late for its caller, shows on the tap), the store again.
    await eventually(async () => {
      if (!answeredAll(tap, call.id)) throw new Error(`GS1 has answered ${tap.received.length} frames`);
    }, 'the resumed GS1 to answer both tries');
    ledger.check(await cluster.storedItems(pid), 'after GS1 answered both tries');
    // Whatever the paused owner answered, one more try with the same id at his owner now (HS) gives exactly one outcome.
    await ledger.attempt(call, 'HS (retry, same id, at the owner now)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after a retry with the same id at HS');
  } finally {
    await cluster.stop();
  }
});

losses('Redis down: the first try\'s save fails, the retry (same id) is sent while Redis is down, the owner is killed before Redis returns; nothing answered OK is lost', async () => {
  const cluster = await DurableCluster.start({ store: 'redis', games: ['HS'] });
  try {
    const pid = 9201;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (Redis down)`);
    await cluster.client(pid, 'HS').login();
    const before = ledger.call('before-outage');
    await ledger.attempt(before, 'HS', cluster.peer('HS'));
    mustBeOk(ledger, before, 'a call before the outage');
    ledger.check(await cluster.storedItems(pid), 'before the outage');

    await cluster.redis!.kill(); // SIGKILL: what was fsynced stays (appendfsync always)
    const call = ledger.call('during-outage');
    await ledger.attempt(call, 'HS (first try, Redis down)', cluster.peer('HS'));
    await ledger.attempt(call, 'HS (retry, same id, Redis still down)', cluster.peer('HS'));
    await cluster.kill('HS'); // before Redis returns: what HS holds only in memory dies with it
    await cluster.redis!.restart();
    ledger.check(await cluster.storedItems(pid), 'Redis back, HS killed while it was down');

    // HS again; he logs in; the same id once more: exactly one outcome, applied at most once.
    await cluster.serve('HS');
    const again = await cluster.client(pid, 'HS').login();
    assert.is(again.server, 'HS');
    await ledger.attempt(call, 'HS restarted (retry, same id)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after a retry with the same id on the restarted HS');
  } finally {
    await cluster.stop();
  }
});

// ---- the outcome rules on Redis -----------------------------------------------------------------

const redisRules = suite('durability: outcome rules (redis)');

redisRules('answered OK: stored before the answer, and a retry with the same id gets the same answer — on the owner, after the owner and Redis were killed, and on the next owner', async () => {
  const cluster = await DurableCluster.start({ store: 'redis', games: ['HS', 'GS1'] });
  try {
    const pid = 9301;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (answered OK)`);
    await cluster.client(pid, 'HS').login();
    const call = ledger.call('ok');
    await ledger.attempt(call, 'HS', cluster.peer('HS'));
    mustBeOk(ledger, call, 'the call');
    ledger.check(await cluster.storedItems(pid), 'right after the answer');
    await ledger.attempt(call, 'HS (retry, same id)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after a retry on the owner');

    await cluster.kill('HS');
    await cluster.redis!.kill();
    await cluster.redis!.restart();
    ledger.check(await cluster.storedItems(pid), 'after SIGKILL of the owner and of Redis');
    await cluster.serve('HS');
    const player = cluster.client(pid, 'HS');
    await player.login();
    await ledger.attempt(call, 'HS restarted (retry, same id)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after a retry on the restarted owner');
    const there = await player.go('GS1');
    assert.is(there.server, 'GS1');
    await ledger.attempt(call, 'GS1 (retry, same id, the next owner)', cluster.peer('GS1'));
    ledger.check(await cluster.storedItems(pid), 'after a retry on the next owner');
    const oks = call.tries.filter((t) => t.outcome === 'ok').length;
    assert.is(oks, call.tries.length, `every try answered OK: ${ledger.history(call)}`);
  } finally {
    await cluster.stop();
  }
});

redisRules('answered with a domain error: not applied, now (the next call\'s save) or later (the transfer\'s and the logout\'s saves)', async () => {
  const cluster = await DurableCluster.start({ store: 'redis', games: ['HS', 'GS1'] });
  try {
    const pid = 9401;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (domain error)`);
    const player = cluster.client(pid, 'HS');
    await player.login();
    const refused = ledger.call('refused-after-change', refusedAfterChange);
    await ledger.attempt(refused, 'HS', cluster.peer('HS'));
    assert.is(refused.tries[0]!.outcome, 'failed', `the bag is full: ${ledger.history(refused)}`);
    const next = ledger.call('next');
    await ledger.attempt(next, 'HS', cluster.peer('HS'));
    mustBeOk(ledger, next, 'the next call');
    ledger.check(await cluster.storedItems(pid), 'after the next call was saved');
    await player.go('GS1');
    ledger.check(await cluster.storedItems(pid), 'after the transfer to GS1');
    await player.logout();
    ledger.check(await cluster.storedItems(pid), 'after his logout at GS1');
  } finally {
    await cluster.stop();
  }
});

redisRules('answered with a clear failure while Redis is down: not applied when Redis is back and another call is saved; an unknown outcome retried with its id gives exactly one', async () => {
  const cluster = await DurableCluster.start({ store: 'redis', games: ['HS'] });
  try {
    const pid = 9501;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (Redis down, then back)`);
    const player = cluster.client(pid, 'HS');
    await player.login();
    const before = ledger.call('before-outage');
    await ledger.attempt(before, 'HS', cluster.peer('HS'));
    mustBeOk(ledger, before, 'a call before the outage');

    await cluster.redis!.kill();
    const during = [ledger.call('outage-1'), ledger.call('outage-2'), ledger.call('outage-3')];
    for (const call of during) await ledger.attempt(call, 'HS (Redis down)', cluster.peer('HS'));
    const answered = during.map((call) => call.tries[0]!.outcome);
    assert.ok(!answered.includes('ok'), `nothing can be saved while Redis is down, so nothing is answered OK: ${answered.join(', ')}`);
    await cluster.redis!.restart();
    // HS reconnects by itself: wait until its store answers (player.where reads the route through it).
    await eventually(() => cluster.peer('HS').call('player.where', { pid }), "HS's store to answer again", 60_000, 100);

    // Another call, retried with its id until it is answered OK (each try is in the ledger).
    const after = ledger.call('after-outage');
    await eventually(async () => {
      const t = await ledger.attempt(after, 'HS (Redis back)', cluster.peer('HS'));
      if (t.outcome !== 'ok') throw new Error(`${t.kind}: ${t.message}`);
    }, 'a call after the outage to be answered OK', 60_000, 250);
    ledger.check(await cluster.storedItems(pid), 'Redis back, another call saved');

    // Every call whose outcome is still unknown, retried with its id: exactly one of the two.
    for (const call of during) {
      if (call.tries[call.tries.length - 1]!.outcome === 'unknown') await ledger.attempt(call, 'HS (retry, same id, Redis back)', cluster.peer('HS'));
    }
    ledger.check(await cluster.storedItems(pid), 'after the unknown calls were retried');
    await player.logout();
    ledger.check(await cluster.storedItems(pid), 'after his logout');
  } finally {
    await cluster.stop();
  }
});

redisRules('outcome unknown (owner paused past the deadline; owner killed with the call in its socket): a retry with the same id gives exactly one outcome, applied once', async () => {
  const cluster = await DurableCluster.start({ store: 'redis', games: ['HS'] });
  try {
    const pid = 9601;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (outcome unknown)`);
    await cluster.client(pid, 'HS').login();

    // Paused past the deadline, then resumed: the first try runs late; the retry must not run it again.
    let hs = cluster.servers.HS!;
    let { tap, peer } = await cluster.tapped('HS');
    const late = ledger.call('paused-then-resumed');
    await hs.pause();
    try {
      const sent = tap.delivered;
      const first = ledger.attempt(late, 'HS (paused)', peer, FIRST_TRY_TIMEOUT_MS);
      await tap.waitForDelivered(sent + 1, 'the call to be written into the paused HS\'s socket');
      assert.is((await first).outcome, 'unknown', ledger.history(late));
    } finally {
      hs.resume();
    }
    await ledger.attempt(late, 'HS (retry, same id, resumed)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after the retry on the resumed HS');
    await ledger.attempt(late, 'HS (retry again)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after a second retry');

    // Paused, then killed with the call unread in its socket: it never ran; the retry runs it once.
    ({ tap, peer } = await cluster.tapped('HS'));
    const lost = ledger.call('killed-unread');
    await hs.pause();
    const sent = tap.delivered;
    const first = ledger.attempt(lost, 'HS (paused, then killed)', peer, FIRST_TRY_TIMEOUT_MS);
    await tap.waitForDelivered(sent + 1, 'the call to be written into the paused HS\'s socket');
    await first;
    await cluster.kill('HS');
    ledger.check(await cluster.storedItems(pid), 'after HS was killed');
    hs = await cluster.serve('HS');
    await cluster.client(pid, 'HS').login();
    await ledger.attempt(lost, 'HS restarted (retry, same id)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after the retry on the restarted HS');
    await ledger.attempt(lost, 'HS restarted (retry again)', cluster.peer('HS'));
    ledger.check(await cluster.storedItems(pid), 'after a second retry');
  } finally {
    await cluster.stop();
  }
});

// ---- the outcome rules on the memory store ------------------------------------------------------

const memoryRules = suite('durability: outcome rules (memory store, kuafu up)');

memoryRules('answered OK: a retry with the same id gets the same answer, on the owner and on the next owner, which loaded it from the store', async () => {
  const cluster = await DurableCluster.start({ store: 'memory', games: ['HS', 'GS1'] });
  try {
    const pid = 9701;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (memory, answered OK)`);
    const player = cluster.client(pid, 'HS');
    await player.login();
    const call = ledger.call('ok');
    await ledger.attempt(call, 'HS', cluster.peer('HS'));
    mustBeOk(ledger, call, 'the call');
    await ledger.attempt(call, 'HS (retry, same id)', cluster.peer('HS'));
    assert.is((await player.go('GS1')).server, 'GS1');
    ledger.check(await cluster.itemsAt('GS1', pid), 'as GS1 loaded him from the store');
    await ledger.attempt(call, 'GS1 (retry, same id, the next owner)', cluster.peer('GS1'));
    ledger.check(await cluster.itemsAt('GS1', pid), 'after a retry on the next owner');
  } finally {
    await cluster.stop();
  }
});

memoryRules('answered with a domain error: not applied, now or later (the next owner loads him from the store)', async () => {
  const cluster = await DurableCluster.start({ store: 'memory', games: ['HS', 'GS1'] });
  try {
    const pid = 9801;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (memory, domain error)`);
    const player = cluster.client(pid, 'HS');
    await player.login();
    const refused = ledger.call('refused-after-change', refusedAfterChange);
    await ledger.attempt(refused, 'HS', cluster.peer('HS'));
    assert.is(refused.tries[0]!.outcome, 'failed', `the bag is full: ${ledger.history(refused)}`);
    const next = ledger.call('next');
    await ledger.attempt(next, 'HS', cluster.peer('HS'));
    mustBeOk(ledger, next, 'the next call');
    assert.is((await player.go('GS1')).server, 'GS1');
    ledger.check(await cluster.itemsAt('GS1', pid), 'as GS1 loaded him from the store');
  } finally {
    await cluster.stop();
  }
});

memoryRules('outcome unknown (the whole cluster paused past the deadline): a retry with the same id gives exactly one outcome, applied once', async () => {
  const cluster = await DurableCluster.start({ store: 'memory', games: ['HS', 'GS1'] });
  try {
    const pid = 9901;
    const ledger = new Ledger(pid, firstType(), `player ${pid} (memory, outcome unknown)`);
    const player = cluster.client(pid, 'HS');
    await player.login();
    const up = cluster.up!;
    const { tap, peer } = await cluster.tapped('HS');
    const call = ledger.call('paused');
    await up.pause();
    try {
      const sent = tap.delivered;
      const first = ledger.attempt(call, 'HS (paused)', peer, FIRST_TRY_TIMEOUT_MS);
      await tap.waitForDelivered(sent + 1, 'the call to be written into the paused process\'s socket');
      assert.is((await first).outcome, 'unknown', ledger.history(call));
      // The retry follows it into the socket.
      const delivered = tap.delivered;
      const retry = ledger.attempt(call, 'HS (retry, same id, sent while paused)', peer, WAIT_FOR_RESUME_MS);
      await tap.waitForDelivered(delivered + 1, 'the retry to be written into the paused process\'s socket');
      up.resume();
      await retry;
    } finally {
      up.resume();
    }
    await ledger.attempt(call, 'HS (retry again)', cluster.peer('HS'));
    assert.is((await player.go('GS1')).server, 'GS1');
    ledger.check(await cluster.itemsAt('GS1', pid), 'as GS1 loaded him from the store');
    await ledger.attempt(call, 'GS1 (retry, same id, the next owner)', cluster.peer('GS1'));
    ledger.check(await cluster.itemsAt('GS1', pid), 'after a retry on the next owner');
  } finally {
    await cluster.stop();
  }
});

losses.run();
redisRules.run();
memoryRules.run();
