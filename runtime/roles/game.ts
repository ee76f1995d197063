/**
 * The game role: hosts online players. What it answers so far: where a player is, from this
 * server's route cache (the transfer and player RPC methods join this table as they are built).
 */
import type { MethodTable } from '../rpc/rpc-server.js';
import { objectArg, pidField } from '../rpc/params.js';
import type { ServerNode } from '../cluster/server-node.js';

export function gameMethods(node: ServerNode): MethodTable {
  return {
    /** The player's route as this server sees it: `{home, at, epoch, online}` or null. */
    'route.get': (arg: unknown) => node.routes.get(pidField(objectArg(arg, 'route.get'), 'route.get')),
  };
}
