/** The config a command runs on: --config (or the shipped default), with --redis overriding the store's URL (a cluster's stays a cluster). */
import { loadConfig, type ClusterConfig } from '../cluster/config.js';
import type { CommandOptions } from './main.js';

export function configFor(options: CommandOptions): ClusterConfig {
  const config = loadConfig(options.config);
  if (options.redis) {
    const cluster = config.store.kind === 'redis' && config.store.cluster === true;
    config.store = cluster ? { kind: 'redis', url: options.redis, cluster } : { kind: 'redis', url: options.redis };
  }
  return config;
}
