/** What a role brings to the server node that hosts it. */
import type { MethodTable } from '../rpc/rpc-server.js';

export interface RoleRuntime {
  /** The JSON-RPC methods the role answers. */
  methods: MethodTable;
  /** Starts what the role runs besides its methods (a gateway, timers…). */
  start?(): Promise<void>;
  /** Stops it (saving what must be saved). */
  stop?(): Promise<void>;
  /** The client gateway address, when the role has one. */
  gatewayUrl?(): string;
}
