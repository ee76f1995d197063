/**
 * The boundary between the script host and the game server it runs in (DESIGN §5, §7). The game
 * server implements ScriptServices with the real cluster (routes, JSON-RPC batches, profiles, the
 * function services);
 * tests of the sandbox give a small recording one. Scripts reach nothing else.
 */
import type { Profile } from '../store/store.js';

/** What playermgr.getkuafuplayer answers: the player is online on another server than this one. */
export interface KuafuPlayerInfo { pid: number; home_srvname: string; go_srvname: string; online: boolean }

/** What scripts can reach on the host. Every value crossing it is a value type (DESIGN §5). */
export interface ScriptServices {
  /** Calls the method at `path` (e.g. ['itemdb', 'additembytype']) on player `pid` wherever he is: runs at most once, follows moves, PlayerOfflineError when offline, NotExportedError for a path not exported. Calls made in the same tick go out as one batch per server, so call it for all queued calls in one synchronous loop. */
  invokePlayer(pid: number, path: string[], args: unknown[]): Promise<unknown>;
  /**
   * Optional: `invokePlayer` reporting to `done` — `(true, result)` or `(false, error)`, once, never
   * synchronously — instead of answering a promise (the host uses it when given: no promise and no
   * turn of the microtask queue between the answer and the script).
   */
  invokePlayerWith?(pid: number, path: string[], args: unknown[], done: (ok: boolean, value: unknown) => void): void;
  /** The player's cross-server info when he is online on another server than this one, else null. */
  getKuafuPlayer(pid: number): Promise<KuafuPlayerInfo | null>;
  /** The player's profile, or null. */
  getProfile(pid: number): Promise<Profile | null>;
  /**
   * Calls a function service for a script: `services.<service>(target).<method>(...args)`, e.g.
   * ('guild', 'wolves', 'deduct', ['wood', 5, 'build:wall']). `target` is the guild id, the board,
   * the player id as text, or '' (battle). Refuses what scripts may not call (NotExportedError);
   * arguments the service refuses fail with InvalidArgumentError, its own refusals with their
   * kinds (InsufficientResource, NotFound…). Calls of one tick may be handed over in one loop.
   */
  callService(service: string, target: string, method: string, args: unknown[]): Promise<unknown>;
  /** Where script log lines go (the host's log, prefixed with the bundle name). */
  log(level: 'debug' | 'info' | 'warn' | 'error', bundle: string, message: string): void;
}
