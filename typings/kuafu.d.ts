/**
 * kuafu script globals, for designers' editors (DESIGN §5, §7).
 *
 * A script is a TypeScript module that exports async functions; the server's script host runs them
 * in a sandbox whose only globals are `playermgr`, `cproxyplayer` and `log` (no require, process,
 * timers, filesystem or network). Add this file to your scripts' tsconfig (`scripts/tsconfig.json`
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

/** The names of `T`'s members that stay on a remote object: methods and nested namespaces. */
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

/** A remote method: value-type arguments, and a Promise of the result. */
type KuafuRemoteMethod<F> = F extends (...args: infer A) => infer R
  ? (...args: { [I in keyof A]: KuafuValued<A[I]> }) => Promise<Awaited<R>>
  : never;

/**
 * `T` as seen from another server (Comlink's `Remote<T>`): every method returns a Promise, nested
 * objects (`itemdb`) are remote namespaces, and plain data properties are not there — remote
 * property reads are not offered, call a getter method instead (`await player.getgold()`).
 */
type Remote<T> = {
  readonly [K in KuafuRemoteKeys<T>]: T[K] extends (...args: never[]) => unknown ? KuafuRemoteMethod<T[K]> : Remote<T[K]>;
};

/** What `player.getinfo()` answers. */
interface PlayerInfo {
  pid: number;
  name: string;
  level: number;
  gold: number;
  home_srvname: string;
  go_srvname: string;
}

/** An item bag: items counted by type id. */
interface PlayerItemDb {
  /** Adds `count` items of type `typeId`; answers the new count of that type. */
  additembytype(typeId: number, count: number, extra: Record<string, unknown> | null, reason: string): number;
  /** Removes `count` items of type `typeId` (refused when he has fewer); answers the new count. */
  removeitembytype(typeId: number, count: number, reason: string): number;
  /** How many items of type `typeId` he has. */
  getitemcount(typeId: number): number;
}

/** A mail as a script sends it. */
interface PlayerMailInput {
  title: string;
  body: string;
  /** Gold attached to the mail. */
  gold?: number;
  /** Items attached to the mail. */
  items?: { type: number; count: number }[];
}

/** The player's mailbox. */
interface PlayerMail {
  /** Sends him a mail; answers its id. */
  send(mail: PlayerMailInput, reason: string): number;
}

/**
 * The methods a player exports to other servers (the reference player's). A server that exports
 * more declares them by merging into this interface (`declare global { interface Player { … } }`).
 */
interface Player {
  /** Adds `amount` gold (a negative amount spends; refused below zero); answers the amount added. */
  addgold(amount: number, reason: string): number;
  /** His gold. */
  getgold(): number;
  /** His level. */
  getlevel(): number;
  /** Sets his level; answers the new level. */
  setlevel(level: number, reason: string): number;
  /** His name, level, gold and where he is. */
  getinfo(): PlayerInfo;
  /** His items. */
  itemdb: PlayerItemDb;
  /** His mailbox. */
  mail: PlayerMail;
}

/** What `playermgr.getkuafuplayer` answers: the player is online on another server than this one. */
interface KuafuPlayerInfo {
  pid: number;
  /** His home server. */
  home_srvname: string;
  /** The server he is on now. */
  go_srvname: string;
  online: boolean;
}

/** A player's profile (name, level, home, current server…) as the datacenter keeps it. */
interface KuafuProfile {
  pid: number;
  /** Bumped by every change. */
  version: number;
  fields: Record<string, string | number | boolean | null>;
}

/** The kinds of error a remote call can fail with (`error.kind`). */
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
  /** The sandbox refused the request: a remote call at the top level of the file, or too many waiting at once. */
  | 'Sandbox';

/**
 * An error from a remote call, as a script catches it: `kind` says what happened, the message says
 * what to do.
 *
 * ```ts
 * try { await player.addgold(10, "reward"); }
 * catch (error) { if ((error as KuafuError).kind === 'PlayerOffline') log.info(pid, 'is offline'); else throw error; }
 * ```
 */
interface KuafuError extends Error {
  kind: KuafuErrorKind;
  details: Readonly<Record<string, string | number | boolean | null>>;
}

/** Players: where they are, and their profiles. */
interface KuafuPlayerManager {
  /** The player's cross-server info when he is online on another server than this one, else null. */
  getkuafuplayer(pid: number): Promise<KuafuPlayerInfo | null>;
  /** The player's profile, or null when there is no such player. */
  getprofile(pid: number): Promise<KuafuProfile | null>;
}

/** Remote players. */
interface KuafuProxyPlayers {
  /**
   * The player `pid` wherever he is: each method call runs on the server that holds him (at most
   * once, following him if he moves) and fails with kind `PlayerOffline` when he is offline.
   */
  'new'(pid: number): Remote<Player>;
}

/** The script's log: lines go to the server's log, prefixed with the bundle's name. */
interface KuafuLog {
  debug(...values: unknown[]): void;
  info(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
}

declare const playermgr: KuafuPlayerManager;
declare const cproxyplayer: KuafuProxyPlayers;
declare const log: KuafuLog;
