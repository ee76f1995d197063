/**
 * How a command reaches the servers of a running cluster from outside: their addresses (the
 * config, and with Redis the registry), and calls with the cluster secret.
 */
import { openStore } from '../cluster/start.js';
import type { ClusterConfig } from '../cluster/config.js';
import { ServerUnavailableError } from '../errors.js';
import { PeerClient } from '../rpc/peer-client.js';

/** A server as the command sees it. */
export interface KnownServer {
  name: string;
  roles: string[];
  /** '' when it listens on a port chosen at start and is not in a registry we can read. */
  url: string;
}

/** The servers of the config, with addresses from the registry when the store is Redis. */
export async function knownServers(config: ClusterConfig): Promise<KnownServer[]> {
  const servers = new Map<string, KnownServer>();
  for (const server of config.servers) {
    servers.set(server.name, { name: server.name, roles: server.roles, url: server.rpcPort ? `ws://${server.host}:${server.rpcPort}` : '' });
  }
  if (config.store.kind === 'redis') {
    const store = await openStore(config);
    try {
      for (const record of await store.listServers()) servers.set(record.name, { name: record.name, roles: record.roles, url: record.rpc });
    } finally {
      await store.close();
    }
  }
  return [...servers.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Calls `method` on one server; the connection is closed afterwards. */
export async function callServer<T>(config: ClusterConfig, server: KnownServer, method: string, arg?: unknown, timeoutMs = 5000): Promise<T> {
  const client = new PeerClient({ self: 'kuafu-cli', peer: server.name, secret: config.secret, resolveUrl: () => server.url, timeoutMs });
  try {
    return await client.call<T>(method, arg);
  } finally {
    client.close();
  }
}

/** Calls `method` on the first game server that answers. */
export async function callAnyGameServer<T>(config: ClusterConfig, method: string, arg?: unknown): Promise<T> {
  const games = (await knownServers(config)).filter((s) => s.roles.includes('game') && s.url);
  let last: Error | null = null;
  for (const server of games) {
    try {
      return await callServer<T>(config, server, method, arg);
    } catch (error) {
      if (!(error instanceof ServerUnavailableError)) throw error;
      last = error;
    }
  }
  throw last ?? new ServerUnavailableError(`No game server of ${config.source} answers: is the cluster up? ('kuafu status' shows it.)`);
}
