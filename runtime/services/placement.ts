/**
 * Which server serves what, decided from the cluster config alone, so every server agrees without
 * asking anyone: a player's datacenter and account server by his id, a guild's server and a
 * leaderboard's server by a hash of its name, a game server's battle server by its `battle` pair.
 * Servers of one role are taken in config order; adding one moves some guilds (their data stays
 * in the store, so the new owner just serves them).
 */
import type { ClusterConfig, Role } from '../cluster/config.js';
import { ConfigError } from '../errors.js';

/** The servers of the config that host `role`, in config order. */
export function serversWithRole(cluster: ClusterConfig, role: Role): string[] {
  return cluster.servers.filter((s) => s.roles.includes(role)).map((s) => s.name);
}

/** FNV-1a, 32 bits: a stable hash of a name (the same in every process and version). */
export function hashText(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

function pick(cluster: ClusterConfig, role: Role, index: number, what: string): string {
  const servers = serversWithRole(cluster, role);
  if (servers.length === 0) {
    throw new ConfigError(`${cluster.source} has no server with the "${role}" role, which ${what} needs: add one to "servers".`, { role });
  }
  return servers[index % servers.length]!;
}

/** The datacenter that writes player `pid`'s profile and follows his route. */
export function datacenterFor(cluster: ClusterConfig, pid: number): string {
  return pick(cluster, 'datacenter', pid, 'a profile update');
}

/** Whether the config has a server of `role`. */
export function hasRole(cluster: ClusterConfig, role: Role): boolean {
  return serversWithRole(cluster, role).length > 0;
}

/** The guild server that applies guild `gid`'s treasury changes (one server per guild: the ordering rule). */
export function guildServerFor(cluster: ClusterConfig, gid: string): string {
  return pick(cluster, 'guild', hashText(gid), `guild ${gid}`);
}

/** The rank server that keeps leaderboard `board`. */
export function rankServerFor(cluster: ClusterConfig, board: string): string {
  return pick(cluster, 'rank', hashText(board), `leaderboard ${board}`);
}

/** The account server that delivers player `pid`'s recharge orders. */
export function accountServerForPlayer(cluster: ClusterConfig, pid: number): string {
  return pick(cluster, 'account', pid, 'a recharge order');
}

/** The account server that answers for account name `account` (any of them could: they share the store). */
export function accountServerForName(cluster: ClusterConfig, account: string): string {
  return pick(cluster, 'account', hashText(account), 'an account');
}

/** The battle server paired with game server `game`. */
export function battleServerOf(cluster: ClusterConfig, game: string): string {
  const server = cluster.servers.find((s) => s.name === game);
  if (!server?.battle) {
    throw new ConfigError(
      `${game} has no battle server: pair one in ${cluster.source} with "battle": "NAME" on ${game}'s entry (a server with the "battle" role).`,
      { server: game },
    );
  }
  return server.battle;
}

/** The game server a battle server is paired with, or '' when none names it. */
export function gameServerOf(cluster: ClusterConfig, battle: string): string {
  return cluster.servers.find((s) => s.battle === battle)?.name ?? '';
}
