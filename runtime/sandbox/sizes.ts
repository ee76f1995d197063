/**
 * The size of a value as the sandbox's limits count it (the SDK's `sdk/values.ts` counts the same
 * way): every part where it occurs, so a string that occurs in two requests counts twice — the
 * host's copies hold it twice. Run on values that already passed `checkValue` (no cycles, value
 * types only); `stop` ends the walk early once the count passes it.
 */

/** What one request or result costs besides its values (id, op, pid), as the SDK counts it. */
export const REQUEST_BYTES = 24;

export function valueBytes(value: unknown, stop = Number.MAX_SAFE_INTEGER): number {
  switch (typeof value) {
    case 'string':
      return value.length + 2;
    case 'number':
      return 8;
    case 'boolean':
      return 5;
    case 'undefined':
      return 1;
    case 'bigint':
      return 16;
    case 'object':
      break;
    default:
      return 0;
  }
  if (value === null) return 4;
  if (value instanceof Date) return 24;
  let bytes = 2;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && bytes <= stop; i++) bytes += valueBytes(value[i], stop - bytes);
  } else if (value instanceof Map) {
    for (const [key, entry] of value) {
      if (bytes > stop) break;
      bytes += valueBytes(key, stop - bytes) + valueBytes(entry, stop - bytes);
    }
  } else if (value instanceof Set) {
    for (const entry of value) {
      if (bytes > stop) break;
      bytes += valueBytes(entry, stop - bytes);
    }
  } else {
    for (const key of Object.keys(value)) {
      if (bytes > stop) break;
      bytes += key.length + 3 + valueBytes((value as Record<string, unknown>)[key], stop - bytes);
    }
  }
  return bytes;
}

/** The size of a request: its arguments and its path, plus its own cost. */
export function requestBytes(path: readonly string[] | null, args: unknown[] | null, stop?: number): number {
  let bytes = REQUEST_BYTES;
  if (path !== null) for (const part of path) bytes += part.length + 2;
  if (args !== null) bytes += valueBytes(args, stop);
  return bytes;
}
