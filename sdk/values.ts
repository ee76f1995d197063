/**
 * Value types inside the sandbox (DESIGN §5): what may leave the isolate. The same rules as the
 * host's `runtime/rpc/values.ts`: null, undefined, boolean, number, string, bigint, Date, arrays,
 * plain objects, Map and Set. Functions, symbols, class instances, proxies, cycles and oversized
 * values are refused here, before anything is copied, with a ValueTypeError naming the argument
 * and its path (`args[2].items[0] is a function`).
 *
 * Proxies cannot be told from their targets by looking at them, so the SDK replaces the global
 * `Proxy` (before any script runs) with one that remembers every proxy it makes.
 */
import {
  ArrayPrototype, DatePrototype, MapPrototype, ObjectPrototype, SetPrototype, apply, defineProperty, forEachOfMap,
  forEachOfSet, functionNameOf, getOwnPropertySymbols, getPrototypeOf, keys, stringify, weakSetAddOf, weakSetHasOf,
} from './intrinsics.js';

const ALLOWED = 'null, undefined, boolean, number, string, bigint, Date, arrays, plain objects, Map and Set';

const RealProxy = Proxy;
const proxies = new WeakSet<object>();

/** Makes a proxy the value checks will recognize (the SDK's own remote players included). */
export function makeProxy<T extends object>(target: T, handler: ProxyHandler<T>): T {
  const proxy = new RealProxy(target, handler);
  weakSetAddOf(proxies, proxy);
  return proxy;
}

/** Whether `value` is a proxy made in this isolate. */
export function isProxy(value: object): boolean {
  return weakSetHasOf(proxies, value);
}

/** Replaces the global `Proxy` with one that registers what it makes; call before any script runs. */
export function installProxyRegistry(global: typeof globalThis): void {
  function Proxy(this: unknown, target: object, handler: ProxyHandler<object>): object {
    if (new.target === undefined) throw new TypeError("Constructor Proxy requires 'new'");
    return makeProxy(target, handler);
  }
  defineProperty(Proxy, 'revocable', {
    value: function revocable(target: object, handler: ProxyHandler<object>) {
      const pair = apply(RealProxy.revocable, RealProxy, [target, handler]) as { proxy: object; revoke: () => void };
      weakSetAddOf(proxies, pair.proxy);
      return pair;
    },
    writable: true,
    configurable: true,
  });
  defineProperty(global, 'Proxy', { value: Proxy, writable: true, configurable: true, enumerable: false });
}

/** A ValueTypeError as the sandbox raises it: name, kind and the offending path. */
export class SandboxValueError extends Error {
  readonly kind = 'ValueType';
  readonly details: { path: string };
  constructor(message: string, path: string) {
    super(message);
    this.name = 'ValueTypeError';
    this.details = { path };
  }
}

interface Walk {
  bytes: number;
  maxBytes: number;
  ancestors: object[];
  where: string;
  label: string;
}

function describe(value: unknown): string {
  if (typeof value === 'function') {
    const name = functionNameOf(value);
    return `a function${name ? ` (${name})` : ''}`;
  }
  if (typeof value === 'symbol') return `a symbol (${String(value.description ?? '')})`;
  if (value !== null && typeof value === 'object') {
    let name = '';
    try {
      const proto = getPrototypeOf(value) as { constructor?: unknown } | null;
      const ctor = proto ? proto.constructor : undefined;
      name = typeof ctor === 'function' ? functionNameOf(ctor) : '';
    } catch {
      name = '';
    }
    return `an instance of ${name || 'a class'}`;
  }
  return `a ${typeof value}`;
}

function refuse(walk: Walk, path: string, what: string): never {
  const where = walk.where ? `${walk.where}: ` : '';
  throw new SandboxValueError(
    `${where}${walk.label}${path} is ${what}; only value types cross servers (${ALLOWED}). Pass plain data instead.`,
    `${walk.label}${path}`,
  );
}

function grow(walk: Walk, path: string, bytes: number): void {
  walk.bytes += bytes;
  if (walk.bytes > walk.maxBytes) refuse(walk, path, `too large (over ${walk.maxBytes} bytes in all)`);
}

function keyPath(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${stringify(key)}]`;
}

function visit(walk: Walk, value: unknown, path: string): void {
  switch (typeof value) {
    case 'string':
      grow(walk, path, value.length + 2);
      return;
    case 'number':
      grow(walk, path, 8);
      return;
    case 'boolean':
      grow(walk, path, 5);
      return;
    case 'undefined':
      grow(walk, path, 1);
      return;
    case 'bigint':
      grow(walk, path, 16);
      return;
    case 'object':
      break;
    case 'function':
      refuse(walk, path, isProxy(value) ? 'a proxy (a remote player cannot be sent: send its pid instead)' : describe(value));
    default:
      refuse(walk, path, describe(value));
  }
  if (value === null) {
    grow(walk, path, 4);
    return;
  }
  if (isProxy(value)) refuse(walk, path, 'a proxy; send the plain data it stands for instead');
  const proto = getPrototypeOf(value);
  if (proto === DatePrototype) {
    grow(walk, path, 24);
    return;
  }
  for (let i = 0; i < walk.ancestors.length; i++) {
    if (walk.ancestors[i] === value) refuse(walk, path, 'a cycle (an object that contains itself)');
  }
  if (getOwnPropertySymbols(value).length > 0) refuse(walk, path, 'an object with symbol keys');
  walk.ancestors[walk.ancestors.length] = value;
  if (proto === ArrayPrototype) {
    const array = value as unknown[];
    grow(walk, path, 2);
    const length = array.length;
    for (let i = 0; i < length; i++) visit(walk, array[i], `${path}[${i}]`);
  } else if (proto === ObjectPrototype || proto === null) {
    grow(walk, path, 2);
    const names = keys(value);
    for (let i = 0; i < names.length; i++) {
      const key = names[i]!;
      grow(walk, path, key.length + 3);
      visit(walk, (value as Record<string, unknown>)[key], keyPath(path, key));
    }
  } else if (proto === MapPrototype) {
    grow(walk, path, 2);
    let i = 0;
    forEachOfMap(value as Map<unknown, unknown>, (entry, key) => {
      visit(walk, key, `${path}.<key ${i}>`);
      visit(walk, entry, `${path}.get(${typeof key === 'string' ? stringify(key) : i})`);
      i++;
    });
  } else if (proto === SetPrototype) {
    grow(walk, path, 2);
    let i = 0;
    forEachOfSet(value as Set<unknown>, (entry) => visit(walk, entry, `${path}.<entry ${i++}>`));
  } else {
    refuse(walk, path, describe(value));
  }
  walk.ancestors.length--;
}

/**
 * Checks that `value` may leave the sandbox; throws a ValueTypeError naming `where` (the call, e.g.
 * `player.itemdb.additembytype`), `label` (e.g. `args`) and the path of the first offending part.
 */
export function checkValue(value: unknown, where: string, label: string, maxBytes: number): void {
  visit({ bytes: 0, maxBytes, ancestors: [], where, label }, value, '');
}
