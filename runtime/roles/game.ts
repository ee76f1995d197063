/** The game role: online players, the client gateway, transfers and player RPC (runtime/game). */
import type { ServerNode } from '../cluster/server-node.js';
import type { ServerConfig } from '../cluster/config.js';
import { GameServer } from '../game/game-server.js';
import type { RoleRuntime } from './role.js';

export function gameRole(node: ServerNode, server: ServerConfig): RoleRuntime & { game: GameServer } {
  const game = new GameServer(node, server.gatewayPort ?? 0, server.host, { scriptsDir: node.cluster.scriptsDir, ...node.gameOptions });
  game.gateway.limits = server.gatewayLimits ?? node.cluster.gatewayLimits;
  return {
    game,
    methods: game.methods(),
    start: () => game.start(),
    stop: () => game.stop(),
    gatewayUrl: () => game.gateway.url,
  };
}
