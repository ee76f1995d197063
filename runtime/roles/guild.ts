/**
 * The guild role: guilds whose members come from any server, and their treasuries. Every change
 * of one guild goes to its one guild server, which applies them one at a time, checks the balance
 * there and is idempotent per request id (runtime/services/guild.ts).
 */
import type { ServerNode } from '../cluster/server-node.js';
import { objectArg, pidField, stringField } from '../rpc/params.js';
import type { MethodTable } from '../rpc/rpc-server.js';
import { InvalidParamsError } from '../errors.js';
import { amountField, countField, idField, nameField, reasonField } from '../services/checks.js';
import { GuildService } from '../services/guild.js';
import type { RoleRuntime } from './role.js';

export function guildRole(node: ServerNode): RoleRuntime {
  return { methods: guildMethods(new GuildService(node)) };
}

function treasuryChange(arg: unknown, method: string, kind: 'deposit' | 'deduct') {
  const args = objectArg(arg, method);
  return {
    gid: nameField(args, method, 'gid'),
    requestId: idField(args, method, 'requestId'),
    kind,
    resource: nameField(args, method, 'resource'),
    amount: amountField(args, method),
    reason: reasonField(args, method),
  };
}

/** The guild server's JSON-RPC methods. */
export function guildMethods(guilds: GuildService): MethodTable {
  return {
    /** Creates a guild `{gid, name}` unless it exists: `{created, guild}`. */
    'guild.create': (arg: unknown) => {
      const args = objectArg(arg, 'guild.create');
      const name = stringField(args, 'guild.create', 'name');
      if (name.length > 64) throw new InvalidParamsError('guild.create: "name" must be at most 64 characters');
      return guilds.create(nameField(args, 'guild.create', 'gid'), name);
    },
    /** The guild `{gid}`: name, members, treasury. */
    'guild.get': (arg: unknown) => guilds.get(nameField(objectArg(arg, 'guild.get'), 'guild.get', 'gid')),
    /** Adds a player `{gid, pid}` (from any server); his profile's `guild` follows. */
    'guild.join': (arg: unknown) => {
      const args = objectArg(arg, 'guild.join');
      return guilds.join(nameField(args, 'guild.join', 'gid'), pidField(args, 'guild.join'));
    },
    /** Removes a player `{gid, pid}`. */
    'guild.leave': (arg: unknown) => {
      const args = objectArg(arg, 'guild.leave');
      return guilds.leave(nameField(args, 'guild.leave', 'gid'), pidField(args, 'guild.leave'));
    },
    /** Adds to the treasury `{gid, resource, amount, reason, requestId}`: a receipt with the new balance. */
    'guild.deposit': (arg: unknown) => guilds.change(treasuryChange(arg, 'guild.deposit', 'deposit')),
    /** Takes from the treasury `{gid, resource, amount, reason, requestId}`, or InsufficientResource and nothing taken. */
    'guild.deduct': (arg: unknown) => guilds.change(treasuryChange(arg, 'guild.deduct', 'deduct')),
    /** The latest applied changes `{gid, count?}` (default 50, at most 1000), newest first. */
    'guild.ledger': (arg: unknown) => {
      const args = objectArg(arg, 'guild.ledger');
      return guilds.ledger(nameField(args, 'guild.ledger', 'gid'), countField(args, 'guild.ledger', 'count', 50, 1000));
    },
    /** Changes applied, refused and replayed since start, and what is queued now. */
    'guild.stats': () => guilds.stats(),
  };
}
