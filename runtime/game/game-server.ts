/**
 * The game role: online players, the client gateway, and the transfer flows of DESIGN §4.
 *
 * Going S → D (home H):
 *   1. S stops taking calls for the player ('leaving'), saves him (fenced), makes a token bound to
 *      pid, S, D, H and the epoch, and calls D `transfer.expect` with it and the player data.
 *   2. S sends the client `connect_to {token, go_srvname: D, home_srvname: H, addr}` and lets go.
 *   3. The client presents the token at D (`enter`). D checks it (signature in constant time,
 *      player, destination, expiry, single use, an expectation from S), claims the route (CAS,
 *      epoch + 1), loads the document, and the player enters.
 *   4. D tells H `transfer.arrived`; H marks the player away at D (CAS on that epoch). Arriving at
 *      home clears the mark instead.
 * Logout at D saves and unloads; H's heartbeat asks each marked player's owner whether he is
 * still online there and takes him back home (CAS on the epoch it read) when he is not, or when
 * the owner has missed `MISSED_BEATS_BEFORE_RELEASE` heartbeats. A client that drops after
 * connect_to and never arrives: once his token expired, the source's heartbeat sets him offline
 * (fenced by the epoch he left under), as a logout there would have.
 */
import {
  InvalidParamsError, JSONRPC_CODES, KuafuError, RpcProtocolError, NotFoundError, PlayerMovedError, PlayerOfflineError, ServerUnavailableError,
  StaleOwnerError, StoreUnavailableError, TimeoutError, TokenInvalidError,
} from '../errors.js';
import { notInConfig } from '../cluster/config.js';
import type { ServerNode } from '../cluster/server-node.js';
import { objectArg, pidField, stringField } from '../rpc/params.js';
import type { MethodTable } from '../rpc/rpc-server.js';
import { ownerOf, type Route, type StoredDocument } from '../store/store.js';
import { Gateway } from './gateway.js';
import { REFERENCE_PLAYER_MODEL, type Player, type PlayerData, type PlayerModel } from './player.js';
import { PlayerHost, type ClientSession, type LoadedPlayer } from './player-host.js';
import { Scripting } from './scripting.js';
import { DEFAULT_TOKEN_TTL_MS, TokenLedger, claimsExpiry, issueToken, verifyToken, type TokenClaims } from './tokens.js';

/** After this many heartbeats without an answer from a marked player's server, the home takes him back. */
export const MISSED_BEATS_BEFORE_RELEASE = 3;

/** A transfer the destination was told to expect. */
interface Expectation {
  claims: TokenClaims;
  playerData: PlayerData;
}

/** What `transfer.expect` carries. */
interface ExpectArgs {
  token: string;
  pid: number;
  playerData: PlayerData;
}

export interface GameServerOptions {
  /** The player model (default: the reference player). */
  model?: PlayerModel;
  /** Time to live of transfer tokens, ms (default 30 s). */
  tokenTtlMs?: number;
  /** What the home passes along with a player who goes away (default: his name and level at home). */
  playerData?: (player: Player) => PlayerData;
  /** A folder of designer scripts to load and watch ('' or absent: none). */
  scriptsDir?: string;
}

export class GameServer {
  readonly host: PlayerHost;
  readonly gateway: Gateway;
  /** Designer scripts on this server. */
  readonly scripts: Scripting;
  private readonly ledger = new TokenLedger();
  /** The level each player's profile was last given from here. */
  private readonly levels = new Map<number, number>();
  private readonly expectations = new Map<string, Expectation>();
  private readonly missedBeats = new Map<number, number>();
  private heartbeat: NodeJS.Timeout | null = null;
  private beating = false;
  private stopping = false;
  private unsubscribe: (() => void) | null = null;
  private readonly tokenTtlMs: number;
  private readonly scriptsDir: string;
  private readonly playerData: (player: Player) => PlayerData;

  constructor(private readonly node: ServerNode, gatewayPort: number, host: string, options: GameServerOptions = {}) {
    this.host = new PlayerHost(node, options.model ?? REFERENCE_PLAYER_MODEL);
    this.tokenTtlMs = options.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS;
    this.scripts = new Scripting(node);
    // The profile mirrors the player's level: a level-up is pushed to every server that shows him.
    const profilesKept = node.cluster.servers.some((server) => server.roles.includes('datacenter'));
    this.host.afterSave = (loaded) => {
      if (!profilesKept) return; // no datacenter in this cluster: no profiles to keep in step
      const level = loaded.player.getlevel();
      if (this.levels.get(loaded.pid) === level) return;
      this.levels.set(loaded.pid, level);
      node.services.profiles.update(loaded.pid, { level }).catch((error: Error) =>
        node.log.warn(`could not update the profile of player ${loaded.pid}: ${error.message}`));
    };
    this.scriptsDir = options.scriptsDir ?? '';
    this.playerData = options.playerData ?? ((player) => ({ name: player.getinfo().name, home_level: player.getlevel() }));
    this.gateway = new Gateway({ host, port: gatewayPort, log: node.log }, {
      login: (session, pid, token) => this.login(session, pid, token).then(
        () => node.metrics.login('ok'),
        (error: unknown) => {
          node.metrics.login(error instanceof KuafuError ? error.kind : 'Internal');
          throw error;
        },
      ),
      enter: (session, pid, token) => this.enter(session, pid, token).then(() => node.metrics.transfer('in')),
      go: (session, server) => this.transfer(session.pid!, server).then(() => undefined),
      logout: (session) => this.logout(session, true),
      closed: (session) => {
        if (this.stopping) return; // stop() saves every player itself
        void this.logout(session, false).catch((error) => node.log.error('logout on close failed', error));
      },
    });
  }

  private get name(): string {
    return this.node.name;
  }

  async start(): Promise<void> {
    this.unsubscribe = this.node.store.onRouteChange((change) => this.host.routeChanged(change.pid, change.epoch));
    await this.gateway.listen();
    if (this.scriptsDir) await this.scripts.watchFolder(this.scriptsDir);
    this.heartbeat = setInterval(() => {
      void this.beat();
      // A player who left from here and never arrived anywhere is offline once his token expired.
      void this.host.settleDepartures().catch((error: Error) => this.node.log.warn(`heartbeat (departures): ${error.message}`));
    }, this.node.heartbeatMs);
    this.heartbeat.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    // Save every player still here before going (fenced: a player lost meanwhile is not overwritten).
    await Promise.all([...this.host.players.values()].map((loaded) => this.host.save(loaded).catch(() => undefined)));
    await this.gateway.close();
    await this.scripts.close();
  }

  /** The JSON-RPC methods of the game role. */
  methods(): MethodTable {
    return {
      ...this.scripts.methods(),
      /** The player's route as this server sees it: `{home, at, epoch, online}` or null. `fresh: true` asks the store. */
      'route.get': (arg: unknown) => {
        const args = objectArg(arg, 'route.get');
        const pid = pidField(args, 'route.get');
        return args.fresh === true ? this.node.store.getRoute(pid) : this.node.routes.get(pid);
      },
      /** Where a player is: route, mark and whether this server holds him. */
      'player.where': async (arg: unknown) => {
        const pid = pidField(objectArg(arg, 'player.where'), 'player.where');
        const [route, mark] = await Promise.all([this.node.store.getRoute(pid), this.node.store.getMark(pid)]);
        return { pid, route, go_srvname: mark?.go ?? '', markEpoch: mark?.epoch ?? 0 };
      },
      /** Destination side of step 1: remember the transfer; answers where the client must connect. */
      'transfer.expect': (arg: unknown) => this.expect(arg as ExpectArgs),
      /** Home side of step 4: the player arrived at `server` under `epoch`. */
      'transfer.arrived': async (arg: unknown) => {
        const args = objectArg(arg, 'transfer.arrived');
        return this.arrived(pidField(args, 'transfer.arrived'), stringField(args, 'transfer.arrived', 'server'), Number(args.epoch));
      },
      /** Operator or another server: move an online player to `to` (forwarded to his owner). */
      'transfer.request': async (arg: unknown) => {
        const args = objectArg(arg, 'transfer.request');
        return this.transferAnywhere(pidField(args, 'transfer.request'), stringField(args, 'transfer.request', 'to'));
      },
      /** Which of these players are online here (the home's heartbeat asks). */
      'player.status': (arg: unknown) => {
        const pids = objectArg(arg, 'player.status').pids;
        if (!Array.isArray(pids)) throw new InvalidParamsError('player.status needs "pids", an array of player ids');
        return Promise.all(pids.map(async (pid) => {
          const loaded = this.host.get(Number(pid));
          if ((loaded && loaded.session) || this.host.arriving.has(Number(pid))) return { pid, online: true };
          // A player between here and his next server still counts as online until he arrives or his token expires.
          return { pid, online: await this.host.stillDeparting(Number(pid)) };
        }));
      },
      /** Runs a method of the player's RPC surface on his owner (this server), at most once per call id. */
      'player.invoke': (arg: unknown) => {
        const args = objectArg(arg, 'player.invoke');
        const pid = pidField(args, 'player.invoke');
        const path = args.path;
        const callArgs = args.args;
        const id = stringField(args, 'player.invoke', 'id');
        if (!Array.isArray(path) || !path.every((p) => typeof p === 'string')) throw new InvalidParamsError('player.invoke needs "path", an array of names');
        if (!Array.isArray(callArgs)) throw new InvalidParamsError('player.invoke needs "args", an array');
        return this.host.invoke(pid, path as string[], callArgs, id);
      },
    };
  }

  // ---- login at home ---------------------------------------------------------------------------

  private async login(session: ClientSession, pid: number, token: string): Promise<void> {
    const claims = verifyToken(this.node.secret, token, { kind: 'login', pid, server: this.name });
    this.ledger.consume(claims);
    for (let attempt = 0; attempt < 3; attempt++) {
      const route = await this.node.store.ensureRoute(pid, this.name);
      if (route.home !== this.name) {
        throw new TokenInvalidError(`Player ${pid}'s home is ${route.home}, not ${this.name}: log in there.`, { pid, home: route.home });
      }
      const owner = ownerOf(route);
      try {
        if (owner === this.name) return await this.enterAtHome(session, pid, route);
        return await this.sendToOwner(session, pid, route, owner);
      } catch (error) {
        if (!(error instanceof StaleOwnerError)) throw error;
        // The route moved while we looked: read it again.
      }
    }
    throw new PlayerMovedError(`Player ${pid} keeps moving between servers; log in again in a moment.`, { pid, at: '' });
  }

  /** The home owns the player: claim him (a new epoch for this session), load him, let him in. */
  private async enterAtHome(session: ClientSession, pid: number, route: Route): Promise<void> {
    let loaded = this.host.get(pid);
    if (loaded?.state === 'leaving') {
      throw new PlayerMovedError(`Player ${pid} is being moved to another server right now; log in again in a moment.`, { pid, at: '' });
    }
    if (loaded) {
      // Already online here: the new connection takes over; ownership does not change.
      this.kickSession(loaded, 'logged in again from another connection');
      this.attach(session, loaded);
      return;
    }
    // Claiming him home also clears the home's mark. Calls landing meanwhile wait a moment.
    this.host.arriving.add(pid);
    let claimed: Route;
    try {
      let document: StoredDocument | null;
      ({ route: claimed, document } = await this.node.store.claimAndLoad(pid, { expectEpoch: route.epoch, at: '', online: true }));
      loaded = await this.host.load(pid, claimed.epoch, { home_srvname: this.name, go_srvname: '', player_data: {} }, document);
    } finally {
      this.host.arriving.delete(pid);
    }
    this.unlist(pid, claimed.epoch);
    this.attach(session, loaded);
  }

  /**
   * The player is held by another server (he went there and has not come back): send the client on
   * to it with a fresh token. If that server is gone, the home takes the player back.
   */
  private async sendToOwner(session: ClientSession, pid: number, route: Route, owner: string): Promise<void> {
    const alive = await this.node.store.getServer(owner);
    if (alive) {
      try {
        const { token } = issueToken(this.node.secret, { kind: 'transfer', pid, source: this.name, destination: owner, home: this.name, epoch: route.epoch }, this.tokenTtlMs);
        // What the home passes along, from his stored copy (the home does not hold him).
        const playerData = this.playerData(await this.host.loadOffline(pid));
        const { gateway } = await this.node.call<{ gateway: string }>(owner, 'transfer.expect', { token, pid, playerData });
        session.send({ type: 'connect_to', token, go_srvname: owner, home_srvname: this.name, addr: gateway });
        session.close(1000, `go to ${owner}`);
        return;
      } catch (error) {
        if (!(error instanceof ServerUnavailableError || error instanceof TimeoutError)) throw error;
      }
    }
    this.node.log.info(`player ${pid} was held by ${owner}, which is gone: taking him back home`);
    const back = await this.node.store.releaseToHome(pid, route.epoch);
    await this.enterAtHome(session, pid, back);
  }

  // ---- transfer: source side -------------------------------------------------------------------

  /** Moves an online player wherever he is: his owner does it. */
  private async transferAnywhere(pid: number, to: string): Promise<{ pid: number; from: string; to: string }> {
    const route = await this.node.store.getRoute(pid);
    if (!route || !route.online) throw new PlayerOfflineError(`Player ${pid} is offline: only an online player can be moved.`, { pid });
    this.checkDestination(to);
    const owner = ownerOf(route);
    if (owner !== this.name) return this.node.call(owner, 'transfer.request', { pid, to });
    return this.transfer(pid, to);
  }

  /**
   * A transfer goes only to a game server of the cluster config: any other name (a client's `go`
   * names anything) is refused with NotFoundError before anything is made for it.
   */
  private checkDestination(to: string): void {
    if (!this.node.isServer(to)) throw notInConfig(to);
    if (!this.node.cluster.servers.some((s) => s.name === to && s.roles.includes('game'))) {
      throw new NotFoundError(`${to} is not a game server: only game servers take players. 'kuafu status' lists them.`, { server: to });
    }
  }

  /** Source side of a transfer (steps 1 and 2). */
  async transfer(pid: number, to: string): Promise<{ pid: number; from: string; to: string }> {
    const loaded = this.host.get(pid);
    if (!loaded || !loaded.session) throw new PlayerOfflineError(`Player ${pid} is not online on ${this.name}.`, { pid });
    if (to === this.name) throw new InvalidParamsError(`player ${pid} is already on ${to}`);
    this.checkDestination(to);
    if (loaded.state === 'leaving') {
      throw new PlayerMovedError(`Player ${pid} is already being moved; one transfer at a time.`, { pid, at: '' });
    }
    loaded.state = 'leaving';
    try {
      const home = loaded.player.home_srvname;
      const playerData = home === this.name ? this.playerData(loaded.player) : loaded.player.player_data;
      const { token } = issueToken(this.node.secret, { kind: 'transfer', pid, source: this.name, destination: to, home, epoch: loaded.epoch }, this.tokenTtlMs);
      // The save and the destination's expectation go out together: the client gets the token
      // only once both are done, so the destination never loads an older document.
      const [{ gateway }] = await Promise.all([
        this.node.call<{ gateway: string }>(to, 'transfer.expect', { token, pid, playerData }).catch((error: unknown) => {
          if (error instanceof RpcProtocolError && error.code === JSONRPC_CODES.MethodNotFound) {
            throw new NotFoundError(`${to} is not a game server: only game servers take players. 'kuafu status' lists them.`, { server: to });
          }
          throw error;
        }),
        this.host.save(loaded),
      ]);
      const session = loaded.session;
      this.host.players.delete(pid);
      this.levels.delete(pid);
      this.host.departed(pid, to, loaded.epoch, claimsExpiry(token));
      session?.send({ type: 'connect_to', token, go_srvname: to, home_srvname: home, addr: gateway });
      if (session) {
        session.pid = null;
        session.close(1000, `go to ${to}`);
      }
      loaded.session = null;
      this.node.metrics.transfer('out');
      return { pid, from: this.name, to };
    } catch (error) {
      if (this.host.get(pid) === loaded) loaded.state = 'active';
      throw error;
    }
  }

  // ---- transfer: destination side --------------------------------------------------------------

  private expect(arg: ExpectArgs): { gateway: string } {
    const args = objectArg(arg, 'transfer.expect');
    const pid = pidField(args, 'transfer.expect');
    const claims = verifyToken(this.node.secret, args.token, { kind: 'transfer', pid, server: this.name });
    const playerData = (args.playerData ?? {}) as PlayerData;
    this.sweepExpectations();
    this.expectations.set(claims.nonce, { claims, playerData });
    return { gateway: this.gateway.url };
  }

  /** Destination side of step 3: the client arrives with its token. */
  private async enter(session: ClientSession, pid: number, token: string): Promise<void> {
    const claims = verifyToken(this.node.secret, token, { kind: 'transfer', pid, server: this.name });
    this.ledger.consume(claims);
    const expectation = this.expectations.get(claims.nonce);
    this.expectations.delete(claims.nonce);
    if (!expectation) {
      throw new TokenInvalidError(`No transfer to ${this.name} was prepared with this token (the server may have restarted). Log in again at home server ${claims.home}.`, { pid, home: claims.home });
    }
    const atHome = this.name === claims.home;
    const held = this.host.get(pid);
    if (held && held.state === 'active' && held.epoch === claims.epoch) {
      // He is held here already (his home sent his new connection on to us): it takes over.
      this.kickSession(held, 'logged in again from another connection');
      this.attach(session, held);
      return;
    }
    let route: Route;
    let document: StoredDocument | null;
    this.host.arriving.add(pid);
    try {
      ({ route, document } = await this.node.store.claimAndLoad(pid, { expectEpoch: claims.epoch, at: atHome ? '' : this.name, online: true }));
    } catch (error) {
      this.host.arriving.delete(pid);
      if (error instanceof StaleOwnerError) {
        throw new TokenInvalidError(`Player ${pid} moved after this token was issued, so it no longer applies. Log in again at home server ${claims.home}.`, { pid, home: claims.home });
      }
      throw error;
    }
    if (held) this.host.drop(held, 'this copy is out of date');
    let loaded: LoadedPlayer;
    try {
      loaded = await this.host.load(pid, route.epoch, {
        home_srvname: claims.home, go_srvname: atHome ? '' : this.name, player_data: atHome ? {} : expectation.playerData,
      }, document);
    } finally {
      this.host.arriving.delete(pid);
    }
    if (atHome) this.unlist(pid, route.epoch); // the claim home cleared the mark
    this.attach(session, loaded);
    if (!atHome) void this.tellHome(pid, claims.home, route.epoch);
  }

  /**
   * Step 4, from the destination: tell the home, until it has heard (its heartbeat only checks the
   * players it marked) or the player is no longer held here under this epoch. Tries again after
   * 0.1 s, 0.2 s, 0.4 s… up to a heartbeat apart, so a home that was down learns it once it is back.
   */
  private async tellHome(pid: number, home: string, epoch: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.node.call(home, 'transfer.arrived', { pid, server: this.name, epoch });
        return;
      } catch (error) {
        if (!(error instanceof ServerUnavailableError || error instanceof TimeoutError || error instanceof StoreUnavailableError)) {
          this.node.log.warn(`home ${home} refused to mark player ${pid} away: ${(error as Error).message}`);
          return;
        }
        if (attempt === 3) this.node.log.warn(`could not tell home ${home} that player ${pid} arrived (${error.message}); trying until it hears`);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** (attempt - 1), this.node.heartbeatMs)).unref());
      if (this.stopping) return;
      // He moved on since (a newer epoch): that move tells the home itself.
      const route = await this.node.store.getRoute(pid).catch(() => undefined);
      if (route !== undefined && route?.epoch !== epoch) return;
    }
  }

  /** Home side of step 4: mark the player away at `server`, unless something newer happened. */
  private async arrived(pid: number, server: string, epoch: number): Promise<{ marked: boolean }> {
    try {
      await this.node.store.setMark(pid, this.name, server, epoch);
      this.missedBeats.delete(pid);
      return { marked: true };
    } catch (error) {
      if (error instanceof StaleOwnerError) return { marked: false }; // a late message: a newer move already happened
      throw error;
    }
  }

  // ---- logout ----------------------------------------------------------------------------------

  /** The client logs out (or its connection closes): save, mark offline, unload. */
  private async logout(session: ClientSession, polite: boolean): Promise<void> {
    const pid = session.pid;
    if (pid === null) return;
    session.pid = null;
    const loaded = this.host.get(pid);
    if (!loaded || loaded.session !== session) return;
    loaded.session = null;
    if (loaded.state === 'leaving') return; // a transfer is taking him away
    this.host.players.delete(pid);
    this.levels.delete(pid);
    try {
      await this.host.save(loaded);
      await this.node.store.setOnline(pid, loaded.epoch, false);
    } catch (error) {
      if (!(error instanceof StaleOwnerError)) throw error;
    }
    if (polite) {
      session.send({ type: 'bye', pid });
      session.close(1000, 'logged out');
    }
  }

  // ---- the home's heartbeat --------------------------------------------------------------------

  /** For each player this home has marked away: is he still online where he is? */
  private async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      const pids = await this.node.store.listMarked(this.name);
      const byOwner = new Map<string, { pid: number; epoch: number }[]>();
      for (const pid of pids) {
        const [route, mark] = await Promise.all([this.node.store.getRoute(pid), this.node.store.getMark(pid)]);
        if (!route || !mark || route.at === '') {
          if (route && mark && route.at === '') {
            // A mark left behind while he is home: clear it first; unlist only once it is gone (or
            // he moved meanwhile: then that move's own listing, under a later epoch, stays).
            const cleared = await this.node.store.setMark(pid, this.name, '', route.epoch).then(() => true, (error: unknown) => error instanceof StaleOwnerError);
            if (!cleared) continue;
          }
          // Only what this state makes stale: a move since (listed under a later epoch) stays listed.
          // Away without a mark yet (his arrival is on its way here), his current epoch stays listed too.
          const below = !route ? Number.MAX_SAFE_INTEGER : route.at === '' ? route.epoch + 1 : route.epoch;
          await this.node.store.unlistMarked(this.name, pid, below);
          this.missedBeats.delete(pid);
          continue;
        }
        const owner = ownerOf(route);
        let list = byOwner.get(owner);
        if (!list) byOwner.set(owner, (list = []));
        list.push({ pid, epoch: route.epoch });
      }
      await Promise.all([...byOwner].map(([owner, players]) => this.askOwner(owner, players)));
    } catch (error) {
      this.node.log.warn(`heartbeat: ${(error as Error).message}`);
    } finally {
      this.beating = false;
    }
  }

  private async askOwner(owner: string, players: { pid: number; epoch: number }[]): Promise<void> {
    let online: Set<number> | null = null;
    try {
      const status = await this.node.call<{ pid: number; online: boolean }[]>(owner, 'player.status', { pids: players.map((p) => p.pid) });
      online = new Set(status.filter((s) => s.online).map((s) => s.pid));
    } catch (error) {
      if (!(error instanceof KuafuError)) throw error;
    }
    for (const { pid, epoch } of players) {
      if (online?.has(pid)) {
        this.missedBeats.delete(pid);
        continue;
      }
      if (online === null) {
        const missed = (this.missedBeats.get(pid) ?? 0) + 1;
        this.missedBeats.set(pid, missed);
        if (missed < MISSED_BEATS_BEFORE_RELEASE) continue;
      }
      try {
        const back = await this.node.store.releaseToHome(pid, epoch);
        await this.node.store.unlistMarked(this.name, pid, back.epoch + 1);
        this.node.log.info(`player ${pid} is no longer online at ${owner}${online === null ? ` (no answer for ${MISSED_BEATS_BEFORE_RELEASE} beats)` : ''}: mark cleared, he is home again`);
      } catch (error) {
        if (!(error instanceof StaleOwnerError)) throw error; // he moved meanwhile: the next beat looks again
      }
      this.missedBeats.delete(pid);
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private attach(session: ClientSession, loaded: LoadedPlayer): void {
    loaded.session = session;
    session.pid = loaded.pid;
    const player = loaded.player;
    session.send({
      type: 'entered', pid: loaded.pid, server: this.name, home_srvname: player.home_srvname,
      go_srvname: player.go_srvname, epoch: loaded.epoch, player_data: player.player_data, player: player.getinfo(),
    });
  }

  private kickSession(loaded: LoadedPlayer, reason: string): void {
    const old = loaded.session;
    if (!old) return;
    loaded.session = null;
    old.pid = null;
    old.send({ type: 'kicked', reason });
    old.close(4000, reason);
  }

  /**
   * Drops the player from this home's list of marked players, now that this home holds him under
   * `epoch` (the list may lag: the heartbeat tolerates it; a later move's listing stays).
   */
  private unlist(pid: number, epoch: number): void {
    this.node.store.unlistMarked(this.name, pid, epoch + 1).catch((error) => this.node.log.warn(`could not unlist player ${pid}: ${(error as Error).message}`));
  }

  private sweepExpectations(): void {
    const now = Date.now();
    for (const [nonce, expectation] of this.expectations) {
      if (expectation.claims.expiresAt < now) this.expectations.delete(nonce);
    }
  }
}
