/**
 * `kuafu status`: the servers of a running cluster and whether each answers. It reads the config
 * (and, with Redis, the registry), connects to each server with the cluster secret and asks
 * `cluster.info`. Exit code 0 when every server answers, 1 otherwise.
 */
import { PeerClient } from '../rpc/peer-client.js';
import { openStore } from '../cluster/start.js';
import type { ServerInfo } from '../cluster/server-node.js';
import type { ServerRecord } from '../store/store.js';
import { configFor } from './load.js';
import type { CommandOptions } from './main.js';

export async function runStatus(options: CommandOptions): Promise<number> {
  const config = configFor(options);
  const addresses = new Map<string, string>();
  for (const server of config.servers) {
    addresses.set(server.name, server.rpcPort ? `ws://${server.host}:${server.rpcPort}` : '');
  }
  let registry: ServerRecord[] = [];
  if (config.store.kind === 'redis') {
    const store = await openStore(config);
    try {
      registry = await store.listServers();
    } finally {
      await store.close();
    }
    for (const record of registry) addresses.set(record.name, record.rpc);
  }
  const names = [...addresses.keys()].sort();
  const rows = await Promise.all(
    names.map(async (name) => {
      const url = addresses.get(name)!;
      if (!url) return { name, url: '(port 0, not registered)', ok: false, text: 'not running' };
      const client = new PeerClient({ self: 'kuafu-status', peer: name, secret: config.secret, resolveUrl: () => url, timeoutMs: 3000 });
      const started = process.hrtime.bigint();
      try {
        const info = await client.call<ServerInfo>('cluster.info');
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        return { name, url, ok: true, text: `answers in ${ms.toFixed(1)} ms — ${info.roles.join(',')}, pid ${info.pid}, up ${Math.round(info.uptimeMs / 1000)} s` };
      } catch (error) {
        return { name, url, ok: false, text: `NOT ANSWERING — ${(error as Error).message}` };
      } finally {
        client.close();
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
