/**
 * The battle role: a battle server is paired with one game server (config: the game server's
 * "battle") and resolves the battles it asks for. The fighters are read from their profiles
 * (through this server's profile cache, kept fresh by pushes), so they may come from any home
 * server; the result is deterministic and carries its input, so `battle.replay` gives it again.
 */
import type { ServerNode } from '../cluster/server-node.js';
import { InvalidParamsError, NotFoundError, WrongServerError } from '../errors.js';
import { objectArg, pidField, shown } from '../rpc/params.js';
import type { CallContext, MethodTable } from '../rpc/rpc-server.js';
import { checkBattleInput, fighterFrom, resolveBattle } from '../services/battle.js';
import { servicesOf, stopServicesOf } from '../services/index.js';
import { gameServerOf } from '../services/placement.js';
import type { RoleRuntime } from './role.js';

export function battleRole(node: ServerNode): RoleRuntime {
  return {
    methods: battleMethods(node),
    start: async () => { servicesOf(node); },
    stop: async () => { stopServicesOf(node); },
  };
}

/** A game server other than our partner is refused: its battles belong on its own battle server. */
function checkCaller(node: ServerNode, context: CallContext | undefined): void {
  const caller = context?.peer;
  const partner = gameServerOf(node.cluster, node.name);
  const callerIsGame = node.cluster.servers.some((s) => s.name === caller && s.roles.includes('game'));
  if (caller && callerIsGame && caller !== partner) {
    const own = node.cluster.servers.find((s) => s.name === caller)?.battle;
    throw new WrongServerError(
      `${node.name} resolves the battles of ${partner || 'no game server'}, not ${caller}: ${caller} asks ${own ? `its own battle server ${own}` : 'a battle server paired with it in the config'}.`,
      { server: own ?? '' },
    );
  }
}

/** The battle server's JSON-RPC methods. */
export function battleMethods(node: ServerNode): MethodTable {
  return {
    /** Resolves a battle `{a, b, seed?}` between two players read from their profiles: the result, with its input. */
    'battle.resolve': async (arg: unknown, context?: CallContext) => {
      checkCaller(node, context);
      const args = objectArg(arg, 'battle.resolve');
      const a = pidField(args, 'battle.resolve', 'a');
      const b = pidField(args, 'battle.resolve', 'b');
      const seed = args.seed ?? '';
      if (typeof seed !== 'string' || seed.length > 256) throw new InvalidParamsError(`battle.resolve: "seed" must be a string of at most 256 characters, not ${shown(seed)}`);
      if (a === b) throw new InvalidParamsError(`battle.resolve: a player cannot fight himself (a and b are both ${a})`);
      const [pa, pb] = await servicesOf(node).profiles.getMany([a, b]);
      for (const [pid, profile] of [[a, pa], [b, pb]] as const) {
        if (!profile) throw new NotFoundError(`Player ${pid} has no profile: only a player who has logged in (or been given a profile) can fight.`, { pid });
      }
      return resolveBattle({ a: fighterFrom(a, pa!), b: fighterFrom(b, pb!), seed });
    },
    /** Resolves a battle again from the input of a result `{input}`: the same result. */
    'battle.replay': (arg: unknown, context?: CallContext) => {
      checkCaller(node, context);
      return resolveBattle(checkBattleInput(objectArg(arg, 'battle.replay').input, 'battle.replay'));
    },
  };
}
