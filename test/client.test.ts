/**
 * KuafuClient after failures (issue 9, "The client after a failed login"; issue 17, its fallback
 * and hop bound), on real parts: one redis-server; HS and GS1 (game servers), DC and ACCOUNT (the
 * account server, with its login gateway) as `kuafu serve` processes; real KuafuClients.
 *
 * What is checked after each failure: the client's state says what happened (`server` is null
 * whenever it is not logged in), no connection it opened is left open (a counting relay, the
 * `Door`, stands in front of the home's gateway where that is checked), and its error names the
 * step that failed and what was said there.
 *
 * Nothing sleeps to let time pass: events are awaited and conditions polled with generous
 * deadlines. Redis is killed in the last test only.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket, { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import {
  ClientRequestError, KuafuClient, loginAccount, registerAccount, type ConnectTo, type Disconnected, type Entered, type KuafuClientOptions,
} from '../runtime/client/kuafu-client.js';
import { issueLoginToken } from '../runtime/game/tokens.js';
import { RedisStore } from '../runtime/store/redis-store.js';
import {
  EVENT_DEADLINE_MS, RawConnection, cleanupCluster, eventually, onCleanup, rejectionOf, spawnServe, within, writeClusterConfig,
  type ClusterConfigFile, type ServeProcess,
} from './harness/cluster.js';
import { startRedis, type RedisHandle } from './harness/redis.js';

const test = suite('client');

let redis: RedisHandle;
let config: ClusterConfigFile;
let store: RedisStore;
const servers: Record<string, ServeProcess> = {};

async function serve(name: string): Promise<ServeProcess> {
  servers[name] = await spawnServe(config.path, name, redis.url);
  return servers[name]!;
}

test.before(async () => {
  redis = await startRedis({ persistent: true });
  config = writeClusterConfig({
    servers: [
      { name: 'HS', roles: ['game'], gatewayPort: 0 },
      { name: 'GS1', roles: ['game'], gatewayPort: 0 },
      { name: 'DC', roles: ['datacenter'] },
      { name: 'ACCOUNT', roles: ['account'], gatewayPort: 0 },
    ],
    store: { kind: 'redis', url: redis.url },
    heartbeatMs: 250,
    rpcTimeoutMs: 5000,
  });
  store = new RedisStore({ url: redis.url });
  await store.connect();
  onCleanup(() => store.close());
  await Promise.all(['DC', 'ACCOUNT', 'HS', 'GS1'].map(serve));
  assert.match(servers.ACCOUNT!.gateway, /^ws:\/\//, 'the account server prints its login gateway');
});

test.after(async () => {
  await cleanupCluster();
  await redis?.stop();
});

// ---- helpers ------------------------------------------------------------------------------------

/** A relay in front of a gateway that counts the client connections made through it (and can shut). */
class Door {
  /** Client connections accepted so far. */
  opened = 0;
  /** Client connections open now. */
  open = 0;
  private readonly sockets = new Set<WebSocket>();

  private constructor(private readonly wss: WebSocketServer, readonly url: string, target: string) {
    wss.on('connection', (down) => {
      this.opened++;
      this.open++;
      const up = new WebSocket(target, { perMessageDeflate: false });
      this.sockets.add(down).add(up);
      const early: string[] = [];
      down.on('message', (data) => {
        if (up.readyState === WebSocket.OPEN) up.send(data.toString());
        else early.push(data.toString());
      });
      up.on('open', () => { for (const text of early.splice(0)) up.send(text); });
      up.on('message', (data) => { if (down.readyState === WebSocket.OPEN) down.send(data.toString()); });
      up.on('close', (code) => {
        // Pass the server's close on as it came (a code that may be sent), else just end.
        if ((code >= 1000 && code <= 1003) || (code >= 3000 && code <= 4999)) down.close(code);
        else down.terminate();
      });
      down.on('close', () => {
        this.open--;
        up.terminate();
      });
      for (const ws of [up, down]) {
        ws.on('error', () => ws.terminate());
        ws.on('close', () => this.sockets.delete(ws));
      }
    });
  }

  static async start(target: string): Promise<Door> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await within(new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    }), EVENT_DEADLINE_MS, 'the door to listen');
    const door = new Door(wss, `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, target);
    onCleanup(() => door.shut());
    return door;
  }

  /** Waits until no client connection is open through the door. */
  allClosed(what: string): Promise<void> {
    return eventually(async () => {
      if (this.open !== 0) throw new Error(`${this.open} still open`);
    }, what, EVENT_DEADLINE_MS, 25);
  }

  /** Ends every connection and stops listening: the address refuses connections from now on. */
  async shut(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** A login token source for `pid` at HS that counts its calls; `bad` makes it sign with another secret. */
function tokenSource(pid: number): { calls: number; bad: boolean; next: () => string } {
  const source = {
    calls: 0,
    bad: false,
    next: () => {
      source.calls++;
      return issueLoginToken(source.bad ? 'not-the-cluster-secret-at-all' : config.secret, pid, 'HS');
    },
  };
  return source;
}

/** A KuafuClient whose home is HS (closed at cleanup). */
function client(pid: number, options: Partial<KuafuClientOptions> & { loginToken: () => string | Promise<string> }): KuafuClient {
  const c = new KuafuClient({ pid, homeUrl: servers.HS!.gateway, stepTimeoutMs: 15_000, ...options });
  onCleanup(() => c.close());
  return c;
}

/** The ClientRequestError a promise of the client ends with. */
async function failure(promise: Promise<unknown>, what: string): Promise<ClientRequestError> {
  const error = await rejectionOf(promise, 60_000, what);
  assert.instance(error, ClientRequestError, `${what}: a ClientRequestError, not ${error.name}: ${error.message}`);
  return error as ClientRequestError;
}

/** The client is on no server and holds no connection. */
function loggedOut(c: KuafuClient, what: string): void {
  assert.is(c.server, null, `${what}: server is null, not ${String(c.server)}`);
  assert.throws(() => c.sendRaw({ type: 'logout' }), /not connected/, `${what}: the client holds no connection`);
}

/** Waits until the client notices that its connection to `server` closed: it is then logged out. */
async function noLongerOn(c: KuafuClient, server: string): Promise<void> {
  await eventually(async () => {
    if (c.server !== null) throw new Error(`its server is still ${c.server}`);
  }, `client ${c.pid} to see that its connection to ${server} closed`, EVENT_DEADLINE_MS, 25);
  loggedOut(c, `after its connection to ${server} closed`);
}

// ---- the home refuses, a destination refuses, the hop bound -----------------------------------------

test('the home refuses the login at every try: the client says so (the kind, step home), tries a bounded number of times, and is left on no server with nothing open', async () => {
  const pid = 6001;
  const door = await Door.start(servers.HS!.gateway);
  const tokens = tokenSource(pid);
  const c = client(pid, { homeUrl: door.url, loginToken: tokens.next, maxHops: 2 });
  assert.is((await c.login()).server, 'HS');
  assert.is((await c.go('GS1')).server, 'GS1');
  assert.is(c.server, 'GS1');

  // Logging in again (a "reconnect"), now with tokens the home cannot accept.
  tokens.bad = true;
  tokens.calls = 0;
  const fallbacks: string[] = [];
  c.on('fallback', (problem: string) => fallbacks.push(problem));
  const error = await failure(c.login(), 'a login with tokens the home refuses');
  loggedOut(c, 'after the failed login');
  assert.is(error.kind, 'TokenInvalid', `the home's refusal, not ${error.kind}: ${error.message}`);
  assert.is(error.step, 'home');
  assert.match(error.message, door.url, 'it names the home gateway');
  assert.match(error.message, /refused the login/);
  assert.is(tokens.calls, 3, 'one token per try, maxHops + 1 tries');
  assert.is(fallbacks.length, 2, 'it went back home twice');
  await door.allClosed('every connection to the home is closed');
  assert.is(door.opened, 4, 'one connection per login');
  // The connection to GS1 was closed too: GS1 logged him out.
  await eventually(async () => {
    const route = await store.getRoute(pid);
    if (route?.online !== false) throw new Error(`route ${JSON.stringify(route)}`);
  }, `player ${pid} to be offline once the client let go of GS1`, EVENT_DEADLINE_MS, 25);

  // With good tokens again, he logs in (his home takes him back, or sends him on to GS1).
  tokens.bad = false;
  const e = await c.login();
  assert.is(c.server, e.server);
});

test('a refused transfer token: the client goes back to its home, logs in there and settles where the home says (issue 17)', async () => {
  const pid = 6002;
  const tokens = tokenSource(pid);
  const c = client(pid, { loginToken: tokens.next });
  await c.login();
  assert.is(tokens.calls, 1);
  // Another connection presents the token first (on a socket already open to GS1, so it gets
  // there first): GS1 then refuses the client's own enter with TokenUsed.
  const thief = await RawConnection.open(servers.GS1!.gateway);
  const moves: ConnectTo[] = [];
  const fallbacks: string[] = [];
  c.on('connect_to', (move: ConnectTo) => {
    moves.push(move);
    if (moves.length === 1) thief.send({ type: 'enter', pid, token: move.token });
  });
  c.on('fallback', (problem: string) => fallbacks.push(problem));

  const e = await within(c.go('GS1'), 60_000, 'the go to settle');
  assert.is(fallbacks.length, 1, `one fallback: ${JSON.stringify(fallbacks)}`);
  assert.match(fallbacks[0]!, /TokenUsed/);
  assert.is(tokens.calls, 2, 'the client logged in at home again, with a fresh login token');
  // The home either took him back (it got there before GS1 claimed him for the other connection)
  // or sent the client on to GS1, where that connection now holds him.
  assert.ok(e.server === 'HS' || e.server === 'GS1', JSON.stringify(e));
  if (e.server === 'GS1') {
    assert.is(moves.length, 2, 'the home sent the client on');
    assert.is(moves[1]!.go_srvname, 'GS1');
  }
  assert.is(c.server, e.server);
  const route = await store.getRoute(pid);
  assert.equal({ at: route?.at, online: route?.online }, { at: e.server === 'HS' ? '' : 'GS1', online: true }, `route ${JSON.stringify(route)}`);
  assert.is((await c.go(e.server === 'HS' ? 'GS1' : 'HS')).server, e.server === 'HS' ? 'GS1' : 'HS', 'the client plays on');
  thief.close();
});

test('the hop bound: a move that would take more than maxHops hops ends with TooManyHops, on no server, with nothing open (issue 17)', async () => {
  const pid = 6003;
  const tokens = tokenSource(pid);
  // One hop is the go itself (connect_to, then enter): the fallback home after a refusal would be the second.
  const c = client(pid, { loginToken: tokens.next, maxHops: 1 });
  await c.login();
  const thief = await RawConnection.open(servers.GS1!.gateway);
  c.once('connect_to', (move: ConnectTo) => thief.send({ type: 'enter', pid, token: move.token }));
  const error = await failure(c.go('GS1'), 'a go whose token is taken, with a bound of one hop');
  loggedOut(c, 'after TooManyHops');
  assert.is(error.kind, 'TooManyHops', `${error.kind}: ${error.message}`);
  assert.is(error.step, 'hops');
  assert.match(error.message, /after 1 hops/);
  assert.match(error.message, /refused the enter: TokenUsed/, 'it says what happened last');
  assert.is(tokens.calls, 1, 'the client did not go on to log in at home');
  thief.close();
});

// ---- the home unreachable, the server gone ----------------------------------------------------------

test('the home gateway unreachable: ServerUnavailable naming it (step home), after the client was told its connection closed; the token is asked for first', async () => {
  const pid = 6004;
  const door = await Door.start(servers.HS!.gateway);
  const tokens = tokenSource(pid);
  const c = client(pid, { homeUrl: door.url, loginToken: tokens.next });
  assert.is((await c.login()).server, 'HS');
  const gone: Disconnected[] = [];
  c.on('disconnected', (event: Disconnected) => gone.push(event));
  await door.shut(); // the home's address goes away: the connection through it ends
  await noLongerOn(c, 'HS');
  assert.equal(gone.map((event) => event.server), ['HS'], 'the client told its connection closed');

  const error = await failure(c.login(), 'a login at an unreachable home');
  assert.is(error.kind, 'ServerUnavailable');
  assert.is(error.step, 'home');
  assert.match(error.message, `the home gateway ${door.url} is unreachable`);
  assert.is(tokens.calls, 2, 'a token was asked for before connecting');
  loggedOut(c, 'after the failed login');
});

test('the server the client is on is killed: the client emits disconnected and is on no server; it logs in again once the server is back', async () => {
  const pid = 6005;
  const tokens = tokenSource(pid);
  const c = client(pid, { loginToken: tokens.next });
  await c.login();
  assert.is((await c.go('GS1')).server, 'GS1');
  const gone: Disconnected[] = [];
  c.on('disconnected', (event: Disconnected) => gone.push(event));
  servers.GS1!.kill('SIGKILL');
  await servers.GS1!.waitForExit();
  await noLongerOn(c, 'GS1');
  assert.equal(gone.map((event) => event.server), ['GS1'], 'the client told its connection closed');
  const refused = await failure(c.go('HS'), 'a go while not logged in');
  assert.is(refused.kind, 'NotLoggedIn');
  assert.match(refused.message, /log in first/);

  await serve('GS1');
  const e = await c.login();
  assert.is(c.server, e.server);
  assert.ok(e.server === 'HS' || e.server === 'GS1', JSON.stringify(e));
});

// ---- the login token source fails (Redis down) ----------------------------------------------------

test('Redis is down: getting the login token fails at the account login gateway with StoreUnavailable; the client says that (not "home unreachable"), opened nothing, is on no server, and logs in once Redis is back', async () => {
  const accountUrl = servers.ACCOUNT!.gateway;
  await registerAccount(accountUrl, 'ayla-6010', 'a long password', { home: 'HS' });
  const borin = await registerAccount(accountUrl, 'borin-6011', 'a long password', { home: 'HS' });

  // Ayla's client asks the account server for each token (forAccount).
  const ayla = await KuafuClient.forAccount(accountUrl, 'ayla-6010', 'a long password', { stepTimeoutMs: 15_000 });
  onCleanup(() => ayla.close());
  assert.is((await ayla.login()).server, 'HS');
  // Borin's client too, through a token source of the host's own, and a door in front of his home.
  const door = await Door.start(servers.HS!.gateway);
  const borinClient = client(borin.pid, {
    homeUrl: door.url,
    loginToken: async () => (await loginAccount(accountUrl, 'borin-6011', 'a long password')).token,
  });
  assert.is((await borinClient.login()).server, 'HS');
  assert.is(door.opened, 1);

  await redis.kill();
  try {
    const error = await failure(ayla.login(), "Ayla's login while Redis is down");
    loggedOut(ayla, "Ayla's client");
    assert.is(error.kind, 'StoreUnavailable', `the account server's kind, not ${error.kind}: ${error.message}`);
    assert.is(error.step, 'loginToken');
    assert.match(error.message, /login token/);
    assert.match(error.message, `the account login gateway ${accountUrl}`);
    assert.not.match(error.message, /unreachable at|Home server/, error.message);

    const other = await failure(borinClient.login(), "Borin's login while Redis is down");
    loggedOut(borinClient, "Borin's client");
    await door.allClosed("Borin's earlier connection is closed");
    assert.is(door.opened, 1, 'no connection to the home was opened without a token');
    assert.is(other.kind, 'StoreUnavailable', `${other.kind}: ${other.message}`);
    assert.is(other.step, 'loginToken');
  } finally {
    await redis.restart();
  }

  // Once Redis is back (the servers reconnect by themselves), both log in.
  for (const [who, c] of [['Ayla', ayla], ['Borin', borinClient]] as const) {
    const e = await eventually(() => c.login(), `${who} to log in again after Redis is back`, 60_000, 250) as Entered;
    assert.is(e.server, 'HS');
    assert.is(c.server, 'HS');
  }
});

test.run();
