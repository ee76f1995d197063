/**
 * What every client-facing WebSocket server of kuafu shares (the game servers' gateway, the
 * account server's login gateway): JSON messages, one object with a `type` each; one request at a
 * time per connection; a refused request answered `{type: 'error', request, kind, message}` with
 * the connection still usable; a failure that is not the client's logged here and reported to him
 * as `Internal` without the details.
 */
import type { WebSocket, WebSocketServer } from 'ws';
import { KuafuError, RpcProtocolError } from '../errors.js';
import { closeWebSocket, listenWebSocket } from '../util/listening.js';
import type { Logger } from '../util/log.js';

/** One client connection. */
export class ClientConnection {
  /** True while one of its requests is being handled. */
  busy = false;
  constructor(readonly ws: WebSocket) {}
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
  /** Makes the state of a new connection. */
  connection(ws: WebSocket): C;
  /** Handles one message (already parsed: an object); throws ClientRefusal, a KuafuError or an InvalidParamsError to refuse it. */
  handle(connection: C, type: unknown, message: Record<string, unknown>): Promise<void>;
  /** The connection closed. */
  closed?(connection: C): void;
}

export class ClientGateway<C extends ClientConnection> {
  private wss: WebSocketServer | null = null;
  private boundUrl = '';

  constructor(private readonly options: ClientGatewayOptions<C>) {}

  /** `ws://host:port` once listening. */
  get url(): string {
    return this.boundUrl;
  }

  async listen(): Promise<string> {
    const { host, port, maxMessageBytes, log, label } = this.options;
    const { wss, url } = await listenWebSocket({ host, port, maxPayload: maxMessageBytes }, log, label);
    wss.on('connection', (ws) => this.accept(ws));
    this.wss = wss;
    this.boundUrl = url;
    return url;
  }

  async close(): Promise<void> {
    const wss = this.wss;
    this.wss = null;
    if (wss) await closeWebSocket(wss);
  }

  private accept(ws: WebSocket): void {
    const connection = this.options.connection(ws);
    ws.on('error', () => { /* the close event follows */ });
    ws.on('close', () => this.options.closed?.(connection));
    ws.on('message', (data) => void this.receive(connection, data.toString()));
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
    }
  }
}
