/**
 * `kuafu status`: the servers of a running cluster and whether each answers. It reads the config
 * (and, with Redis, the registry), connects to each server with the cluster secret and asks
 * `cluster.info`. Exit code 0 when every server answers, 1 otherwise.
 */
import type { ServerInfo } from '../cluster/server-node.js';
import { callServer, knownServers } from './cluster-client.js';
import { configFor } from './load.js';
import type { CommandOptions } from './main.js';

export async function runStatus(options: CommandOptions): Promise<number> {
  const config = configFor(options);
  const servers = await knownServers(config);
  const rows = await Promise.all(
    servers.map(async ({ name, url, roles }) => {
      if (!url) return { name, url: '(port 0, not registered)', ok: false, text: 'not running' };
      const started = process.hrtime.bigint();
      try {
        const info = await callServer<ServerInfo>(config, { name, url, roles }, 'cluster.info', undefined, 3000);
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const gateway = `${info.gateway ? `, gateway ${info.gateway}` : ''}${info.metrics ? `, metrics ${info.metrics}` : ''}`;
        return { name, url, ok: true, text: `answers in ${ms.toFixed(1)} ms — ${info.roles.join(',')}${gateway}, pid ${info.pid}, up ${Math.round(info.uptimeMs / 1000)} s` };
      } catch (error) {
        return { name, url, ok: false, text: `NOT ANSWERING — ${(error as Error).message}` };
      }
    }),
  );
  console.log(`kuafu status (config ${config.source}, store ${config.store.kind === 'redis' ? config.store.url : 'memory'})`);
  const width = Math.max(...rows.map((r) => r.name.length), 4);
  for (const row of rows) console.log(`  ${row.name.padEnd(width)}  ${row.url.padEnd(22)}  ${row.text}`);
  const down = rows.filter((r) => !r.ok).length;
  console.log(down === 0 ? `all ${rows.length} servers answer` : `${down} of ${rows.length} servers do not answer`);
  return down === 0 ? 0 : 1;
}
