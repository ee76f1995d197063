/**
 * The datacenter role: player profiles (name, level, power, home, current server, guild, online…)
 * kept in the store; every change is published by the store itself and applied at once by every
 * server caching the profile (runtime/services/profile-cache.ts). The datacenter also keeps each
 * profile's route fields (`home`, `server`, `online`) equal to the player's route: they follow
 * every transfer by themselves (runtime/services/route-follower.ts).
 */
import type { ServerNode } from '../cluster/server-node.js';
import { objectArg, pidField } from '../rpc/params.js';
import type { MethodTable } from '../rpc/rpc-server.js';
import { checkNotFollowed, pidsField, profileFieldsArg } from '../services/checks.js';
import { servicesOf, stopServicesOf } from '../services/index.js';
import { ProfileRouteFollower } from '../services/route-follower.js';
import type { RoleRuntime } from './role.js';

export function datacenterRole(node: ServerNode): RoleRuntime {
  const follower = new ProfileRouteFollower(node);
  return {
    methods: datacenterMethods(node, follower),
    start: async () => {
      servicesOf(node);
      follower.start();
    },
    stop: async () => {
      follower.stop();
      stopServicesOf(node);
    },
  };
}

/** The datacenter's JSON-RPC methods. */
export function datacenterMethods(node: ServerNode, follower: ProfileRouteFollower): MethodTable {
  return {
    /** The player's profile `{pid, version, fields}`, or null. */
    'profile.get': (arg: unknown) => node.store.getProfile(pidField(objectArg(arg, 'profile.get'), 'profile.get')),
    /** Several profiles `{pids}`: the profiles (or nulls) in the order asked. */
    'profile.getMany': (arg: unknown) => {
      const pids = pidsField(objectArg(arg, 'profile.getMany'), 'profile.getMany');
      return Promise.all(pids.map((pid) => node.store.getProfile(pid)));
    },
    /** Sets some fields of the player's profile `{pid, fields}` (a level-up…); returns the new profile. */
    'profile.update': (arg: unknown) => {
      const args = objectArg(arg, 'profile.update');
      const pid = pidField(args, 'profile.update');
      const fields = profileFieldsArg(args, 'profile.update');
      checkNotFollowed(fields, 'profile.update');
      return node.store.updateProfile(pid, fields);
    },
    /** Copies the player's route into his profile's route fields now `{pid}`; returns the profile (null: no route). */
    'profile.syncRoute': (arg: unknown) => follower.sync(pidField(objectArg(arg, 'profile.syncRoute'), 'profile.syncRoute')),
  };
}
