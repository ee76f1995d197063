/**
 * Built-ins captured when the isolate starts, before any script code runs: a script that replaces
 * `Object.keys` or `Array.prototype.push` in its own isolate then cannot change how the SDK checks
 * and copies values. (The host checks every value it receives again; this keeps the sandbox's own
 * error messages right.)
 */
export const apply = Reflect.apply;
export const defineProperty = Object.defineProperty;
export const create = Object.create;
export const freeze = Object.freeze;
export const getPrototypeOf = Object.getPrototypeOf;
export const getOwnPropertySymbols = Object.getOwnPropertySymbols;
export const keys = Object.keys;
export const isArray = Array.isArray;
export const stringify = JSON.stringify;
export const parse = JSON.parse;
export const isFinite = Number.isFinite;
export const isSafeInteger = Number.isSafeInteger;
export const is = Object.is;

export const ObjectPrototype = Object.prototype;
export const ArrayPrototype = Array.prototype;
export const DatePrototype = Date.prototype;
export const MapPrototype = Map.prototype;
export const SetPrototype = Set.prototype;
export const ErrorPrototype = Error.prototype;

const mapForEach = Map.prototype.forEach;
const setForEach = Set.prototype.forEach;
const mapGet = Map.prototype.get;
const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const weakSetHas = WeakSet.prototype.has;
const weakSetAdd = WeakSet.prototype.add;
const dateToISOString = Date.prototype.toISOString;
const dateGetTime = Date.prototype.getTime;
const arrayJoin = Array.prototype.join;
const stringSlice = String.prototype.slice;
const RealPromise = Promise;
const setAdd = Set.prototype.add;
export const RealMap = Map;
export const RealSet = Set;
export const RealDate = Date;

export function forEachOfMap(map: Map<unknown, unknown>, visit: (value: unknown, key: unknown) => void): void {
  apply(mapForEach, map, [visit]);
}
export function forEachOfSet(set: Set<unknown>, visit: (value: unknown) => void): void {
  apply(setForEach, set, [visit]);
}
export function mapGetOf<K, V>(map: Map<K, V>, key: K): V | undefined {
  return apply(mapGet, map, [key]) as V | undefined;
}
export function mapSetOf<K, V>(map: Map<K, V>, key: K, value: V): void {
  apply(mapSet, map, [key, value]);
}
export function mapDeleteOf<K, V>(map: Map<K, V>, key: K): void {
  apply(mapDelete, map, [key]);
}
export function setAddOf<T>(set: Set<T>, value: T): void {
  apply(setAdd, set, [value]);
}
export function timeOf(date: Date): number {
  return apply(dateGetTime, date, []) as number;
}
export function weakSetHasOf(set: WeakSet<object>, value: object): boolean {
  return apply(weakSetHas, set, [value]) as boolean;
}
export function weakSetAddOf(set: WeakSet<object>, value: object): void {
  apply(weakSetAdd, set, [value]);
}
export function isoOf(date: Date): string {
  const time = apply(dateGetTime, date, []) as number;
  return time === time ? (apply(dateToISOString, date, []) as string) : 'Invalid Date';
}
/**
 * Sets `target[key]` as an own data property without running a setter a script may have put on
 * `Array.prototype` or `Object.prototype` (`target[i] = v` on a fresh array would call it, and
 * hand the script the array the SDK is building: it could then change a checked copy, or the
 * outbox, behind the SDK's back).
 */
export function put(target: object, key: string | number, value: unknown): void {
  defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}
/** A copy of `list` (plus `extra`), made without the array iterator a script may have replaced. */
export function copyOf<T>(list: readonly T[], extra?: T): T[] {
  const out: T[] = [];
  for (let i = 0; i < list.length; i++) put(out, i, list[i]!);
  if (extra !== undefined) put(out, out.length, extra);
  return out;
}
export function joinOf(parts: string[], separator: string): string {
  return apply(arrayJoin, parts, [separator]) as string;
}
export function sliceOf(text: string, start: number, end?: number): string {
  return apply(stringSlice, text, end === undefined ? [start] : [start, end]) as string;
}
export function functionNameOf(fn: Function): string {
  try {
    const name = (fn as { name?: unknown }).name;
    return typeof name === 'string' ? name : '';
  } catch {
    return '';
  }
}
/** A promise and its settle functions (Promise.withResolvers is not in ES2022). */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new RealPromise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}
export const rejected = (error: unknown): Promise<never> => apply(RealPromise.reject, RealPromise, [error]) as Promise<never>;
