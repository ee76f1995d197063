/**
 * The account center: accounts and their home server, logins that hand out short-lived login
 * tokens (the home's gateway checks them: runtime/game/tokens.ts), and recharge orders.
 *
 * Credentials: an account name and a password; the store keeps only a scrypt hash of it
 * (`scrypt$N$r$p$salt$hash`). A login answers the player id, the home server, its gateway address
 * and a login token for that home, good for DEFAULT_TOKEN_TTL_MS (30 s) and one login. Each login
 * and registration costs one scrypt, known account or not (an unknown one is checked against a
 * stand-in hash and answered as a wrong password); the config's loginLimits bound that work per
 * source address, and failed logins count per source and account (login()), all in bounded maps.
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
import { DEFAULT_LOGIN_LIMITS, type LoginLimits } from '../cluster/config.js';
import { MAX_TRACKED_KEYS, WindowCounts } from './login-limits.js';

const scrypt = promisify(scryptCallback) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/** scrypt cost: N = 2^14, r = 8, p = 1 (about 16 MiB and tens of ms per hash). */
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };

/** The window of the login limits, ms. */
const LOGIN_WINDOW_MS = 60_000;
/** The window of the registration limit, ms. */
const REGISTRATION_WINDOW_MS = 3_600_000;
/**
 * The source of requests that come over JSON-RPC without one (a trusted server): only the
 * failed-login limit applies to them, counted per account for all of them together.
 */
export const RPC_SOURCE = 'rpc';

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
  /** A comparison hash for unknown accounts, so a wrong name costs and answers what a wrong password does. */
  private decoy: Promise<string> | null = null;
  private readonly limits: LoginLimits;
  /** Per source: logins tried in this minute (each one a hash). */
  private readonly loginsBySource = new WindowCounts(LOGIN_WINDOW_MS, MAX_TRACKED_KEYS);
  /**
   * Per source and account: logins that failed (or are being checked) in this minute. Each attempt
   * counts from its start, so guesses sent at once over many connections count together.
   */
  private readonly failures = new WindowCounts(LOGIN_WINDOW_MS, MAX_TRACKED_KEYS);
  /** Per source: registrations tried in this hour. */
  private readonly registrationsBySource = new WindowCounts(REGISTRATION_WINDOW_MS, MAX_TRACKED_KEYS);
  /** Per source: password hashes running now (a key is gone at 0, so this holds only what runs). */
  private readonly hashing = new Map<string, number>();

  constructor(private readonly node: ServerNode, private readonly tokenTtlMs = DEFAULT_TOKEN_TTL_MS) {
    this.limits = node.cluster.loginLimits ?? DEFAULT_LOGIN_LIMITS;
  }

  async start(): Promise<void> {
    this.decoy ??= hashPassword(randomBytes(12).toString('hex'));
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

  /**
   * Creates an account with a new player id at home `home` (a game server; by default one picked by
   * the name). `source` is the client's address (the login gateway's connection); without one (a
   * server calling over JSON-RPC) no per-source limit applies.
   */
  async register(account: string, password: string, home?: string, source?: string): Promise<{ account: string; pid: number; home: string }> {
    const games = serversWithRole(this.node.cluster, 'game');
    if (games.length === 0) throw new InvalidParamsError('the cluster config has no game server to be a home');
    const chosen = home ?? games[hashText(account) % games.length]!;
    if (!games.includes(chosen)) {
      throw new InvalidParamsError(`home ${chosen} is not a game server of this cluster; pick one of ${games.join(', ')}`);
    }
    if (source) {
      const limit = this.limits.registrationsPerSourcePerHour;
      if (this.registrationsBySource.count(source) >= limit) {
        this.node.metrics.accountRefused('registrations');
        const retryAfterMs = this.registrationsBySource.retryAfterMs(source);
        throw new TooManyAttemptsError(
          `Your address registered ${limit} accounts within an hour, the most it may: wait ${Math.ceil(retryAfterMs / 60_000)} min, or log in with one of them.`,
          { retryAfterMs },
        );
      }
    }
    const release = this.reserveHash(source);
    if (source) this.registrationsBySource.add(source);
    let passwordHash: string;
    try {
      this.node.metrics.passwordHash('register');
      passwordHash = await hashPassword(password);
    } finally {
      release();
    }
    const made = await this.node.store.createAccount(account, passwordHash, chosen);
    if (!made.created) throw new AlreadyExistsError(`Account ${account} exists already: log in with it, or pick another name.`, { account });
    this.node.log.info(`account ${account} registered: player ${made.account.pid}, home ${chosen}`);
    return { account, pid: made.account.pid, home: made.account.home };
  }

  /**
   * Checks the password and hands out a login token for the player's home. `source` is the
   * client's address (the login gateway's connection); a server calling over JSON-RPC may pass its
   * client's, else all its logins count as one source that only the failed-login limit applies to.
   *
   * An unknown account is answered exactly as a wrong password (BadCredentials, the same message),
   * after the same work: one scrypt against a stand-in hash. What bounds that work is the source:
   * `loginsPerSourcePerMinute` logins, `hashesInFlightPerSource` at once; past either, the login is
   * refused (TooManyAttempts) before anything is looked up. Failed logins count per source and
   * account (`failedLoginsPerAccountPerSource` a minute), so a stranger's guesses refuse the
   * stranger, never the owner logging in from his own address.
   */
  async login(account: string, password: string, source?: string): Promise<LoginAnswer> {
    const from = source || RPC_SOURCE;
    const key = `${from}\n${account}`;
    if (source) {
      const limit = this.limits.loginsPerSourcePerMinute;
      if (this.loginsBySource.count(source) >= limit) {
        this.node.metrics.accountRefused('source');
        const retryAfterMs = this.loginsBySource.retryAfterMs(source);
        throw new TooManyAttemptsError(
          `Your address tried ${limit} logins within a minute, the most it may: wait ${Math.ceil(retryAfterMs / 1000)} s, then log in again.`,
          { retryAfterMs },
        );
      }
    }
    const maxFailures = this.limits.failedLoginsPerAccountPerSource;
    if (this.failures.count(key) >= maxFailures) {
      this.node.metrics.accountRefused('account');
      const retryAfterMs = this.failures.retryAfterMs(key);
      throw new TooManyAttemptsError(
        `Account ${account} had ${maxFailures} failed logins ${source ? 'from your address' : 'through account.login without a source'} within a minute: ` +
          `wait ${Math.ceil(retryAfterMs / 1000)} s, then log in again.`,
        { account, retryAfterMs },
      );
    }
    const release = this.reserveHash(source);
    if (source) this.loginsBySource.add(source);
    this.failures.add(key); // counted from the start: guesses sent at once count together
    let found: Awaited<ReturnType<Store['getAccount']>>;
    let matches: boolean;
    try {
      found = await this.node.store.getAccount(account);
      this.decoy ??= hashPassword(randomBytes(12).toString('hex'));
      const against = found ? found.passwordHash : await this.decoy;
      this.node.metrics.passwordHash('login');
      matches = await passwordMatches(password, against) && found !== null;
    } catch (error) {
      this.failures.subtract(key); // not a wrong password: the store failed, say
      throw error;
    } finally {
      release();
    }
    if (!found || !matches) {
      throw new BadCredentialsError('Wrong account name or password: check both and log in again.', { account });
    }
    this.failures.delete(key);
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
   * Holds one of `source`'s hashesInFlightPerSource places for a password hash, at once (so
   * requests sent together cannot all pass); refuses (TooManyAttempts) when they are all taken.
   * Answers the function that gives the place back. Without a source: nothing is held.
   */
  private reserveHash(source: string | undefined): () => void {
    if (!source) return () => undefined;
    const running = this.hashing.get(source) ?? 0;
    if (running >= this.limits.hashesInFlightPerSource) {
      this.node.metrics.accountRefused('busy');
      throw new TooManyAttemptsError(
        'Another login or registration from your address is being checked: wait for its answer, then try again.',
        { retryAfterMs: 1000 },
      );
    }
    this.hashing.set(source, running + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.hashing.get(source) ?? 1) - 1;
      if (left > 0) this.hashing.set(source, left);
      else this.hashing.delete(source);
    };
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
