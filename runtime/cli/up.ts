/** `kuafu up`: every server of the config in this process, on one store. */
import { startServers } from '../cluster/start.js';
import { configFor } from './load.js';
import { untilStopped, type CommandOptions } from './main.js';
import { describeServers } from './describe.js';

export async function runUp(options: CommandOptions): Promise<number> {
  const config = configFor(options);
  const running = await startServers(config);
  console.log(`kuafu: ${running.nodes.length} servers up on ${running.store.description} (config ${config.source})`);
  console.log(describeServers(running.nodes));
  console.log("Ctrl-C stops them; 'kuafu status' (same --config) shows who answers.");
  const signal = await untilStopped();
  console.log(`kuafu: ${signal} received, stopping`);
  await running.stop();
  return 0;
}
