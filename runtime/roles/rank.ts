/**
 * The rank role: cross-server leaderboards (a Redis sorted set per board), the "level" and
 * "power" boards following the profile fields of the same name (runtime/services/rank.ts).
 */
import type { ServerNode } from '../cluster/server-node.js';
import { InvalidParamsError } from '../errors.js';
import { objectArg, pidField, shown } from '../rpc/params.js';
import type { MethodTable } from '../rpc/rpc-server.js';
import { countField, nameField } from '../services/checks.js';
import { MAX_TOP, RankService } from '../services/rank.js';
import type { RoleRuntime } from './role.js';

export function rankRole(node: ServerNode): RoleRuntime {
  const ranks = new RankService(node);
  return { methods: rankMethods(ranks), start: async () => ranks.start(), stop: async () => ranks.stop() };
}

/** The rank server's JSON-RPC methods. */
export function rankMethods(ranks: RankService): MethodTable {
  return {
    /** Sets a player's score `{board, pid, score}` (a finite number; null takes him off); answers his place. */
    'rank.submit': (arg: unknown) => {
      const args = objectArg(arg, 'rank.submit');
      const score = args.score;
      if (!(score === null || (typeof score === 'number' && Number.isFinite(score)))) {
        throw new InvalidParamsError(`rank.submit needs "score", a finite number (or null to take the player off the board), not ${shown(score)}`);
      }
      return ranks.submit(nameField(args, 'rank.submit', 'board'), pidField(args, 'rank.submit'), score);
    },
    /** The best places `{board, count?}` (default 10, at most 1000), best first: `[{rank, pid, score}]`. */
    'rank.top': (arg: unknown) => {
      const args = objectArg(arg, 'rank.top');
      return ranks.top(nameField(args, 'rank.top', 'board'), countField(args, 'rank.top', 'count', 10, MAX_TOP));
    },
    /** A player's place `{board, pid}`: `{rank, pid, score}`, or null when he is not on the board. */
    'rank.of': (arg: unknown) => {
      const args = objectArg(arg, 'rank.of');
      return ranks.of(nameField(args, 'rank.of', 'board'), pidField(args, 'rank.of'));
    },
  };
}
