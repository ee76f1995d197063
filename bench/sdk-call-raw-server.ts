/**
 * The reference of the sdk-call benchmark, run as a child process: raw jayson over one WebSocket,
 * a handler that adds the gold to the player's document and saves that whole document with one
 * ioredis SET before it answers — the work of a script's addgold done by hand, one write per call
 * (64 calls to one player in one tick are 64 SETs of his document: nothing merges them).
 *
 * Fair both ways: the document has the fields (and so about the size) of kuafu's reference player
 * document, and the connection is ioredis with its defaults, each SET written as it is issued.
 * (`enableAutoPipelining`, which would send one tick's SETs in one write as kuafu sends its saves in
 * one pipeline, was tried and made the reference slower here, 12 alternating rounds: it holds a
 * tick's commands until setImmediate.) What the reference does not do (kuafu does, in its one Lua
 * script per save): fence the save by the owner's epoch and remember the call id so that a retried
 * call runs once.
 * Prints `{url}` once listening.
 */
import type { AddressInfo } from 'node:net';
import jayson from 'jayson';
import { Redis } from 'ioredis';

const redis = new Redis(process.argv[2]!);
redis.on('error', () => process.exit(1)); // Redis gone: the benchmark is over

/** The same fields as kuafu's reference player document (runtime/game/player.ts, Player.newDocument). */
interface Document {
  pid: number;
  name: string;
  level: number;
  gold: number;
  items: Record<string, number>;
  mails: unknown[];
  nextMailId: number;
}
const documents = new Map<number, Document>();

const server = new jayson.Server({
  addgold: (args: [number, number, string], callback: (error: unknown, result?: unknown) => void) => {
    const [pid, amount] = args;
    let doc = documents.get(pid);
    if (!doc) documents.set(pid, (doc = { pid, name: `player${pid}`, level: 1, gold: 0, items: {}, mails: [], nextMailId: 1 }));
    doc.gold += amount;
    redis.set(`raw:{${pid}}:doc`, JSON.stringify(doc)).then(() => callback(null, amount), (error) => callback({ code: -32000, message: String(error) }));
  },
});
const wss = server.websocket({ host: '127.0.0.1', port: 0 }) as unknown as import('ws').WebSocketServer;
await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
process.stdout.write(`${JSON.stringify({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` })}\n`);
