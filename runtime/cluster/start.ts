/** Starting servers of a config: the store they share, then each server node. */
import { MemoryStore } from '../store/memory-store.js';
import { RedisStore } from '../store/redis-store.js';
import type { Store } from '../store/store.js';
import { serverNamed, type ClusterConfig } from './config.js';
import { ServerNode } from './server-node.js';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import type { GameServerOptions } from '../game/game-server.js';
import type { PlayerModel } from '../game/player.js';

/** Opens the store the config names (connected). */
export async function openStore(config: ClusterConfig): Promise<Store> {
  const days = config.playerLimits?.keptCallDays;
  const keptCallRetentionMs = days === undefined ? undefined : Math.round(days * 24 * 60 * 60 * 1000);
  const store = config.store.kind === 'redis'
    ? new RedisStore({ url: config.store.url, cluster: config.store.cluster, keptCallRetentionMs })
    : new MemoryStore({ keptCallRetentionMs });
  await store.connect();
  return store;
}

/** The PlayerModel of the module the config's `playerModel` names (its `playerModel` export, or its default export). */
export async function loadPlayerModel(config: ClusterConfig): Promise<PlayerModel> {
  const where = `"playerModel" ${config.playerModel} (config ${config.source})`;
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(config.playerModel).href) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`${where} could not be loaded: ${(error as Error).message}`);
  }
  const model = (module.playerModel ?? module.default) as Partial<PlayerModel> | undefined;
  if (!model || typeof model !== 'object' || typeof model.newDocument !== 'function' || typeof model.create !== 'function' ||
    !model.surface || typeof model.surface !== 'object') {
    throw new ConfigError(`${where} must export playerModel (or a default export): a PlayerModel {newDocument(pid), create(doc, place, readOnly), surface}`);
  }
  for (const [path, kind] of Object.entries(model.surface)) {
    if (kind !== 'read' && kind !== 'write') throw new ConfigError(`${where}: surface entry ${JSON.stringify(path)} must be 'read' or 'write', not ${JSON.stringify(kind)}`);
  }
  return model as PlayerModel;
}

/** Servers started together, and how to stop them. */
export interface RunningServers {
  store: Store;
  nodes: ServerNode[];
  stop(): Promise<void>;
}

/** Starts the named servers of `config` (all of them by default) on one store, in this process. */
/** What a host embedding kuafu can give its servers. */
export interface StartOptions {
  /** Game servers' options: the host's player model and RPC surface, what the home passes along… */
  game?: GameServerOptions;
}

export async function startServers(config: ClusterConfig, names?: string[], options: StartOptions = {}): Promise<RunningServers> {
  const chosen = names ? names.map((name) => serverNamed(config, name)) : config.servers;
  if (!options.game?.model && config.playerModel && chosen.some((server) => server.roles.includes('game'))) {
    options = { ...options, game: { ...options.game, model: await loadPlayerModel(config) } };
  }
  const store = await openStore(config);
  const nodes: ServerNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await store.close();
  };
  try {
    for (const server of chosen) {
      const node = new ServerNode({ cluster: config, server, store, game: options.game });
      await node.start();
      nodes.push(node);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { store, nodes, stop };
}
