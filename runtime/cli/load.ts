/** The config a command runs on: --config (or the shipped default), with --redis overriding the store. */
import { loadConfig, type ClusterConfig } from '../cluster/config.js';
import type { CommandOptions } from './main.js';

export function configFor(options: CommandOptions): ClusterConfig {
  const config = loadConfig(options.config);
  if (options.redis) config.store = { kind: 'redis', url: options.redis };
  return config;
}
