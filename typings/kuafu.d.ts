/**
 * kuafu script globals, for designers' editors (DESIGN §5, §7).
 *
 * A script is a TypeScript module that exports async functions; the server's script host runs them
 * in a sandbox whose only globals are `playermgr`, `cproxyplayer`, `services` and `log` (no
 * require, process, timers, filesystem or network). Add this file to your scripts' tsconfig (`scripts/tsconfig.json`
 * does) to get completion and type errors:
 *
 * ```ts
 * export async function main(pid: number) {
 *   if (!(await playermgr.getkuafuplayer(pid))) return;   // online, on another server?
 *   const player = cproxyplayer.new(pid);
 *   await player.itemdb.additembytype(105001, 10, null, "test:rpc");
 *   const addgold = await player.addgold(10, "test:rpc");
 *   log.info(addgold);                                     // 10
 *   return addgold;
 * }
 * ```
 *
 * A server whose players export more methods declares them by merging into `Player`:
 *
 * ```ts
 * declare global {
 *   interface Player { guild: { donate(amount: number, reason: string): number } }
 * }
 * ```
 */

/**
 * A value that can cross servers: null, undefined, boolean, number, string, bigint, Date, arrays,
 * plain objects, Map and Set. Functions, symbols, class instances, proxies and cycles cannot.
 *
 * @example
 * ```ts
 * // all value types: they may be passed to a remote method and returned from a script
 * const reward = { gold: 100n, until: new Date(), items: new Map([[105001, 2]]), tags: new Set(["s3"]) };
 * ```
 * @category Values
 */
type KuafuValue =
  | null
  | undefined
  | boolean
  | number
  | string
  | bigint
  | Date
  | readonly KuafuValue[]
  | { readonly [key: string]: KuafuValue }
  | ReadonlyMap<KuafuValue, KuafuValue>
  | ReadonlySet<KuafuValue>;

/**
 * The value-only version of a declared type: what a remote call accepts where the method declares
 * `T`. Functions and symbols become `never` (so passing one is a type error), so do the methods of
 * class instances; `unknown` and `any` become KuafuValue.
 *
 * @typeParam T - the type a player method declares for a parameter
 * @category Values
 */
type KuafuValued<T> = unknown extends T
  ? KuafuValue
  : T extends null | undefined | boolean | number | string | bigint
    ? T
    : T extends Date
      ? T
      : T extends (...args: never[]) => unknown
        ? never
        : T extends symbol
          ? never
          : T extends ReadonlyMap<infer K, infer V>
            ? ReadonlyMap<KuafuValued<K>, KuafuValued<V>>
            : T extends ReadonlySet<infer V>
              ? ReadonlySet<KuafuValued<V>>
              : T extends readonly unknown[]
                ? { readonly [I in keyof T]: KuafuValued<T[I]> }
                : T extends object
                  ? { readonly [K in keyof T]: KuafuValued<T[K]> }
                  : never;

/**
 * The names of `T`'s members that stay on a remote object: methods and nested namespaces.
 *
 * @typeParam T - the local type (`Player`, or one of its namespaces)
 * @category Remote players
 */
type KuafuRemoteKeys<T> = {
  [K in keyof T]: K extends string
    ? T[K] extends (...args: never[]) => unknown
      ? K
      : T[K] extends Date | ReadonlyMap<unknown, unknown> | ReadonlySet<unknown> | readonly unknown[]
        ? never
        : T[K] extends object
          ? K
          : never
    : never;
}[keyof T];

/**
 * A remote method: value-type arguments, and a Promise of the result.
 *
 * @typeParam F - the local method's type
 * @category Remote players
 */
type KuafuRemoteMethod<F> = F extends (...args: infer A) => infer R
  ? (...args: { [I in keyof A]: KuafuValued<A[I]> }) => Promise<Awaited<R>>
  : never;

/**
 * `T` as seen from another server (Comlink's `Remote<T>`): every method returns a Promise, nested
 * objects (`itemdb`) are remote namespaces, and plain data properties are not there — remote
 * property reads are not offered, call a getter method instead (`await player.getgold()`).
 *
 * @typeParam T - the local type: `Player` for `cproxyplayer.new`
 * @example
 * ```ts
 * const player: Remote<Player> = cproxyplayer.new(pid);
 * const gold = await player.getgold();        // a method
 * await player.itemdb.getitemcount(105001);   // a method of a nested namespace
 * // player.pid                               // a type error: no remote property reads
 * ```
 * @category Remote players
 */
type Remote<T> = {
  readonly [K in KuafuRemoteKeys<T>]: T[K] extends (...args: never[]) => unknown ? KuafuRemoteMethod<T[K]> : Remote<T[K]>;
};

/**
 * What `player.getinfo()` answers.
 *
 * @category Player
 */
interface PlayerInfo {
  /** His player id. */
  pid: number;
  /** His name. */
  name: string;
  /** His level. */
  level: number;
  /** His gold. */
  gold: number;
  /** His home server. */
  home_srvname: string;
  /** The server he is on when away from home; '' when he is at home. */
  go_srvname: string;
}

/**
 * An item bag: items counted by type id.
 *
 * @category Player
 */
interface PlayerItemDb {
  /**
   * Adds `count` items of type `typeId`; answers the new count of that type. Refused
   * (`InvalidArgument`, nothing added) when the count would pass `Number.MAX_SAFE_INTEGER`.
   *
   * @param typeId - the item's type id (a positive integer)
   * @param count - how many to add (at least 1)
   * @param extra - extra facts about the items, or null
   * @param reason - why, for the log (a non-empty string)
   * @example
   * ```ts
   * const count = await cproxyplayer.new(pid).itemdb.additembytype(105001, 10, null, "test:rpc");
   * ```
   */
  additembytype(typeId: number, count: number, extra: Record<string, unknown> | null, reason: string): number;
  /**
   * Removes `count` items of type `typeId` (refused when he has fewer); answers the new count.
   *
   * @param typeId - the item's type id
   * @param count - how many to remove (at least 1)
   * @param reason - why, for the log (a non-empty string)
   */
  removeitembytype(typeId: number, count: number, reason: string): number;
  /**
   * How many items of type `typeId` he has.
   *
   * @param typeId - the item's type id
   */
  getitemcount(typeId: number): number;
}

/**
 * A mail as a script sends it.
 *
 * @category Player
 */
interface PlayerMailInput {
  /** The mail's title (not empty). */
  title: string;
  /** The mail's text. */
  body: string;
  /** Gold attached to the mail. */
  gold?: number;
  /** Items attached to the mail. */
  items?: {
    /** The item's type id. */
    type: number;
    /** How many. */
    count: number;
  }[];
}

/**
 * A mail in a player's mailbox, as `mail.list` and `mail.read` answer it.
 *
 * @category Player
 */
interface PlayerMailEntry {
  /** Its id in his mailbox (`mail.read`, `mail.take`, `mail.remove` take it). */
  id: number;
  /** Its title. */
  title: string;
  /** Its text. */
  body: string;
  /** Gold attached (0 when none). */
  gold: number;
  /** Items attached. */
  items: {
    /** The item's type id. */
    type: number;
    /** How many. */
    count: number;
  }[];
  /** The `reason` it was sent with. */
  reason: string;
  /** When it was sent, ms since the Unix epoch. */
  sentAt: number;
}

/**
 * What `mail.take` answers: what the mail carried, now credited to the player.
 *
 * @category Player
 */
interface PlayerMailTaken {
  /** The mail's id (it is gone from his mailbox now). */
  id: number;
  /** The gold credited. */
  gold: number;
  /** The items credited. */
  items: {
    /** The item's type id. */
    type: number;
    /** How many. */
    count: number;
  }[];
}

/**
 * The player's mailbox. It holds at most a configured number of mails (100 unless the host says
 * otherwise), each with a bounded title and body: a mail beyond is refused with `LimitExceeded`
 * until he takes or removes some.
 *
 * @category Player
 */
interface PlayerMail {
  /**
   * Sends him a mail; answers its id. Refused, with nothing sent: a title or body longer than the
   * host's limits (256 and 4096 bytes by default) or too many items (`InvalidArgument`); a full
   * mailbox, or a player whose document would pass its size limit (`LimitExceeded`).
   *
   * @param mail - the mail, with gold and items attached if any
   * @param reason - why, for the log (a non-empty string, at most 256 bytes)
   * @example
   * ```ts
   * const id = await cproxyplayer.new(pid).mail.send(
   *   { title: "Reward", body: "Well played!", gold: 500, items: [{ type: 105001, count: 2 }] },
   *   "mail_reward:arena-s3",
   * );
   * ```
   */
  send(mail: PlayerMailInput, reason: string): number;
  /** His mails, oldest first. */
  list(): PlayerMailEntry[];
  /**
   * One of his mails, by its id (`NotFound` when he has no such mail).
   *
   * @param id - the mail's id
   */
  read(id: number): PlayerMailEntry;
  /**
   * Removes one of his mails, with whatever is attached to it; answers its id (`NotFound` when he
   * has no such mail).
   *
   * @param id - the mail's id
   * @param reason - why, for the log (a non-empty string)
   */
  remove(id: number, reason: string): number;
  /**
   * Takes one of his mails: its gold and items go to him and the mail is removed, all at once;
   * answers what was taken. `NotFound` when he has no such mail; `InvalidArgument` (nothing taken)
   * when his gold or an item count would pass `Number.MAX_SAFE_INTEGER`.
   *
   * @param id - the mail's id
   * @param reason - why, for the log (a non-empty string)
   * @example
   * ```ts
   * const player = cproxyplayer.new(pid);
   * for (const mail of await player.mail.list()) await player.mail.take(mail.id, "mail_take:all");
   * ```
   */
  take(id: number, reason: string): PlayerMailTaken;
}

/**
 * The methods a player exports to other servers (the reference player's). A server that exports
 * more declares them by merging into this interface (`declare global { interface Player { … } }`).
 *
 * Scripts never hold a `Player` itself: `cproxyplayer.new(pid)` gives a `Remote<Player>`, on which
 * each of these methods returns a Promise.
 *
 * @example
 * ```ts
 * // in a .d.ts file beside your scripts, when your server's players export more
 * declare global {
 *   interface Player { guild: { donate(amount: number, reason: string): number } }
 * }
 * export {};
 * ```
 * @category Player
 */
interface Player {
  /**
   * Adds `amount` gold (a negative amount spends; refused below zero, and past
   * `Number.MAX_SAFE_INTEGER`, where a number cannot count exactly); answers the amount added.
   *
   * @param amount - the gold to add (an integer; negative spends)
   * @param reason - why, for the log (a non-empty string)
   * @example
   * ```ts
   * const added = await cproxyplayer.new(pid).addgold(10, "test:rpc");   // 10
   * ```
   */
  addgold(amount: number, reason: string): number;
  /** His gold. */
  getgold(): number;
  /** His level. */
  getlevel(): number;
  /**
   * Sets his level; answers the new level.
   *
   * @param level - the new level (at least 1)
   * @param reason - why, for the log (a non-empty string)
   */
  setlevel(level: number, reason: string): number;
  /** His name, level, gold and where he is. */
  getinfo(): PlayerInfo;
  /** His items. */
  itemdb: PlayerItemDb;
  /** His mailbox. */
  mail: PlayerMail;
}

/**
 * What `playermgr.getkuafuplayer` answers: the player is online on another server than this one.
 *
 * @category Player
 */
interface KuafuPlayerInfo {
  /** His player id. */
  pid: number;
  /** His home server. */
  home_srvname: string;
  /** The server he is on now. */
  go_srvname: string;
  /** Always true: an offline player gives null instead. */
  online: boolean;
}

/**
 * A player's profile (name, level, home, current server…) as the datacenter keeps it.
 *
 * @category Player
 */
interface KuafuProfile {
  /** His player id. */
  pid: number;
  /** Bumped by every change. */
  version: number;
  /** The profile's fields by name (`name`, `level`, …). */
  fields: Record<string, string | number | boolean | null>;
}

/**
 * What a deposit into a guild's treasury, or a deduction from it, answers.
 *
 * @category Services
 */
interface TreasuryReceipt {
  /** The guild's id. */
  gid: string;
  /** The request id the change was made under: the one you gave, or a new one. */
  requestId: string;
  /** Which change it was. */
  kind: 'deposit' | 'deduct';
  /** The resource changed (`"wood"`, `"gold"`…). */
  resource: string;
  /** How much was deposited or deducted. */
  amount: number;
  /** The resource's balance right after this change. */
  balance: number;
  /** True when this request id had been applied before: nothing changed this time (a retry). */
  replayed: boolean;
}

/**
 * A guild: its members, from any server, and its treasury.
 *
 * @category Services
 */
interface Guild {
  /** The guild's id. */
  gid: string;
  /** Its name. */
  name: string;
  /** When it was created (ms since the Unix epoch). */
  createdAt: number;
  /** Its members' player ids, ascending. */
  members: number[];
  /** The balance of each resource the treasury ever held. */
  treasury: Record<string, number>;
}

/**
 * One change of a guild's treasury, as its ledger keeps it.
 *
 * @category Services
 */
interface GuildLedgerEntry {
  /** The request id it was made under. */
  requestId: string;
  /** Which change it was. */
  kind: 'deposit' | 'deduct';
  /** The resource changed. */
  resource: string;
  /** How much. */
  amount: number;
  /** The resource's balance right after it. */
  balance: number;
  /** Why (the reason given). */
  reason: string;
  /** When it was applied (ms since the Unix epoch). */
  at: number;
}

/**
 * A place on a leaderboard. Rank 1 is the highest score.
 *
 * @category Services
 */
interface RankEntry {
  /** The place: 1 is the best. */
  rank: number;
  /** The player. */
  pid: number;
  /** His score on the board. */
  score: number;
}

/**
 * A fighter, as a battle reads him from his profile.
 *
 * @category Services
 */
interface BattleFighter {
  /** His player id. */
  pid: number;
  /** His name. */
  name: string;
  /** His home server (fighters may come from different homes). */
  home: string;
  /** His level. */
  level: number;
  /** His power. */
  power: number;
}

/**
 * Everything a battle's result depends on: the same input always gives the same result.
 *
 * @category Services
 */
interface BattleInput {
  /** The first fighter. */
  a: BattleFighter;
  /** The second fighter. */
  b: BattleFighter;
  /** Any text (e.g. the battle's id): another seed, another battle between the same fighters. */
  seed: string;
}

/**
 * One blow of a battle.
 *
 * @category Services
 */
interface BattleBlow {
  /** The round (from 1). */
  round: number;
  /** Who struck. */
  attacker: number;
  /** Who was struck. */
  defender: number;
  /** The hit points taken. */
  damage: number;
  /** A critical blow (double damage). */
  critical: boolean;
  /** The defender's hit points after the blow. */
  defenderHp: number;
}

/**
 * A resolved battle: deterministic and replayable (its input travels with it).
 *
 * @category Services
 */
interface BattleResult {
  /** What it was resolved from: `services.battle().replay(result.input)` gives the same result. */
  input: BattleInput;
  /** The winner's player id. */
  winner: number;
  /** The loser's player id. */
  loser: number;
  /** A knock-out, or the round limit (the larger share of hit points left wins). */
  ending: 'knockout' | 'rounds';
  /** Every blow, in order. */
  blows: BattleBlow[];
  /** Hit points left, by player id. */
  hp: Record<string, number>;
  /** Two results are the same battle when their digests are. */
  digest: string;
}

/**
 * A guild, reached on its guild server from any server: `services.guild(gid)`. Its server applies
 * one guild's deposits and deductions one at a time and checks the balance there; a request id
 * makes a change count once, however often it is sent.
 *
 * @category Services
 */
interface GuildService {
  /** The guild: name, members and treasury (read on its server, never from a cache). */
  get(): Promise<Guild>;
  /**
   * Adds a player (from any server) to the guild; his profile's `guild` field follows. A player in
   * another guild leaves it first (kind `AlreadyExists`).
   *
   * @param pid - the player id
   */
  join(pid: number): Promise<Guild>;
  /**
   * Removes a player from the guild.
   *
   * @param pid - the player id
   */
  leave(pid: number): Promise<Guild>;
  /**
   * Adds `amount` of `resource` to the treasury.
   *
   * @param resource - the resource (`"wood"`, `"gold"`…)
   * @param amount - how much (a positive integer)
   * @param reason - why, kept in the ledger (a non-empty string)
   * @param requestId - names this request: sent again, it counts once (`replayed` is then true); a new one by default
   * @example
   * ```ts
   * const receipt = await services.guild("wolves").deposit("wood", 50, `donation:${pid}`, `donation-${pid}-${day}`);
   * log.info(receipt.balance, receipt.replayed);
   * ```
   */
  deposit(resource: string, amount: number, reason: string, requestId?: string): Promise<TreasuryReceipt>;
  /**
   * Takes `amount` of `resource` from the treasury, or fails with kind `InsufficientResource` and
   * takes nothing.
   *
   * @param resource - the resource (`"wood"`, `"gold"`…)
   * @param amount - how much (a positive integer)
   * @param reason - why, kept in the ledger (a non-empty string)
   * @param requestId - names this request: sent again, it counts once; a new one by default
   * @example
   * ```ts
   * try {
   *   await services.guild(gid).deduct("wood", 5, "build:wall", requestId);
   * } catch (error) {
   *   if ((error as KuafuError).kind !== "InsufficientResource") throw error;
   *   log.info(`guild ${gid} has only ${(error as KuafuError).details.balance} wood`);
   * }
   * ```
   */
  deduct(resource: string, amount: number, reason: string, requestId?: string): Promise<TreasuryReceipt>;
  /**
   * The latest changes of the treasury, newest first.
   *
   * @param count - how many (1 to 1000; 50 by default)
   */
  ledger(count?: number): Promise<GuildLedgerEntry[]>;
}

/**
 * A leaderboard across all servers, reached on its rank server: `services.rank(board)`. The boards
 * `"level"` and `"power"` follow the profiles by themselves.
 *
 * @category Services
 */
interface RankService {
  /**
   * The best places, best first.
   *
   * @param count - how many (1 to 1000; 10 by default)
   * @example
   * ```ts
   * for (const { rank, pid, score } of await services.rank("level").top(3)) log.info(rank, pid, score);
   * ```
   */
  top(count?: number): Promise<RankEntry[]>;
  /**
   * The player's place, or null when he is not on the board.
   *
   * @param pid - the player id
   */
  of(pid: number): Promise<RankEntry | null>;
  /**
   * Sets the player's score (null takes him off the board); answers his place.
   *
   * @param pid - the player id
   * @param score - his new score, or null
   */
  submit(pid: number, score: number | null): Promise<RankEntry | null>;
}

/**
 * A player's profile, kept by the datacenter and pushed to every server that shows it:
 * `services.profile(pid)`.
 *
 * @category Services
 */
interface ProfileService {
  /** The profile, or null when there is no such player (the same as `playermgr.getprofile(pid)`). */
  get(): Promise<KuafuProfile | null>;
  /**
   * Sets some fields of the profile (not the route fields `home`, `server`, `online`, which follow
   * the player by themselves); every server showing him sees the change at once.
   *
   * @param fields - the fields to set, by name (null clears one)
   * @example
   * ```ts
   * await services.profile(pid).update({ title: "Dragon slayer" });
   * ```
   */
  update(fields: Record<string, string | number | boolean | null>): Promise<KuafuProfile>;
}

/**
 * This game server's battle server: `services.battle()`.
 *
 * @category Services
 */
interface BattleService {
  /**
   * Resolves a battle between two players, from any home, read from their profiles.
   *
   * @param a - the first player id
   * @param b - the second player id
   * @param seed - any text (e.g. the battle's id): the same players and seed give the same battle
   * @example
   * ```ts
   * const result = await services.battle().resolve(pidA, pidB, `duel-${duelId}`);
   * log.info(`${result.winner} won by ${result.ending}`);
   * ```
   */
  resolve(a: number, b: number, seed?: string): Promise<BattleResult>;
  /**
   * Resolves a battle again from its recorded input: the same result.
   *
   * @param input - the `input` of a battle result
   */
  replay(input: BattleInput): Promise<BattleResult>;
}

/**
 * The kinds of error a remote call can fail with (`error.kind`). The designer guide says what to
 * do about each.
 *
 * @category Errors
 */
type KuafuErrorKind =
  | 'PlayerOffline'
  | 'NotExported'
  | 'ValueType'
  | 'Timeout'
  | 'ServerUnavailable'
  | 'ReadOnlyPlayer'
  | 'PlayerMoved'
  | 'StaleOwner'
  | 'InsufficientResource'
  | 'NotFound'
  | 'StoreUnavailable'
  | 'Unauthenticated'
  | 'Config'
  | 'Internal'
  /** A player method or a function service refused its arguments (the message says which and why). */
  | 'InvalidArgument'
  /** A guild, rank or battle server was asked for something another server serves. */
  | 'WrongServer'
  /** Something to be created exists already (e.g. the player is in another guild: he leaves it first). */
  | 'AlreadyExists'
  /** An account name and password that do not match. */
  | 'BadCredentials'
  /** A request id used again for a different request (each id names one request). */
  | 'RequestConflict'
  /** Too many failed attempts (logins of one account): wait `details.retryAfterMs`, then try again. */
  | 'TooManyAttempts'
  /**
   * A call that changes the player may or may not have been applied (the owner could not tell
   * whether its save landed; the host already retried it). Do not simply call again: that may
   * apply it twice. Check the player's state later, or use a call that names its own key.
   */
  | 'OutcomeUnknown'
  /**
   * A limit of the player would be passed (a full mailbox, his document's size): nothing was
   * changed. Make room first (`mail.take`, `mail.remove`), or give the reward another way.
   */
  | 'LimitExceeded'
  /**
   * The sandbox refused the request: a remote call at the top level of the file, or more waiting
   * for answers at once than the host allows (`details.setting` names the limit:
   * `maxRequestsInFlight`, or `maxBytesInFlight` — every request counts the size of its own
   * arguments, even when requests share one value).
   */
  | 'Sandbox'
  /**
   * The bundle broke its limits again and again (or its top-level code broke one) and is
   * quarantined: its calls are refused until `details.retryAfterMs` has passed or it is reloaded.
   */
  | 'Quarantined';

/**
 * An error from a remote call, as a script catches it: `kind` says what happened, the message says
 * what to do.
 *
 * @example
 * ```ts
 * try { await player.addgold(10, "reward"); }
 * catch (error) { if ((error as KuafuError).kind === 'PlayerOffline') log.info(pid, 'is offline'); else throw error; }
 * ```
 * @category Errors
 */
interface KuafuError extends Error {
  /** What happened: one of the kinds the designer guide lists. */
  kind: KuafuErrorKind;
  /** Facts about it: `pid`, `path`, `at` (the server he moved to)…, depending on the kind. */
  details: Readonly<Record<string, string | number | boolean | null>>;
}

/**
 * Players: where they are, and their profiles. Scripts reach it as the global `playermgr`.
 *
 * @hidden
 */
interface KuafuPlayerManager {
  /**
   * The player's cross-server info when he is online on another server than this one, else null.
   *
   * @param pid - the player id
   * @example
   * ```ts
   * const away = await playermgr.getkuafuplayer(pid);
   * if (away) log.info(`${pid} is on ${away.go_srvname}, home ${away.home_srvname}`);
   * ```
   */
  getkuafuplayer(pid: number): Promise<KuafuPlayerInfo | null>;
  /**
   * The player's profile, or null when there is no such player.
   *
   * @param pid - the player id
   * @example
   * ```ts
   * const profile = await playermgr.getprofile(pid);
   * log.info(profile?.fields.name ?? `no player ${pid}`);
   * ```
   */
  getprofile(pid: number): Promise<KuafuProfile | null>;
}

/**
 * Remote players. Scripts reach it as the global `cproxyplayer`.
 *
 * @hidden
 */
interface KuafuProxyPlayers {
  /**
   * The player `pid` wherever he is: each method call runs on the server that holds him (at most
   * once, following him if he moves) and fails with kind `PlayerOffline` when he is offline.
   *
   * @param pid - the player id
   * @example
   * ```ts
   * export async function main(pid: number) {
   *   if (!(await playermgr.getkuafuplayer(pid))) return;   // online, on another server?
   *   const player = cproxyplayer.new(pid);
   *   await player.itemdb.additembytype(105001, 10, null, "test:rpc");
   *   const addgold = await player.addgold(10, "test:rpc");
   *   log.info(addgold);                                     // 10
   *   return addgold;
   * }
   * ```
   */
  'new'(pid: number): Remote<Player>;
}

/**
 * The function services. Scripts reach them as the global `services`.
 *
 * @hidden
 */
interface KuafuServices {
  /**
   * A guild, wherever its guild server is: deposits, deductions (checked on its server, one at a
   * time), members, ledger.
   *
   * @param gid - the guild's id
   * @example
   * ```ts
   * const receipt = await services.guild("wolves").deduct("wood", 5, "build:wall", requestId);
   * log.info(`wolves have ${receipt.balance} wood left`);
   * ```
   */
  guild(gid: string): GuildService;
  /**
   * A leaderboard across all servers.
   *
   * @param board - the board's name (`"level"`, `"power"`, or one of your own)
   * @example
   * ```ts
   * const best = await services.rank("level").top(10);
   * ```
   */
  rank(board: string): RankService;
  /**
   * A player's profile: read it, or change some of its fields.
   *
   * @param pid - the player id
   * @example
   * ```ts
   * const profile = await services.profile(pid).get();
   * ```
   */
  profile(pid: number): ProfileService;
  /**
   * This game server's battle server.
   *
   * @example
   * ```ts
   * const result = await services.battle().resolve(pidA, pidB, "duel-42");
   * ```
   */
  battle(): BattleService;
}

/**
 * The script's log: lines go to the server's log, prefixed with the bundle's name. Scripts reach it
 * as the global `log`.
 *
 * @hidden
 */
interface KuafuLog {
  /**
   * A debug line (shown when the server runs with `KUAFU_LOG_LEVEL=debug`).
   *
   * @param values - what to log: strings as they are, other values formatted
   */
  debug(...values: unknown[]): void;
  /**
   * An info line.
   *
   * @param values - what to log: strings as they are, other values formatted
   * @example
   * ```ts
   * log.info("mailed", sent.length, "winners", { offline });
   * ```
   */
  info(...values: unknown[]): void;
  /**
   * A warning line.
   *
   * @param values - what to log: strings as they are, other values formatted
   */
  warn(...values: unknown[]): void;
  /**
   * An error line.
   *
   * @param values - what to log: strings as they are, other values formatted
   */
  error(...values: unknown[]): void;
}

/**
 * Players: where they are, and their profiles.
 *
 * @namespace
 * @category Globals
 */
declare const playermgr: KuafuPlayerManager;
/**
 * Remote players: `cproxyplayer.new(pid)` reaches a player on whatever server holds him.
 *
 * @namespace
 * @category Globals
 */
declare const cproxyplayer: KuafuProxyPlayers;
/**
 * The function services (the seed's "proxy service"): guilds, leaderboards, profiles and battles,
 * each reached on the server that serves it, from any game server. Value types only, as for players.
 *
 * @namespace
 * @category Globals
 */
declare const services: KuafuServices;
/**
 * The script's log: lines go to the server's log, prefixed with the bundle's name.
 *
 * @namespace
 * @category Globals
 */
declare const log: KuafuLog;
