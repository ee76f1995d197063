/**
 * The caller's side of player RPC: reach a player wherever he is. The owner comes from the route
 * cache (no store round trip on a hot call); a call that finds him moved waits for his route to
 * change and follows him (bounded hops); a call whose server did not answer is retried with the
 * same id, which the owner runs at most once. Calls made in one tick to one server share one
 * JSON-RPC batch (the peer connection batches them).
 */
import { randomBytes } from 'node:crypto';
import {
  PlayerMovedError, PlayerOfflineError, ServerUnavailableError, TimeoutError,
} from '../errors.js';
import type { ServerNode } from '../cluster/server-node.js';
import type { CallDone } from '../rpc/peer-client.js';
import { checkValue } from '../rpc/values.js';
import { ownerOf, type Route } from '../store/store.js';

/** How many times a call follows a player who moved, or retries a server that did not answer. */
export const MAX_HOPS = 8;
/** How long a call waits for a moving player's route to change before it looks again, ms. */
const MOVE_WAIT_MS = 500;

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
      this.attempts(call, { hop: first ? 1 : 0, rechecked: false, problem: '', unreachable: null }, first).then(
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
    if (error instanceof PlayerMovedError) {
      state.problem = error.message;
      state.unreachable = null;
      node.routes.forget(call.pid);
      // He is moving: wait for his route to change (or a short while, growing with each try), then look again.
      await node.routes.waitForChange(call.pid, route.epoch, Math.min(MOVE_WAIT_MS, 20 * 2 ** hop));
      return;
    }
    if (error instanceof ServerUnavailableError || error instanceof TimeoutError) {
      // The call may have run: retrying with the same id runs it at most once.
      state.problem = error.message;
      state.unreachable = error;
      node.routes.forget(call.pid);
      return;
    }
    throw error;
  }
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
}

function allStrings(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) if (typeof list[i] !== 'string') return false;
  return true;
}
