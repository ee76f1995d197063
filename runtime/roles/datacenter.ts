/**
 * The datacenter role: player profiles (name, level, home, current server…), kept in the store;
 * every change is published to every server by the store itself.
 */
import { InvalidParamsError } from '../errors.js';
import type { MethodTable } from '../rpc/rpc-server.js';
import { objectArg, pidField } from '../rpc/params.js';
import type { ProfileValue } from '../store/store.js';
import type { ServerNode } from '../cluster/server-node.js';
import type { RoleRuntime } from './role.js';

function profileFields(arg: Record<string, unknown>): Record<string, ProfileValue> {
  const fields = arg.fields;
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields) || Object.keys(fields).length === 0) {
    throw new InvalidParamsError('profile.update needs "fields", an object of at least one field');
  }
  for (const [name, value] of Object.entries(fields)) {
    if (!(value === null || ['string', 'number', 'boolean'].includes(typeof value))) {
      throw new InvalidParamsError(`profile field "${name}" must be a string, number, boolean or null`);
    }
  }
  return fields as Record<string, ProfileValue>;
}

export function datacenterRole(node: ServerNode): RoleRuntime {
  return { methods: datacenterMethods(node) };
}

function datacenterMethods(node: ServerNode): MethodTable {
  return {
    /** The player's profile `{pid, version, fields}`, or null. */
    'profile.get': (arg: unknown) => node.store.getProfile(pidField(objectArg(arg, 'profile.get'), 'profile.get')),
    /** Sets some fields of the player's profile; returns the new profile. */
    'profile.update': (arg: unknown) => {
      const args = objectArg(arg, 'profile.update');
      return node.store.updateProfile(pidField(args, 'profile.update'), profileFields(args));
    },
  };
}
