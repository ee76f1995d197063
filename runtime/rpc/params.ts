/** Checks of a method's argument: a wrong shape is answered with -32602 Invalid params, naming the field. */
import { inspect } from 'node:util';
import { InvalidParamsError } from '../errors.js';

/** A value as it reads in a message (any value type, bigint too). */
export function shown(value: unknown): string {
  return inspect(value, { depth: 2, breakLength: Infinity });
}

/** The argument as an object, or Invalid params. */
export function objectArg(arg: unknown, method: string): Record<string, unknown> {
  if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) {
    throw new InvalidParamsError(`${method} takes an object argument`);
  }
  return arg as Record<string, unknown>;
}

/** A player id: a positive safe integer. */
export function pidField(arg: Record<string, unknown>, method: string, field = 'pid'): number {
  const value = arg[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidParamsError(`${method} needs "${field}", a positive integer player id, not ${shown(value)}`);
  }
  return value;
}

/** A non-empty string field. */
export function stringField(arg: Record<string, unknown>, method: string, field: string): string {
  const value = arg[field];
  if (typeof value !== 'string' || value === '') {
    throw new InvalidParamsError(`${method} needs "${field}", a non-empty string, not ${shown(value)}`);
  }
  return value;
}
