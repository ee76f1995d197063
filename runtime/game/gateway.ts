/**
 * The client gateway of a game server: a WebSocket server (`ws`) that speaks the client protocol.
 *
 * Client → server (JSON, one object per message):
 *   {type: 'login', pid, token}   log in at the home server with a login token
 *   {type: 'enter', pid, token}   arrive with a transfer token (from connect_to), passed on unchanged
 *   {type: 'go', server}          ask to be moved to another game server (of the cluster config: any other name is NotFound)
 *   {type: 'logout'}
 * Server → client:
 *   {type: 'entered', pid, server, home_srvname, go_srvname, epoch, player}
 *   {type: 'connect_to', token, go_srvname, home_srvname, addr}   then the server closes the socket
 *   {type: 'error', request, kind, message}    (a refused request; the connection stays usable)
 *   {type: 'kicked', reason} · {type: 'bye'}
 * Before login or enter, nothing else is accepted; a connection that has not logged in (or entered)
 * within the gateway's `loginTimeoutMs` is closed (code 4001), and the gateway holds at most
 * `maxConnections` (the server's GatewayLimits, runtime/cluster/client-gateway.ts).
 */
import type { WebSocket } from 'ws';
import type { Logger } from '../util/log.js';
import { ClientConnection, ClientGateway, ClientRefusal } from '../cluster/client-gateway.js';
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

class Session extends ClientConnection implements ClientSession {
  pid: number | null = null;
}

export class Gateway extends ClientGateway<Session> {
  constructor(options: { host: string; port: number; log: Logger }, private readonly handlers: GatewayHandlers) {
    super({
      ...options,
      label: 'gateway',
      types: 'login, enter, go or logout',
      maxMessageBytes: MAX_MESSAGE_BYTES,
      connection: (ws: WebSocket, source: string) => new Session(ws, source),
      loggedIn: (session) => session.pid !== null,
      handle: (session, type, message) => this.handle(session, type, message),
      closed: (session) => handlers.closed(session),
    });
  }

  private async handle(session: Session, type: unknown, message: Record<string, unknown>): Promise<void> {
    const pid = message.pid;
    const validPid = typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0;
    switch (type) {
      case 'login':
      case 'enter':
        if (session.pid !== null) throw new ClientRefusal('BadMessage', 'This connection is already logged in.');
        if (!validPid || typeof message.token !== 'string') {
          throw new ClientRefusal('BadMessage', `${type} needs "pid" (a positive integer) and "token" (a string).`);
        }
        await (type === 'login' ? this.handlers.login(session, pid as number, message.token) : this.handlers.enter(session, pid as number, message.token));
        return;
      case 'go':
      case 'logout':
        if (session.pid === null) throw new ClientRefusal('NotLoggedIn', 'Log in (login) or arrive (enter) first: the gateway accepts only login and transfer tokens before that.');
        if (type === 'go') {
          if (typeof message.server !== 'string') throw new ClientRefusal('BadMessage', 'go needs "server", the name of a game server.');
          await this.handlers.go(session, message.server);
        } else {
          await this.handlers.logout(session);
        }
        return;
      default:
        throw new ClientRefusal('BadMessage', `Unknown message type ${JSON.stringify(type)}: use login, enter, go or logout.`);
    }
  }
}
