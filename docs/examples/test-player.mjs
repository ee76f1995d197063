#!/usr/bin/env node
/**
 * A test player for trying scripts against a running cluster (`npm start`): logs player PID in at
 * his home server with a real game client, moves him to SERVER when one is named, and keeps him
 * online until Ctrl-C (then logs him out).
 *
 *   node docs/examples/test-player.mjs 1000001 GS1 [--config cluster.json]
 *
 * It uses the built package (`npm install` builds it; else run `npm run build` first) and the
 * cluster secret from the config, as an account server would to issue a login token.
 */
import { parseArgs } from 'node:util';
import { KuafuClient, issueLoginToken, loadConfig } from '../../dist/runtime/index.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { config: { type: 'string' } } });
const [pidText, to] = positionals;
const pid = Number(pidText);
if (!Number.isSafeInteger(pid) || pid <= 0) {
  console.error('usage: node docs/examples/test-player.mjs <pid> [server] [--config cluster.json]');
  process.exit(2);
}

const config = loadConfig(values.config);
const game = config.servers.filter((s) => s.roles.includes('game') && s.gatewayPort);
const home = game[0];
if (!home) {
  console.error(`${config.source} has no game server with a fixed gatewayPort to log in at`);
  process.exit(2);
}
const client = new KuafuClient({
  pid,
  homeUrl: `ws://${home.host}:${home.gatewayPort}`,
  loginToken: () => issueLoginToken(config.secret, pid, home.name),
});
client.on('kicked', (message) => {
  console.log(`player ${pid} was kicked: ${message.reason}`);
  process.exit(1);
});

let entered = await client.login();
console.log(`player ${pid} logged in at ${entered.server} (home ${entered.home_srvname})`);
if (to && to !== entered.server) {
  entered = await client.go(to);
  console.log(`player ${pid} is on ${entered.server} now (go_srvname ${entered.go_srvname}); Ctrl-C logs him out`);
} else {
  console.log(`player ${pid} stays on ${entered.server}; Ctrl-C logs him out`);
}

const stop = async () => {
  await client.logout().catch(() => client.close());
  console.log(`player ${pid} logged out`);
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
setInterval(() => {}, 1 << 30);
