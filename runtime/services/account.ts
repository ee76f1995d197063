/**
 * The account center: accounts and their home server, logins that hand out short-lived login
 * tokens (the home's gateway checks them: runtime/game/tokens.ts), and recharge orders.
 *
 * Credentials: an account name and a password; the store keeps only a scrypt hash of it
 * (`scrypt$N$r$p$salt$hash`). A login answers the player id, the home server, its gateway address
 * and a login token for that home, good for DEFAULT_TOKEN_TTL_MS (30 s) and one login.
 *
 * Recharge orders are delivered exactly once, to the player's current server, through the proxy
 * RPC: `addgold(amount, "recharge:<order>")` with the call id `kept:recharge:<order>`. The order is
 * stored first (a replayed order id adds nothing); delivery is retried until it is acknowledged,
 * and a retried call with the same id runs at most once on the player (with KEPT_CALL_PREFIX, its
 * result is stored with his save in his kept ledger, beside his document, for the retention of
 * 30 days, so a retry after hours of other calls still finds it), then the order is marked
 * delivered: what lasts is the order's own state. A player who is offline keeps his orders
 * pending: they go out when a route publication says he is online again, or at the next sweep;
 * meanwhile (once a minute) an order of his whose kept result is found — it ran, and its marking
 * was lost — is only marked. Each player's orders are delivered by one account server
 * (placement.ts), one at a time.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { ServerNode } from '../cluster/server-node.js';
import {
  AlreadyExistsError, BadCredentialsError, InvalidParamsError, KuafuError, NotFoundError, PlayerMovedError, PlayerOfflineError,
  OutcomeUnknownError, RequestConflictError, ServerUnavailableError, StoreUnavailableError, TimeoutError, TooManyAttemptsError, WrongServerError,
} from '../errors.js';
import { DEFAULT_TOKEN_TTL_MS, issueLoginToken } from '../game/tokens.js';
import { KEPT_CALL_PREFIX, type RechargeOrder, type Store, type Unsubscribe } from '../store/store.js';
import { accountServerForPlayer, hashText, serversWithRole } from './placement.js';

const scrypt = promisify(scryptCallback) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/** scrypt cost: N = 2^14, r = 8, p = 1 (about 16 MiB and tens of ms per hash). */
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };

/** Logins of one account that may fail within LOGIN_WINDOW_MS before the next ones are refused (TooManyAttempts). */
export const MAX_FAILED_LOGINS = 5;
const LOGIN_WINDOW_MS = 60_000;
/**
 * Accounts with login attempts remembered, beyond which the windows that are over are forgotten at
 * once (else as each account logs in again). Limits are per account server: with several, each counts its own.
 */
const MAX_REMEMBERED_FAILURES = 10_000;

/** How often pending orders are looked at again, ms. */
const SWEEP_MS = 1000;
/** How often the pending orders of an offline player are looked up in his kept ledger (ran, not marked), ms. */
const OFFLINE_SETTLE_MS = 60_000;

export interface LoginAnswer {
  account: string;
  pid: number;
  home: string;
  /** The home server's client gateway, `ws://host:port`. */
  gateway: string;
  /** The login token to present there (once, before `expiresAt`). */
  token: string;
  expiresAt: number;
}

/** What `account.recharge` answers. */
export interface RechargeAnswer extends RechargeOrder {
  /** True when this order id had been received before: nothing was added this time. */
  replayed: boolean;
}

async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

async function passwordMatches(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: 64 * 1024 * 1024 });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** The account server's side. */
export class AccountService {
  /** Players with pending orders that this server delivers. */
  private readonly pendingPlayers = new Set<number>();
  /** One delivery run per player at a time: the run under way, and the one queued after it. */
  private readonly running = new Map<number, Promise<void>>();
  private readonly queued = new Map<number, Promise<void>>();
  /** When the orders of each offline player with pending orders were last settled from his kept ledger. */
  private readonly settledOffline = new Map<number, number>();
  private readonly unsubscribes: Unsubscribe[] = [];
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  private stopped = false;
  /** A comparison hash for unknown accounts, so a wrong name takes as long as a wrong password. */
  private decoy: Promise<string> | null = null;
  /**
   * Per account: logins that failed (or are being checked) since `since`. Each attempt counts from
   * its start, so guesses sent at once over many connections count together.
   */
  private readonly attempts = new Map<string, { count: number; since: number }>();

  constructor(private readonly node: ServerNode, private readonly tokenTtlMs = DEFAULT_TOKEN_TTL_MS) {}

  async start(): Promise<void> {
    this.unsubscribes.push(
      this.node.store.onRouteChange((change) => {
        if (change.online && this.pendingPlayers.has(change.pid)) void this.deliver(change.pid);
      }),
      this.node.store.onReconnect(() => void this.sweep()),
    );
    await this.sweep().catch(() => undefined);
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    await Promise.all([...this.running.values(), ...this.queued.values()].map((run) => run.catch(() => undefined)));
  }

  // ---- accounts --------------------------------------------------------------------------------

  /** Creates an account with a new player id at home `home` (a game server; by default one picked by the name). */
  async register(account: string, password: string, home?: string): Promise<{ account: string; pid: number; home: string }> {
    const games = serversWithRole(this.node.cluster, 'game');
    if (games.length === 0) throw new InvalidParamsError('the cluster config has no game server to be a home');
    const chosen = home ?? games[hashText(account) % games.length]!;
    if (!games.includes(chosen)) {
      throw new InvalidParamsError(`home ${chosen} is not a game server of this cluster; pick one of ${games.join(', ')}`);
    }
    const made = await this.node.store.createAccount(account, await hashPassword(password), chosen);
    if (!made.created) throw new AlreadyExistsError(`Account ${account} exists already: log in with it, or pick another name.`, { account });
    this.node.log.info(`account ${account} registered: player ${made.account.pid}, home ${chosen}`);
    return { account, pid: made.account.pid, home: made.account.home };
  }

  /** Checks the password and hands out a login token for the player's home. */
  async login(account: string, password: string): Promise<LoginAnswer> {
    const attempt = this.countAttempt(account);
    let found: Awaited<ReturnType<Store['getAccount']>>;
    let matches: boolean;
    try {
      found = await this.node.store.getAccount(account);
      if (!found) {
        this.decoy ??= hashPassword(randomBytes(12).toString('hex'));
        await passwordMatches(password, await this.decoy);
      }
      matches = found !== null && await passwordMatches(password, found.passwordHash);
    } catch (error) {
      attempt.count--; // not a wrong password: the store failed, say
      throw error;
    }
    if (!found || !matches) {
      throw new BadCredentialsError('Wrong account name or password: check both and log in again.', { account });
    }
    this.attempts.delete(account);
    const record = await this.node.store.getServer(found.home);
    if (!record || !record.gateway) {
      throw new ServerUnavailableError(
        `Home server ${found.home} of account ${account} is not running (or has no gateway): start it, then log in again.`,
        { server: found.home },
      );
    }
    const token = issueLoginToken(this.node.secret, found.pid, found.home, this.tokenTtlMs);
    return { account, pid: found.pid, home: found.home, gateway: record.gateway, token, expiresAt: Date.now() + this.tokenTtlMs };
  }

  /**
   * Counts a login attempt of `account`; refuses it (TooManyAttempts) when MAX_FAILED_LOGINS have
   * failed in this window already. A successful login clears the count.
   */
  private countAttempt(account: string): { count: number } {
    const now = Date.now();
    let attempts = this.attempts.get(account);
    if (attempts && now - attempts.since >= LOGIN_WINDOW_MS) attempts = undefined;
    if (!attempts) {
      // Windows are kept in the order they started (a new window goes to the end), so the ones that
      // are over are at the front.
      this.attempts.delete(account);
      if (this.attempts.size >= MAX_REMEMBERED_FAILURES) {
        for (const [name, old] of this.attempts) {
          if (now - old.since < LOGIN_WINDOW_MS) break;
          this.attempts.delete(name);
        }
      }
      attempts = { count: 0, since: now };
      this.attempts.set(account, attempts);
    }
    if (attempts.count >= MAX_FAILED_LOGINS) {
      const retryAfterMs = attempts.since + LOGIN_WINDOW_MS - now;
      throw new TooManyAttemptsError(
        `Account ${account} had ${MAX_FAILED_LOGINS} failed logins within a minute: wait ${Math.ceil(retryAfterMs / 1000)} s, then log in again.`,
        { account, retryAfterMs },
      );
    }
    attempts.count++;
    return attempts;
  }

  /** An account without its password hash. */
  async get(account: string): Promise<{ account: string; pid: number; home: string; createdAt: number }> {
    const found = await this.node.store.getAccount(account);
    if (!found) throw new NotFoundError(`There is no account ${account}.`, { account });
    return { account, pid: found.pid, home: found.home, createdAt: found.createdAt };
  }

  // ---- recharge --------------------------------------------------------------------------------

  /**
   * Records a recharge order and delivers it if the player is online (resolving once it was
   * tried); an offline player gets it at his next login. A replayed order id adds nothing.
   */
  async recharge(order: string, pid: number, amount: number): Promise<RechargeAnswer> {
    const deliverer = accountServerForPlayer(this.node.cluster, pid);
    if (deliverer !== this.node.name) {
      throw new WrongServerError(
        `Recharge orders of player ${pid} are delivered by account server ${deliverer}, not ${this.node.name}: send the order there (services.account() finds it).`,
        { pid, server: deliverer },
      );
    }
    const { created, order: stored } = await this.node.store.createOrder(order, pid, amount);
    if (!created && (stored.pid !== pid || stored.amount !== amount)) {
      throw new RequestConflictError(
        `Order ${order} was received before for player ${stored.pid} and ${stored.amount} gold, not player ${pid} and ${amount}: an order id names one order.`,
        { order, pid: stored.pid, amount: stored.amount },
      );
    }
    if (stored.state === 'pending') {
      this.pendingPlayers.add(pid);
      await this.deliver(pid);
    }
    const now = (await this.node.store.getOrder(order)) ?? stored;
    return { ...now, replayed: !created };
  }

  /** One order. */
  async order(order: string): Promise<RechargeOrder> {
    const found = await this.node.store.getOrder(order);
    if (!found) throw new NotFoundError(`There is no recharge order ${order}.`, { order });
    return found;
  }

  /** A player's pending orders, oldest first. */
  pending(pid: number): Promise<RechargeOrder[]> {
    return this.node.store.pendingOrders(pid);
  }

  // ---- delivery --------------------------------------------------------------------------------

  /** Delivers the player's pending orders; one run per player at a time (a run asked for during one follows it). */
  private deliver(pid: number): Promise<void> {
    const queued = this.queued.get(pid);
    if (queued) return queued;
    const before = this.running.get(pid) ?? Promise.resolve();
    const run = before.then(async () => {
      this.queued.delete(pid);
      this.running.set(pid, run);
      try {
        await this.deliverNow(pid);
      } catch (error) {
        this.node.log.warn(`recharge delivery to player ${pid}: ${(error as Error).message}`);
      } finally {
        if (this.running.get(pid) === run) this.running.delete(pid);
      }
    });
    this.queued.set(pid, run);
    return run;
  }

  private async deliverNow(pid: number): Promise<void> {
    if (this.stopped) return;
    const orders = await this.node.store.pendingOrders(pid);
    if (orders.length === 0) {
      this.pendingPlayers.delete(pid);
      return;
    }
    const route = await this.node.routes.get(pid);
    for (const order of orders) {
      const reason = `recharge:${order.order}`;
      const callId = `${KEPT_CALL_PREFIX}${reason}`;
      // Offline, an order that ran already (its result is in his kept ledger: the marking was lost)
      // is only marked, long before that result expires; online, the retried call answers it.
      const ran = !route?.online && (await this.node.store.keptCall(pid, callId)) !== null;
      if (!ran && !route?.online) continue; // held until he is online
      try {
        if (!ran) await this.node.players.invoke(pid, ['addgold'], [order.amount, reason], callId);
      } catch (error) {
        if (
          error instanceof PlayerOfflineError || error instanceof PlayerMovedError || error instanceof ServerUnavailableError ||
          error instanceof TimeoutError || error instanceof StoreUnavailableError || error instanceof OutcomeUnknownError
        ) {
          return; // held: the next route publication or sweep tries again, with the same call id
        }
        if (error instanceof KuafuError) {
          this.node.log.warn(`recharge order ${order.order} for player ${pid} refused by his server (${error.message}); it stays pending`);
          continue;
        }
        throw error;
      }
      await this.node.store.markOrderDelivered(order.order);
      this.node.log.info(`recharge order ${order.order}: ${order.amount} gold delivered to player ${pid}`);
    }
    if ((await this.node.store.pendingOrders(pid)).length === 0) this.pendingPlayers.delete(pid);
  }

  /** Looks at every player with pending orders that this server delivers, and delivers to those online. */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      const pids = await this.node.store.playersWithPendingOrders();
      for (const pid of pids) {
        if (accountServerForPlayer(this.node.cluster, pid) === this.node.name) this.pendingPlayers.add(pid);
      }
      const now = Date.now();
      await Promise.all([...this.pendingPlayers].map(async (pid) => {
        const route = await this.node.routes.get(pid);
        if (route?.online) {
          this.settledOffline.delete(pid);
          await this.deliver(pid);
        } else if (now - (this.settledOffline.get(pid) ?? 0) >= OFFLINE_SETTLE_MS) {
          this.settledOffline.set(pid, now);
          await this.deliver(pid); // offline: only orders that ran already are marked
        }
      }));
      for (const pid of this.settledOffline.keys()) if (!this.pendingPlayers.has(pid)) this.settledOffline.delete(pid);
    } catch (error) {
      this.node.log.debug(`recharge sweep: ${(error as Error).message}`);
    } finally {
      this.sweeping = false;
    }
  }
}
