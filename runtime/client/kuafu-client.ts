/**
 * KuafuClient: a real game client over WebSocket. It logs in at its home server, follows
 * `connect_to {token, go_srvname, home_srvname, addr}` by itself — passing the token through
 * unchanged — and reports which server it is on. A client whose token is refused, or whose
 * destination cannot be reached, goes back to its home server and logs in there; it never waits
 * forever (every step has a deadline, and the number of hops is bounded). When it gives up, it is
 * on no server, holds no connection, and its error names the step that failed.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { LoginAnswer } from '../services/account.js';

/** What a server says when the player entered it. */
export interface Entered {
  type: 'entered';
  pid: number;
  server: string;
  home_srvname: string;
  go_srvname: string;
  epoch: number;
  player_data: Record<string, unknown>;
  player: { pid: number; name: string; level: number; gold: number; home_srvname: string; go_srvname: string };
}

/** What a server says to send the client on. */
export interface ConnectTo {
  type: 'connect_to';
  token: string;
  go_srvname: string;
  home_srvname: string;
  addr: string;
}

/**
 * Which step of the client's flow failed (`ClientRequestError.step`):
 * - `loginToken`: getting a login token from `loginToken` (for `forAccount`, the account server's
 *   login gateway); `kind` is the source's (`StoreUnavailable`, `BadCredentials`, `ServerUnavailable`…);
 * - `home`: the home server's gateway could not be reached (`ServerUnavailable`), or it kept refusing
 *   the login (`kind` is its answer to the last try: `StoreUnavailable`, `PlayerMoved`, `TokenInvalid`…);
 * - `destination`: the server `enterWith` named could not be reached or refused the token;
 * - `server`: the server the client is on refused a request (`go`, `logout`); he stays there;
 * - `hops`: the move took more than `maxHops` hops (`TooManyHops`).
 */
export type ClientStep = 'loginToken' | 'home' | 'destination' | 'server' | 'hops';

/** A request the server refused, or a step of the client's flow that failed (`step`). */
export class ClientRequestError extends Error {
  constructor(readonly kind: string, message: string, readonly step?: ClientStep) {
    super(message);
    this.name = 'ClientRequestError';
  }
}

export interface KuafuClientOptions {
  pid: number;
  /** The home server's gateway, `ws://host:port`. */
  homeUrl: string;
  /**
   * A fresh login token for each login at home (from the account center). It is asked for before
   * the client connects to its home; a ClientRequestError it throws keeps its kind.
   */
  loginToken: () => string | Promise<string>;
  /** Deadline of each step (connect, answer), ms (default 10 s). */
  stepTimeoutMs?: number;
  /** How many connect_to hops and returns home one move may take (default 8). */
  maxHops?: number;
}

/** What the client emits as `disconnected`: the server it was logged in on closed the connection. */
export interface Disconnected {
  server: string;
  code: number;
}

type Message = Record<string, unknown> & { type?: string };

/** What a connection tells its owner besides the answers it is asked for. */
interface ConnectionEvents {
  /** A message nobody asked for: kicked by another login, or moved by the server (an operator's transfer). */
  unsolicited(connection: Connection, message: Message): void;
  /** The connection closed, whoever closed it. */
  closed(connection: Connection, code: number): void;
}

/** One WebSocket connection with a queue of received messages. */
class Connection {
  readonly ws: WebSocket;
  private readonly queue: Message[] = [];
  private waiter: ((message: Message | null) => void) | null = null;
  closed = false;

  private constructor(ws: WebSocket, events: ConnectionEvents) {
    this.ws = ws;
    ws.on('message', (data) => {
      let message: Message;
      try {
        message = JSON.parse(data.toString()) as Message;
      } catch {
        return;
      }
      if (this.waiter) {
        const waiter = this.waiter;
        this.waiter = null;
        waiter(message);
      } else if (message.type === 'kicked' || message.type === 'connect_to') {
        events.unsolicited(this, message);
      } else {
        this.queue.push(message);
      }
    });
    ws.on('close', (code) => {
      this.closed = true;
      const waiter = this.waiter;
      this.waiter = null;
      waiter?.(null);
      events.closed(this, code);
    });
    ws.on('error', () => { /* the close event follows */ });
  }

  static open(url: string, timeoutMs: number, events: ConnectionEvents): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, perMessageDeflate: false });
      const connection = new Connection(ws, events);
      ws.once('open', () => resolve(connection));
      ws.once('error', (error) => reject(new Error(`cannot connect to ${url}: ${error.message}`)));
      ws.once('close', () => reject(new Error(`cannot connect to ${url}: closed`)));
    });
  }

  send(message: Message): void {
    this.ws.send(JSON.stringify(message));
  }

  /** The next message, or null when the connection closed or the deadline passed. */
  next(timeoutMs: number): Promise<Message | null> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        resolve(null);
      }, timeoutMs);
      this.waiter = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
    });
  }

  close(): void {
    this.ws.close();
  }

  /** Closes at once, without the close handshake. */
  drop(): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.terminate();
  }
}

/** What the account server's login gateway answers a login: the player, his home's gateway and the token to present there. */
export type LoginTicket = LoginAnswer;

const NO_EVENTS: ConnectionEvents = { unsolicited: () => undefined, closed: () => undefined };

/**
 * One request to an account server's login gateway (`ws://host:port`): opens a connection, sends
 * `message`, answers the reply of type `expect` or throws ClientRequestError (the refusal's kind
 * and message, e.g. BadCredentials or TooManyAttempts; ServerUnavailable when the gateway cannot be
 * reached; Timeout when it does not answer).
 */
async function askLoginGateway<T>(url: string, message: Message, expect: string, timeoutMs: number): Promise<T> {
  let connection: Connection;
  try {
    connection = await Connection.open(url, timeoutMs, NO_EVENTS);
  } catch (error) {
    throw new ClientRequestError('ServerUnavailable', `${messageOf(error)}: check that the account server is running and its login gateway listens there.`);
  }
  try {
    connection.send(message);
    const answer = await connection.next(timeoutMs);
    if (answer?.type === expect) {
      const { type: _type, ...rest } = answer;
      return rest as T;
    }
    if (answer?.type === 'error') throw new ClientRequestError(String(answer.kind), String(answer.message));
    throw new ClientRequestError('Timeout', `the login gateway ${url} did not answer ${String(message.type)} within ${timeoutMs} ms`);
  } finally {
    connection.close();
  }
}

/** Creates an account on an account server's login gateway; `home` picks the home game server (by default the server picks one). */
export function registerAccount(url: string, account: string, password: string, options: { home?: string; timeoutMs?: number } = {}): Promise<{ account: string; pid: number; home: string }> {
  const message: Message = { type: 'register', account, password };
  if (options.home !== undefined) message.home = options.home;
  return askLoginGateway(url, message, 'registered', options.timeoutMs ?? 10_000);
}

/** Logs in on an account server's login gateway: the player id, his home's gateway and a login token for it. */
export function loginAccount(url: string, account: string, password: string, options: { timeoutMs?: number } = {}): Promise<LoginTicket> {
  return askLoginGateway(url, { type: 'login', account, password }, 'login_token', options.timeoutMs ?? 10_000);
}

/** The kind an error from a login token source carries (its own, when it has one). */
function kindOf(error: unknown, otherwise: string): string {
  const kind = (error as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' && kind !== '' ? kind : otherwise;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Who answers on a connection, for the client's errors and fallbacks. */
interface Peer {
  step: ClientStep;
  /** "the home gateway ws://…", "GS1 (ws://…)". */
  name: string;
}

/** What went wrong last while the client was settling. */
interface Problem {
  step: ClientStep;
  kind: string;
  text: string;
  /** The peer refused (an `error` message), rather than being unreachable or silent. */
  refused: boolean;
}

/**
 * A game client. Its state says what happened: `server` names the server it is logged in on, and
 * is null whenever it is not (before login, after logout or close, after the connection closed or
 * it was kicked, during a move, after a failed login, move or enter). A failure leaves no
 * connection open: a failed `login()` or move closes whatever the client had opened, and its
 * ClientRequestError names the step that failed (`step`) and what was said there (`kind`). Only a
 * refused `go` leaves the client where it was, logged in.
 *
 * Events: `entered` (Entered), `connect_to` (ConnectTo), `fallback` (a sentence: why the client is
 * going back to its home), `kicked` (the server's message), `disconnected` (Disconnected: the
 * server it was logged in on closed the connection), `error` (a move the server started by itself
 * failed; emitted only when someone listens).
 */
export class KuafuClient extends EventEmitter {
  /**
   * A client for an account: logs in on the account server's login gateway `accountUrl` to learn
   * the player and his home, and again for every later login at home (each token is single-use).
   * Call `login()` next.
   */
  static async forAccount(
    accountUrl: string, account: string, password: string, options: Omit<KuafuClientOptions, 'pid' | 'homeUrl' | 'loginToken'> = {},
  ): Promise<KuafuClient> {
    const timeoutMs = options.stepTimeoutMs ?? 10_000;
    let ticket: LoginTicket | null = await loginAccount(accountUrl, account, password, { timeoutMs });
    return new KuafuClient({
      ...options,
      pid: ticket.pid,
      homeUrl: ticket.gateway,
      loginToken: async () => {
        const first = ticket;
        ticket = null;
        if (first && first.expiresAt > Date.now() + 1000) return first.token;
        try {
          return (await loginAccount(accountUrl, account, password, { timeoutMs })).token;
        } catch (error) {
          const kind = kindOf(error, 'ServerUnavailable');
          throw new ClientRequestError(kind, `the account login gateway ${accountUrl}: ${messageOf(error)}`, 'loginToken');
        }
      },
    });
  }

  /** The server the client is logged in on, or null whenever it is not. */
  server: string | null = null;
  /** The last `entered` message (kept after the client leaves that server). */
  last: Entered | null = null;
  private connection: Connection | null = null;
  private readonly stepTimeoutMs: number;
  private readonly maxHops: number;
  private readonly events: ConnectionEvents = {
    unsolicited: (connection, message) => this.unsolicited(connection, message),
    closed: (connection, code) => this.closedByPeer(connection, code),
  };

  constructor(private readonly options: KuafuClientOptions) {
    super();
    this.stepTimeoutMs = options.stepTimeoutMs ?? 10_000;
    this.maxHops = options.maxHops ?? 8;
  }

  get pid(): number {
    return this.options.pid;
  }

  /**
   * Logs in at home and follows wherever the home sends the client; resolves once entered. A
   * connection the client still has is closed first.
   */
  login(): Promise<Entered> {
    this.detach('close');
    return this.settle(null, { step: 'home', name: `the home gateway ${this.options.homeUrl}` });
  }

  /** Asks to be moved to `server`; resolves once entered there (or wherever the flow ended). */
  async go(server: string): Promise<Entered> {
    const connection = this.requireConnection();
    connection.send({ type: 'go', server });
    return this.settle(connection, { step: 'server', name: this.server ?? 'the server' });
  }

  /** Logs out and closes the connection. */
  async logout(): Promise<void> {
    const connection = this.requireConnection();
    const on = this.server ?? 'the server';
    connection.send({ type: 'logout' });
    const answer = await connection.next(this.stepTimeoutMs);
    if (this.connection === connection) this.detach('close');
    else connection.close();
    if (answer?.type === 'error') throw new ClientRequestError(String(answer.kind), `${on} refused the logout: ${String(answer.message)}`, 'server');
  }

  /** Sends a raw message on the current connection (tests use it to send what a broken client would). */
  sendRaw(message: Record<string, unknown> | string): void {
    const connection = this.requireConnection();
    connection.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next message on the current connection (or null after the deadline or a close). */
  nextMessage(): Promise<Record<string, unknown> | null> {
    return this.requireConnection().next(this.stepTimeoutMs);
  }

  /** Closes the connection without logging out (as a crashed client would). */
  close(): void {
    this.detach('close');
  }

  /** Opens a connection to `url` and enters with a transfer token, as the client does after connect_to. */
  async enterWith(url: string, token: string): Promise<Entered> {
    this.detach('close');
    let connection: Connection;
    try {
      connection = await this.attach(url);
    } catch (error) {
      throw new ClientRequestError('ServerUnavailable', `Player ${this.pid} cannot enter: ${messageOf(error)}.`, 'destination');
    }
    connection.send({ type: 'enter', pid: this.pid, token });
    return this.settle(connection, { step: 'destination', name: url }, { noFallback: true });
  }

  private requireConnection(): Connection {
    if (!this.connection || this.connection.closed) throw new ClientRequestError('NotLoggedIn', `client ${this.pid} is not connected: log in first`);
    return this.connection;
  }

  /** Opens a connection to `url`; it becomes the client's connection. */
  private async attach(url: string): Promise<Connection> {
    const connection = await Connection.open(url, this.stepTimeoutMs, this.events);
    this.connection = connection;
    return connection;
  }

  /** Lets go of the client's connection, if any: from now on it is on no server. */
  private detach(how: 'close' | 'drop'): void {
    const connection = this.connection;
    this.connection = null;
    this.server = null;
    if (how === 'close') connection?.close();
    else connection?.drop();
  }

  private unsolicited(connection: Connection, message: Message): void {
    if (connection !== this.connection) return; // a connection the client has let go of
    if (message.type === 'kicked') {
      this.detach('drop'); // the server closes it
      this.emit('kicked', message);
      return;
    }
    // The server sent the player on by itself: follow, as after a go.
    this.moving = this.settle(connection, { step: 'server', name: this.server ?? 'the server' }, {}, message as unknown as ConnectTo).catch((error: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', error);
      return null;
    });
  }

  private closedByPeer(connection: Connection, code: number): void {
    if (connection !== this.connection) return; // the client let go of it first
    const server = this.server;
    this.connection = null;
    this.server = null;
    if (server !== null) this.emit('disconnected', { server, code } satisfies Disconnected);
  }

  /** A move the server started by itself, while the client follows it (null when none). */
  private moving: Promise<Entered | null> | null = null;

  /**
   * Resolves once a move the server started by itself (an operator's transfer) has ended: with the
   * `entered` of the server the client is on, or null when it is on none (the move failed).
   */
  async settled(): Promise<Entered | null> {
    await this.moving;
    return this.server !== null ? this.last : null;
  }

  /**
   * Runs the client side of the flows until the player has entered a server: answers connect_to
   * by entering the named server with the token, and falls back to logging in at home when a
   * token is refused or a server cannot be reached. `start` is the connection a request was just
   * sent on (null: log in at home), `peer` who answers on it. Whatever fails, the client is left
   * on no server with no connection — except after a refused `go`, which leaves it where it was.
   */
  private async settle(start: Connection | null, peer: Peer, flags: { noFallback?: boolean } = {}, firstMove?: ConnectTo): Promise<Entered> {
    let connection = start;
    let at = peer;
    let problem: Problem | null = null;
    let move = firstMove;
    let stayed = false;
    let homeRefusals = 0;
    try {
      for (let hop = 0; hop <= this.maxHops; hop++) {
        if (move) {
          const next = move;
          move = undefined;
          this.emit('connect_to', next);
          // The server is closing this connection anyway: it is dropped without a close handshake.
          this.detach('drop');
          connection = null;
          at = { step: 'destination', name: `${next.go_srvname} (${next.addr})` };
          try {
            connection = await this.attach(next.addr);
            connection.send({ type: 'enter', pid: this.pid, token: next.token });
          } catch (error) {
            problem = { step: 'destination', kind: 'ServerUnavailable', text: `the destination ${next.go_srvname} is unreachable: ${messageOf(error)}`, refused: false };
            this.emit('fallback', problem.text);
          }
        }
        if (!connection) {
          connection = await this.loginAtHome(problem);
          at = { step: 'home', name: `the home gateway ${this.options.homeUrl}` };
        }
        const message = await connection.next(this.stepTimeoutMs);
        if (message?.type === 'entered' && connection === this.connection) {
          const entered = message as unknown as Entered;
          this.server = entered.server;
          this.last = entered;
          this.emit('entered', entered);
          return entered;
        }
        if (message?.type === 'connect_to') {
          move = message as unknown as ConnectTo;
          continue;
        }
        if (message?.type === 'error') {
          const kind = String(message.kind);
          const request = String(message.request);
          // A refused move (go) leaves the player where he is: report it.
          if (message.request === 'go') {
            stayed = true;
            throw new ClientRequestError(kind, String(message.message), 'server');
          }
          problem = { step: at.step, kind, text: `${at.name} refused the ${request}: ${kind}: ${String(message.message)}`, refused: true };
          if (at.step === 'home') homeRefusals++;
        } else if (message === null || message.type === 'entered') {
          const closed = connection.closed || connection !== this.connection;
          problem = {
            step: at.step,
            kind: closed ? 'ServerUnavailable' : 'Timeout',
            text: `${at.name} ${closed ? 'closed the connection' : `did not answer within ${this.stepTimeoutMs} ms`}`,
            refused: false,
          };
        } else {
          problem = { step: at.step, kind: 'BadMessage', text: `${at.name} answered ${JSON.stringify(message)}`, refused: false };
        }
        if (flags.noFallback) throw new ClientRequestError(problem.kind, `Player ${this.pid} cannot enter: ${problem.text}`, problem.step);
        this.detach('drop');
        connection = null;
        if (hop === this.maxHops) break; // no try left: it does not go back home
        this.emit('fallback', problem.text);
        // Back off a little before logging in again (25 ms, 50 ms, … up to 1 s).
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** hop)));
      }
      if (!move && problem?.step === 'home' && problem.refused) {
        // The home refused the login at every try: its last refusal says why.
        throw new ClientRequestError(problem.kind, `Player ${this.pid} cannot log in: ${problem.text} (refused ${homeRefusals} time${homeRefusals === 1 ? '' : 's'}; the client gave up after ${this.maxHops + 1} tries)`, 'home');
      }
      const last = move ? `sent on to ${move.go_srvname} once more` : problem?.text ?? 'none';
      throw new ClientRequestError('TooManyHops', `Player ${this.pid} did not settle on a server after ${this.maxHops} hops; last: ${last}`, 'hops');
    } catch (error) {
      if (!stayed) this.detach('drop');
      throw error;
    }
  }

  /**
   * Asks for a login token, then connects to the home's gateway and sends the login (the token
   * first: a failing token source leaves nothing open). `after` is why the client came back.
   */
  private async loginAtHome(after: Problem | null): Promise<Connection> {
    const why = after ? ` (it came back home because ${after.text})` : '';
    let token: string;
    try {
      token = await this.options.loginToken();
    } catch (error) {
      const kind = kindOf(error, 'LoginTokenUnavailable');
      throw new ClientRequestError(kind, `Player ${this.pid} cannot log in: getting a login token failed (${kind}): ${messageOf(error)}${why}`, 'loginToken');
    }
    let connection: Connection;
    try {
      connection = await this.attach(this.options.homeUrl);
    } catch (error) {
      throw new ClientRequestError('ServerUnavailable', `Player ${this.pid} cannot log in: the home gateway ${this.options.homeUrl} is unreachable: ${messageOf(error)}${why}`, 'home');
    }
    connection.send({ type: 'login', pid: this.pid, token });
    return connection;
  }
}
