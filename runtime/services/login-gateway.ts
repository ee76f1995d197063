/**
 * The account server's login gateway: where game clients start (DESIGN §4, the client flow). A
 * WebSocket server (`gatewayPort` of an account server) that speaks JSON, one object per message:
 *
 * Client → server:
 *   {type: 'register', account, password, home?}   create an account (home: a game server; by default one is picked)
 *   {type: 'login', account, password}             log in
 * Server → client:
 *   {type: 'registered', account, pid, home}
 *   {type: 'login_token', account, pid, home, gateway, token, expiresAt}
 *       then connect to `gateway` (the home's client gateway) and send {type: 'login', pid, token}
 *   {type: 'error', request, kind, message}        a refused request; the connection stays usable
 *
 * One request at a time per connection. What one source address may do is limited (the config's
 * loginLimits: logins a minute, failed logins of one account, registrations an hour, hashes at once;
 * past a limit: TooManyAttempts, before any work), an unknown account is answered as a wrong
 * password after the same work, and the store keeps only a scrypt hash of each password
 * (services/account.ts).
 */
import type { Logger } from '../util/log.js';
import type { GatewayLimits } from '../cluster/config.js';
import { ClientConnection, ClientGateway, ClientRefusal } from '../cluster/client-gateway.js';
import { accountField, nameField, passwordField } from './checks.js';
import type { AccountService } from './account.js';

const MAX_MESSAGE_BYTES = 4 * 1024;
/** The source of a connection whose address is not known (it closed already): they all count as one. */
const UNKNOWN_SOURCE = 'unknown';

class LoginConnection extends ClientConnection {
  /** Answered a login_token (its login deadline is met). */
  loggedIn = false;
}

export class LoginGateway extends ClientGateway<LoginConnection> {
  constructor(options: { host: string; port: number; log: Logger; limits?: GatewayLimits }, accounts: AccountService) {
    super({
      ...options,
      label: 'login gateway',
      types: 'register or login',
      maxMessageBytes: MAX_MESSAGE_BYTES,
      connection: (ws, source) => new LoginConnection(ws, source),
      loggedIn: (connection) => connection.loggedIn,
      handle: async (connection, type, message) => {
        switch (type) {
          case 'register': {
            const home = message.home === undefined ? undefined : nameField(message, 'register', 'home');
            const made = await accounts.register(accountField(message, 'register'), passwordField(message, 'register'), home, connection.source || UNKNOWN_SOURCE);
            connection.send({ type: 'registered', ...made });
            return;
          }
          case 'login': {
            const answer = await accounts.login(accountField(message, 'login'), passwordField(message, 'login'), connection.source || UNKNOWN_SOURCE);
            connection.loggedIn = true;
            connection.send({ type: 'login_token', ...answer });
            return;
          }
          default:
            throw new ClientRefusal('BadMessage', `Unknown message type ${JSON.stringify(type)}: use register or login.`);
        }
      },
    });
  }
}
