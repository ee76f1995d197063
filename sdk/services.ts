/**
 * The global `services`: the function services as a script reaches them (DESIGN §6, the seed's
 * "proxy service"):
 *
 *   await services.guild(gid).deduct("wood", 5, "build:wall", requestId);
 *   await services.rank("level").top(10);
 *   await services.profile(pid).get();
 *   await services.battle().resolve(a, b, "duel-42");
 *
 * A fixed surface, not a recursive proxy: `services.guild(gid)` answers a frozen object with
 * exactly the methods scripts may call (SERVICE_METHODS mirrors the host's allowlist,
 * SCRIPT_SERVICE_SURFACE in runtime/services/script-surface.ts, which a test pins). Each method
 * hands `(service, target, method, args)` to one callback, which checks and copies the arguments at
 * once and sends one `service` request. The host checks everything again.
 */
import { defineProperty, freeze, isSafeInteger, sliceOf, stringify } from './intrinsics.js';
import { formatLine } from './format.js';

/** The methods of each service, as the host allows them (runtime/services/script-surface.ts). */
export const SERVICE_METHODS = {
  guild: ['get', 'join', 'leave', 'deposit', 'deduct', 'ledger'],
  rank: ['top', 'of', 'submit'],
  profile: ['get', 'update'],
  battle: ['resolve', 'replay'],
} as const;

type ServiceName = keyof typeof SERVICE_METHODS;

/** How a target reads in messages: `services.guild("wolves")`, `services.profile(1001)`, `services.battle()`. */
function describeTarget(service: string, target: string): string {
  return `services.${service}(${service === 'profile' || target === '' ? target : stringify(target)})`;
}

/** How a call reads in messages: `services.guild("wolves").deduct`. */
export function describeServiceCall(service: string, target: string, method: string): string {
  return `${describeTarget(service, target)}.${method}`;
}

/** Sends `services.<service>(target).<method>(...args)` (checks and copies the args first). */
export type CallService = (service: string, target: string, method: string, args: unknown[]) => Promise<unknown>;

/** The handle of one target: its methods, each sending one request. */
function handle(service: ServiceName, target: string, call: CallService): object {
  const methods = SERVICE_METHODS[service];
  const made = {};
  for (let i = 0; i < methods.length; i++) {
    const method = methods[i]!;
    // defineProperty, not assignment: a setter the script put on Object.prototype is not run.
    defineProperty(made, method, {
      value: (...args: unknown[]): Promise<unknown> => call(service, target, method, args),
      enumerable: true,
      writable: false,
      configurable: false,
    });
  }
  // String conversion (a log line, a template) says what it is, not [object Object].
  const shown = `[${describeTarget(service, target)}]`;
  defineProperty(made, 'toString', { value: () => shown, enumerable: false });
  return freeze(made);
}

/** A wrong value as a message shows it (text quoted, so `"7"` is not read as 7). */
function shown(value: unknown): string {
  return typeof value === 'string' ? stringify(value.length > 100 ? `${sliceOf(value, 0, 100)}…` : value) : formatLine([value], 100);
}

function nameOf(value: unknown, where: string, what: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`${where}: ${what} must be a non-empty string, got ${shown(value)}`);
  }
  return value;
}

/** Makes the `services` global (frozen by the caller). */
export function createServices(call: CallService): object {
  return {
    guild(gid: string): object {
      return handle('guild', nameOf(gid, 'services.guild', "the guild's id"), call);
    },
    rank(board: string): object {
      return handle('rank', nameOf(board, 'services.rank', "the board's name (e.g. \"level\")"), call);
    },
    profile(pid: number): object {
      if (typeof pid !== 'number' || !isSafeInteger(pid) || pid <= 0) {
        throw new TypeError(`services.profile: pid must be a positive integer player id, got ${shown(pid)}`);
      }
      return handle('profile', `${pid}`, call);
    },
    battle(): object {
      return handle('battle', '', call);
    },
  };
}
