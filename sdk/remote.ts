/**
 * `cproxyplayer.new(pid)`: a recursive proxy (the shape of tRPC's `createRecursiveProxy`).
 * Reading a property extends the path (memoized per path); calling hands `{pid, path, args}` to one
 * callback with the args frozen. `then` and symbols answer undefined, so `await player.itemdb` or
 * `Promise.resolve(player)` never fires a call. Routing, batching and retries live on the host.
 */
import { captureStackTrace, freeze, joinOf, mapGetOf, mapSetOf, rejected } from './intrinsics.js';
import { makeProxy } from './values.js';

/** Sends one remote call; `site` holds the designer's stack at the call, for errors. */
export type Dispatch = (pid: number, path: string[], args: readonly unknown[], site: { stack?: string }) => Promise<unknown>;

/** Names the proxy answers locally instead of sending (so string conversion never fires a call). */
const LOCAL = new Set(['then', 'toString', 'valueOf', 'toJSON', 'toLocaleString']);

/** Makes the remote player for `pid`. */
export function createRemotePlayer(pid: number, dispatch: Dispatch): unknown {
  const nodes = new Map<string, unknown>();
  const describe = (path: string[]) => `[remote player ${pid}${path.length ? `: ${joinOf(path, '.')}` : ''}]`;

  const node = (path: string[]): unknown => {
    const key = joinOf(path, '.');
    const known = mapGetOf(nodes, key);
    if (known !== undefined) return known;
    const target = () => undefined;
    const handler: ProxyHandler<typeof target> = {
      get(_target, property) {
        if (typeof property !== 'string') return undefined;
        if (LOCAL.has(property)) {
          return property === 'toString' || property === 'toLocaleString' || property === 'valueOf'
            ? () => describe(path)
            : undefined;
        }
        return node([...path, property]);
      },
      apply: function send(_target, _this, args: unknown[]) {
        const site: { stack?: string } = {};
        captureStackTrace(site, send);
        if (path.length === 0) {
          return rejected(new TypeError(
            `cproxyplayer.new(${pid}) is a remote player, not a function: call one of its methods, e.g. await player.addgold(10, "reason")`,
          ));
        }
        return dispatch(pid, path, freeze(args), site);
      },
      set(_target, property) {
        throw new TypeError(
          `${describe(path)}.${String(property)} cannot be set: a remote player only takes method calls, e.g. await player.addgold(10, "reason")`,
        );
      },
      defineProperty(_target, property) {
        throw new TypeError(`${describe(path)}.${String(property)} cannot be defined: a remote player only takes method calls`);
      },
      deleteProperty(_target, property) {
        throw new TypeError(`${describe(path)}.${String(property)} cannot be deleted: a remote player only takes method calls`);
      },
      has() {
        return false;
      },
      ownKeys() {
        return [];
      },
      getOwnPropertyDescriptor() {
        return undefined;
      },
      getPrototypeOf() {
        return null;
      },
      setPrototypeOf() {
        return false;
      },
    };
    const proxy = makeProxy(target, handler);
    mapSetOf(nodes, key, proxy);
    return proxy;
  };
  return node([]);
}

export { LOCAL as LOCAL_NAMES };
