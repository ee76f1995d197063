/**
 * The reference player model: gold, level, an item database by type id, a mailbox. A host may
 * extend or replace it (a `PlayerModel`): what is remotely callable is the model's explicit RPC
 * surface, never whatever happens to be reachable on the object.
 *
 * A player is writable only on the server that owns him; a copy loaded for reading
 * (`loadOffline`) throws ReadOnlyPlayerError on every write, and nothing of it is ever saved.
 */
import { InvalidArgumentError, LimitExceededError, NotFoundError, ReadOnlyPlayerError } from '../errors.js';
import { shown } from '../rpc/params.js';
import { decodeValue, encodeValue } from '../rpc/values.js';
import { REMEMBERED_CALLS, isKeptCall } from '../store/store.js';

/** What the home server passes along with a player who goes away (its level, …). */
export type PlayerData = Record<string, string | number | boolean | null>;

/** A mail in a player's mailbox. */
export interface Mail {
  id: number;
  title: string;
  body: string;
  gold: number;
  items: { type: number; count: number }[];
  reason: string;
  sentAt: number;
}

/** The player document as stored: plain JSON, so saving it is cheap. */
export interface PlayerDocument {
  pid: number;
  name: string;
  level: number;
  gold: number;
  /** Item counts by type id. */
  items: Record<string, number>;
  mails: Mail[];
  nextMailId: number;
}

/**
 * What a player may hold (the config's `playerLimits`; runtime/cluster/config.ts checks it). The
 * host gives each player its limits (`Player.limits`); a change that would pass one is refused
 * and nothing of it is applied.
 */
export interface PlayerLimits {
  /**
   * The largest stored document, bytes (its encoded text). A change that would make it larger is
   * refused with LimitExceeded (a document already larger, from before, may still shrink).
   */
  documentBytes: number;
  /** The most mails one mailbox holds: a mail beyond is refused with LimitExceeded. */
  mails: number;
  /** The longest mail title, bytes (UTF-8). */
  mailTitleBytes: number;
  /** The longest mail body, bytes (UTF-8). */
  mailBodyBytes: number;
  /** The most item entries attached to one mail. */
  mailItems: number;
}

/** The limits a player has when the config sets none. */
export const DEFAULT_PLAYER_LIMITS: Readonly<PlayerLimits> = Object.freeze({
  documentBytes: 1024 * 1024,
  mails: 100,
  mailTitleBytes: 256,
  mailBodyBytes: 4096,
  mailItems: 32,
});

/** The longest `reason` kept with a mail, bytes (UTF-8). */
export const MAIL_REASON_BYTES = 256;

/** The UTF-8 length of a string. */
function bytesOf(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * `value + change`, refused (InvalidArgument, nothing changed) when the result is not a safe
 * integer: past 2^53 a number cannot hold every integer, so `+1` may add 2 and `-1` nothing.
 */
function safeSum(what: string, value: number, change: number): number {
  const result = value + change;
  if (!Number.isSafeInteger(result)) {
    throw new InvalidArgumentError(
      `${what} would be ${result}, beyond ${Number.MAX_SAFE_INTEGER} (Number.MAX_SAFE_INTEGER): past it a number cannot count exactly, so the change was refused`,
    );
  }
  return result;
}

function integer(name: string, value: unknown, min = -Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${name} must be an integer${min > -Number.MAX_SAFE_INTEGER ? ` of at least ${min}` : ''}, not ${shown(value)}`);
  }
  return value;
}

function reasonOf(value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidArgumentError(`reason must be a non-empty string saying why (it goes to the log), not ${shown(value)}`);
  }
  return value;
}

/** Where a player is, as the player himself carries it. */
export interface PlayerPlace {
  /** His home server. */
  home_srvname: string;
  /** The server he is on when away from home ('' at home). */
  go_srvname: string;
  /** What the home passed along while he is away. */
  player_data: PlayerData;
}

/** The reference player. */
export class Player {
  readonly pid: number;
  readonly readOnly: boolean;
  home_srvname: string;
  go_srvname: string;
  player_data: PlayerData;
  /** Set by every change; the host saves a changed player before it answers the call. */
  dirty = false;
  /** What he may hold; the host sets the cluster's (`playerLimits`) on every player it makes. */
  limits: Readonly<PlayerLimits> = DEFAULT_PLAYER_LIMITS;
  /**
   * His document's size, bytes, as the host last measured it (at his load and at each save), plus
   * what the mailbox added since: the mailbox refuses a mail that would pass `limits.documentBytes`
   * before changing anything. (The host measures the document itself at every save as well.)
   */
  documentBytes = 0;
  /** Counts the changes made to him (the host tells whether a method that threw had changed him). */
  changes = 0;
  readonly itemdb: ItemDb;
  readonly mail: Mailbox;
  protected doc: PlayerDocument;

  constructor(doc: PlayerDocument, place: PlayerPlace, readOnly = false) {
    this.pid = doc.pid;
    this.doc = doc;
    this.readOnly = readOnly;
    this.home_srvname = place.home_srvname;
    this.go_srvname = place.go_srvname;
    this.player_data = place.player_data;
    this.itemdb = new ItemDb(this);
    this.mail = new Mailbox(this);
  }

  /** A new player's document. */
  static newDocument(pid: number): PlayerDocument {
    return { pid, name: `player${pid}`, level: 1, gold: 0, items: {}, mails: [], nextMailId: 1 };
  }

  /** Adds (or, when negative, spends) gold; refuses to go below zero. Returns the amount added. */
  addgold(amount: number, reason: string): number {
    integer('amount', amount);
    reasonOf(reason);
    if (this.doc.gold + amount < 0) {
      throw new InvalidArgumentError(`player ${this.pid} has ${this.doc.gold} gold and cannot spend ${-amount}`);
    }
    const gold = safeSum(`player ${this.pid}'s gold (${this.doc.gold} + ${amount})`, this.doc.gold, amount);
    this.change().gold = gold;
    return amount;
  }

  getgold(): number {
    return this.doc.gold;
  }

  getlevel(): number {
    return this.doc.level;
  }

  /** Sets the level; returns it. */
  setlevel(level: number, reason: string): number {
    integer('level', level, 1);
    reasonOf(reason);
    this.change().level = level;
    return level;
  }

  /** Everything a script usually wants to show. */
  getinfo(): { pid: number; name: string; level: number; gold: number; home_srvname: string; go_srvname: string } {
    const { pid, name, level, gold } = this.doc;
    return { pid, name, level, gold, home_srvname: this.home_srvname, go_srvname: this.go_srvname };
  }

  /** The document to save (the live object: serialize it before changing the player again). */
  toDocument(): PlayerDocument {
    return this.doc;
  }

  /**
   * Results of the latest remote calls that changed the player, by call id (as stored: the
   * result's wire text), once they are stored. A retried call returns its remembered result
   * instead of running again; they are saved with the document, so a server the player moves to
   * knows them too. A result is remembered here only once the save that carried it was stored:
   * until then it is staged, and a failed save forgets it with the rest of the change.
   */
  private readonly calls = new Map<string, string>();
  /** The results of calls remembered for good (ids with KEPT_CALL_PREFIX). */
  private readonly keptCalls = new Map<string, string>();
  /** Results of calls that ran since the last save was taken (the next save takes them). */
  private newCalls: [string, string][] = [];

  /** Restores the remembered call results of a loaded document (oldest first). */
  restoreCalls(calls: [string, string][]): void {
    this.commitCalls(calls);
  }

  /** The remembered (stored) result of call `id`, if it ran on this player. */
  rememberedCall(id: string): { result: unknown } | undefined {
    const text = this.calls.get(id) ?? this.keptCalls.get(id);
    return text === undefined ? undefined : { result: decodeValue(JSON.parse(text)) };
  }

  /** Stages the result of call `id`: the player's next save carries it, and it is remembered once stored. */
  rememberCall(id: string, result: unknown): void {
    this.change();
    this.newCalls.push([id, JSON.stringify(encodeValue(result, 'a call result'))]);
  }

  /** The call results staged since the last save (the save takes them). */
  takeNewCalls(): [string, string][] {
    const calls = this.newCalls;
    this.newCalls = [];
    return calls;
  }

  /** Remembers call results a save carried, now that it was stored. */
  commitCalls(calls: [string, string][]): void {
    for (const [id, text] of calls) {
      if (isKeptCall(id)) {
        this.keptCalls.set(id, text);
        continue;
      }
      this.calls.delete(id);
      this.calls.set(id, text);
      if (this.calls.size > REMEMBERED_CALLS) this.calls.delete(this.calls.keys().next().value!);
    }
  }

  /** The writable document, marked changed; throws ReadOnlyPlayerError on a read-only copy. */
  change(): PlayerDocument {
    if (this.readOnly) {
      throw new ReadOnlyPlayerError(
        `Player ${this.pid} was loaded read-only (an offline copy): nothing can be changed on it. ` +
          `Change him through his owner (a proxy call) instead.`,
        { pid: this.pid },
      );
    }
    this.dirty = true;
    this.changes++;
    return this.doc;
  }

  /** Read access to the document for the player's parts. */
  get document(): Readonly<PlayerDocument> {
    return this.doc;
  }
}

/** The player's items, by type id. */
export class ItemDb {
  constructor(private readonly player: Player) {}

  /** Adds `count` items of `typeId`; returns the new count of that type. */
  additembytype(typeId: number, count: number, extra: Record<string, unknown> | null, reason: string): number {
    integer('typeId', typeId, 1);
    integer('count', count, 1);
    if (extra !== null && extra !== undefined && (typeof extra !== 'object' || Array.isArray(extra))) {
      throw new InvalidArgumentError('extra must be an object or null');
    }
    reasonOf(reason);
    const have = this.player.document.items[typeId] ?? 0;
    const total = safeSum(`player ${this.player.pid}'s count of item ${typeId} (${have} + ${count})`, have, count);
    this.player.change().items[typeId] = total;
    return total;
  }

  /** Removes `count` items of `typeId` (refused when he has fewer); returns the new count. */
  removeitembytype(typeId: number, count: number, reason: string): number {
    integer('typeId', typeId, 1);
    integer('count', count, 1);
    reasonOf(reason);
    const have = this.player.document.items[typeId] ?? 0;
    if (have < count) throw new InvalidArgumentError(`player ${this.player.pid} has ${have} of item ${typeId}, fewer than ${count}`);
    const left = safeSum(`player ${this.player.pid}'s count of item ${typeId} (${have} - ${count})`, have, -count);
    const items = this.player.change().items;
    if (left === 0) delete items[typeId];
    else items[typeId] = left;
    return left;
  }

  /** How many items of `typeId` he has. */
  getitemcount(typeId: number): number {
    integer('typeId', typeId, 1);
    return this.player.document.items[typeId] ?? 0;
  }
}

/** The player's mailbox: mails with gold and items attached, each read, taken or removed by its id. */
export class Mailbox {
  constructor(private readonly player: Player) {}

  /**
   * Puts a mail in the mailbox; returns its id. Refused (nothing changed): a title or body longer
   * than the limits (InvalidArgument), a full mailbox or a document that would pass its size
   * limit (LimitExceeded).
   */
  send(mail: { title: string; body: string; gold?: number; items?: { type: number; count: number }[] }, reason: string): number {
    const { limits } = this.player;
    if (mail === null || typeof mail !== 'object') throw new InvalidArgumentError('mail must be an object {title, body, gold?, items?}');
    if (typeof mail.title !== 'string' || mail.title === '') throw new InvalidArgumentError('mail.title must be a non-empty string');
    if (typeof mail.body !== 'string') throw new InvalidArgumentError('mail.body must be a string');
    const titleBytes = bytesOf(mail.title);
    if (titleBytes > limits.mailTitleBytes) {
      throw new InvalidArgumentError(`mail.title is ${titleBytes} bytes; at most ${limits.mailTitleBytes} (playerLimits.mailTitleBytes)`);
    }
    const bodyBytes = bytesOf(mail.body);
    if (bodyBytes > limits.mailBodyBytes) {
      throw new InvalidArgumentError(`mail.body is ${bodyBytes} bytes; at most ${limits.mailBodyBytes} (playerLimits.mailBodyBytes): put long texts in the game, and send their key`);
    }
    const gold = mail.gold === undefined ? 0 : integer('mail.gold', mail.gold, 0);
    if (mail.items !== undefined && !Array.isArray(mail.items)) throw new InvalidArgumentError('mail.items must be an array of {type, count}');
    if ((mail.items?.length ?? 0) > limits.mailItems) {
      throw new InvalidArgumentError(`mail.items has ${mail.items!.length} entries; at most ${limits.mailItems} (playerLimits.mailItems)`);
    }
    const items = (mail.items ?? []).map((item, i) => ({
      type: integer(`mail.items[${i}].type`, item?.type, 1),
      count: integer(`mail.items[${i}].count`, item?.count, 1),
    }));
    reasonOf(reason);
    const reasonBytes = bytesOf(reason);
    if (reasonBytes > MAIL_REASON_BYTES) throw new InvalidArgumentError(`reason is ${reasonBytes} bytes; a mail keeps at most ${MAIL_REASON_BYTES}`);
    const { document } = this.player;
    if (document.mails.length >= limits.mails) {
      throw new LimitExceededError(
        `player ${this.player.pid}'s mailbox holds ${document.mails.length} mails, the most it may (playerLimits.mails): ` +
          'he must take or remove some first (mail.take, mail.remove)',
        { pid: this.player.pid, limit: 'mails' },
      );
    }
    const entry: Mail = { id: document.nextMailId, title: mail.title, body: mail.body, gold, items, reason, sentAt: Date.now() };
    const added = mailBytes(entry);
    if (this.player.documentBytes + added > limits.documentBytes) {
      throw new LimitExceededError(
        `player ${this.player.pid}'s document would grow to about ${this.player.documentBytes + added} bytes with this mail, ` +
          `past its limit of ${limits.documentBytes} (playerLimits.documentBytes): he must take or remove mails first`,
        { pid: this.player.pid, limit: 'documentBytes' },
      );
    }
    const doc = this.player.change();
    doc.nextMailId++;
    doc.mails.push(entry);
    this.player.documentBytes += added;
    return entry.id;
  }

  /** The mails in the mailbox, oldest first. */
  list(): Mail[] {
    return this.player.document.mails.map(copyMail);
  }

  /** One mail, by its id (NotFound when he has no such mail). */
  read(id: number): Mail {
    return copyMail(this.find(id).mail);
  }

  /** Removes a mail, by its id, with whatever is attached to it (NotFound when he has no such mail); returns its id. */
  remove(id: number, reason: string): number {
    const { index } = this.find(id);
    reasonOf(reason);
    const [removed] = this.player.change().mails.splice(index, 1);
    this.player.documentBytes -= mailBytes(removed!);
    return id;
  }

  /**
   * Takes a mail, by its id: its gold and items go to the player and the mail is removed, all at
   * once (refused, nothing changed, when a total would pass Number.MAX_SAFE_INTEGER). Returns
   * what was taken. NotFound when he has no such mail.
   */
  take(id: number, reason: string): { id: number; gold: number; items: { type: number; count: number }[] } {
    const { mail, index } = this.find(id);
    reasonOf(reason);
    const player = this.player;
    const gold = safeSum(`player ${player.pid}'s gold (${player.document.gold} + ${mail.gold} from mail ${id})`, player.document.gold, mail.gold);
    const totals = new Map<number, number>();
    for (const item of mail.items) {
      const have = totals.get(item.type) ?? player.document.items[item.type] ?? 0;
      totals.set(item.type, safeSum(`player ${player.pid}'s count of item ${item.type} (${have} + ${item.count} from mail ${id})`, have, item.count));
    }
    const doc = player.change();
    doc.gold = gold;
    for (const [type, total] of totals) doc.items[type] = total;
    const [taken] = doc.mails.splice(index, 1);
    player.documentBytes -= mailBytes(taken!);
    return { id, gold: mail.gold, items: mail.items.map((item) => ({ ...item })) };
  }

  private find(id: number): { mail: Mail; index: number } {
    integer('id', id, 1);
    const mails = this.player.document.mails;
    const index = mails.findIndex((mail) => mail.id === id);
    if (index < 0) throw new NotFoundError(`player ${this.player.pid} has no mail ${id} (mail.list lists his mails)`, { pid: this.player.pid, mail: id });
    return { mail: mails[index]!, index };
  }
}

function copyMail(mail: Mail): Mail {
  return { ...mail, items: mail.items.map((item) => ({ ...item })) };
}

/** About what a mail adds to the stored document, bytes (its JSON and a comma). */
function mailBytes(mail: Mail): number {
  return bytesOf(JSON.stringify(mail)) + 1;
}

/** Whether a path entry may be written (saved before answering) or only reads. */
export type SurfaceEntry = 'read' | 'write';

/** The reference player's RPC surface: exactly what other servers and scripts may call. */
export const PLAYER_SURFACE: Record<string, SurfaceEntry> = {
  addgold: 'write',
  getgold: 'read',
  getlevel: 'read',
  setlevel: 'write',
  getinfo: 'read',
  'itemdb.additembytype': 'write',
  'itemdb.removeitembytype': 'write',
  'itemdb.getitemcount': 'read',
  'mail.send': 'write',
  'mail.list': 'read',
  'mail.read': 'read',
  'mail.remove': 'write',
  'mail.take': 'write',
};

/** How a host makes its players: the reference model, or its own. */
export interface PlayerModel {
  /** A new player's document. */
  newDocument(pid: number): PlayerDocument;
  /** A player over a loaded (or new) document. */
  create(doc: PlayerDocument, place: PlayerPlace, readOnly: boolean): Player;
  /** Dotted paths callable remotely, each 'read' or 'write'. */
  surface: Record<string, SurfaceEntry>;
}

/** The reference player model. */
export const REFERENCE_PLAYER_MODEL: PlayerModel = {
  newDocument: (pid) => Player.newDocument(pid),
  create: (doc, place, readOnly) => new Player(doc, place, readOnly),
  surface: PLAYER_SURFACE,
};
