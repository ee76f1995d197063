/**
 * The Store: the cluster's shared state (DESIGN §2, §3). One contract, two implementations that
 * pass the same contract tests: `RedisStore` (the real one) and `MemoryStore` (in-process, the
 * embedded default). The interface speaks the domain, so each implementation states the semantics
 * directly: claims are compare-and-set on the epoch, saves are fenced by it.
 */

/** Where a player is: his home server, the server holding him, the ownership epoch, and whether he is online. */
export interface Route {
  /** The player's home server. */
  home: string;
  /** The server holding the player; '' means at home (or offline at home). */
  at: string;
  /** Bumped by every change of ownership; a save must carry the current one. */
  epoch: number;
  /** Whether the player is logged in on the server that holds him. */
  online: boolean;
}

/** The server that owns a player under a route: `at`, or home when `at` is empty. */
export function ownerOf(route: Route): string {
  return route.at || route.home;
}

/** A route change as published to every server. */
export interface RouteChange extends Route {
  pid: number;
}

/** What a claim of ownership asks for. */
export interface Claim {
  /** The epoch the claimant read; the claim fails with StaleOwnerError if it is no longer current. */
  expectEpoch: number;
  /** The server that will hold the player ('' = home). */
  at: string;
  /** Whether the player is online there. */
  online: boolean;
}

/**
 * The home server's mark on a player who is away: the server he went to (`go_srvname`) and the
 * route epoch under which he arrived there. Changed only by compare-and-set on that epoch.
 */
export interface Mark {
  go: string;
  epoch: number;
}

/** A stored player document and the epoch of the server that last wrote it. */
export interface StoredDocument {
  data: unknown;
  epoch: number;
  /**
   * The remembered results of the latest calls that changed the player, oldest first, as
   * `[call id, result text]` (present when there are any): a retried call finds its result here,
   * whichever server owns the player now. The kept ones (KEPT_CALL_PREFIX) still within their
   * retention come first.
   */
  calls?: [string, string][];
}

/** How many call results a player's document remembers at least (the oldest are forgotten first). */
export const REMEMBERED_CALLS = 256;

/**
 * Call ids that begin with this are kept apart from the latest REMEMBERED_CALLS, for the few calls
 * whose retry may come much later, such as a recharge order delivered again after its account
 * server was down for hours. Their results live in a ledger of their own beside the player's
 * document (never in it), each for KEPT_CALL_RETENTION_MS after it ran (a store's
 * `keptCallRetentionMs`; the config's `playerLimits.keptCallDays`), at most MAX_KEPT_CALLS per
 * player (the oldest forgotten first). What must last for good — that a recharge order was
 * delivered — is the order's own state in the store, not a call result.
 */
export const KEPT_CALL_PREFIX = 'kept:';

/** How long a kept call's result is remembered after it ran, by default: 30 days. */
export const KEPT_CALL_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

/** The most kept call results one player has remembered at once (the oldest are forgotten first). */
export const MAX_KEPT_CALLS = 1024;

/** Whether call `id` is a kept one (KEPT_CALL_PREFIX): remembered in the kept ledger, not among the latest. */
export function isKeptCall(id: string): boolean {
  return id.startsWith(KEPT_CALL_PREFIX);
}

/** One fenced save: a player's document written under the epoch it was loaded with. */
export interface FencedSave {
  pid: number;
  epoch: number;
  data: unknown;
  /** `data` already encoded by `encodeDocument`, when the saver has it: the store writes this text instead of encoding again. */
  text?: string;
  /** Call results to remember with this save, `[call id, result text]`, oldest first. */
  calls?: [string, string][];
}

/** Profile field values: what a profile can hold. */
export type ProfileValue = string | number | boolean | null;

/** A player's profile: its fields and a version bumped by every change. */
export interface Profile {
  pid: number;
  version: number;
  fields: Record<string, ProfileValue>;
}

/** A profile change as published to every server: the fields that changed and the new version. */
export interface ProfileChange {
  pid: number;
  version: number;
  changed: Record<string, ProfileValue>;
}

/**
 * The route fields of a profile: kept equal to the player's route by `syncProfileRoute` (the
 * datacenter runs it on every route publication), so they follow every transfer by themselves.
 * `home` is his home server, `server` the server that holds him (his home when he is there),
 * `online` whether he is logged in there.
 */
export const PROFILE_ROUTE_FIELDS = ['home', 'server', 'online'] as const;

/** A guild: its members (from any server) and its treasury of named resources. */
export interface Guild {
  gid: string;
  name: string;
  /** When it was created (ms since the Unix epoch). */
  createdAt: number;
  /** Member player ids, ascending. */
  members: number[];
  /** Balance of each resource the treasury ever held. */
  treasury: Record<string, number>;
}

/** One deposit or deduction asked of a guild's treasury. */
export interface TreasuryChange {
  gid: string;
  /** Unique per request: the same id again returns the first outcome and changes nothing. */
  requestId: string;
  kind: 'deposit' | 'deduct';
  resource: string;
  /** A positive integer. */
  amount: number;
  /** Why (kept in the ledger). */
  reason: string;
}

/**
 * What became of a treasury change: `applied`; `insufficient` (a deduction the balance could not
 * cover: nothing changed); `missing` (no such guild); `conflict` (the request id was used before
 * for a different change); `overflow` (the balance would pass Number.MAX_SAFE_INTEGER).
 * `replayed` is true when the request id had been processed before: this is its first outcome.
 */
export interface TreasuryOutcome {
  requestId: string;
  status: 'applied' | 'insufficient' | 'missing' | 'conflict' | 'overflow';
  kind: 'deposit' | 'deduct';
  resource: string;
  amount: number;
  /** The resource's balance right after this change was decided. */
  balance: number;
  replayed: boolean;
}

/** How many processed request ids a guild remembers (the oldest are forgotten first). */
export const REMEMBERED_TREASURY_REQUESTS = 100_000;
/** How many applied changes a guild's ledger keeps (the oldest are dropped first). */
export const GUILD_LEDGER_LENGTH = 1000;

/** One applied treasury change, as the guild's ledger keeps it. */
export interface LedgerEntry {
  requestId: string;
  kind: 'deposit' | 'deduct';
  resource: string;
  amount: number;
  /** The balance right after it. */
  balance: number;
  reason: string;
  /** When it was applied (ms since the Unix epoch). */
  at: number;
}

/**
 * A place on a leaderboard. Rank 1 is the highest score; equal scores are ordered as Redis orders
 * them (by the player id as text, larger first).
 */
export interface RankEntry {
  rank: number;
  pid: number;
  score: number;
}

/** An account: its player and his home server. */
export interface Account {
  account: string;
  pid: number;
  home: string;
  /** The password's hash (never the password). */
  passwordHash: string;
  createdAt: number;
}

/** The first player id the account center allocates. */
export const FIRST_ACCOUNT_PID = 10_000_001;

/** A recharge order: gold for a player, delivered exactly once. */
export interface RechargeOrder {
  order: string;
  pid: number;
  amount: number;
  state: 'pending' | 'delivered';
  createdAt: number;
  /** When it was delivered (0 while pending). */
  deliveredAt: number;
}

/** A server as it announces itself in the registry. */
export interface ServerRecord {
  name: string;
  roles: string[];
  /** The RPC address, `ws://host:port`. */
  rpc: string;
  /** The client gateway address, `ws://host:port`, or '' when the server has none. */
  gateway: string;
  /** Process id, for operators. */
  pid: number;
  /** When the record was last refreshed (ms since epoch). */
  seenAt: number;
}

/** Unsubscribes a listener. */
export type Unsubscribe = () => void;

/** The contract both stores implement. Every method is atomic on its own. */
export interface Store {
  /** A short description for logs, e.g. `redis redis://127.0.0.1:6379` or `memory`. */
  readonly description: string;

  /** Resolves once the store is ready for commands. */
  connect(): Promise<void>;
  /** Closes connections and timers. */
  close(): Promise<void>;

  // ---- routes ----------------------------------------------------------------------------------
  /** The player's route, or null when he has none yet. */
  getRoute(pid: number): Promise<Route | null>;
  /**
   * Creates the player's route at `home` (epoch 0, at home, offline) unless he has one;
   * returns the route he has afterwards.
   */
  ensureRoute(pid: number, home: string): Promise<Route>;
  /**
   * Compare-and-set: if the route's epoch is `claim.expectEpoch`, moves the player to `claim.at`
   * with epoch + 1 and publishes the change; otherwise throws StaleOwnerError (details: epoch, at).
   * A claim back home (`at: ''`) clears the home's mark in the same step.
   * A player with no route: NotFoundError.
   */
  claimRoute(pid: number, claim: Claim): Promise<Route>;
  /**
   * `claimRoute`, and the player's stored document (null for a new player) read in the same
   * atomic step: what an arriving server needs, in one round trip.
   */
  claimAndLoad(pid: number, claim: Claim): Promise<{ route: Route; document: StoredDocument | null }>;
  /** Sets `online` under the current epoch (fenced: StaleOwnerError otherwise) and publishes. */
  setOnline(pid: number, epoch: number, online: boolean): Promise<Route>;
  /**
   * Home-side compare-and-set of everything about one player coming back: if the route's epoch is
   * `epoch`, the player is owned by his home again (at '', offline, epoch + 1) and his mark is
   * cleared; otherwise StaleOwnerError and nothing changes. Publishes the route change.
   */
  releaseToHome(pid: number, epoch: number): Promise<Route>;
  /** Calls `listener` for every route change, from any server. */
  onRouteChange(listener: (change: RouteChange) => void): Unsubscribe;

  // ---- the home's marks -------------------------------------------------------------------------
  /** The player's mark, or null when his home has not marked him away. */
  getMark(pid: number): Promise<Mark | null>;
  /**
   * Marks the player as away at `go` ('' clears the mark) if `epoch` is still his route's epoch;
   * otherwise StaleOwnerError and nothing changes (a late message cannot undo a newer move).
   * A set mark is also listed in `listMarked(home)` (`home` is the player's home server), with
   * its epoch (the highest one, when listed more than once).
   */
  setMark(pid: number, home: string, go: string, epoch: number): Promise<void>;
  /** The players `home` has marked away (may still list some whose mark was cleared since). */
  listMarked(home: string): Promise<number[]>;
  /**
   * Removes a player from `home`'s list of marked players if he was listed for an epoch below
   * `below`; a listing for `below` or later stays. So a home that saw an old state of the player
   * cannot unlist the mark of a move that happened meanwhile: the list never misses a marked player.
   */
  unlistMarked(home: string, pid: number, below: number): Promise<void>;

  // ---- documents (fenced) -------------------------------------------------------------------------
  /** The stored document, or null when the player has none. */
  loadDocument(pid: number): Promise<StoredDocument | null>;
  /**
   * Saves the player's document if `epoch` is his route's current epoch; otherwise throws
   * StaleOwnerError and the stored document is unchanged.
   */
  saveDocument(pid: number, epoch: number, data: unknown): Promise<void>;
  /**
   * Saves several documents in one round trip (one pipeline). Each save is fenced on its own;
   * the result has, per save in order, null when it was stored or the StaleOwnerError that refused it.
   * The results of kept calls (KEPT_CALL_PREFIX) a save carries go to the player's kept ledger, in
   * the same atomic step, not into his document.
   */
  saveDocuments(saves: FencedSave[]): Promise<(Error | null)[]>;
  /** The result text of kept call `id` of the player, while it is remembered; null otherwise. */
  keptCall(pid: number, id: string): Promise<string | null>;

  // ---- profiles -------------------------------------------------------------------------------
  /** The player's profile, or null when he has none. */
  getProfile(pid: number): Promise<Profile | null>;
  /** Sets the given fields, bumps the version and publishes the change; returns the new profile. */
  updateProfile(pid: number, fields: Record<string, ProfileValue>): Promise<Profile>;
  /** Calls `listener` for every profile change, from any server. */
  onProfileChange(listener: (change: ProfileChange) => void): Unsubscribe;
  /**
   * One page of every profile, for a pass over all of them (a rank board catching up after missed
   * publications): start with cursor '0' and call again with the cursor answered until it is '0'.
   * Each profile comes with its version and those of `fields` it has. A pass sees every profile that
   * existed throughout it at least once (a profile may come twice: act on each idempotently).
   */
  scanProfiles(cursor: string, fields: string[]): Promise<{ cursor: string; profiles: Profile[] }>;

  /**
   * Copies the player's current route into his profile's route fields (`home`, `server`,
   * `online`; PROFILE_ROUTE_FIELDS) in one atomic step, creating the profile if needed. Bumps the
   * version and publishes only when one of them changed. Returns the profile (unchanged when
   * nothing differed), or null when the player has no route.
   */
  syncProfileRoute(pid: number): Promise<Profile | null>;
  /**
   * Sets only those of `fields` the profile does not have yet (a first fill, e.g. a name from the
   * player's document); bumps the version and publishes only when it set one. Returns the profile.
   */
  fillProfile(pid: number, fields: Record<string, ProfileValue>): Promise<Profile>;

  // ---- guilds ------------------------------------------------------------------------------------
  /** Creates the guild unless it exists; `created` says which. */
  createGuild(gid: string, name: string): Promise<{ created: boolean; guild: Guild }>;
  /** The guild, or null. */
  getGuild(gid: string): Promise<Guild | null>;
  /** Adds (`member` true) or removes a member; returns whether that changed anything. No guild: NotFoundError. */
  setGuildMember(gid: string, pid: number, member: boolean): Promise<boolean>;
  /**
   * Applies treasury changes in order, each atomically on its own: a deduction is refused unless
   * the balance covers it; a request id seen before returns its first outcome (`replayed`) and
   * changes nothing. The outcome and the processed request id are stored in the same step as the
   * balance, so nothing is lost or applied twice across a restart. One round trip for the batch.
   */
  applyTreasuryChanges(changes: TreasuryChange[]): Promise<TreasuryOutcome[]>;
  /** The guild's latest applied changes, newest first (at most `count`). */
  guildLedger(gid: string, count: number): Promise<LedgerEntry[]>;

  // ---- leaderboards ------------------------------------------------------------------------------
  /** Sets the player's score on `board` (null removes him from it). */
  setRankScore(board: string, pid: number, score: number | null): Promise<void>;
  /** The `count` best places of `board`, best first. */
  rankTop(board: string, count: number): Promise<RankEntry[]>;
  /** The player's place on `board`, or null when he is not on it. */
  rankOf(board: string, pid: number): Promise<RankEntry | null>;

  // ---- accounts and recharge orders ----------------------------------------------------------------
  /**
   * Creates the account with a new player id (FIRST_ACCOUNT_PID, then one more each time) unless
   * the account name exists; `created` says which, and `account` is the stored one either way.
   */
  createAccount(account: string, passwordHash: string, home: string): Promise<{ created: boolean; account: Account }>;
  /** The account, or null. */
  getAccount(account: string): Promise<Account | null>;
  /**
   * Records a pending recharge order unless its id exists; `created` says which, and `order` is the
   * stored one either way (a replayed order id changes nothing).
   */
  createOrder(order: string, pid: number, amount: number): Promise<{ created: boolean; order: RechargeOrder }>;
  /** The order, or null. */
  getOrder(order: string): Promise<RechargeOrder | null>;
  /** Marks the order delivered (idempotent); returns it. No such order: NotFoundError. */
  markOrderDelivered(order: string): Promise<RechargeOrder>;
  /** The player's pending orders, oldest first. */
  pendingOrders(pid: number): Promise<RechargeOrder[]>;
  /** The players who have pending orders. */
  playersWithPendingOrders(): Promise<number[]>;

  // ---- server registry -------------------------------------------------------------------------
  /** Announces (or refreshes) a server; the record expires `ttlMs` after the last announcement. */
  announceServer(record: Omit<ServerRecord, 'seenAt'>, ttlMs: number): Promise<void>;
  /** Removes a server's record at once (clean shutdown). */
  withdrawServer(name: string): Promise<void>;
  /** The live (unexpired) servers, sorted by name. */
  listServers(): Promise<ServerRecord[]>;
  /** One live server, or null. */
  getServer(name: string): Promise<ServerRecord | null>;

  // ---- connection ------------------------------------------------------------------------------
  /**
   * Calls `listener` whenever the store's connection came back after a loss: publications may
   * have been missed meanwhile, so caches built from them must be dropped.
   */
  onReconnect(listener: () => void): Unsubscribe;
}
