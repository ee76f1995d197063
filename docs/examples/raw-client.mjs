#!/usr/bin/env node
/**
 * A game client written against the protocol reference only (docs/protocol.md): no kuafu code, just
 * a WebSocket library and HMAC-SHA256, as a client or account server in another language would do.
 * It issues a login token as the account server does, logs player PID in at his home server, goes
 * to SERVER following connect_to with the token unchanged, and logs out.
 *
 *   node docs/examples/raw-client.mjs 1000002 GS1     (against `npm start`)
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const pid = Number(process.argv[2] ?? 1000002);
const to = process.argv[3] ?? 'GS1';
const config = JSON.parse(readFileSync(new URL('../../cluster.json', import.meta.url), 'utf8'));
const secret = process.env.KUAFU_SECRET ?? config.secret;
const home = config.servers.find((s) => s.roles.includes('game'));

/** A login token: base64url(JSON claims) "." base64url(HMAC-SHA256("kuafu-token\n" + secret, payload)). */
function loginToken(pid, home) {
  const claims = {
    kind: 'login', pid, source: '', destination: home, home, epoch: 0,
    expiresAt: Date.now() + 30_000, nonce: randomBytes(16).toString('hex'),
  };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = createHmac('sha256', `kuafu-token\n${secret}`).update(payload).digest('base64url');
  return `${payload}.${signature}`;
}

/** Opens a gateway connection; `next()` answers the next message (JSON), or fails after 10 s. */
function connect(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const queue = [];
    const waiting = [];
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString());
      const waiter = waiting.shift();
      if (waiter) waiter(message);
      else queue.push(message);
    });
    ws.once('error', reject);
    ws.once('open', () => resolve({
      send: (message) => ws.send(JSON.stringify(message)),
      next: () => queue.length ? Promise.resolve(queue.shift()) : new Promise((ok, fail) => {
        const timer = setTimeout(() => fail(new Error(`no answer from ${url}`)), 10_000);
        waiting.push((message) => { clearTimeout(timer); ok(message); });
      }),
      close: () => ws.close(),
    }));
  });
}

// 1. Log in at home with a login token.
let gateway = await connect(`ws://${home.host ?? config.host ?? '127.0.0.1'}:${home.gatewayPort}`);
gateway.send({ type: 'login', pid, token: loginToken(pid, home.name) });
let message = await gateway.next();
// A player still held by another server is sent on at once: follow connect_to.
while (message.type === 'connect_to') {
  gateway = await connect(message.addr);
  gateway.send({ type: 'enter', pid, token: message.token });
  message = await gateway.next();
}
if (message.type !== 'entered') throw new Error(`login refused: ${JSON.stringify(message)}`);
console.log(`entered ${message.server} (home ${message.home_srvname}, epoch ${message.epoch}), gold ${message.player.gold}`);

// 2. Ask to go to another server; follow connect_to with the token, unchanged.
gateway.send({ type: 'go', server: to });
message = await gateway.next();
if (message.type !== 'connect_to') throw new Error(`go refused: ${JSON.stringify(message)}`);
console.log(`connect_to ${message.go_srvname} at ${message.addr} (home_srvname ${message.home_srvname})`);
const { addr, token } = message;
gateway = await connect(addr);
gateway.send({ type: 'enter', pid, token });
message = await gateway.next();
if (message.type !== 'entered') throw new Error(`enter refused: ${JSON.stringify(message)}`);
console.log(`entered ${message.server} (go_srvname ${message.go_srvname}, epoch ${message.epoch}), player_data ${JSON.stringify(message.player_data)}`);

// 3. A token is single use: presenting it again is refused, with its own kind.
const again = await connect(addr);
again.send({ type: 'enter', pid, token });
console.log('the same token again:', JSON.stringify(await again.next()));
again.close();

// 4. Log out.
gateway.send({ type: 'logout' });
console.log('logout:', JSON.stringify(await gateway.next()));
gateway.close();
