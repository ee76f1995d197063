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
import { checkValue } from '../rpc/values.js';
import { ownerOf } from '../store/store.js';

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
  async invoke(pid: number, path: string[], args: unknown[], id = this.newCallId()): Promise<unknown> {
    const { node } = this;
    const needsSuperjson = checkValue(args, () => `the arguments of ${path.join('.')}`);
    // The call's parameters are plain JSON when its arguments are (checked once, here).
    const plain = typeof pid === 'number' && Number.isFinite(pid) && !Object.is(pid, -0) && typeof id === 'string' && allStrings(path);
    let rechecked = false;
    let problem = '';
    let unreachable: Error | null = null;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const route = await node.routes.get(pid);
      if (!route || !route.online) {
        if (!rechecked) {
          // The cache may not have heard of a login yet: ask the store once.
          rechecked = true;
          node.routes.forget(pid);
          continue;
        }
        throw new PlayerOfflineError(`Player ${pid} is offline: a remote call needs him online. Check with playermgr.getkuafuplayer first.`, { pid });
      }
      const owner = ownerOf(route);
      try {
        if (owner === node.name && node.game) return await node.game.host.invoke(pid, path, structuredClone(args), id);
        const params = { pid, path, args, id };
        return await (plain ? node.peer(owner).callChecked('player.invoke', params, needsSuperjson) : node.call(owner, 'player.invoke', params));
      } catch (error) {
        if (error instanceof PlayerMovedError) {
          problem = error.message;
          unreachable = null;
          node.routes.forget(pid);
          // He is moving: wait for his route to change (or a short while, growing with each try), then look again.
          await node.routes.waitForChange(pid, route.epoch, Math.min(MOVE_WAIT_MS, 20 * 2 ** hop));
          continue;
        }
        if (error instanceof ServerUnavailableError || error instanceof TimeoutError) {
          // The call may have run: retrying with the same id runs it at most once.
          problem = error.message;
          unreachable = error;
          node.routes.forget(pid);
          continue;
        }
        throw error;
      }
    }
    if (unreachable) throw unreachable;
    throw new PlayerMovedError(`Could not reach player ${pid} after ${MAX_HOPS} tries (${problem}). Try again later.`, { pid, at: '' });
  }
}

function allStrings(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) if (typeof list[i] !== 'string') return false;
  return true;
}
