#!/usr/bin/env node
/**
 * A server-to-server JSON-RPC client written against the protocol reference only
 * (docs/protocol.md): a WebSocket library and HMAC-SHA256, as a tool or a server in another
 * language would do. It answers the server's challenge with the cluster secret, then calls a few
 * methods, two of them in one batch, and makes one remote player call.
 *
 *   node docs/examples/raw-rpc.mjs HS 1000001      (against `npm start`; the player's calls need him online)
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const serverName = process.argv[2] ?? 'HS';
const pid = Number(process.argv[3] ?? 1000001);
const config = JSON.parse(readFileSync(new URL('../../cluster.json', import.meta.url), 'utf8'));
const secret = process.env.KUAFU_SECRET ?? config.secret;
const server = config.servers.find((s) => s.name === serverName);
const me = 'raw-rpc-example';

/** hex(HMAC-SHA256(secret, nonce + "\n" + name)): the proof that `name` knows the secret. */
const proof = (nonce, name) => createHmac('sha256', secret).update(`${nonce}\n${name}`).digest('hex');

const ws = new WebSocket(`ws://${server.host ?? config.host ?? '127.0.0.1'}:${server.rpcPort}`);
const waiting = new Map(); // id → resolve
let myNonce = '';
let ready;
const authenticated = new Promise((resolve, reject) => { ready = { resolve, reject }; });

ws.on('message', (data) => {
  const message = JSON.parse(data.toString());
  if (message.method === 'cluster.challenge') {
    // 1. The server speaks first: {server, nonce}. 2. Prove we know the secret, and challenge it back.
    myNonce = randomBytes(16).toString('hex');
    ws.send(JSON.stringify({
      jsonrpc: '2.0', id: 0, method: 'cluster.authenticate',
      params: { client: me, nonce: myNonce, proof: proof(message.params.nonce, me) },
    }));
    return;
  }
  for (const reply of Array.isArray(message) ? message : [message]) {
    if (reply.id === 0) {
      // 3. The server proves it knows the secret too.
      if (reply.error || reply.result.proof !== proof(myNonce, serverName)) ready.reject(new Error(JSON.stringify(reply)));
      else ready.resolve();
      continue;
    }
    waiting.get(reply.id)?.(reply);
    waiting.delete(reply.id);
  }
});

let nextId = 1;
/** A request: params and result are one value, as [value] (plain JSON) or superjson {json, meta}. */
function request(method, value) {
  const id = nextId++;
  return { message: { jsonrpc: '2.0', id, method, params: [value] }, reply: new Promise((resolve) => waiting.set(id, resolve)) };
}
const decode = (reply) => (reply.error ? { error: reply.error } : Array.isArray(reply.result) ? reply.result[0] : reply.result);

await authenticated;
console.log(`authenticated with ${serverName}`);

const ping = request('cluster.ping', null);
ws.send(JSON.stringify(ping.message));
console.log('cluster.ping →', JSON.stringify(decode(await ping.reply)));

// Two requests in one message: a batch, answered with one array (in any order; match by id).
const route = request('route.get', { pid, fresh: true });
const where = request('player.where', { pid });
ws.send(JSON.stringify([route.message, where.message]));
console.log('route.get →', JSON.stringify(decode(await route.reply)));
console.log('player.where →', JSON.stringify(decode(await where.reply)));

// player.invoke runs only on the player's owner; any other server answers PlayerMoved with data.at.
const callId = () => `${me}:${randomBytes(6).toString('hex')}`; // unique per call: the owner runs an id at most once
const gold = request('player.invoke', { pid, path: ['getgold'], args: [], id: callId() });
const unknown = request('player.invoke', { pid, path: ['addgems'], args: [10, 'raw'], id: callId() });
ws.send(JSON.stringify([gold.message, unknown.message]));
console.log('player.invoke getgold →', JSON.stringify(decode(await gold.reply)));
console.log('player.invoke addgems →', JSON.stringify(decode(await unknown.reply)));

const nope = request('no.such.method', null);
ws.send(JSON.stringify(nope.message));
console.log('no.such.method →', JSON.stringify(decode(await nope.reply)));
ws.close();
