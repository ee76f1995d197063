/** One line per server: name, roles, where it listens (RPC, client gateway, metrics). */
import type { ServerNode } from '../cluster/server-node.js';

export function describeServers(nodes: ServerNode[]): string {
  const width = Math.max(...nodes.map((n) => n.name.length), 4);
  return nodes
    .map((node) => `  ${node.name.padEnd(width)}  ${node.roles.join(',').padEnd(12)}  rpc ${node.rpcUrl}${node.gatewayUrl ? `  gateway ${node.gatewayUrl}` : ''}${node.metrics.url ? `  metrics ${node.metrics.url}` : ''}`)
    .join('\n');
}
