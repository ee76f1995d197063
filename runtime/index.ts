/** kuafu's host-side API: what a server host or a test imports from the package. */
export * from './errors.js';
export * from './store/store.js';
export { MemoryStore, type MemoryStoreOptions } from './store/memory-store.js';
export { RedisStore, type RedisStoreOptions } from './store/redis-store.js';
export { PeerClient, type PeerClientOptions, type CallOptions } from './rpc/peer-client.js';
export { RpcServer, type MethodTable, type MethodHandler, type CallContext } from './rpc/rpc-server.js';
export { checkValue, encodeValue, decodeValue } from './rpc/values.js';
export { RouteCache } from './cluster/route-cache.js';
export { ServerNode, type ServerInfo } from './cluster/server-node.js';
export { loadConfig, parseConfig, type ClusterConfig, type ServerConfig, type Role } from './cluster/config.js';
export { startServers, openStore, type RunningServers, type StartOptions } from './cluster/start.js';
export {
  KuafuClient, ClientRequestError, registerAccount, loginAccount, type KuafuClientOptions, type Entered, type ConnectTo, type LoginTicket,
  type ClientStep, type Disconnected,
} from './client/kuafu-client.js';
export { issueLoginToken, issueToken, verifyToken, type TokenClaims } from './game/tokens.js';
export { GameServer, type GameServerOptions } from './game/game-server.js';
export {
  Player, ItemDb, Mailbox, PLAYER_SURFACE, REFERENCE_PLAYER_MODEL, DEFAULT_PLAYER_LIMITS, type PlayerModel, type PlayerDocument, type PlayerData, type PlayerLimits, type Mail,
} from './game/player.js';
export { PlayerHost, type LoadedPlayer, type ClientSession } from './game/player-host.js';
export { ScriptHost, ScriptError, ScriptLimitError, bundleScript, type ScriptHostOptions, type ScriptServices, type KuafuPlayerInfo } from './sandbox/index.js';
