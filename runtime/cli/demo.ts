/**
 * `kuafu demo`: the seed's story on the embedded default cluster, with a real WebSocket client.
 * C logs in at HS, goes to GS1, hops to GS2, returns to HS, goes to GS1 again and logs out there;
 * HS's heartbeat clears the mark. One line per step; exit 0 only if every step checked out.
 */
import { KuafuClient, type ConnectTo } from '../client/kuafu-client.js';
import { startServers, type RunningServers } from '../cluster/start.js';
import { issueLoginToken } from '../game/tokens.js';
import { ownerOf } from '../store/store.js';
import { configFor } from './load.js';
import type { CommandOptions } from './main.js';

const PID = 1000001;

/** Waits until `condition` holds (polling the store), or gives up after `ms`. */
async function until(condition: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return condition();
}

export async function runDemo(options: CommandOptions): Promise<number> {
  const config = configFor(options);
  // Free ports, so the demo runs beside a cluster already up; quick heartbeats, so the last step is short.
  for (const server of config.servers) {
    server.rpcPort = 0;
    if (server.gatewayPort !== undefined) server.gatewayPort = 0;
  }
  config.heartbeatMs = 200;
  process.env.KUAFU_LOG_LEVEL ??= 'warn';
  const running = await startServers(config);
  try {
    return await tellStory(running, config.secret);
  } finally {
    await running.stop();
  }
}

async function tellStory(running: RunningServers, secret: string): Promise<number> {
  const { store } = running;
  const node = (name: string) => {
    const found = running.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`the demo needs a server named ${name} in the config`);
    return found;
  };
  const hs = node('HS');
  const caller = running.nodes.find((n) => !n.roles.includes('game')) ?? hs;
  let failures = 0;
  let step = 0;
  const say = (text: string) => console.log(`      ${text}`);
  const check = (ok: boolean, what: string) => {
    if (!ok) failures++;
    say(`${ok ? 'ok ' : 'FAIL'} ${what}`);
  };
  const state = async () => {
    const [route, mark] = await Promise.all([store.getRoute(PID), store.getMark(PID)]);
    return { route: route!, mark: mark?.go ?? '' };
  };
  const describe = async () => {
    const { route, mark } = await state();
    return `route: owner ${ownerOf(route)}, epoch ${route.epoch}, ${route.online ? 'online' : 'offline'}; HS's mark: ${mark ? `go_srvname=${mark}` : 'none'}`;
  };

  const client = new KuafuClient({ pid: PID, homeUrl: hs.gatewayUrl, loginToken: () => issueLoginToken(secret, PID, 'HS') });
  client.on('connect_to', (move: ConnectTo) =>
    say(`${client.server ?? '?'} → C: connect_to {go_srvname: ${move.go_srvname}, home_srvname: ${move.home_srvname}, token ${move.token.slice(0, 10)}…}`));

  console.log(`kuafu demo: player C (pid ${PID}), home HS, on ${store.description}`);

  console.log(`[${++step}] C logs in at HS`);
  let entered = await client.login();
  check(entered.server === 'HS', `C entered ${entered.server}`);
  say(await describe());

  const hop = async (to: string) => {
    const before = (await state()).route.epoch;
    const from = client.server;
    entered = await client.go(to);
    check(entered.server === to, `C entered ${entered.server} with the token, unchanged (home_srvname ${entered.home_srvname})`);
    check((await state()).route.epoch === before + 1, `${to} claimed C by compare-and-set: epoch ${before} → ${before + 1}`);
    if (to === 'HS') {
      check(await until(async () => (await state()).mark === ''), `back home: HS cleared its mark`);
    } else {
      check(await until(async () => (await state()).mark === to), `${to} told HS kuafu.arrived; HS marks C at go_srvname=${to}${from !== 'HS' ? ` (moved from ${from})` : ''}`);
    }
    say(await describe());
  };

  console.log(`[${++step}] C asks HS to go to GS1`);
  await hop('GS1');
  check(JSON.stringify(entered.player_data) !== '{}', `C carries player_data from his home: ${JSON.stringify(entered.player_data)}`);
  const added = await caller.players.invoke(PID, ['addgold'], [10, 'demo:reward']);
  check(added === 10, `${caller.name} → C on GS1 through player RPC: addgold(10) returned ${String(added)}`);

  console.log(`[${++step}] C hops from GS1 to GS2`);
  await hop('GS2');
  const items = await caller.players.invoke(PID, ['itemdb', 'additembytype'], [105001, 10, null, 'demo:reward']);
  check(items === 10, `${caller.name} → C on GS2: itemdb.additembytype(105001, 10) returned ${String(items)}`);

  console.log(`[${++step}] C returns from GS2 to HS`);
  await hop('HS');
  check(entered.player.gold === 10, `his gold came home with him: ${entered.player.gold}`);

  console.log(`[${++step}] C goes to GS1 again`);
  await hop('GS1');

  console.log(`[${++step}] C logs out at GS1; HS's heartbeat asks GS1 about C`);
  await client.logout();
  const { route } = await state();
  check(!route.online && ownerOf(route) === 'GS1', 'GS1 saved C and marked him offline');
  check(await until(async () => {
    const now = await state();
    return now.mark === '' && now.route.at === '';
  }), 'HS heartbeat: C is offline at GS1 → mark cleared, C belongs to HS again');
  say(await describe());
  const copy = await hs.game!.host.loadOffline(PID);
  check(copy.getgold() === 10 && copy.itemdb.getitemcount(105001) === 10, `nothing lost: gold ${copy.getgold()}, item 105001 × ${copy.itemdb.getitemcount(105001)}`);

  console.log(failures === 0 ? 'kuafu demo: every step checked out' : `kuafu demo: ${failures} check(s) FAILED`);
  return failures === 0 ? 0 : 1;
}
