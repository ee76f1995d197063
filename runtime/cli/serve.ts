/** `kuafu serve --server NAME`: one server of the config in this process (production: one per server). */
import { ConfigError } from '../errors.js';
import { startServers } from '../cluster/start.js';
import { configFor } from './load.js';
import { untilStopped, type CommandOptions } from './main.js';
import { describeServers } from './describe.js';

export async function runServe(options: CommandOptions): Promise<number> {
  if (!options.server) throw new ConfigError('kuafu serve needs --server NAME: which server of the config this process is.');
  const config = configFor(options);
  if (config.store.kind !== 'redis') {
    throw new ConfigError(
      'kuafu serve runs one server per process, and separate processes share state only through Redis: ' +
        'pass --redis redis://host:port (or set "store": {"kind": "redis", "url": …} in the config). ' +
        "To run a whole cluster in one process without Redis, use 'kuafu up'.",
    );
  }
  const running = await startServers(config, [options.server]);
  console.log(`kuafu: server up on ${running.store.description} (config ${config.source})`);
  console.log(describeServers(running.nodes));
  const signal = await untilStopped();
  console.log(`kuafu: ${signal} received, stopping ${options.server}`);
  await running.stop();
  return 0;
}
