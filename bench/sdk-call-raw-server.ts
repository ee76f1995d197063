/**
 * The reference of the sdk-call benchmark, run as a child process: raw jayson over one WebSocket,
 * a handler that adds the gold to a player document and saves it with one ioredis SET before it
 * answers — the same work as a script's addgold, done by hand. Prints `{url}` once listening.
 */
import type { AddressInfo } from 'node:net';
import jayson from 'jayson';
import { Redis } from 'ioredis';

const redis = new Redis(process.argv[2]!);
redis.on('error', () => process.exit(1)); // Redis gone: the benchmark is over
const documents = new Map<number, { pid: number; gold: number }>();

const server = new jayson.Server({
  addgold: (args: [number, number, string], callback: (error: unknown, result?: unknown) => void) => {
    const [pid, amount] = args;
    let doc = documents.get(pid);
    if (!doc) documents.set(pid, (doc = { pid, gold: 0 }));
    doc.gold += amount;
    redis.set(`raw:{${pid}}:doc`, JSON.stringify(doc)).then(() => callback(null, amount), (error) => callback({ code: -32000, message: String(error) }));
  },
});
const wss = server.websocket({ host: '127.0.0.1', port: 0 }) as unknown as import('ws').WebSocketServer;
await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
process.stdout.write(`${JSON.stringify({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` })}\n`);
