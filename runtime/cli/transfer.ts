/** `kuafu transfer <pid> <server>` and `kuafu route <pid>`: move a player, see where he is. */
import { InvalidParamsError } from '../errors.js';
import { configFor } from './load.js';
import { callAnyGameServer } from './cluster-client.js';
import type { CommandOptions } from './main.js';
import type { Route } from '../store/store.js';

function pidOf(text: string | undefined, usage: string): number {
  const pid = Number(text);
  if (!text || !Number.isSafeInteger(pid) || pid <= 0) throw new InvalidParamsError(`${usage}: <pid> must be a positive integer player id`);
  return pid;
}

export async function runTransfer(options: CommandOptions, args: string[]): Promise<number> {
  const usage = 'kuafu transfer <pid> <server>';
  const pid = pidOf(args[0], usage);
  const to = args[1];
  if (!to) throw new InvalidParamsError(`${usage}: name the game server to move the player to`);
  const config = configFor(options);
  const moved = await callAnyGameServer<{ from: string; to: string }>(config, 'transfer.request', { pid, to });
  console.log(`player ${pid}: ${moved.from} sent him to ${moved.to} (his client follows connect_to)`);
  return 0;
}

export async function runRoute(options: CommandOptions, args: string[]): Promise<number> {
  const pid = pidOf(args[0], 'kuafu route <pid>');
  const config = configFor(options);
  const where = await callAnyGameServer<{ route: Route | null; go_srvname: string }>(config, 'player.where', { pid });
  if (!where.route) {
    console.log(`player ${pid}: no route (he has never logged in)`);
    return 1;
  }
  const { home, at, epoch, online } = where.route;
  console.log(`player ${pid}: home ${home}, on ${at || home}, epoch ${epoch}, ${online ? 'online' : 'offline'}, home's mark go_srvname=${where.go_srvname || '(none)'}`);
  return 0;
}
