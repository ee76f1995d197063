/**
 * The function services as any server reaches them (the caller side), and every server's
 * profile cache:
 *
 *   const services = servicesOf(node);
 *   await services.profiles.update(pid, { level: 12 });               // through his datacenter; pushed everywhere
 *   const profile = await services.profiles.get(pid);                 // from this server's cache
 *   await services.guild('wolves').deduct('wood', 5, 'build:wall');    // on the guild's server, in order
 *   await services.rank('level').top(10);
 *   await services.account().login('ann', 'secret-password');
 *   await services.battle().resolve(pidA, pidB, 'duel-42');           // this game server's battle server
 *
 * Which server serves what comes from the config (placement.ts). Calls that are safe to repeat —
 * reads, and changes carrying a request id — are retried with the same id when the server did not
 * answer, so a deduction retried after a lost answer is applied once. Values follow the same rules
 * as player calls (value types only).
 */
import { randomBytes } from 'node:crypto';
import type { ServerNode } from '../cluster/server-node.js';
import { ServerUnavailableError, TimeoutError } from '../errors.js';
import type { Guild, LedgerEntry, RankEntry, RechargeOrder } from '../store/store.js';
import type { LoginAnswer, RechargeAnswer } from './account.js';
import type { BattleInput, BattleResult } from './battle.js';
import type { TreasuryReceipt } from './guild.js';
import {
  accountServerForName, accountServerForPlayer, battleServerOf, guildServerFor, rankServerFor,
} from './placement.js';
import { ProfileCache } from './profile-cache.js';

export type { ProfileEvent, ProfileListener, Following } from './profile-cache.js';
export type { TreasuryReceipt } from './guild.js';
export type { LoginAnswer, RechargeAnswer } from './account.js';
export type { BattleInput, BattleResult, Fighter, Blow } from './battle.js';

/** How long a repeatable call keeps trying a server that does not answer, ms. */
const RETRY_FOR_MS = 5000;

/** A guild, reached on its guild server. */
export class GuildCaller {
  constructor(private readonly services: Services, readonly gid: string) {}

  private get server(): string {
    return guildServerFor(this.services.node.cluster, this.gid);
  }

  /** Creates the guild unless it exists. */
  create(name: string): Promise<{ created: boolean; guild: Guild }> {
    return this.services.call(this.server, 'guild.create', { gid: this.gid, name }, true);
  }

  get(): Promise<Guild> {
    return this.services.call(this.server, 'guild.get', { gid: this.gid }, true);
  }

  join(pid: number): Promise<Guild> {
    return this.services.call(this.server, 'guild.join', { gid: this.gid, pid }, true);
  }

  leave(pid: number): Promise<Guild> {
    return this.services.call(this.server, 'guild.leave', { gid: this.gid, pid }, true);
  }

  /** Adds `amount` of `resource` to the treasury. `requestId` makes a retry count once (a new one by default). */
  deposit(resource: string, amount: number, reason: string, requestId = this.services.newRequestId()): Promise<TreasuryReceipt> {
    return this.services.call(this.server, 'guild.deposit', { gid: this.gid, resource, amount, reason, requestId }, true);
  }

  /**
   * Takes `amount` of `resource` from the treasury, or fails with InsufficientResourceError and
   * takes nothing. `requestId` makes a retry count once (a new one by default).
   */
  deduct(resource: string, amount: number, reason: string, requestId = this.services.newRequestId()): Promise<TreasuryReceipt> {
    return this.services.call(this.server, 'guild.deduct', { gid: this.gid, resource, amount, reason, requestId }, true);
  }

  /** The latest applied changes, newest first. */
  ledger(count = 50): Promise<LedgerEntry[]> {
    return this.services.call(this.server, 'guild.ledger', { gid: this.gid, count }, true);
  }
}

/** A leaderboard, reached on its rank server. */
export class RankCaller {
  constructor(private readonly services: Services, readonly board: string) {}

  private get server(): string {
    return rankServerFor(this.services.node.cluster, this.board);
  }

  /** Sets the player's score (null takes him off the board); answers his place. */
  submit(pid: number, score: number | null): Promise<RankEntry | null> {
    return this.services.call(this.server, 'rank.submit', { board: this.board, pid, score }, true);
  }

  /** The best `count` places, best first. */
  top(count = 10): Promise<RankEntry[]> {
    return this.services.call(this.server, 'rank.top', { board: this.board, count }, true);
  }

  /** The player's place, or null. */
  of(pid: number): Promise<RankEntry | null> {
    return this.services.call(this.server, 'rank.of', { board: this.board, pid }, true);
  }
}

/** The account center. */
export class AccountCaller {
  constructor(private readonly services: Services) {}

  private byName(account: string): string {
    return accountServerForName(this.services.node.cluster, account);
  }

  register(account: string, password: string, home?: string): Promise<{ account: string; pid: number; home: string }> {
    // Not repeated by itself: a second try would find the account the first one made.
    return this.services.call(this.byName(account), 'account.register', home === undefined ? { account, password } : { account, password, home }, false);
  }

  login(account: string, password: string): Promise<LoginAnswer> {
    return this.services.call(this.byName(account), 'account.login', { account, password }, true);
  }

  get(account: string): Promise<{ account: string; pid: number; home: string; createdAt: number }> {
    return this.services.call(this.byName(account), 'account.get', { account }, true);
  }

  /** Records a recharge order and delivers it (now if he is online, else at his next login); a replayed order id adds nothing. */
  recharge(order: string, pid: number, amount: number): Promise<RechargeAnswer> {
    return this.services.call(accountServerForPlayer(this.services.node.cluster, pid), 'account.recharge', { order, pid, amount }, true);
  }

  /** One order (any account server answers: orders are in the shared store). */
  order(order: string): Promise<RechargeOrder> {
    return this.services.call(this.byName(order), 'account.order', { order }, true);
  }

  pending(pid: number): Promise<RechargeOrder[]> {
    return this.services.call(accountServerForPlayer(this.services.node.cluster, pid), 'account.pending', { pid }, true);
  }
}

/** This game server's battle server. */
export class BattleCaller {
  constructor(private readonly services: Services, readonly server: string) {}

  /** Resolves a battle between two players (from any home), read from their profiles. */
  resolve(a: number, b: number, seed = ''): Promise<BattleResult> {
    return this.services.call(this.server, 'battle.resolve', { a, b, seed }, true);
  }

  /** Resolves a battle again from its recorded input: the same result. */
  replay(input: BattleInput): Promise<BattleResult> {
    return this.services.call(this.server, 'battle.replay', { input }, true);
  }
}

/** Everything one server reaches of the function services, and its profile cache. */
export class Services {
  /** This server's profile cache (reads, writes through the datacenter, follows). */
  readonly profiles: ProfileCache;
  private readonly prefix: string;
  private counter = 0;

  constructor(readonly node: ServerNode) {
    this.profiles = new ProfileCache(node);
    this.prefix = `${node.name}:${randomBytes(6).toString('hex')}:`;
  }

  start(): void {
    this.profiles.start();
  }

  stop(): void {
    this.profiles.stop();
  }

  /** A request id unique across the cluster. */
  newRequestId(): string {
    return `${this.prefix}${++this.counter}`;
  }

  guild(gid: string): GuildCaller {
    return new GuildCaller(this, gid);
  }

  rank(board: string): RankCaller {
    return new RankCaller(this, board);
  }

  account(): AccountCaller {
    return new AccountCaller(this);
  }

  /** This game server's battle server (its config entry's "battle"). */
  battle(): BattleCaller {
    return new BattleCaller(this, battleServerOf(this.node.cluster, this.node.name));
  }

  /**
   * Calls `method` on `server`. A `repeatable` call that finds the server unreachable or slow is
   * sent again (same argument, so the same request id) until it answers or RETRY_FOR_MS pass.
   */
  async call<T>(server: string, method: string, arg: unknown, repeatable: boolean): Promise<T> {
    const deadline = Date.now() + RETRY_FOR_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.node.call<T>(server, method, arg);
      } catch (error) {
        const retry = repeatable && (error instanceof ServerUnavailableError || error instanceof TimeoutError) && Date.now() < deadline;
        if (!retry) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(500, 25 * 2 ** attempt)));
      }
    }
  }
}

const byNode = new WeakMap<ServerNode, Services>();

/** The services of `node`, made (and its profile cache started) on first use. */
export function servicesOf(node: ServerNode): Services {
  let services = byNode.get(node);
  if (!services) {
    services = new Services(node);
    services.start();
    byNode.set(node, services);
  }
  return services;
}

/** Stops the services of `node` (its profile cache stops following the store). */
export function stopServicesOf(node: ServerNode): void {
  byNode.get(node)?.stop();
  byNode.delete(node);
}
