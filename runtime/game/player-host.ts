/**
 * The players a game server holds: loaded at login or arrival under the route epoch it claimed,
 * saved with fencing, unloaded at logout or departure. Remote calls on a player run here, on his
 * only writable copy, against the model's explicit RPC surface; a call that changed him is saved
 * before it is answered, with its result remembered in the document (a retried call returns it
 * instead of running again — even on a server he moved to since).
 *
 * The three outcomes of a call, kept whatever fails:
 * - answered OK: it is stored; a retry with the same id gets the same answer;
 * - answered with a domain error or a clear failure: it was not applied, and never will be;
 * - OutcomeUnknown (its save did not come back), Timeout, ServerUnavailable: a retry with the same
 *   id gets exactly one of the two above.
 * A result is answered (and remembered for retries) only once the save that carries it is stored.
 * When a save fails, this server's copy of the player may differ from the store's: it is read back
 * from the store before anything else runs on him, so nothing unacknowledged rides along with a
 * later save.
 */
import {
  LimitExceededError, NotExportedError, OutcomeUnknownError, PlayerMovedError, PlayerOfflineError, StaleOwnerError,
} from '../errors.js';
import type { ServerNode } from '../cluster/server-node.js';
import { encodeDocument } from '../rpc/values.js';
import { ownerOf, type StoredDocument } from '../store/store.js';
import { DEFAULT_PLAYER_LIMITS, type Player, type PlayerDocument, type PlayerLimits, type PlayerModel, type PlayerPlace } from './player.js';
import { SaveQueue } from './save-queue.js';

/** A client connection bound to a player (the gateway makes them). */
export interface ClientSession {
  pid: number | null;
  send(message: Record<string, unknown>): void;
  close(code: number, reason: string): void;
}

/** A player held by this server. */
export interface LoadedPlayer {
  pid: number;
  player: Player;
  /** The route epoch this server owns him under. */
  epoch: number;
  /** 'leaving' while a transfer is under way: calls are refused with PlayerMoved until he has gone. */
  state: 'active' | 'leaving';
  session: ClientSession | null;
  /**
   * Set when a save of him failed or a method that changed him threw: this copy may differ from
   * the store's, and is read back (`readBack`) before anything else runs on him or is saved.
   */
  doubtful: boolean;
  /** The read-back under way, if any (calls arriving meanwhile share it). */
  reading: Promise<void> | null;
  /** The size of his document as last stored (or loaded), bytes of its encoded text. */
  storedBytes: number;
}

const SEGMENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const FORBIDDEN = new Set(['constructor', '__proto__', 'prototype', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__']);

/** Checks a model's surface once: every path made of plain names, none of the forbidden ones. */
function checkSurface(surface: Record<string, string>): void {
  for (const path of Object.keys(surface)) {
    for (const segment of path.split('.')) {
      if (!SEGMENT.test(segment) || FORBIDDEN.has(segment)) {
        throw new Error(`player RPC surface entry ${JSON.stringify(path)} is not allowed: use plain method names, never ${[...FORBIDDEN].join(', ')}`);
      }
    }
  }
}

export class PlayerHost {
  readonly players = new Map<number, LoadedPlayer>();
  readonly saves: SaveQueue;
  /** What each player may hold: the config's `playerLimits` over the defaults. */
  readonly limits: Readonly<PlayerLimits>;

  constructor(private readonly node: ServerNode, readonly model: PlayerModel) {
    checkSurface(model.surface);
    const { keptCallDays: _retention, ...given } = node.cluster.playerLimits ?? {};
    this.limits = Object.freeze({ ...DEFAULT_PLAYER_LIMITS, ...given });
    this.saves = new SaveQueue(node.store, (outcome) => node.metrics.save(outcome), (pid, epoch) => {
      // Told before any waiter hears: from now on nothing runs on (or saves) this copy until it is read back.
      const loaded = this.players.get(pid);
      if (loaded && loaded.epoch === epoch) loaded.doubtful = true;
    });
  }

  /**
   * Players who left this server for another and have not arrived yet: until their token expires
   * they count as online (here, for the home's heartbeat) and calls are sent on after them. One
   * whose token expired unused is marked offline by `settleDepartures` (the heartbeat's).
   */
  private readonly departures = new Map<number, { to: string; epoch: number; until: number }>();
  /** Players being loaded here after a claim: calls wait a moment instead of finding them offline. */
  readonly arriving = new Set<number>();
  private settling = false;

  /**
   * Records that the player left for `to` from `epoch`; the record lasts until his route moves past
   * that epoch (he arrived) or until `until` (his token's expiry).
   */
  departed(pid: number, to: string, epoch: number, until: number): void {
    this.departures.set(pid, { to, epoch, until });
  }

  /** Where the player is going, while he is between this server and the next (his token still good). */
  departure(pid: number): { to: string; epoch: number } | undefined {
    const departure = this.departures.get(pid);
    if (departure && departure.until < Date.now()) return undefined; // expired: settleDepartures deals with it
    return departure;
  }

  /**
   * The players whose departure token expired unused: he never arrived anywhere. If his route
   * still names this server, under the departure's epoch, and says online, it is set offline
   * (fenced by that epoch: an arrival meanwhile wins), so route, profile and `player.status` agree.
   * A departure is forgotten once settled; one the store could not be asked about stays for the
   * next heartbeat.
   */
  async settleDepartures(): Promise<void> {
    if (this.settling) return;
    this.settling = true;
    try {
      const now = Date.now();
      for (const [pid, departure] of [...this.departures]) {
        if (departure.until >= now) continue;
        try {
          const route = await this.node.store.getRoute(pid);
          const stillHere = route && route.epoch === departure.epoch && route.online && ownerOf(route) === this.node.name;
          if (stillHere && !this.players.has(pid) && !this.arriving.has(pid)) {
            await this.node.store.setOnline(pid, departure.epoch, false);
            this.node.log.info(`player ${pid} left for ${departure.to} and never arrived (his token expired): he is offline`);
          }
        } catch (error) {
          if (!(error instanceof StaleOwnerError)) {
            this.node.log.warn(`could not settle the departure of player ${pid}: ${(error as Error).message}`);
            continue; // the next heartbeat tries again
          }
          // He was claimed meanwhile: the newer owner says where he is.
        }
        if (this.departures.get(pid) === departure) this.departures.delete(pid);
      }
    } finally {
      this.settling = false;
    }
  }

  /** Forgets a departure once his route has moved past it (he arrived somewhere). */
  routeChanged(pid: number, epoch: number): void {
    const departure = this.departures.get(pid);
    if (departure && epoch > departure.epoch) this.departures.delete(pid);
  }

  /** Whether the player is still between this server and the next (asks the store when in doubt). */
  async stillDeparting(pid: number): Promise<boolean> {
    const departure = this.departure(pid);
    if (!departure) return false;
    const route = await this.node.store.getRoute(pid);
    if (route && route.epoch > departure.epoch) {
      this.departures.delete(pid);
      return false;
    }
    return true;
  }

  get(pid: number): LoadedPlayer | undefined {
    return this.players.get(pid);
  }

  /**
   * Takes the player's document (a new one for a new player) as the writable copy under `epoch`:
   * `stored` when the caller read it already (with its claim), else read from the store.
   */
  async load(pid: number, epoch: number, place: PlayerPlace, stored?: StoredDocument | null): Promise<LoadedPlayer> {
    if (stored === undefined) stored = await this.node.store.loadDocument(pid);
    const doc = (stored?.data as PlayerDocument | undefined) ?? this.model.newDocument(pid);
    const player = this.make(doc, place, false);
    if (stored?.calls) player.restoreCalls(stored.calls);
    const loaded: LoadedPlayer = {
      pid, player, epoch, state: 'active', session: null, doubtful: false, reading: null, storedBytes: player.documentBytes,
    };
    this.players.set(pid, loaded);
    this.departures.delete(pid);
    if (!stored) await this.save(loaded);
    return loaded;
  }

  /** A read-only copy of a player this server does not own (or does): every write throws ReadOnlyPlayerError. */
  async loadOffline(pid: number): Promise<Player> {
    const [stored, route, mark] = await Promise.all([
      this.node.store.loadDocument(pid), this.node.store.getRoute(pid), this.node.store.getMark(pid),
    ]);
    if (!stored || !route) throw new PlayerOfflineError(`Player ${pid} has never logged in: there is nothing to load.`, { pid });
    const place: PlayerPlace = { home_srvname: route.home, go_srvname: mark?.go ?? '', player_data: {} };
    return this.make(stored.data as PlayerDocument, place, true);
  }

  /** A player of the model over `doc`, with this cluster's limits and (a writable one) his document's size measured. */
  private make(doc: PlayerDocument, place: PlayerPlace, readOnly: boolean): Player {
    const player = this.model.create(doc, place, readOnly);
    player.limits = this.limits;
    if (!readOnly) player.documentBytes = Buffer.byteLength(encodeDocument(doc), 'utf8');
    return player;
  }

  /**
   * Saves the player (fenced by his epoch); resolves once stored. A refused save means another
   * server owns him now: he is dropped here. A copy in doubt is read back from the store first.
   */
  save(loaded: LoadedPlayer): Promise<void> {
    if (loaded.doubtful) return this.readBack(loaded).then(() => this.save(loaded));
    const player = loaded.player;
    let taken: [string, string][] = [];
    let bytes = 0;
    return this.saves.save(loaded.pid, loaded.epoch, () => {
      taken = player.takeNewCalls();
      const data = player.toDocument();
      const text = encodeDocument(data);
      bytes = Buffer.byteLength(text, 'utf8');
      // Past the cap (and larger than what is stored: a document already past it may shrink), this
      // save is not sent: whatever it carries is refused, and the copy is read back.
      if (bytes > this.limits.documentBytes && bytes > loaded.storedBytes) {
        throw new LimitExceededError(
          `Player ${loaded.pid}'s document would be ${bytes} bytes, past its limit of ${this.limits.documentBytes} (playerLimits.documentBytes): ` +
            'the change was refused and nothing of it was applied (nor of the calls saved with it, in the same write: retry those). ' +
            'Make room first (take or remove mails).',
          { pid: loaded.pid, limit: 'documentBytes', bytes },
        );
      }
      player.documentBytes = bytes;
      return { data, text, calls: taken };
    }).then(
      () => {
        player.commitCalls(taken);
        player.dirty = false;
        // Only the save whose snapshot was taken measured it (later saves of one write share its outcome).
        if (bytes > 0) loaded.storedBytes = bytes;
      },
      (error: unknown) => {
        if (error instanceof StaleOwnerError) this.drop(loaded, 'another server owns this player now');
        throw error;
      },
    );
  }

  /**
   * Reads a copy in doubt back from the store: what the store holds is what was acknowledged (and
   * perhaps some of what was in doubt), with the results of the calls it holds. A newer owner's
   * document means he is not ours any more: he is dropped (StaleOwner). Fails with the store's
   * error when it does not answer; nothing ran meanwhile.
   */
  private readBack(loaded: LoadedPlayer): Promise<void> {
    if (loaded.reading) return loaded.reading;
    const reading = this.node.store.loadDocument(loaded.pid).then((stored) => {
      loaded.reading = null;
      if (stored && stored.epoch > loaded.epoch) {
        this.drop(loaded, 'another server owns this player now');
        throw new StaleOwnerError(`Player ${loaded.pid} is owned by another server now (epoch ${stored.epoch}); nothing ran here.`, { pid: loaded.pid });
      }
      const old = loaded.player;
      const doc = (stored?.data as PlayerDocument | undefined) ?? this.model.newDocument(loaded.pid);
      const player = this.make(doc, { home_srvname: old.home_srvname, go_srvname: old.go_srvname, player_data: old.player_data }, false);
      if (stored?.calls) player.restoreCalls(stored.calls);
      loaded.player = player;
      loaded.storedBytes = player.documentBytes;
      loaded.doubtful = false;
      this.node.log.info(`player ${loaded.pid} was read back from the store after a failed save`);
    }, (error: unknown) => {
      loaded.reading = null;
      throw error;
    });
    loaded.reading = reading;
    return reading;
  }

  /** Forgets the player without saving (his copy here is not the writable one any more). */
  drop(loaded: LoadedPlayer, reason: string): void {
    if (this.players.get(loaded.pid) === loaded) this.players.delete(loaded.pid);
    if (loaded.session) {
      loaded.session.send({ type: 'kicked', reason });
      loaded.session.close(4000, reason);
      loaded.session = null;
    }
  }

  /**
   * Runs the method at `path` on the player, here, if this server owns him; a call that changed
   * him is saved (fenced) before this resolves. `callId` makes a retried call return the
   * remembered result instead of running twice.
   */
  invoke(pid: number, path: string[], args: unknown[], callId: string): Promise<unknown> {
    // Promises chained by hand, not async functions: a call here is a few steps, and each await
    // cost a turn of the microtask queue on the way in and out.
    try {
      const key = path.length === 1 ? path[0]! : path.join('.');
      if (!Object.prototype.hasOwnProperty.call(this.model.surface, key)) {
        throw new NotExportedError(
          `${key || '(empty path)'} is not callable on a player: it is not in the player's RPC surface ` +
            `(${Object.keys(this.model.surface).join(', ')}).`,
          { path: key },
        );
      }
      const loaded = this.players.get(pid);
      if (!loaded) return this.notHere(pid);
      if (loaded.state === 'leaving') {
        throw new PlayerMovedError(`Player ${pid} is moving to another server right now; retry once he has arrived.`, { pid, at: '' });
      }
      // After a failed save: read him back first (then the store says whether an earlier try ran).
      if (loaded.doubtful) return this.readBack(loaded).then(() => this.invoke(pid, path, args, callId));
      // The same call arriving again while it runs (a retry overtaking its first try) waits for
      // it: its answer comes once it is stored, or says it was not.
      const running = this.running.get(callId);
      if (running && running.pid === pid) return running.result;
      const remembered = loaded.player.rememberedCall(callId);
      if (remembered) return Promise.resolve(remembered.result);
      const result = this.run(loaded, path, args, callId, key);
      const entry = { pid, result };
      this.running.set(callId, entry);
      const done = () => {
        if (this.running.get(callId) === entry) this.running.delete(callId);
      };
      result.then(done, done);
      return result;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Calls that are running now (until stored, or known not to be), by call id. */
  private readonly running = new Map<string, { pid: number; result: Promise<unknown> }>();

  private run(loaded: LoadedPlayer, path: string[], args: unknown[], callId: string, key: string): Promise<unknown> {
    const player = loaded.player;
    let target: any = player;
    for (let i = 0; i < path.length - 1; i++) target = target[path[i]!];
    const method = target[path[path.length - 1]!];
    if (typeof method !== 'function') {
      throw new NotExportedError(`${key} is in the player's RPC surface but is not a method of the player model: fix the host's surface.`, { path: key });
    }
    const changes = player.changes;
    let result: unknown;
    try {
      result = method.apply(target, args);
    } catch (error) {
      this.threw(loaded, player, changes);
      throw error;
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      return Promise.resolve(result).then(
        (value) => this.finish(loaded, player, key, callId, value),
        (error: unknown) => {
          this.threw(loaded, player, changes);
          throw error;
        },
      );
    }
    return this.finish(loaded, player, key, callId, result);
  }

  /**
   * A method threw: if it had changed the player first, that half-done change must not ride along
   * with a later save. The copy is read back before anything else runs, and a save queued with it
   * is not sent (its callers hear it was not applied).
   */
  private threw(loaded: LoadedPlayer, player: Player, changesBefore: number): void {
    if (player.changes === changesBefore || loaded.player !== player) return;
    loaded.doubtful = true;
    this.saves.cancel(loaded.pid, loaded.epoch, `a call on player ${loaded.pid} failed halfway through changing him`);
  }

  /** After the method ran: a call that changed the player is remembered and saved before it is answered. */
  private finish(loaded: LoadedPlayer, player: Player, key: string, callId: string, result: unknown): Promise<unknown> {
    if (!player.dirty && this.model.surface[key] !== 'write') return Promise.resolve(result);
    if (loaded.player !== player || loaded.doubtful) {
      // A save failed while this (asynchronous) method ran: what it changed may or may not be in
      // the store, and this copy is read back. Only a retry with the same id can say.
      return Promise.reject(new OutcomeUnknownError(
        `A save of player ${loaded.pid} failed while ${key} ran on him: whether it was applied is not known. Retry with the same call id.`,
        { pid: loaded.pid },
      ));
    }
    player.rememberCall(callId, result);
    return this.save(loaded).then(() => {
      this.afterSave?.(loaded);
      return result;
    });
  }

  /** Called after a remote call that changed a player was saved (the game server keeps his profile in step). */
  afterSave: ((loaded: LoadedPlayer) => void) | null = null;

  /** The player is not held here: say where he is, or that he is offline. */
  private async notHere(pid: number): Promise<never> {
    const departure = this.departure(pid);
    if (departure) {
      throw new PlayerMovedError(`Player ${pid} is on his way to ${departure.to}; the call follows him there.`, { pid, at: departure.to });
    }
    if (this.arriving.has(pid)) {
      throw new PlayerMovedError(`Player ${pid} is arriving here right now; retry in a moment.`, { pid, at: this.node.name });
    }
    const route = await this.node.store.getRoute(pid);
    if (route && route.online && ownerOf(route) !== this.node.name) {
      throw new PlayerMovedError(`Player ${pid} is on ${ownerOf(route)}, not ${this.node.name}; the call follows him there.`, { pid, at: ownerOf(route) });
    }
    throw new PlayerOfflineError(`Player ${pid} is offline: a remote call needs him online. Load him read-only, or mail him instead.`, { pid });
  }
}
