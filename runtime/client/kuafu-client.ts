/**
 * KuafuClient: a real game client over WebSocket. It logs in at its home server, follows
 * `connect_to {token, go_srvname, home_srvname, addr}` by itself — passing the token through
 * unchanged — and reports which server it is on. A client whose token is refused, or whose
 * destination cannot be reached, goes back to its home server and logs in there; it never waits
 * forever (every step has a deadline, and the number of hops is bounded).
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

/** A request the server refused. */
export class ClientRequestError extends Error {
  constructor(readonly kind: string, message: string) {
    super(message);
    this.name = 'ClientRequestError';
  }
}

export interface KuafuClientOptions {
  pid: number;
  /** The home server's gateway, `ws://host:port`. */
  homeUrl: string;
  /** A fresh login token for each login at home (from the account center). */
  loginToken: () => string | Promise<string>;
  /** Deadline of each step (connect, answer), ms (default 10 s). */
  stepTimeoutMs?: number;
  /** How many connect_to hops and returns home one move may take (default 8). */
  maxHops?: number;
}

type Message = Record<string, unknown> & { type?: string };

/** One WebSocket connection with a queue of received messages. */
class Connection {
  readonly ws: WebSocket;
  private readonly queue: Message[] = [];
  private waiter: ((message: Message | null) => void) | null = null;
  closed = false;

  private constructor(ws: WebSocket, private readonly onUnsolicited: (message: Message) => void) {
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
        // Not asked for: kicked by another login, or moved by the server (an operator's transfer).
        this.onUnsolicited(message);
      } else {
        this.queue.push(message);
      }
    });
    ws.on('close', () => {
      this.closed = true;
      const waiter = this.waiter;
      this.waiter = null;
      waiter?.(null);
    });
    ws.on('error', () => { /* the close event follows */ });
  }

  static open(url: string, timeoutMs: number, onUnsolicited: (message: Message) => void): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, perMessageDeflate: false });
      const connection = new Connection(ws, onUnsolicited);
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

/**
 * One request to an account server's login gateway (`ws://host:port`): opens a connection, sends
 * `message`, answers the reply of type `expect` or throws ClientRequestError (the refusal's kind
 * and message, e.g. BadCredentials or TooManyAttempts).
 */
async function askLoginGateway<T>(url: string, message: Message, expect: string, timeoutMs: number): Promise<T> {
  const connection = await Connection.open(url, timeoutMs, () => undefined);
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
        return (await loginAccount(accountUrl, account, password, { timeoutMs })).token;
      },
    });
  }

  /** The server the client is on, or null when it is not logged in. */
  server: string | null = null;
  /** The last `entered` message. */
  last: Entered | null = null;
  private connection: Connection | null = null;
  private readonly stepTimeoutMs: number;
  private readonly maxHops: number;

  constructor(private readonly options: KuafuClientOptions) {
    super();
    this.stepTimeoutMs = options.stepTimeoutMs ?? 10_000;
    this.maxHops = options.maxHops ?? 8;
  }

  get pid(): number {
    return this.options.pid;
  }

  /** Logs in at home and follows wherever the home sends the client; resolves once entered. */
  login(): Promise<Entered> {
    return this.settle(null);
  }

  /** Asks to be moved to `server`; resolves once entered there (or wherever the flow ended). */
  async go(server: string): Promise<Entered> {
    const connection = this.requireConnection();
    connection.send({ type: 'go', server });
    return this.settle(connection);
  }

  /** Logs out and closes the connection. */
  async logout(): Promise<void> {
    const connection = this.requireConnection();
    connection.send({ type: 'logout' });
    const answer = await connection.next(this.stepTimeoutMs);
    connection.close();
    this.connection = null;
    this.server = null;
    if (answer?.type === 'error') throw new ClientRequestError(String(answer.kind), String(answer.message));
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
    this.connection?.close();
    this.connection = null;
    this.server = null;
  }

  /** Opens a connection to `url` and enters with a transfer token, as the client does after connect_to. */
  async enterWith(url: string, token: string): Promise<Entered> {
    this.close();
    this.connection = await this.open(url);
    this.connection.send({ type: 'enter', pid: this.pid, token });
    return this.settle(this.connection, { noFallback: true });
  }

  private requireConnection(): Connection {
    if (!this.connection || this.connection.closed) throw new Error(`client ${this.pid} is not connected: log in first`);
    return this.connection;
  }

  private open(url: string): Promise<Connection> {
    return Connection.open(url, this.stepTimeoutMs, (message) => {
      this.server = null;
      if (message.type === 'kicked') {
        this.emit('kicked', message);
        return;
      }
      // The server sent the player on by itself: follow, as after a go.
      this.moving = this.settle(null, {}, message as unknown as ConnectTo).catch((error: Error) => {
        this.emit('error', error);
        return null;
      });
    });
  }

  /** A move the server started by itself, while the client follows it (null when none). */
  private moving: Promise<Entered | null> | null = null;

  /** Resolves once a move the server started by itself (an operator's transfer) has ended. */
  async settled(): Promise<Entered | null> {
    return (await this.moving) ?? this.last;
  }

  /**
   * Runs the client side of the flows until the player has entered a server: answers connect_to
   * by entering the named server with the token, and falls back to logging in at home when a
   * token is refused or a server cannot be reached.
   */
  private async settle(start: Connection | null, flags: { noFallback?: boolean } = {}, firstMove?: ConnectTo): Promise<Entered> {
    let connection = start;
    let problem = '';
    let move = firstMove;
    for (let hop = 0; hop <= this.maxHops; hop++) {
      if (move) {
        const next = move;
        move = undefined;
        this.emit('connect_to', next);
        this.connection?.drop();
        try {
          connection = await this.open(next.addr);
          this.connection = connection;
          connection.send({ type: 'enter', pid: this.pid, token: next.token });
        } catch (error) {
          problem = `destination ${next.go_srvname} unreachable: ${(error as Error).message}`;
          this.emit('fallback', problem);
          connection = null;
        }
      }
      if (!connection) {
        // Log in at home, with the token in hand before connecting (the gateway closes a
        // connection that does not log in within its loginTimeoutMs).
        try {
          const token = await this.options.loginToken();
          connection = await this.open(this.options.homeUrl);
          this.connection = connection;
          connection.send({ type: 'login', pid: this.pid, token });
        } catch (error) {
          throw new ClientRequestError('ServerUnavailable', `Home server unreachable at ${this.options.homeUrl}: ${(error as Error).message}`);
        }
      }
      const message = await connection.next(this.stepTimeoutMs);
      if (message?.type === 'entered') {
        const entered = message as unknown as Entered;
        this.server = entered.server;
        this.last = entered;
        this.emit('entered', entered);
        return entered;
      }
      if (message?.type === 'connect_to') {
        // The server is closing this connection anyway: it is dropped without a close handshake.
        move = message as unknown as ConnectTo;
        continue;
      }
      if (message?.type === 'error') {
        const refusal = new ClientRequestError(String(message.kind), String(message.message));
        // A refused move (go) leaves the player where he is: report it.
        if (message.request === 'go' || flags.noFallback) throw refusal;
        problem = `${message.kind}: ${message.message}`;
      } else {
        problem = message === null ? 'no answer (closed or timed out)' : `unexpected ${JSON.stringify(message)}`;
      }
      if (flags.noFallback) throw new ClientRequestError('ServerUnavailable', problem);
      this.emit('fallback', problem);
      connection.close();
      connection = null;
      // Back off a little before logging in again (25 ms, 50 ms, … up to 1 s).
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** hop)));
    }
    throw new ClientRequestError('TooManyHops', `Player ${this.pid} did not settle on a server after ${this.maxHops} hops; last problem: ${problem}`);
  }
}
