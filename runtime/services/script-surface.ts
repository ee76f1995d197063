/**
 * The function services as designer scripts reach them (the host side of
 * `services.guild(gid).deduct("wood", 5, reason)` in the sandbox): an explicit allowlist of
 * service methods, each with positional arguments, each forwarded to the caller API of
 * runtime/services (so to the right server, with the same retries and request ids). The servers
 * check the arguments themselves; anything not listed is NotExported. Values cross as for players.
 *
 *   await callScriptService(node, 'guild', 'wolves', 'deduct', ['wood', 5, 'build:wall']);
 *   await callScriptService(node, 'rank', 'level', 'top', [10]);
 *   await callScriptService(node, 'profile', '1001', 'update', [{ level: 12 }]);
 *   await callScriptService(node, 'battle', '', 'resolve', [1001, 2002, 'duel-42']);
 */
import type { ServerNode } from '../cluster/server-node.js';
import { InvalidParamsError, NotExportedError } from '../errors.js';
import { shown } from '../rpc/params.js';
import type { ProfileValue } from '../store/store.js';
import type { BattleInput } from './battle.js';
import { servicesOf } from './index.js';

/** What scripts may call, by service: `services.<service>(target).<method>(…args)`. */
export const SCRIPT_SERVICE_SURFACE = {
  /** `services.guild(gid)`. */
  guild: ['get', 'join', 'leave', 'deposit', 'deduct', 'ledger'],
  /** `services.rank(board)`. */
  rank: ['top', 'of', 'submit'],
  /** `services.profile(pid)`: a level-up from a script goes through the datacenter like any other. */
  profile: ['get', 'update'],
  /** `services.battle()`: this game server's battle server. */
  battle: ['resolve', 'replay'],
} as const;

export type ScriptService = keyof typeof SCRIPT_SERVICE_SURFACE;

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new InvalidParamsError(`${what} must be a string, not ${shown(value)}`);
  return value;
}

function number(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new InvalidParamsError(`${what} must be a number, not ${shown(value)}`);
  return value;
}

function optionalText(value: unknown, what: string): string | undefined {
  return value === undefined ? undefined : text(value, what);
}

/**
 * Runs `services.<service>(target).<method>(...args)` for a script on `node`. `target` is the
 * guild id, the board, or the player id as text (unused for battle).
 */
export async function callScriptService(node: ServerNode, service: string, target: string, method: string, args: unknown[]): Promise<unknown> {
  const surface = (SCRIPT_SERVICE_SURFACE as Record<string, readonly string[]>)[service];
  if (!Object.prototype.hasOwnProperty.call(SCRIPT_SERVICE_SURFACE, service) || !surface) {
    throw new NotExportedError(`services.${service} is not a service scripts can reach; there are ${Object.keys(SCRIPT_SERVICE_SURFACE).join(', ')}.`, { path: service });
  }
  if (!surface.includes(method)) {
    throw new NotExportedError(`services.${service}(…).${method} is not callable from scripts; ${service} offers ${surface.join(', ')}.`, { path: `${service}.${method}` });
  }
  const services = servicesOf(node);
  const where = `services.${service}(${JSON.stringify(target)}).${method}`;
  const arg = (i: number) => args[i];
  switch (service as ScriptService) {
    case 'guild': {
      const guild = services.guild(target);
      switch (method) {
        case 'get': return guild.get();
        case 'join': return guild.join(number(arg(0), `${where}: the player id`));
        case 'leave': return guild.leave(number(arg(0), `${where}: the player id`));
        case 'deposit':
        case 'deduct': {
          const call = method === 'deposit' ? guild.deposit.bind(guild) : guild.deduct.bind(guild);
          return call(text(arg(0), `${where}: the resource`), number(arg(1), `${where}: the amount`), text(arg(2), `${where}: the reason`),
            optionalText(arg(3), `${where}: the request id`));
        }
        case 'ledger': return guild.ledger(arg(0) === undefined ? undefined : number(arg(0), `${where}: the count`));
      }
      break;
    }
    case 'rank': {
      const board = services.rank(target);
      switch (method) {
        case 'top': return board.top(arg(0) === undefined ? undefined : number(arg(0), `${where}: the count`));
        case 'of': return board.of(number(arg(0), `${where}: the player id`));
        case 'submit': return board.submit(number(arg(0), `${where}: the player id`), arg(1) === null ? null : number(arg(1), `${where}: the score`));
      }
      break;
    }
    case 'profile': {
      const pid = Number(target);
      if (!Number.isSafeInteger(pid) || pid <= 0) throw new InvalidParamsError(`services.profile needs a positive integer player id, not ${shown(target)}`);
      switch (method) {
        case 'get': return services.profiles.get(pid);
        case 'update': {
          const fields = arg(0);
          if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) throw new InvalidParamsError(`${where}: the fields must be an object`);
          return services.profiles.update(pid, fields as Record<string, ProfileValue>);
        }
      }
      break;
    }
    case 'battle': {
      const battle = services.battle();
      switch (method) {
        case 'resolve': return battle.resolve(number(arg(0), `${where}: the first player id`), number(arg(1), `${where}: the second player id`), optionalText(arg(2), `${where}: the seed`));
        case 'replay': return battle.replay(arg(0) as BattleInput);
      }
      break;
    }
  }
  throw new NotExportedError(`${where} is not callable from scripts.`, { path: `${service}.${method}` });
}
