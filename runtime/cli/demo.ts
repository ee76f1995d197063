/**
 * `kuafu demo`: the seed's story on the embedded default cluster, with a real WebSocket client.
 * C registers on the account server's login gateway (when the config has one), logs in at HS, goes to GS1, hops to GS2, returns to HS, goes to GS1 again and logs out there;
 * HS's heartbeat clears the mark. Then GS1 levels C up and HS, which shows his profile, gets the
 * push; and GS1 and GS2 deduct from one guild treasury at the same moment, the guild server deciding.
 * One line per step; exit 0 only if every step checked out.
 */
import { KuafuClient, registerAccount, type ConnectTo } from '../client/kuafu-client.js';
import { startServers, type RunningServers } from '../cluster/start.js';
import { issueLoginToken } from '../game/tokens.js';
import { servicesOf } from '../services/index.js';
import { guildServerFor } from '../services/placement.js';
import { ownerOf } from '../store/store.js';
import { configFor } from './load.js';
import type { CommandOptions } from './main.js';

/** C's player id when the config has no account server with a login gateway (else the account center gives one). */
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
    const [route, mark] = await Promise.all([store.getRoute(pid), store.getMark(pid)]);
    return { route: route!, mark: mark?.go ?? '' };
  };
  const describe = async () => {
    const { route, mark } = await state();
    return `route: owner ${ownerOf(route)}, epoch ${route.epoch}, ${route.online ? 'online' : 'offline'}; HS's mark: ${mark ? `go_srvname=${mark}` : 'none'}`;
  };

  console.log(`kuafu demo: player C, home HS, on ${store.description}`);
  // C starts where a game client does: the account server's login gateway, when the config has one.
  const accounts = running.nodes.find((n) => n.roles.includes('account') && n.gatewayUrl);
  let pid = PID;
  let client: KuafuClient;
  if (accounts) {
    const account = `demo-${process.pid}`;
    console.log(`[${++step}] C registers on ${accounts.name}'s login gateway (${accounts.gatewayUrl}) and logs in there`);
    const made = await registerAccount(accounts.gatewayUrl, account, 'demo password', { home: 'HS' });
    pid = made.pid;
    check(made.home === 'HS', `account ${account}: player ${pid}, home ${made.home}`);
    client = await KuafuClient.forAccount(accounts.gatewayUrl, account, 'demo password');
    check(client.pid === pid, `${accounts.name} answered a login token for HS's gateway; the client presents it there`);
  } else {
    client = new KuafuClient({ pid, homeUrl: hs.gatewayUrl, loginToken: () => issueLoginToken(secret, pid, 'HS') });
  }
  client.on('connect_to', (move: ConnectTo) =>
    say(`${client.server ?? '?'} → C: connect_to {go_srvname: ${move.go_srvname}, home_srvname: ${move.home_srvname}, token ${move.token.slice(0, 10)}…}`));

  console.log(`[${++step}] C (pid ${pid}) logs in at HS`);
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
  const added = await caller.players.invoke(pid, ['addgold'], [10, 'demo:reward']);
  check(added === 10, `${caller.name} → C on GS1 through player RPC: addgold(10) returned ${String(added)}`);

  console.log(`[${++step}] C hops from GS1 to GS2`);
  await hop('GS2');
  const items = await caller.players.invoke(pid, ['itemdb', 'additembytype'], [105001, 10, null, 'demo:reward']);
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
  const copy = await hs.game!.host.loadOffline(pid);
  check(copy.getgold() === 10 && copy.itemdb.getitemcount(105001) === 10, `nothing lost: gold ${copy.getgold()}, item 105001 × ${copy.itemdb.getitemcount(105001)}`);

  console.log(`[${++step}] GS1 levels C up through the datacenter; HS, which shows C's profile, gets the push`);
  const gs1 = node('GS1');
  const before = await servicesOf(hs).profiles.get(pid);
  check(before?.fields.home === 'HS' && before.fields.server === 'HS' && before.fields.online === false,
    `C's profile followed his transfers by itself: home ${String(before?.fields.home)}, server ${String(before?.fields.server)}, online ${String(before?.fields.online)}`);
  const pushed = new Promise<{ level: unknown; ms: number }>((resolve) => {
    const started = process.hrtime.bigint();
    void servicesOf(hs).profiles.follow([pid], (event) => {
      if (event.changed && 'level' in event.changed) resolve({ level: event.changed.level, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
  });
  const level = Number(before?.fields.level ?? 1) + 1;
  const written = await servicesOf(gs1).profiles.update(pid, { level });
  say(`GS1 → DC profile.update {level: ${level}}: version ${written.version}`);
  const push = await Promise.race([pushed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000).unref())]);
  check(push?.level === level, push ? `HS's cache applied the push: level ${String(push.level)} (${push.ms.toFixed(2)} ms after GS1 asked, no polling)` : 'HS got no push within 10 s');
  const onGs2 = (await servicesOf(node('GS2')).profiles.get(pid))?.fields.level;
  check(onGs2 === level, `GS2 reads level ${String(onGs2)} through its own cache`);

  console.log(`[${++step}] a guild treasury: HS deposits, GS1 and GS2 deduct at the same moment; the guild server decides`);
  const gid = `demo-${process.pid}`;
  await servicesOf(hs).guild(gid).create('Demo guild');
  await servicesOf(hs).guild(gid).join(pid);
  const deposit = await servicesOf(hs).guild(gid).deposit('wood', 10, 'demo:fund');
  say(`HS → ${guildServerFor(hs.cluster, gid)} (guild ${gid}'s server): deposit 10 wood → balance ${deposit.balance}`);
  const asks = [
    { from: gs1, amount: 4, requestId: `demo-a-${process.pid}` },
    { from: node('GS2'), amount: 4, requestId: `demo-b-${process.pid}` },
    { from: node('GS2'), amount: 4, requestId: `demo-c-${process.pid}` },
  ];
  const outcomes = await Promise.all(asks.map(({ from, amount, requestId }) =>
    servicesOf(from).guild(gid).deduct('wood', amount, 'demo:build', requestId).then(
      (receipt) => ({ from: from.name, ok: true, text: `deducted ${amount} → balance ${receipt.balance}` }),
      (error: Error) => ({ from: from.name, ok: false, text: `${error.name}: ${error.message}` }),
    )));
  for (const outcome of outcomes) say(`${outcome.from} deduct 4 wood: ${outcome.text}`);
  check(outcomes.filter((o) => o.ok).length === 2 && outcomes.filter((o) => !o.ok).every((o) => o.text.startsWith('InsufficientResource')),
    'two deductions applied, the third refused with InsufficientResource: the guild server checks the balance, one change at a time');
  const retry = await servicesOf(gs1).guild(gid).deduct('wood', 4, 'demo:build', asks[0]!.requestId).catch((error: Error) => error);
  const guild = await servicesOf(gs1).guild(gid).get();
  check(!(retry instanceof Error) && retry.replayed && guild.treasury.wood === 2,
    `GS1 retries its request id: ${retry instanceof Error ? retry.message : `replayed, nothing deducted again`}; treasury ${JSON.stringify(guild.treasury)}, members ${guild.members.join(', ')}`);
  check((await servicesOf(hs).profiles.get(pid))?.fields.guild === gid, `C's profile shows his guild: ${String((await servicesOf(hs).profiles.get(pid))?.fields.guild)}`);

  console.log(failures === 0 ? 'kuafu demo: every step checked out' : `kuafu demo: ${failures} check(s) FAILED`);
  return failures === 0 ? 0 : 1;
}
