/**
 * Value types inside the sandbox (DESIGN §5): what may leave the isolate. The same rules as the
 * host's `runtime/rpc/values.ts`: null, undefined, boolean, number, string, bigint, Date, arrays,
 * plain objects, Map and Set. Functions, symbols, class instances, proxies, cycles and oversized
 * values are refused here, before anything is copied, with a ValueTypeError naming the argument
 * and its path (`args[2].items[0] is a function`). What passes is copied at once, as plain data.
 *
 * Proxies cannot be told from their targets by looking at them, so the SDK replaces the global
 * `Proxy` (before any script runs) with one that remembers every proxy it makes.
 */
import {
  ArrayPrototype, DatePrototype, MapPrototype, ObjectPrototype, RealDate, RealMap, RealSet, SetPrototype, apply,
  defineProperty, forEachOfMap, put, forEachOfSet, functionNameOf, getOwnPropertySymbols, getPrototypeOf, keys, mapSetOf,
  setAddOf, stringify, timeOf, weakSetAddOf, weakSetHasOf,
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
  /** The call the value goes with (made only when the value is refused). */
  where: string | (() => string);
  label: string;
  /** Where the walk is: one step per level (kept as raw keys; turned into text only to report). */
  steps: Step[];
}

/** One step into a value: an array index, an object key, a Map key or value, a Set entry. */
type Step = [kind: 0 | 1 | 2 | 3 | 4, key: unknown, index: number];

function pathOf(walk: Walk): string {
  let path = '';
  const steps = walk.steps;
  for (let i = 0; i < steps.length; i++) {
    const here = steps[i]!;
    const kind = here[0];
    const key = here[1];
    const index = here[2];
    switch (kind) {
      case 0:
        path += `[${index}]`;
        break;
      case 1:
        path += /^[A-Za-z_$][\w$]*$/.test(key as string) ? `.${key as string}` : `[${stringify(key)}]`;
        break;
      case 2:
        path += `.<key ${index}>`;
        break;
      case 3:
        path += `.get(${typeof key === 'string' ? stringify(key) : index})`;
        break;
      case 4:
        path += `.<entry ${index}>`;
        break;
    }
  }
  return path;
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

function refuse(walk: Walk, what: string): never {
  const call = typeof walk.where === 'string' ? walk.where : walk.where();
  const where = call ? `${call}: ` : '';
  const path = `${walk.label}${pathOf(walk)}`;
  throw new SandboxValueError(
    `${where}${path} is ${what}; only value types cross servers (${ALLOWED}). Pass plain data instead.`,
    path,
  );
}

function grow(walk: Walk, bytes: number): void {
  walk.bytes += bytes;
  if (walk.bytes > walk.maxBytes) refuse(walk, `too large (over ${walk.maxBytes} bytes in all)`);
}

/** Visits `value` one step down (`kind`, `key`, `index`), then steps back. */
function step(walk: Walk, value: unknown, kind: Step[0], key: unknown, index: number): unknown {
  const steps = walk.steps;
  put(steps, steps.length, [kind, key, index]);
  const copy = visit(walk, value);
  steps.length--;
  return copy;
}

/** Checks `value` and answers a copy of it made of plain data only (getters read once, later changes not seen). */
function visit(walk: Walk, value: unknown): unknown {
  switch (typeof value) {
    case 'string':
      grow(walk, value.length + 2);
      return value;
    case 'number':
      grow(walk, 8);
      return value;
    case 'boolean':
      grow(walk, 5);
      return value;
    case 'undefined':
      grow(walk, 1);
      return value;
    case 'bigint':
      grow(walk, 16);
      return value;
    case 'object':
      break;
    case 'function':
      refuse(walk, isProxy(value) ? 'a proxy (a remote player cannot be sent: send its pid instead)' : describe(value));
    default:
      refuse(walk, describe(value));
  }
  if (value === null) {
    grow(walk, 4);
    return null;
  }
  if (isProxy(value)) refuse(walk, 'a proxy; send the plain data it stands for instead');
  const proto = getPrototypeOf(value);
  if (proto === DatePrototype) {
    grow(walk, 24);
    return new RealDate(timeOf(value as Date));
  }
  for (let i = 0; i < walk.ancestors.length; i++) {
    if (walk.ancestors[i] === value) refuse(walk, 'a cycle (an object that contains itself)');
  }
  if (getOwnPropertySymbols(value).length > 0) refuse(walk, 'an object with symbol keys');
  put(walk.ancestors, walk.ancestors.length, value);
  let copy: unknown;
  if (proto === ArrayPrototype) {
    const array = value as unknown[];
    grow(walk, 2);
    const length = array.length;
    const out: unknown[] = [];
    for (let i = 0; i < length; i++) put(out, i, step(walk, array[i], 0, undefined, i));
    copy = out;
  } else if (proto === ObjectPrototype || proto === null) {
    grow(walk, 2);
    const names = keys(value);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < names.length; i++) {
      const key = names[i]!;
      grow(walk, key.length + 3);
      const entry = step(walk, (value as Record<string, unknown>)[key], 1, key, i);
      put(out, key, entry);
    }
    copy = out;
  } else if (proto === MapPrototype) {
    grow(walk, 2);
    const out = new RealMap<unknown, unknown>();
    let i = 0;
    forEachOfMap(value as Map<unknown, unknown>, (entry, key) => {
      const keyCopy = step(walk, key, 2, undefined, i);
      mapSetOf(out, keyCopy, step(walk, entry, 3, key, i));
      i++;
    });
    copy = out;
  } else if (proto === SetPrototype) {
    grow(walk, 2);
    const out = new RealSet<unknown>();
    let i = 0;
    forEachOfSet(value as Set<unknown>, (entry) => setAddOf(out, step(walk, entry, 4, undefined, i++)));
    copy = out;
  } else {
    refuse(walk, describe(value));
  }
  walk.ancestors.length--;
  return copy;
}

/**
 * Checks that `value` may leave the sandbox and answers the copy that will: plain data only, taken
 * now (a getter is read once; a change the script makes afterwards is not sent). Throws a
 * ValueTypeError naming `where` (the call, e.g. `player.itemdb.additembytype`), `label` (e.g.
 * `args`) and the path of the first offending part. `size.bytes`, when given, is set to the value's
 * size as the limits count it: every part counted where it occurs (a string that occurs twice,
 * or in two requests, counts twice: the host's copy holds it twice).
 */
export function snapshotValue(value: unknown, where: string | (() => string), label: string, maxBytes: number, size?: { bytes: number }): unknown {
  const walk: Walk = { bytes: 0, maxBytes, ancestors: [], where, label, steps: [] };
  const copy = visit(walk, value);
  if (size !== undefined) size.bytes = walk.bytes;
  return copy;
}

