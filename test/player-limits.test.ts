/**
 * What a player may hold (issue 10, finding 9), on both stores: a game server HS in this process
 * with real clients logged in, calls sent to it over a real authenticated connection, the player's
 * stored document read back from the real store (a MemoryStore, or a RedisStore on redis-server).
 *
 * - gold and item counts stay safe integers: past 2^53 `+1` would add 2 and `-1` nothing, so a
 *   change whose result is not a safe integer is refused and changes nothing;
 * - a mail can be read, removed and taken by its id; its title, body, items and reason are bounded,
 *   and a mailbox holds at most `playerLimits.mails`;
 * - a player's document has a size cap (`playerLimits.documentBytes`): the call that would pass it
 *   is refused (LimitExceeded) and not applied, and nothing of it rides along with a later save —
 *   whether the mailbox sees it coming or only the save measures it; a document already past the
 *   cap (from before) may still shrink.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Player, REFERENCE_PLAYER_MODEL, type Mail, type PlayerDocument, type PlayerModel } from '../runtime/game/player.js';
import type { PeerClient } from '../runtime/rpc/peer-client.js';
import { rejectionOf } from './harness/cluster.js';
import { HomeServer } from './harness/home-server.js';

const SECRET = 'player-limits-secret-0123';
const LIMITS = { documentBytes: 16_000, mails: 12, mailTitleBytes: 40, mailBodyBytes: 1500, mailItems: 3 };
const ITEM = 105001;

/** A player whose `bloat` puts `bytes` of text in his document at once (a host method the mailbox cannot see coming). */
class BloatingPlayer extends Player {
  bloat(bytes: number): number {
    (this.change() as PlayerDocument & { junk?: string }).junk = 'x'.repeat(bytes);
    return bytes;
  }
}
const MODEL: PlayerModel = {
  newDocument: (pid) => Player.newDocument(pid),
  create: (doc, place, readOnly) => new BloatingPlayer(doc, place, readOnly),
  surface: { ...REFERENCE_PLAYER_MODEL.surface, bloat: 'write' },
};

for (const kind of ['memory', 'redis'] as const) {
  const test = suite(`player limits (${kind} store)`);
  let hs: HomeServer;
  let peer: PeerClient;
  let nextPid = kind === 'memory' ? 7300 : 7400;
  let callCounter = 0;

  test.before(async () => {
    hs = await HomeServer.start(kind, { secret: SECRET, model: MODEL, config: { playerLimits: LIMITS } });
    peer = hs.peer;
  });
  test.after(async () => {
    await hs?.stop();
  });

  /** A player logged in at HS by a real client; `stored` is his document in the store before he logs in. */
  async function online(stored?: Partial<PlayerDocument>): Promise<number> {
    const pid = nextPid++;
    if (stored) {
      await hs.store.ensureRoute(pid, 'HS');
      await hs.store.saveDocument(pid, 0, { ...Player.newDocument(pid), ...stored });
    }
    return hs.online(pid);
  }
  /** A call through player RPC; a refusal keeps its `kind` and says it in its message (uvu prints only that). */
  const call = <T = unknown>(pid: number, path: string[], args: unknown[]) =>
    peer.call<T>('player.invoke', { pid, path, args, id: `test:${kind}:${++callCounter}` }).catch((error: Error & { kind?: string }) => {
      throw Object.assign(new Error(`${error.kind}: ${error.message}`), { kind: error.kind });
    });
  /** The error a call ends with: its kind and message. */
  const refusal = async (pid: number, path: string[], args: unknown[]) => {
    const error = await rejectionOf(call(pid, path, args), 20_000, `${path.join('.')} to be refused`) as Error & { kind?: string };
    return { kind: error.kind, message: error.message };
  };
  const stored = async (pid: number) => (await hs.store.loadDocument(pid))!.data as PlayerDocument & { junk?: string };
  const mail = (i: number, body = 'b') => ({ title: `mail ${i}`, body, gold: 1, items: [{ type: ITEM, count: 1 }] });

  test('gold and item counts stay safe integers: a change whose result is not one is refused and changes nothing', async () => {
    const max = Number.MAX_SAFE_INTEGER;
    const pid = await online();
    assert.is(await call(pid, ['addgold'], [max - 1, 'test:limits']), max - 1);
    assert.is(await call(pid, ['addgold'], [1, 'test:limits']), 1, 'up to MAX_SAFE_INTEGER exactly');
    const over = await refusal(pid, ['addgold'], [1, 'test:limits']);
    assert.is(over.kind, 'InvalidArgument', over.message);
    assert.match(over.message, /MAX_SAFE_INTEGER/);
    assert.is(await call(pid, ['getgold'], []), max);
    assert.is((await stored(pid)).gold, max, 'nothing stored');
    assert.is(await call(pid, ['addgold'], [-max, 'test:limits']), -max, 'spending is fine');

    assert.is(await call(pid, ['itemdb', 'additembytype'], [ITEM, max, null, 'test:limits']), max);
    const items = await refusal(pid, ['itemdb', 'additembytype'], [ITEM, 1, null, 'test:limits']);
    assert.is(items.kind, 'InvalidArgument', items.message);
    assert.is(await call(pid, ['itemdb', 'getitemcount'], [ITEM]), max);
    assert.is((await stored(pid)).items[ITEM], max);

    // A balance already past 2^53 (stored by an older server): +1 would add 2, -1 would remove nothing.
    const unsafe = 2 ** 53 + 2;
    const rich = await online({ gold: unsafe });
    for (const amount of [1, -1]) {
      const refused = await refusal(rich, ['addgold'], [amount, 'test:limits']);
      assert.is(refused.kind, 'InvalidArgument', `addgold(${amount}): ${refused.message}`);
    }
    assert.is(await call(rich, ['getgold'], []), unsafe, 'unchanged');
    assert.is(await call(rich, ['addgold'], [-(2 ** 52), 'test:limits']), -(2 ** 52), 'a change back into the safe range is exact, and allowed');
    assert.is((await stored(rich)).gold, 2 ** 52 + 2);
  });

  test('a mail is read, removed and taken by its id; taking it credits its gold and items at once', async () => {
    const pid = await online();
    const first = await call<number>(pid, ['mail', 'send'], [{ title: 'Reward', body: 'Well played!', gold: 50, items: [{ type: ITEM, count: 2 }] }, 'test:limits']);
    const second = await call<number>(pid, ['mail', 'send'], [{ title: 'News', body: 'Hello' }, 'test:limits']);
    assert.equal((await call<Mail[]>(pid, ['mail', 'list'], [])).map((m) => m.id), [first, second]);
    const read = await call<Mail>(pid, ['mail', 'read'], [first]);
    assert.equal([read.title, read.body, read.gold, read.items], ['Reward', 'Well played!', 50, [{ type: ITEM, count: 2 }]]);

    assert.equal(await call(pid, ['mail', 'take'], [first, 'test:limits']), { id: first, gold: 50, items: [{ type: ITEM, count: 2 }] });
    assert.is(await call(pid, ['getgold'], []), 50);
    assert.is(await call(pid, ['itemdb', 'getitemcount'], [ITEM]), 2);
    const again = await refusal(pid, ['mail', 'take'], [first, 'test:limits']);
    assert.is(again.kind, 'NotFound', 'a mail is taken once');
    assert.is(await call(pid, ['getgold'], []), 50);

    assert.is(await call(pid, ['mail', 'remove'], [second, 'test:limits']), second);
    assert.equal(await call(pid, ['mail', 'list'], []), []);
    assert.is((await refusal(pid, ['mail', 'read'], [second])).kind, 'NotFound');
    const doc = await stored(pid);
    assert.equal([doc.mails, doc.gold, doc.items[ITEM]], [[], 50, 2], 'as stored');

    // Taking a mail whose gold would pass MAX_SAFE_INTEGER is refused whole: the mail stays, nothing is credited.
    await call(pid, ['addgold'], [Number.MAX_SAFE_INTEGER - 50, 'test:limits']);
    const rich = await call<number>(pid, ['mail', 'send'], [{ title: 'Too much', body: '', gold: 1, items: [{ type: ITEM, count: 1 }] }, 'test:limits']);
    assert.is((await refusal(pid, ['mail', 'take'], [rich, 'test:limits'])).kind, 'InvalidArgument');
    assert.is(await call(pid, ['itemdb', 'getitemcount'], [ITEM]), 2, 'no item credited either');
    assert.equal((await call<Mail[]>(pid, ['mail', 'list'], [])).map((m) => m.id), [rich]);
  });

  test('a mail\'s title, body, items and reason are bounded, and a mailbox holds at most playerLimits.mails', async () => {
    const pid = await online();
    const cases: [unknown, string, RegExp][] = [
      [{ title: 't'.repeat(LIMITS.mailTitleBytes + 1), body: '' }, 'test:limits', /mail\.title is 41 bytes; at most 40 \(playerLimits\.mailTitleBytes\)/],
      [{ title: 't', body: '好'.repeat(501) }, 'test:limits', /mail\.body is 1503 bytes; at most 1500 \(playerLimits\.mailBodyBytes\)/],
      [{ title: 't', body: '', items: Array.from({ length: 4 }, () => ({ type: ITEM, count: 1 })) }, 'test:limits', /playerLimits\.mailItems/],
      [{ title: 't', body: '' }, 'r'.repeat(300), /reason is 300 bytes/],
    ];
    for (const [given, reason, message] of cases) {
      const refused = await refusal(pid, ['mail', 'send'], [given, reason]);
      assert.is(refused.kind, 'InvalidArgument', refused.message);
      assert.match(refused.message, message);
    }
    for (let i = 0; i < LIMITS.mails; i++) await call(pid, ['mail', 'send'], [mail(i), 'test:limits']);
    const full = await refusal(pid, ['mail', 'send'], [mail(99), 'test:limits']);
    assert.is(full.kind, 'LimitExceeded', full.message);
    assert.match(full.message, /playerLimits\.mails/);
    assert.is((await stored(pid)).mails.length, LIMITS.mails, 'the mail beyond was not stored');
    const [oldest] = await call<Mail[]>(pid, ['mail', 'list'], []);
    await call(pid, ['mail', 'take'], [oldest!.id, 'test:limits']);
    assert.is(typeof await call(pid, ['mail', 'send'], [mail(100), 'test:limits']), 'number', 'room again once one was taken');
  });

  test('the mail that would pass playerLimits.documentBytes is refused and not applied; a later save does not carry it', async () => {
    const pid = await online();
    const body = 'm'.repeat(LIMITS.mailBodyBytes);
    let sent = 0;
    let refused: { kind?: string; message: string } | null = null;
    for (let i = 0; i < LIMITS.mails && !refused; i++) {
      try {
        await call(pid, ['mail', 'send'], [mail(i, body), 'test:limits']);
        sent++;
      } catch (error) {
        refused = { kind: (error as { kind?: string }).kind, message: (error as Error).message };
      }
    }
    assert.ok(refused, `a mailbox of ${LIMITS.mails} mails of ${LIMITS.mailBodyBytes} bytes passes ${LIMITS.documentBytes} bytes`);
    assert.is(refused!.kind, 'LimitExceeded', refused!.message);
    assert.match(refused!.message, /playerLimits\.documentBytes/);
    assert.ok(sent >= 5, `${sent} mails fit first`);
    await call(pid, ['addgold'], [3, 'test:limits']);
    const doc = await stored(pid);
    assert.is(doc.mails.length, sent, 'the refused mail is not in the store, even after a later save');
    assert.is(doc.gold, 3);
    assert.ok(Buffer.byteLength(JSON.stringify(doc)) <= LIMITS.documentBytes, 'the stored document is within its cap');
    assert.is((await call<Mail[]>(pid, ['mail', 'list'], [])).length, sent, 'and not in the live player either');
  });

  test('a change only the save can measure (a host method) past the cap: refused, not applied, not carried by a later save', async () => {
    const pid = await online();
    await call(pid, ['addgold'], [5, 'test:limits']);
    const refused = await refusal(pid, ['bloat'], [LIMITS.documentBytes]);
    assert.is(refused.kind, 'LimitExceeded', refused.message);
    assert.match(refused.message, /would be \d+ bytes, past its limit of 16000 \(playerLimits\.documentBytes\)/);
    assert.is((await stored(pid)).junk, undefined, 'not stored');
    assert.is(await call(pid, ['addgold'], [1, 'test:limits']), 1, 'the next call runs');
    const doc = await stored(pid);
    assert.equal([doc.gold, doc.junk], [6, undefined], 'and its save does not carry the refused change');
    assert.is(await call(pid, ['bloat'], [1000]), 1000, 'what fits is fine');
    assert.is((await stored(pid)).junk?.length, 1000);
  });

  test('a document already past the cap (from before) may still shrink, and may not grow', async () => {
    const mails: Mail[] = Array.from({ length: 10 }, (_, i) => ({
      id: i + 1, title: `old ${i}`, body: 'o'.repeat(1400), gold: 0, items: [], reason: 'test:old', sentAt: 0,
    }));
    const pid = await online({ mails, nextMailId: 11, junk: 'j'.repeat(5000) } as Partial<PlayerDocument>);
    assert.ok(Buffer.byteLength(JSON.stringify(await stored(pid))) > LIMITS.documentBytes, 'he starts past the cap');
    const grow = await refusal(pid, ['mail', 'send'], [mail(1), 'test:limits']);
    assert.is(grow.kind, 'LimitExceeded', grow.message);
    assert.match(grow.message, /playerLimits\.documentBytes/);
    assert.is(await call(pid, ['addgold'], [1, 'test:limits']), 1, 'a change that does not grow him is fine');
    assert.is(await call(pid, ['mail', 'remove'], [1, 'test:limits']), 1, 'removing a mail is fine');
    assert.is(await call(pid, ['mail', 'remove'], [2, 'test:limits']), 2);
    assert.is((await stored(pid)).mails.length, 8);
    assert.is(await call(pid, ['bloat'], [10]), 10, 'shrinking by a host method too');
    assert.is((await stored(pid)).junk, 'x'.repeat(10));
  });

  test.run();
}
