/**
 * The client gateway of a game server: a WebSocket server (`ws`) that speaks the client protocol.
 *
 * Client → server (JSON, one object per message):
 *   {type: 'login', pid, token}   log in at the home server with a login token
 *   {type: 'enter', pid, token}   arrive with a transfer token (from connect_to), passed on unchanged
 *   {type: 'go', server}          ask to be moved to another game server
 *   {type: 'logout'}
 * Server → client:
 *   {type: 'entered', pid, server, home_srvname, go_srvname, epoch, player}
 *   {type: 'connect_to', token, go_srvname, home_srvname, addr}   then the server closes the socket
 *   {type: 'error', request, kind, message}    (a refused request; the connection stays usable)
 *   {type: 'kicked', reason} · {type: 'bye'}
 * Before login or enter, nothing else is accepted.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { KuafuError, RpcProtocolError } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { ClientSession } from './player-host.js';

/** What the gateway asks of the game server. */
export interface GatewayHandlers {
  login(session: ClientSession, pid: number, token: string): Promise<void>;
  enter(session: ClientSession, pid: number, token: string): Promise<void>;
  go(session: ClientSession, server: string): Promise<void>;
  logout(session: ClientSession): Promise<void>;
  /** The connection closed (logged out or not). */
  closed(session: ClientSession): void;
}

const MAX_MESSAGE_BYTES = 64 * 1024;

class Session implements ClientSession {
  pid: number | null = null;
  busy = false;
  constructor(readonly ws: WebSocket) {}
  send(message: Record<string, unknown>): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }
  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }
}

export class Gateway {
  private wss: WebSocketServer | null = null;
  private boundUrl = '';

  constructor(
    private readonly options: { host: string; port: number; log: Logger },
    private readonly handlers: GatewayHandlers,
  ) {}

  /** `ws://host:port` once listening. */
  get url(): string {
    return this.boundUrl;
  }

  async listen(): Promise<string> {
    const wss = new WebSocketServer({ host: this.options.host, port: this.options.port, maxPayload: MAX_MESSAGE_BYTES });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    wss.on('error', (error) => this.options.log.error('gateway error', error));
    wss.on('connection', (ws) => this.accept(ws));
    this.wss = wss;
    this.boundUrl = `ws://${this.options.host}:${(wss.address() as AddressInfo).port}`;
    return this.boundUrl;
  }

  async close(): Promise<void> {
    const wss = this.wss;
    this.wss = null;
    if (!wss) return;
    for (const ws of wss.clients) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }

  private accept(ws: WebSocket): void {
    const session = new Session(ws);
    ws.on('error', () => { /* the close event follows */ });
    ws.on('close', () => this.handlers.closed(session));
    ws.on('message', (data) => void this.receive(session, data.toString()));
  }

  private async receive(session: Session, text: string): Promise<void> {
    let message: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      message = parsed as Record<string, unknown>;
    } catch {
      session.send({ type: 'error', request: null, kind: 'BadMessage', message: 'Every message is one JSON object with a "type": login, enter, go or logout.' });
      return;
    }
    const type = message.type;
    const refuse = (kind: string, text: string) => session.send({ type: 'error', request: type ?? null, kind, message: text });
    if (session.busy) {
      refuse('Busy', 'The previous request is still being handled: wait for its answer.');
      return;
    }
    const pid = message.pid;
    const validPid = typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0;
    session.busy = true;
    try {
      switch (type) {
        case 'login':
        case 'enter':
          if (session.pid !== null) return refuse('BadMessage', 'This connection is already logged in.');
          if (!validPid || typeof message.token !== 'string') {
            return refuse('BadMessage', `${type} needs "pid" (a positive integer) and "token" (a string).`);
          }
          await (type === 'login' ? this.handlers.login(session, pid as number, message.token) : this.handlers.enter(session, pid as number, message.token));
          return;
        case 'go':
        case 'logout':
          if (session.pid === null) return refuse('NotLoggedIn', 'Log in (login) or arrive (enter) first: the gateway accepts only login and transfer tokens before that.');
          if (type === 'go') {
            if (typeof message.server !== 'string') return refuse('BadMessage', 'go needs "server", the name of a game server.');
            await this.handlers.go(session, message.server);
          } else {
            await this.handlers.logout(session);
          }
          return;
        default:
          return refuse('BadMessage', `Unknown message type ${JSON.stringify(type)}: use login, enter, go or logout.`);
      }
    } catch (error) {
      if (error instanceof KuafuError) refuse(error.kind, error.message);
      else if (error instanceof RpcProtocolError) refuse('InvalidParams', error.message);
      else {
        this.options.log.error(`gateway ${String(type)} failed`, error);
        refuse('Internal', `The server failed to handle ${String(type)}; try again, and report it if it keeps failing.`);
      }
    } finally {
      session.busy = false;
    }
  }
}
