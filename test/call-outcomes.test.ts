/**
 * The three outcomes of a player call (player-host.ts, save-queue.ts), on both stores: a game
 * server HS in this process with a real client logged in, calls sent to it over a real
 * authenticated connection, the store's own saveDocuments counted, held or failed at the exact
 * moment that matters (the store itself is real: a MemoryStore, or a RedisStore on redis-server).
 *
 * - answered OK: stored before the answer, one tick's saves in one write; a retry with the same id
 *   gets the same answer, even while the first try's save is still on its way;
 * - a save that did not come back: OutcomeUnknown; the owner reads the player back, so the change
 *   never rides along with a later save; a retry with the same id runs it once (not stored) or
 *   answers the stored result (stored, reply lost);
 * - a method that threw halfway through changing the player: nothing of it is saved later.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreUnavailableError } from '../runtime/errors.js';
import { Player, REFERENCE_PLAYER_MODEL, type PlayerDocument, type PlayerModel } from '../runtime/game/player.js';
import type { PeerClient } from '../runtime/rpc/peer-client.js';
import type { FencedSave, Store } from '../runtime/store/store.js';
import { rejectionOf, within, EVENT_DEADLINE_MS } from './harness/cluster.js';
import { HomeServer } from './harness/home-server.js';

const SECRET = 'call-outcomes-secret-0123';

/** A player model whose `breakhalfway` changes his gold and then throws (a model bug). */
class BrittlePlayer extends Player {
  breakhalfway(amount: number): never {
    this.change().gold += amount;
    throw new Error('broke after changing the player');
  }
}
const BRITTLE_MODEL: PlayerModel = {
  newDocument: (pid) => Player.newDocument(pid),
  create: (doc, place, readOnly) => new BrittlePlayer(doc, place, readOnly),
  surface: { ...REFERENCE_PLAYER_MODEL.surface, breakhalfway: 'write' },
};

/** What the store was asked to write, and a way to hold its answers or fail the next writes. */
class SaveSpy {
  writes: FencedSave[][] = [];
  private hold: { released: Promise<void>; release: () => void } | null = null;
  /** Fail the next writes: 'before' (nothing reaches the store) or 'after' (stored, the reply lost). */
  failNext: { when: 'before' | 'after'; count: number } | null = null;
  held = 0;
  onWrite: (() => void) | null = null;

  constructor(store: Store) {
    const real = store.saveDocuments.bind(store);
    store.saveDocuments = (saves) => {
      this.writes.push(saves.map((save) => ({ ...save, data: JSON.parse(JSON.stringify(save.data)) })));
      this.onWrite?.();
      const failing = this.failNext && this.failNext.count > 0 ? this.failNext.when : null;
      if (failing && --this.failNext!.count === 0) this.failNext = null;
      const lost = () => new StoreUnavailableError('the store is unreachable (test: the reply was lost)');
      if (failing === 'before') return Promise.reject(lost());
      // The store takes the documents now (as it always does: they are the live objects); only
      // its answer is held.
      const answer = real(saves).then((results) => {
        if (failing === 'after') throw lost();
        return results;
      });
      const hold = this.hold;
      if (!hold) return answer;
      answer.catch(() => undefined); // heard once released
      this.held++;
      return hold.released.then(() => answer);
    };
  }

  /** Holds the answer of every write from now until `release()`. */
  holdWrites(): () => void {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    this.hold = { released, release };
    return () => {
      this.hold = null;
      release();
    };
  }
}

for (const kind of ['memory', 'redis'] as const) {
  const test = suite(`call outcomes (${kind} store)`);
  let hs: HomeServer;
  let peer: PeerClient;
  let spy: SaveSpy;
  let nextPid = kind === 'memory' ? 7100 : 7200;
  let callCounter = 0;

  test.before(async () => {
    hs = await HomeServer.start(kind, { secret: SECRET, model: BRITTLE_MODEL });
    spy = new SaveSpy(hs.store);
    peer = hs.peer;
  });
  test.after(async () => {
    await hs?.stop();
  });

  /** A new player, logged in at HS by a real client. */
  const online = () => hs.online(nextPid++);
  const newId = () => `test:${kind}:${++callCounter}`;
  const invoke = (pid: number, path: string[], args: unknown[], id: string) => peer.call('player.invoke', { pid, path, args, id });
  /** A call in a message of its own (calls of one tick share one batch, answered together). */
  const laterMessage = async (pid: number) => {
    await new Promise((resolve) => setImmediate(resolve));
    await peer.call('route.get', { pid });
  };
  const goldInStore = async (pid: number) => ((await hs.store.loadDocument(pid))!.data as PlayerDocument).gold;

  test('a call is stored before it is answered, and the saves of one tick travel in one write', async () => {
    const pids = [await online(), await online(), await online()];
    spy.writes = [];
    let stored: number[] = [];
    spy.onWrite = () => { stored = []; };
    const answers = await Promise.all(pids.map(async (pid, i) => {
      const added = await invoke(pid, ['addgold'], [10 + i, 'test:outcomes'], newId());
      stored.push(await goldInStore(pid)); // read as soon as the answer arrives
      return added;
    }));
    spy.onWrite = null;
    assert.equal(answers, [10, 11, 12]);
    assert.is(spy.writes.length, 1, 'three calls of one tick to three players: one write');
    assert.equal(spy.writes[0]!.map((save) => save.pid).sort(), [...pids].sort());
    assert.equal(stored.sort(), [10, 11, 12], 'each answer came after its gold was in the store');
  });

  test('a retry with the same id while the first try is being saved waits for it, and gets the same answer', async () => {
    const pid = await online();
    const id = newId();
    const release = spy.holdWrites();
    let released = false;
    const first = invoke(pid, ['addgold'], [7, 'test:outcomes'], id);
    await new Promise((resolve) => setImmediate(resolve)); // the retry in a message of its own
    const retry = invoke(pid, ['addgold'], [7, 'test:outcomes'], id).then((value) => {
      assert.ok(released, 'the retry was answered while the first try\'s save was still on its way');
      return value;
    });
    // A later message on the same connection is handled after the one with both tries (in order).
    await laterMessage(pid);
    released = true;
    release();
    assert.equal(await within(Promise.all([first, retry]), EVENT_DEADLINE_MS, 'both tries to be answered'), [7, 7]);
    assert.is(await goldInStore(pid), 7, 'applied once');
    assert.is(await invoke(pid, ['addgold'], [7, 'test:outcomes'], id), 7, 'a later retry: the same answer, not run again');
    assert.is(await goldInStore(pid), 7);
  });

  test('a save that did not reach the store: OutcomeUnknown, and the change never rides along with a later save', async () => {
    const pid = await online();
    const id = newId();
    spy.failNext = { when: 'before', count: 1 };
    const error = await rejectionOf(invoke(pid, ['addgold'], [10, 'test:outcomes'], id));
    assert.is((error as { kind?: string }).kind, 'OutcomeUnknown', error.message);
    assert.is(await invoke(pid, ['addgold'], [5, 'test:outcomes'], newId()), 5);
    assert.is(await goldInStore(pid), 5, 'only the call answered OK is stored');
    // The unknown call, retried with its id: it had not run, so it runs now, once.
    assert.is(await invoke(pid, ['addgold'], [10, 'test:outcomes'], id), 10);
    assert.is(await invoke(pid, ['addgold'], [10, 'test:outcomes'], id), 10);
    assert.is(await goldInStore(pid), 15);
  });

  test('a save stored whose reply was lost: OutcomeUnknown, and the retry with the same id answers the stored result without running again', async () => {
    const pid = await online();
    const id = newId();
    spy.failNext = { when: 'after', count: 1 };
    const error = await rejectionOf(invoke(pid, ['addgold'], [10, 'test:outcomes'], id));
    assert.is((error as { kind?: string }).kind, 'OutcomeUnknown', error.message);
    assert.is(await invoke(pid, ['addgold'], [10, 'test:outcomes'], id), 10);
    assert.is(await goldInStore(pid), 10, 'applied once');
    assert.is(await invoke(pid, ['addgold'], [1, 'test:outcomes'], newId()), 1);
    assert.is(await goldInStore(pid), 11);
  });

  test('a call queued behind a failed save is not applied, and says so (not OK, not unknown)', async () => {
    const pid = await online();
    const release = spy.holdWrites();
    spy.failNext = { when: 'after', count: 1 };
    const written = spy.writes.length;
    const first = invoke(pid, ['addgold'], [10, 'test:outcomes'], newId());
    const firstFailed = rejectionOf(first);
    // Wait until the first save is on its way (held), then make a second call: it waits behind it.
    await laterMessage(pid);
    assert.is(spy.writes.length, written + 1);
    const second = rejectionOf(invoke(pid, ['addgold'], [3, 'test:outcomes'], newId()));
    await laterMessage(pid);
    release();
    assert.is(((await firstFailed) as { kind?: string }).kind, 'OutcomeUnknown');
    const refused = await second;
    assert.is((refused as { kind?: string }).kind, 'StoreUnavailable', refused.message);
    assert.match(refused.message, /not applied/);
    assert.is(spy.writes.length, written + 1, 'the second save was never sent');
    assert.is(await goldInStore(pid), 10, 'the first one landed (its reply was lost); the second did not');
    assert.is(await invoke(pid, ['getgold'], [], newId()), 10, 'the owner read him back from the store');
  });

  test('a method that threw halfway through changing the player: nothing of it is saved later', async () => {
    const pid = await online();
    assert.is(await invoke(pid, ['addgold'], [4, 'test:outcomes'], newId()), 4);
    const error = await rejectionOf(invoke(pid, ['breakhalfway'], [1000], newId()));
    assert.match(error.message, /broke after changing/);
    assert.is(await invoke(pid, ['addgold'], [1, 'test:outcomes'], newId()), 1);
    assert.is(await goldInStore(pid), 5);
    assert.is(await invoke(pid, ['getgold'], [], newId()), 5);
  });

  test('a domain error changes nothing: spending more than he has', async () => {
    const pid = await online();
    assert.is(await invoke(pid, ['addgold'], [2, 'test:outcomes'], newId()), 2);
    const writes = spy.writes.length;
    const error = await rejectionOf(invoke(pid, ['addgold'], [-3, 'test:outcomes'], newId()));
    assert.is((error as { kind?: string }).kind, 'InvalidArgument');
    assert.is(spy.writes.length, writes, 'nothing to save');
    assert.is(await goldInStore(pid), 2);
  });

  test.run();
}
