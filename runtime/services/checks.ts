/**
 * Argument checks of the service methods, on top of runtime/rpc/params.ts: a wrong shape is
 * answered with -32602 Invalid params naming the field and what it must be.
 */
import { InvalidParamsError } from '../errors.js';
import { shown } from '../rpc/params.js';
import type { ProfileValue } from '../store/store.js';

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const ID = /^[\x21-\x7e]{1,128}$/;
const ACCOUNT = /^[A-Za-z0-9_.@-]{3,64}$/;
const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A name made of letters, digits, '_', '.', ':' or '-' (1-64): guild ids, resources, boards. */
export function nameField(arg: Record<string, unknown>, method: string, field: string): string {
  const value = arg[field];
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new InvalidParamsError(`${method} needs "${field}", 1-64 letters, digits, '_', '.', ':' or '-', not ${shown(value)}`);
  }
  return value;
}

/** A request or order id: 1-128 printable characters without spaces, unique per request. */
export function idField(arg: Record<string, unknown>, method: string, field: string): string {
  const value = arg[field];
  if (typeof value !== 'string' || !ID.test(value)) {
    throw new InvalidParamsError(`${method} needs "${field}", 1-128 printable characters without spaces, one per request, not ${shown(value)}`);
  }
  return value;
}

/** A positive integer amount. */
export function amountField(arg: Record<string, unknown>, method: string, field = 'amount'): number {
  const value = arg[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidParamsError(`${method} needs "${field}", a positive integer, not ${shown(value)}`);
  }
  return value;
}

/** Why something is done: a non-empty string of at most 200 characters (it goes to the ledger and the log). */
export function reasonField(arg: Record<string, unknown>, method: string, field = 'reason'): string {
  const value = arg[field];
  if (typeof value !== 'string' || value === '' || value.length > 200) {
    throw new InvalidParamsError(`${method} needs "${field}", a non-empty string of at most 200 characters saying why, not ${shown(value)}`);
  }
  return value;
}

/** An optional count from 1 to `max` (`fallback` when absent). */
export function countField(arg: Record<string, unknown>, method: string, field: string, fallback: number, max: number): number {
  const value = arg[field] ?? fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new InvalidParamsError(`${method}: "${field}" must be an integer from 1 to ${max}, not ${shown(value)}`);
  }
  return value;
}

/** A list of player ids (at most `max`). */
export function pidsField(arg: Record<string, unknown>, method: string, field = 'pids', max = 1000): number[] {
  const value = arg[field];
  if (!Array.isArray(value) || value.length > max) {
    throw new InvalidParamsError(`${method} needs "${field}", an array of at most ${max} player ids, not ${shown(value)}`);
  }
  return value.map((pid, i) => {
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) {
      throw new InvalidParamsError(`${method}: "${field}"[${i}] must be a positive integer player id, not ${shown(pid)}`);
    }
    return pid;
  });
}

/** An account name: 3-64 letters, digits, '_', '.', '@' or '-'. */
export function accountField(arg: Record<string, unknown>, method: string): string {
  const value = arg.account;
  if (typeof value !== 'string' || !ACCOUNT.test(value)) {
    throw new InvalidParamsError(`${method} needs "account", 3-64 letters, digits, '_', '.', '@' or '-', not ${shown(value)}`);
  }
  return value;
}

/** A password: a string of 8 to 256 characters (never echoed back). */
export function passwordField(arg: Record<string, unknown>, method: string): string {
  const value = arg.password;
  if (typeof value !== 'string' || value.length < 8 || value.length > 256) {
    throw new InvalidParamsError(`${method} needs "password", a string of 8 to 256 characters`);
  }
  return value;
}

/**
 * Profile fields to set: an object of 1-64 fields, each named like an identifier, each value a
 * string (at most 1024 characters), a finite number, a boolean or null.
 */
export function profileFieldsArg(arg: Record<string, unknown>, method: string): Record<string, ProfileValue> {
  const fields = arg.fields;
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields) || Object.keys(fields).length === 0) {
    throw new InvalidParamsError(`${method} needs "fields", an object of at least one field`);
  }
  const entries = Object.entries(fields as Record<string, unknown>);
  if (entries.length > 64) throw new InvalidParamsError(`${method}: at most 64 fields at a time, not ${entries.length}`);
  for (const [name, value] of entries) {
    if (!FIELD.test(name)) throw new InvalidParamsError(`${method}: profile field name ${shown(name)} must be a letter or '_' then letters, digits or '_' (at most 64)`);
    const ok = value === null || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)) ||
      (typeof value === 'string' && value.length <= 1024);
    if (!ok) throw new InvalidParamsError(`profile field "${name}" must be a string (at most 1024 characters), a finite number, a boolean or null, not ${shown(value)}`);
  }
  return fields as Record<string, ProfileValue>;
}

/** Profile fields an update may not set: they follow the player's route by themselves (`home` is fixed for life and may be set). */
export const FOLLOWED_PROFILE_FIELDS = ['server', 'online'];

/** Refuses an update that sets a field following the player's route. */
export function checkNotFollowed(fields: Record<string, unknown>, method: string): void {
  const followed = FOLLOWED_PROFILE_FIELDS.filter((name) => name in fields);
  if (followed.length > 0) {
    throw new InvalidParamsError(`${method} cannot set ${followed.join(' or ')}: they follow the player's route by themselves`);
  }
}
