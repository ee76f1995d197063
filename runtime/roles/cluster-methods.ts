/**
 * The methods every server answers, whatever its roles: liveness, identity, and a probe of its
 * own connection to another server (what `kuafu status` shows).
 */
import type { MethodTable } from '../rpc/rpc-server.js';
import { objectArg, stringField } from '../rpc/params.js';
import type { ServerNode } from '../cluster/server-node.js';

export function clusterMethods(node: ServerNode): MethodTable {
  return {
    /** Answers at once: the server is alive. */
    'cluster.ping': () => ({ server: node.name, time: Date.now() }),
    /** Returns its argument unchanged (diagnostics and the RPC benchmark). */
    'cluster.echo': (arg: unknown) => arg,
    /** Who this server is and how it is doing. */
    'cluster.info': () => node.info(),
    /** This server's metrics, as Prometheus text (what GET /metrics on its metricsPort serves). */
    'cluster.metrics': () => node.metrics.text(),
    /** Calls `cluster.ping` on another server from this one: is the link between them up? */
    'cluster.probe': async (arg: unknown) => {
      const server = stringField(objectArg(arg, 'cluster.probe'), 'cluster.probe', 'server');
      return node.call(server, 'cluster.ping', null);
    },
  };
}
