/**
 * `log.info(...values)` formatting: strings as they are, other values in a short readable form
 * (like Node's `util.inspect`, much smaller). Never calls a remote player: proxies print as what
 * they are.
 */
import {
  ArrayPrototype, DatePrototype, ErrorPrototype, MapPrototype, ObjectPrototype, SetPrototype, forEachOfMap, forEachOfSet,
  functionNameOf, getPrototypeOf, isoOf, joinOf, keys, sliceOf, stringify,
} from './intrinsics.js';
import { isProxy } from './values.js';

const MAX_DEPTH = 6;
const MAX_ITEMS = 50;

function errorText(error: Error): string {
  try {
    const stack = error.stack;
    if (typeof stack === 'string' && stack) return stack;
    return `${String(error.name)}: ${String(error.message)}`;
  } catch {
    return '[an error that cannot be printed]';
  }
}

function isErrorLike(value: object): boolean {
  let proto: unknown = getPrototypeOf(value);
  for (let depth = 0; proto !== null && depth < 10; depth++) {
    if (proto === ErrorPrototype) return true;
    proto = getPrototypeOf(proto as object);
  }
  return false;
}

function key(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : stringify(name);
}

function inspect(value: unknown, depth: number, seen: object[]): string {
  switch (typeof value) {
    case 'string':
      return depth === 0 ? value : stringify(value);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'bigint':
      return `${String(value)}n`;
    case 'symbol':
      return `Symbol(${String(value.description ?? '')})`;
    case 'function': {
      if (isProxy(value)) return String(value);
      const name = functionNameOf(value);
      return `[Function${name ? `: ${name}` : ' (anonymous)'}]`;
    }
    default:
      break;
  }
  if (value === null) return 'null';
  const object = value as object;
  if (isProxy(object)) return '[Proxy]';
  for (let i = 0; i < seen.length; i++) if (seen[i] === object) return '[Circular]';
  if (isErrorLike(object)) return errorText(object as Error);
  const proto = getPrototypeOf(object);
  if (proto === DatePrototype) return isoOf(object as Date);
  if (depth >= MAX_DEPTH) {
    return proto === ArrayPrototype ? '[Array]' : proto === MapPrototype ? '[Map]' : proto === SetPrototype ? '[Set]' : '[Object]';
  }
  seen[seen.length] = object;
  const parts: string[] = [];
  let more = 0;
  const push = (part: string) => {
    if (parts.length < MAX_ITEMS) parts[parts.length] = part;
    else more++;
  };
  let text: string;
  if (proto === ArrayPrototype) {
    const array = object as unknown[];
    for (let i = 0; i < array.length; i++) push(inspect(array[i], depth + 1, seen));
    text = `[${joinParts(parts, more)}]`;
  } else if (proto === MapPrototype) {
    forEachOfMap(object as Map<unknown, unknown>, (entry, mapKey) =>
      push(`${inspect(mapKey, depth + 1, seen)} => ${inspect(entry, depth + 1, seen)}`));
    text = `Map(${(object as Map<unknown, unknown>).size}) {${parts.length ? ` ${joinParts(parts, more)} ` : ''}}`;
  } else if (proto === SetPrototype) {
    forEachOfSet(object as Set<unknown>, (entry) => push(inspect(entry, depth + 1, seen)));
    text = `Set(${(object as Set<unknown>).size}) {${parts.length ? ` ${joinParts(parts, more)} ` : ''}}`;
  } else {
    const names = keys(object);
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      let entry: unknown;
      try {
        entry = (object as Record<string, unknown>)[name];
      } catch {
        entry = '[a getter that throws]';
      }
      push(`${key(name)}: ${inspect(entry, depth + 1, seen)}`);
    }
    let prefix = '';
    if (proto !== ObjectPrototype && proto !== null) {
      try {
        const ctor = (proto as { constructor?: unknown }).constructor;
        const name = typeof ctor === 'function' ? functionNameOf(ctor) : '';
        prefix = name ? `${name} ` : '';
      } catch {
        prefix = '';
      }
    }
    text = `${prefix}{${parts.length ? ` ${joinParts(parts, more)} ` : ''}}`;
  }
  seen.length--;
  return text;
}

function joinParts(parts: string[], more: number): string {
  return joinOf(parts, ', ') + (more > 0 ? `, … ${more} more` : '');
}

/** One log line from the values of a `log.*` call, cut at `maxChars`. */
export function formatLine(values: readonly unknown[], maxChars: number): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length; i++) {
    let part: string;
    try {
      part = inspect(values[i], 0, []);
    } catch (error) {
      part = `[a value that cannot be printed: ${String((error as Error)?.message ?? error)}]`;
    }
    parts[parts.length] = part;
  }
  const line = joinOf(parts, ' ');
  return line.length > maxChars ? `${sliceOf(line, 0, maxChars)}… (cut: the line had ${line.length} characters)` : line;
}
