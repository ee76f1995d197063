/**
 * The caller's side of player RPC: reach a player wherever he is. The owner comes from the route
 * cache (no store round trip on a hot call); a call that finds him moved waits for his route to
 * change and follows him (bounded hops); a call whose outcome is unknown (its server did not
 * answer, or its save did not come back) is retried with the same id, which the owner runs at
 * most once. Calls made in one tick to one server share one JSON-RPC batch (the peer connection
 * batches them).
 *
 * What the caller hears keeps the three outcomes of player-host.ts: a result (stored), a clear
 * failure (not applied), or — only when every retry left it open — OutcomeUnknown.
 */
import { randomBytes } from 'node:crypto';
import {
  KuafuError, OutcomeUnknownError, PlayerMovedError, PlayerOfflineError, ServerUnavailableError, StaleOwnerError, StoreUnavailableError,
  TimeoutError, type ErrorKind,
} from '../errors.js';
import type { ServerNode } from '../cluster/server-node.js';
import type { CallDone } from '../rpc/peer-client.js';
import { checkValue, decodeValue } from '../rpc/values.js';
import { REMEMBERED_CALLS, ownerOf, type Route } from '../store/store.js';

/** How many times a call follows a player who moved, or retries a server that did not answer. */
export const MAX_HOPS = 8;
/** How long a call waits for a moving player's route to change before it looks again, ms. */
const MOVE_WAIT_MS = 500;
/** How long a call whose outcome is open waits before it asks again, at most, ms. */
const UNKNOWN_WAIT_MS = 1000;

/**
 * Errors that say nothing of whether an earlier try ran: after a try whose outcome is unknown,
 * ending on one of these leaves the call's outcome unknown. Any other answer comes from the player
 * (or from checks that would have refused every try alike), so it settles the call.
 */
const OPEN_ENDED = new Set<ErrorKind>(['PlayerOffline', 'PlayerMoved', 'StaleOwner', 'StoreUnavailable', 'ServerUnavailable', 'Timeout', 'OutcomeUnknown']);

export class PlayerCaller {
  private readonly prefix: string;
  private counter = 0;

  constructor(private readonly node: ServerNode) {
    this.prefix = `${node.name}:${randomBytes(6).toString('hex')}:`;
  }

  /** A new call id, unique across the cluster. */
  newCallId(): string {
    return `${this.prefix}${++this.counter}`;
  }

  /** Calls the method at `path` on player `pid` wherever he is; resolves with its result. */
  invoke(pid: number, path: string[], args: unknown[], id = this.newCallId()): Promise<unknown> {
    return new Promise((resolve, reject) => this.invokeWith(pid, path, args, (ok, value) => (ok ? resolve(value) : reject(value)), id));
  }

  /**
   * `invoke` that reports to `done` — `(true, result)` or `(false, error)`, once, never
   * synchronously — instead of answering a promise. In the hot case (the route is cached, the
   * owner is another server) the reply reaches `done` with no promise and no turn of the microtask
   * queue in between; anything else, and any failure, goes the long way (follows, retries).
   */
  invokeWith(pid: number, path: string[], args: unknown[], done: CallDone, id = this.newCallId()): void {
    const { node } = this;
    let needsSuperjson: boolean;
    try {
      needsSuperjson = checkValue(args, () => `the arguments of ${path.join('.')}`);
    } catch (error) {
      queueMicrotask(() => done(false, error));
      return;
    }
    // The call's parameters are plain JSON when its arguments are (checked once, here).
    const plain = typeof pid === 'number' && Number.isFinite(pid) && !Object.is(pid, -0) && typeof id === 'string' && allStrings(path);
    const call: Call = { pid, path, args, id, needsSuperjson, plain };
    const longWay = (first?: { error: unknown; route: Route }) => {
      this.attempts(call, { hop: first ? 1 : 0, rechecked: false, problem: '', unreachable: null, unknown: null }, first).then(
        (value) => done(true, value),
        (error: unknown) => done(false, error),
      );
    };
    const route = node.routes.peek(pid);
    if (route && route.online && plain) {
      const owner = ownerOf(route);
      if (owner !== node.name) {
        node.peer(owner).callCheckedWith('player.invoke', { pid, path, args, id }, needsSuperjson, (ok, value) => {
          if (ok) done(true, value);
          else longWay({ error: value, route });
        });
        return;
      }
    }
    longWay();
  }

  /** Reaches the player, following him and retrying (bounded); `first` is how a first try ended, if one was made. */
  private async attempts(call: Call, state: Attempts, first?: { error: unknown; route: Route }): Promise<unknown> {
    try {
      return await this.tries(call, state, first);
    } catch (error) {
      if (!state.unknown || !(error instanceof KuafuError) || !OPEN_ENDED.has(error.kind)) throw error;
      // An earlier try may have run. If nobody holds him any more, his stored document says.
      if (error instanceof PlayerOfflineError) {
        const stored = await this.storedResult(call).catch(() => undefined);
        if (stored) return stored.result;
        if (stored === null) throw error; // not in his document: it never ran, and no copy of him can run it now
      }
      throw new OutcomeUnknownError(
        `Whether ${call.path.join('.')} ran on player ${call.pid} is not known: ${state.unknown.message}; then ${error.message} ` +
          `Retry with the same call id (${call.id}) later: it runs at most once.`,
        { pid: call.pid, callId: call.id },
      );
    }
  }

  /**
   * The result of this call as the player's stored document remembers it: `{result}` if it ran,
   * null if it did not, undefined if it cannot be said (its id may have been forgotten since).
   */
  private async storedResult(call: Call): Promise<{ result: unknown } | null | undefined> {
    const stored = await this.node.store.loadDocument(call.pid);
    const found = stored?.calls?.find(([id]) => id === call.id);
    if (found) return { result: decodeValue(JSON.parse(found[1])) };
    return (stored?.calls?.length ?? 0) < REMEMBERED_CALLS ? null : undefined;
  }

  private async tries(call: Call, state: Attempts, first?: { error: unknown; route: Route }): Promise<unknown> {
    const { node } = this;
    const { pid, path, args, id } = call;
    if (first) await this.afterFailure(call, state, first.error, first.route, state.hop - 1);
    for (; state.hop < MAX_HOPS; state.hop++) {
      const route = await node.routes.get(pid);
      if (!route || !route.online) {
        if (!state.rechecked) {
          // The cache may not have heard of a login yet: ask the store once.
          state.rechecked = true;
          node.routes.forget(pid);
          continue;
        }
        throw new PlayerOfflineError(`Player ${pid} is offline: a remote call needs him online. Check with playermgr.getkuafuplayer first.`, { pid });
      }
      const owner = ownerOf(route);
      try {
        if (owner === node.name && node.game) return await node.game.host.invoke(pid, path, structuredClone(args), id);
        const params = { pid, path, args, id };
        return await (call.plain ? node.peer(owner).callChecked('player.invoke', params, call.needsSuperjson) : node.call(owner, 'player.invoke', params));
      } catch (error) {
        await this.afterFailure(call, state, error, route, state.hop);
      }
    }
    if (state.unreachable) throw state.unreachable;
    throw new PlayerMovedError(`Could not reach player ${pid} after ${MAX_HOPS} tries (${state.problem}). Try again later.`, { pid, at: '' });
  }

  /** A try failed: rethrows what is final; for a move or an unreachable server, sets up the next try. */
  private async afterFailure(call: Call, state: Attempts, error: unknown, route: Route, hop: number): Promise<void> {
    const { node } = this;
    if (error instanceof PlayerMovedError || error instanceof StaleOwnerError) {
      // He is moving (or his owner lost him while the call ran there: it was not applied): wait for
      // his route to change (or a short while, growing with each try), then look again.
      state.problem = error.message;
      state.unreachable = null;
      node.routes.forget(call.pid);
      await node.routes.waitForChange(call.pid, route.epoch, Math.min(MOVE_WAIT_MS, 20 * 2 ** hop));
      return;
    }
    if (error instanceof ServerUnavailableError || error instanceof TimeoutError || error instanceof OutcomeUnknownError) {
      // The call may have run: retrying with the same id runs it at most once.
      state.problem = error.message;
      state.unreachable = error;
      state.unknown = error;
      node.routes.forget(call.pid);
      if (error instanceof OutcomeUnknownError) await delay(Math.min(UNKNOWN_WAIT_MS, 25 * 2 ** hop));
      return;
    }
    if (error instanceof StoreUnavailableError && state.unknown) {
      // Nothing ran this time (the store is down), but an earlier try may have: keep asking a while.
      state.problem = error.message;
      state.unreachable = error;
      await delay(Math.min(UNKNOWN_WAIT_MS, 25 * 2 ** hop));
      return;
    }
    throw error;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One call to a player, as PlayerCaller tries it. */
interface Call {
  pid: number;
  path: string[];
  args: unknown[];
  id: string;
  needsSuperjson: boolean;
  /** Whether its parameters are plain JSON when its arguments are. */
  plain: boolean;
}

/** Where the tries of one call stand. */
interface Attempts {
  hop: number;
  rechecked: boolean;
  problem: string;
  unreachable: Error | null;
  /** Why an earlier try's outcome is unknown (it may have run), if one's is. */
  unknown: Error | null;
}

function allStrings(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) if (typeof list[i] !== 'string') return false;
  return true;
}
