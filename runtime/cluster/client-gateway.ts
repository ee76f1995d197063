/**
 * What every client-facing WebSocket server of kuafu shares (the game servers' gateway, the
 * account server's login gateway): JSON messages, one object with a `type` each; one request at a
 * time per connection; a refused request answered `{type: 'error', request, kind, message}` with
 * the connection still usable; a failure that is not the client's logged here and reported to him
 * as `Internal` without the details.
 *
 * Each gateway holds back what a client could make it keep (its GatewayLimits, from the cluster
 * config): at most `maxConnections` at once (one more is answered HTTP 503), the HTTP upgrade
 * within `headersTimeoutMs`/`requestTimeoutMs`, and a connection that has not logged in within
 * `loginTimeoutMs` of opening is told so and closed (code 4001).
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket, WebSocketServer } from 'ws';
import { KuafuError, RpcProtocolError } from '../errors.js';
import { closeWebSocket, connectionCount, listenWebSocket } from '../util/listening.js';
import type { Logger } from '../util/log.js';
import { DEFAULT_GATEWAY_LIMITS, type GatewayLimits } from './config.js';

/** The close code of a connection that did not log in in time (the RPC port's authentication timeout uses it too). */
export const LOGIN_TIMEOUT_CLOSE_CODE = 4001;

/** One client connection. */
export class ClientConnection {
  /** True while one of its requests is being handled. */
  busy = false;
  /**
   * @param source where it comes from: the peer's IP address (IPv4-mapped IPv6 as IPv4; an IPv6
   *   address as its /64 network, which one client may hold all of), '' when unknown
   */
  constructor(readonly ws: WebSocket, readonly source = '') {}
  send(message: Record<string, unknown>): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }
  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }
}

/** A refusal the handler reports to the client: `kind` and a message that says what to do. */
export class ClientRefusal extends Error {
  constructor(readonly kind: string, message: string) {
    super(message);
  }
}

export interface ClientGatewayOptions<C extends ClientConnection> {
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
  /** What the log calls this gateway ("gateway", "login gateway"). */
  label: string;
  /** The message types it takes, as the client should read them ("login, enter, go or logout"). */
  types: string;
  /** Largest message accepted, bytes. */
  maxMessageBytes: number;
  /** What this gateway holds back (default: DEFAULT_GATEWAY_LIMITS). */
  limits?: GatewayLimits;
  /** Makes the state of a new connection; `source` is the client's address (see ClientConnection). */
  connection(ws: WebSocket, source: string): C;
  /** Whether the connection has logged in (checked at its login deadline). */
  loggedIn(connection: C): boolean;
  /** Handles one message (already parsed: an object); throws ClientRefusal, a KuafuError or an InvalidParamsError to refuse it. */
  handle(connection: C, type: unknown, message: Record<string, unknown>): Promise<void>;
  /** The connection closed. */
  closed?(connection: C): void;
}

export class ClientGateway<C extends ClientConnection> {
  private wss: WebSocketServer | null = null;
  private boundUrl = '';

  /** What this gateway holds back: `options.limits`, or the defaults; a change applies from the next listen(). */
  limits: GatewayLimits;

  constructor(private readonly options: ClientGatewayOptions<C>) {
    this.limits = options.limits ?? { ...DEFAULT_GATEWAY_LIMITS };
  }

  /** `ws://host:port` once listening. */
  get url(): string {
    return this.boundUrl;
  }

  /** Connections held now, open or still handshaking. */
  get connections(): number {
    return this.wss ? connectionCount(this.wss) : 0;
  }


  async listen(): Promise<string> {
    const { host, port, maxMessageBytes, log, label } = this.options;
    const limits = this.limits;
    const { wss, url } = await listenWebSocket({
      host, port, maxPayload: maxMessageBytes,
      limits: {
        maxConnections: limits.maxConnections, headersTimeoutMs: limits.headersTimeoutMs, requestTimeoutMs: limits.requestTimeoutMs,
        connectionsCheckingIntervalMs: limits.connectionsCheckingIntervalMs,
      },
    }, log, label);
    wss.on('connection', (ws, request: IncomingMessage) => this.accept(ws, request));
    this.wss = wss;
    this.boundUrl = url;
    return url;
  }

  async close(): Promise<void> {
    const wss = this.wss;
    this.wss = null;
    if (wss) await closeWebSocket(wss);
  }

  private accept(ws: WebSocket, request: IncomingMessage): void {
    let connection: C;
    try {
      connection = this.options.connection(ws, sourceOf(request.socket.remoteAddress));
    } catch (error) {
      this.options.log.error(`${this.options.label}: accepting a connection failed`, error);
      ws.terminate();
      return;
    }
    const deadline = setTimeout(() => this.loginDeadline(connection), this.limits.loginTimeoutMs);
    ws.on('error', () => { /* the close event follows */ });
    ws.on('close', () => {
      clearTimeout(deadline);
      this.deadlinePassed.delete(connection);
      try {
        this.options.closed?.(connection);
      } catch (error) {
        this.options.log.error(`${this.options.label}: closing a connection failed`, error);
      }
    });
    ws.on('message', (data) => void this.receive(connection, data.toString()));
  }

  /** Connections whose login deadline passed while a request of theirs was being handled. */
  private readonly deadlinePassed = new Set<C>();

  /** The login deadline of `connection`: closed unless it has logged in (a request under way is let finish first). */
  private loginDeadline(connection: C): void {
    if (connection.busy) {
      this.deadlinePassed.add(connection);
      return;
    }
    if (this.options.loggedIn(connection)) return;
    const seconds = this.limits.loginTimeoutMs / 1000;
    connection.send({
      type: 'error', request: null, kind: 'Timeout',
      message: `This connection did not log in within ${seconds} s of opening, so it is closed: connect again and log in at once.`,
    });
    connection.close(LOGIN_TIMEOUT_CLOSE_CODE, 'login timeout');
  }

  private async receive(connection: C, text: string): Promise<void> {
    let message: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      message = parsed as Record<string, unknown>;
    } catch {
      connection.send({ type: 'error', request: null, kind: 'BadMessage', message: `Every message is one JSON object with a "type": ${this.options.types}.` });
      return;
    }
    const type = message.type;
    const refuse = (kind: string, text: string) => connection.send({ type: 'error', request: type ?? null, kind, message: text });
    if (connection.busy) {
      refuse('Busy', 'The previous request is still being handled: wait for its answer.');
      return;
    }
    connection.busy = true;
    try {
      await this.options.handle(connection, type, message);
    } catch (error) {
      if (error instanceof ClientRefusal || error instanceof KuafuError) refuse(error.kind, error.message);
      else if (error instanceof RpcProtocolError) refuse('InvalidParams', error.message);
      else {
        this.options.log.error(`${this.options.label} ${String(type)} failed`, error);
        refuse('Internal', `The server failed to handle ${String(type)}; try again, and report it if it keeps failing.`);
      }
    } finally {
      connection.busy = false;
      if (this.deadlinePassed.delete(connection)) this.loginDeadline(connection);
    }
  }
}

/**
 * The source of a connection, as limits count it: an IPv4 address as it is (also when it came
 * IPv4-mapped, `::ffff:1.2.3.4`), an IPv6 address as its /64 network (`2001:db8:1:2::/64`).
 */
export function sourceOf(address: string | undefined): string {
  if (!address) return '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  // Expand '::' to the missing groups, then keep the first four.
  const [head = '', tail = ''] = address.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = address.includes('::') ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => (g || '0').toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
