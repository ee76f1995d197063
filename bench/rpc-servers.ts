/**
 * The server side of the rpc benchmark, run as a child process so client and server each have a
 * core: a kuafu server node (memory store) and a raw jayson WebSocket server, both answering an echo.
 * Prints one JSON line `{kuafu, raw}` with their addresses, then serves until killed.
 */
import type { AddressInfo } from 'node:net';
import jayson from 'jayson';
import { parseConfig } from '../runtime/cluster/config.js';
import { startServers } from '../runtime/cluster/start.js';

const secret = 'bench-secret-0123456789';
const config = parseConfig(
  { secret, store: { kind: 'memory' }, servers: [{ name: 'GS1', roles: ['game'], rpcPort: 0 }] },
  'bench',
);
const running = await startServers(config);

const raw = new jayson.Server({ echo: (args: unknown[], callback: (error: unknown, result?: unknown) => void) => callback(null, args[0]) });
const wss = raw.websocket({ host: '127.0.0.1', port: 0 }) as unknown as import('ws').WebSocketServer;
await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
const rawPort = (wss.address() as AddressInfo).port;

process.stdout.write(`${JSON.stringify({ kuafu: running.nodes[0]!.rpcUrl, raw: `ws://127.0.0.1:${rawPort}`, secret })}\n`);
