/**
 * Values on the wire (DESIGN §5). Only value types cross servers: null, undefined, boolean, number,
 * string, bigint, Date, arrays, plain objects, Map and Set. Everything else — functions, symbols,
 * class instances, proxies we cannot see through, cycles, oversized payloads — is refused before
 * anything is sent, with a ValueTypeError naming the argument and its path.
 *
 * Plain JSON travels as `[value]`; a value that needs more than JSON (undefined, bigint, Date, Map,
 * Set, NaN, ±Infinity, -0) travels as superjson's `{json, meta}`. superjson is ~5x slower than JSON,
 * so it is used only when the value needs it.
 */
import superjson from 'superjson';
import { ValueTypeError } from '../errors.js';

/** The default largest encoded value, in bytes (roughly): 1 MiB. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;

/**
 * The default largest message between servers, in bytes (UTF-8, exactly): 8 MiB. A server closes
 * a connection that sends a bigger one (1009), so a client splits its batches under the limit of
 * the server it calls, and a server its answers under its own.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

const ALLOWED = 'null, undefined, boolean, number, string, bigint, Date, arrays, plain objects, Map and Set';

interface Walk {
  bytes: number;
  maxBytes: number;
  needsSuperjson: boolean;
  ancestors: Set<object>;
  label: string;
}

function describe(value: unknown): string {
  if (typeof value === 'function') return `a function${value.name ? ` (${value.name})` : ''}`;
  if (typeof value === 'symbol') return `a symbol (${String(value.description ?? '')})`;
  if (value !== null && typeof value === 'object') {
    const ctor = Object.getPrototypeOf(value)?.constructor;
    return `an instance of ${typeof ctor === 'function' && ctor.name ? ctor.name : 'a class'}`;
  }
  return `a ${typeof value}`;
}

function refuse(walk: Walk, path: string, what: string): never {
  throw new ValueTypeError(
    `${walk.label}${path} is ${what}; only value types cross servers (${ALLOWED}). Pass plain data instead.`,
    { path: `${walk.label}${path}` },
  );
}

function grow(walk: Walk, path: string, bytes: number): void {
  walk.bytes += bytes;
  if (walk.bytes > walk.maxBytes) {
    refuse(walk, path, `too large (over ${walk.maxBytes} bytes in all)`);
  }
}

function visit(walk: Walk, value: unknown, path: string): void {
  switch (typeof value) {
    case 'string':
      grow(walk, path, value.length + 2);
      return;
    case 'number':
      if (!Number.isFinite(value) || Object.is(value, -0)) walk.needsSuperjson = true;
      grow(walk, path, 8);
      return;
    case 'boolean':
      grow(walk, path, 5);
      return;
    case 'undefined':
      walk.needsSuperjson = true;
      return;
    case 'bigint':
      walk.needsSuperjson = true;
      grow(walk, path, 16);
      return;
    case 'object':
      break;
    default:
      refuse(walk, path, describe(value));
  }
  if (value === null) {
    grow(walk, path, 4);
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Date.prototype) {
    walk.needsSuperjson = true;
    grow(walk, path, 24);
    return;
  }
  if (walk.ancestors.has(value)) refuse(walk, path, 'a cycle (an object that contains itself)');
  if (Object.getOwnPropertySymbols(value).length > 0) refuse(walk, path, 'an object with symbol keys');
  walk.ancestors.add(value);
  if (proto === Array.prototype) {
    const array = value as unknown[];
    grow(walk, path, 2);
    for (let i = 0; i < array.length; i++) visit(walk, array[i], `${path}[${i}]`);
  } else if (proto === Object.prototype || proto === null) {
    grow(walk, path, 2);
    for (const key of Object.keys(value)) {
      grow(walk, path, key.length + 3);
      visit(walk, (value as Record<string, unknown>)[key], `${path}.${key}`);
    }
  } else if (proto === Map.prototype) {
    walk.needsSuperjson = true;
    let i = 0;
    for (const [key, entry] of value as Map<unknown, unknown>) {
      visit(walk, key, `${path}.<key ${i}>`);
      visit(walk, entry, `${path}.get(${typeof key === 'string' ? JSON.stringify(key) : i})`);
      i++;
    }
  } else if (proto === Set.prototype) {
    walk.needsSuperjson = true;
    let i = 0;
    for (const entry of value as Set<unknown>) visit(walk, entry, `${path}.<entry ${i++}>`);
  } else {
    refuse(walk, path, describe(value));
  }
  walk.ancestors.delete(value);
}

/** What the quick walk keeps: bytes so far, whether superjson is needed, the objects above the current one. */
interface Quick {
  bytes: number;
  maxBytes: number;
  needsSuperjson: boolean;
  /** The objects from the root down to the current one (the first 32 levels; deeper ones in `deep`). */
  stack: object[];
  deep: Set<object> | null;
}

/** Thrown by the quick walk when a value is refused: the labelled walk then says where and why. */
const REFUSED = Symbol('refused');

const SHALLOW = 32;

/**
 * The walk of almost every check: the same rules, sizes and cycle test as `visit`, without making a
 * path string for every part (a refused value is walked again by `visit` for the message).
 */
function quick(q: Quick, value: unknown, depth: number): void {
  switch (typeof value) {
    case 'string':
      q.bytes += value.length + 2;
      break;
    case 'number':
      if (!Number.isFinite(value) || Object.is(value, -0)) q.needsSuperjson = true;
      q.bytes += 8;
      break;
    case 'boolean':
      q.bytes += 5;
      break;
    case 'undefined':
      q.needsSuperjson = true;
      return;
    case 'bigint':
      q.needsSuperjson = true;
      q.bytes += 16;
      break;
    case 'object':
      if (value === null) {
        q.bytes += 4;
        break;
      }
      quickObject(q, value, depth);
      return;
    default:
      throw REFUSED;
  }
  if (q.bytes > q.maxBytes) throw REFUSED;
}

function quickObject(q: Quick, value: object, depth: number): void {
  const proto = Object.getPrototypeOf(value);
  if (proto === Date.prototype) {
    q.needsSuperjson = true;
    q.bytes += 24;
    if (q.bytes > q.maxBytes) throw REFUSED;
    return;
  }
  const stack = q.stack;
  const shallow = depth < SHALLOW;
  for (let i = 0, n = shallow ? depth : SHALLOW; i < n; i++) if (stack[i] === value) throw REFUSED;
  if (!shallow && q.deep !== null && q.deep.has(value)) throw REFUSED;
  if (Object.getOwnPropertySymbols(value).length > 0) throw REFUSED;
  if (shallow) stack[depth] = value;
  else (q.deep ??= new Set()).add(value);
  const below = depth + 1;
  if (proto === Array.prototype) {
    const array = value as unknown[];
    q.bytes += 2;
    if (q.bytes > q.maxBytes) throw REFUSED;
    for (let i = 0; i < array.length; i++) quick(q, array[i], below);
  } else if (proto === Object.prototype || proto === null) {
    q.bytes += 2;
    if (q.bytes > q.maxBytes) throw REFUSED;
    const names = Object.keys(value);
    for (let i = 0; i < names.length; i++) {
      const key = names[i]!;
      q.bytes += key.length + 3;
      if (q.bytes > q.maxBytes) throw REFUSED;
      quick(q, (value as Record<string, unknown>)[key], below);
    }
  } else if (proto === Map.prototype) {
    q.needsSuperjson = true;
    for (const [key, entry] of value as Map<unknown, unknown>) {
      quick(q, key, below);
      quick(q, entry, below);
    }
  } else if (proto === Set.prototype) {
    q.needsSuperjson = true;
    for (const entry of value as Set<unknown>) quick(q, entry, below);
  } else {
    throw REFUSED;
  }
  if (!shallow) q.deep!.delete(value);
}

/**
 * Checks that `value` may cross servers; throws ValueTypeError naming `label` (text, or a function
 * that makes it: only a refused value needs it) and the path of the first offending part. Returns
 * whether the value needs superjson (more than plain JSON).
 */
export function checkValue(value: unknown, label: string | (() => string), maxBytes = DEFAULT_MAX_VALUE_BYTES): boolean {
  const q: Quick = { bytes: 0, maxBytes, needsSuperjson: false, stack: [], deep: null };
  try {
    quick(q, value, 0);
    return q.needsSuperjson;
  } catch (error) {
    if (error !== REFUSED && !(error instanceof RangeError)) throw error;
  }
  // Refused (or too deep for the quick walk): the labelled walk finds where, and says so.
  const walk: Walk = { bytes: 0, maxBytes, needsSuperjson: false, ancestors: new Set(), label: typeof label === 'string' ? label : label() };
  visit(walk, value, '');
  return walk.needsSuperjson;
}

/** A value as it travels in JSON-RPC params or result: `[plain]` or superjson's `{json, meta}`. */
export type WireValue = [unknown] | { json: unknown; meta?: unknown };

/** Checks `value` and encodes it for the wire. */
export function encodeValue(value: unknown, label: string | (() => string), maxBytes = DEFAULT_MAX_VALUE_BYTES): WireValue {
  return encodeChecked(value, checkValue(value, label, maxBytes));
}

/** Encodes a value checked already (`needsSuperjson` is what checkValue answered for it). */
export function encodeChecked(value: unknown, needsSuperjson: boolean): WireValue {
  if (!needsSuperjson) return [value];
  return superjson.serialize(value) as { json: unknown; meta?: unknown };
}

/** Decodes a value received from the wire; a value of neither form throws a TypeError. */
export function decodeValue(wire: unknown): unknown {
  if (Array.isArray(wire)) {
    if (wire.length !== 1) throw new TypeError('expected [value] or {json, meta}');
    return wire[0];
  }
  if (wire !== null && typeof wire === 'object' && Object.prototype.hasOwnProperty.call(wire, 'json')) {
    return superjson.deserialize(wire as { json: never; meta?: never });
  }
  throw new TypeError('expected [value] or {json, meta}');
}

/**
 * Encodes a stored document as superjson text (keeps Dates, Maps, bigints…). A document of plain
 * JSON is written as `{"json": …}` with JSON.stringify: the same superjson text, without the cost
 * of superjson's walk.
 */
export function encodeDocument(value: unknown): string {
  if (checkValue(value, 'document', Number.MAX_SAFE_INTEGER)) return superjson.stringify(value);
  return JSON.stringify({ json: value });
}

/** Decodes a stored document. */
export function decodeDocument(text: string): unknown {
  return superjson.parse(text);
}
