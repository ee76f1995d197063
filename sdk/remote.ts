/**
 * `cproxyplayer.new(pid)`: a recursive proxy (the shape of tRPC's `createRecursiveProxy`).
 * Reading a property extends the path (memoized per path); calling hands `{pid, path, args}` to one
 * callback with the args frozen. `then` and symbols answer undefined, so `await player.itemdb` or
 * `Promise.resolve(player)` never fires a call. Routing, batching and retries live on the host.
 *
 * Every node shares one handler; a node's pid and path are what its target answers when the handler
 * calls it (the target never reaches the script: every operation on the proxy goes through the
 * handler, and an arrow function cannot be constructed). No weak collection per node: inserting
 * into one cost more than the rest of a call here. The remote players of one SDK are memoized per
 * pid (a script calling `cproxyplayer.new(pid)` on every run reuses the same proxies, which hold
 * no state a script could change).
 */
import { RealMap, apply, copyOf, freeze, joinOf, mapGetOf, mapSetOf, rejected } from './intrinsics.js';
import { makeProxy } from './values.js';

/** Sends one remote call. */
export type Dispatch = (pid: number, path: string[], args: readonly unknown[]) => Promise<unknown>;

interface Node {
  pid: number;
  path: string[];
  dispatch: Dispatch;
  /** The nodes one name further down, made on first read. */
  children: Map<string, unknown> | undefined;
}

/** Names the proxy answers locally instead of sending (so string conversion never fires a call). */
const LOCAL = new Set(['then', 'toString', 'valueOf', 'toJSON', 'toLocaleString']);

const setHas = Set.prototype.has;

/** A proxy's target: answers the node it stands for (only the handler calls it). */
type Target = () => Node;

function nodeOf(target: Target): Node {
  return target();
}

function describe(node: Node): string {
  return `[remote player ${node.pid}${node.path.length ? `: ${joinOf(node.path, '.')}` : ''}]`;
}

function refuseChange(node: Node, property: string | symbol, what: string): never {
  throw new TypeError(
    `${describe(node)}.${String(property)} cannot be ${what}: a remote player only takes method calls, e.g. await player.addgold(10, "reason")`,
  );
}

const handler: ProxyHandler<Target> = {
  get(target, property) {
    if (typeof property !== 'string') return undefined;
    const node = nodeOf(target);
    if (apply(setHas, LOCAL, [property])) {
      return property === 'then' || property === 'toJSON' ? undefined : () => describe(node);
    }
    let children = node.children;
    if (children === undefined) children = node.children = new RealMap();
    const known = mapGetOf(children, property);
    if (known !== undefined) return known;
    const child = make(node.pid, copyOf(node.path, property), node.dispatch);
    mapSetOf(children, property, child);
    return child;
  },
  apply(target, _this, args: unknown[]) {
    const node = nodeOf(target);
    if (node.path.length === 0) {
      return rejected(new TypeError(
        `cproxyplayer.new(${node.pid}) is a remote player, not a function: call one of its methods, e.g. await player.addgold(10, "reason")`,
      ));
    }
    return node.dispatch(node.pid, node.path, freeze(args));
  },
  set(target, property) {
    return refuseChange(nodeOf(target), property, 'set');
  },
  defineProperty(target, property) {
    return refuseChange(nodeOf(target), property, 'defined');
  },
  deleteProperty(target, property) {
    return refuseChange(nodeOf(target), property, 'deleted');
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

function make(pid: number, path: string[], dispatch: Dispatch): unknown {
  // An arrow function: callable, and its own properties (length, name) are configurable, so the
  // proxy may hide them without breaking the Proxy invariants.
  const node: Node = { pid, path, dispatch, children: undefined };
  const target: Target = () => node;
  return makeProxy(target, handler);
}

/** The most remote players one SDK keeps made (beyond that it starts afresh). */
const MAX_REMEMBERED_PLAYERS = 1024;

/** Makes remote players that send through `dispatch`: `(pid) => player`, the same proxy for the same pid. */
export function remotePlayers(dispatch: Dispatch): (pid: number) => unknown {
  let made = new RealMap<number, unknown>();
  let count = 0;
  return (pid) => {
    const known = mapGetOf(made, pid);
    if (known !== undefined) return known;
    if (count >= MAX_REMEMBERED_PLAYERS) {
      made = new RealMap();
      count = 0;
    }
    const player = make(pid, [], dispatch);
    mapSetOf(made, pid, player);
    count++;
    return player;
  };
}

/** Makes the remote player for `pid` (a new one). */
export function createRemotePlayer(pid: number, dispatch: Dispatch): unknown {
  return make(pid, [], dispatch);
}
