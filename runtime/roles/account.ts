/**
 * The account role: accounts and their home server, logins that hand out short-lived login
 * tokens for the home's gateway, and recharge orders delivered exactly once to the player's
 * current server (runtime/services/account.ts). With a `gatewayPort`, game clients register and
 * log in on its login gateway themselves (runtime/services/login-gateway.ts).
 */
import type { ServerConfig } from '../cluster/config.js';
import type { ServerNode } from '../cluster/server-node.js';
import { InvalidParamsError } from '../errors.js';
import { objectArg, pidField } from '../rpc/params.js';
import type { MethodTable } from '../rpc/rpc-server.js';
import { AccountService } from '../services/account.js';
import { accountField, amountField, idField, nameField, passwordField } from '../services/checks.js';
import { LoginGateway } from '../services/login-gateway.js';
import type { RoleRuntime } from './role.js';

export function accountRole(node: ServerNode, server: ServerConfig): RoleRuntime {
  const accounts = new AccountService(node);
  const gateway = server.gatewayPort === undefined ? null : new LoginGateway({ host: server.host, port: server.gatewayPort, log: node.log, limits: server.gatewayLimits ?? node.cluster.gatewayLimits }, accounts);
  return {
    methods: accountMethods(accounts),
    start: async () => {
      await accounts.start();
      await gateway?.listen();
    },
    stop: async () => {
      await gateway?.close();
      await accounts.stop();
    },
    gatewayUrl: gateway ? () => gateway.url : undefined,
  };
}

/** The account server's JSON-RPC methods. */
export function accountMethods(accounts: AccountService): MethodTable {
  return {
    /** Creates an account `{account, password, home?, source?}`: `{account, pid, home}` (`source` as for account.login). */
    'account.register': (arg: unknown) => {
      const args = objectArg(arg, 'account.register');
      const home = args.home === undefined ? undefined : nameField(args, 'account.register', 'home');
      return accounts.register(accountField(args, 'account.register'), passwordField(args, 'account.register'), home, sourceField(args, 'account.register'));
    },
    /**
     * Logs in `{account, password, source?}`: `{pid, home, gateway, token, expiresAt}`; present the
     * token at the home's gateway. `source`: the client's address, when a server logs in for one
     * (the login gateway's per-source limits then apply to it).
     */
    'account.login': (arg: unknown) => {
      const args = objectArg(arg, 'account.login');
      return accounts.login(accountField(args, 'account.login'), passwordField(args, 'account.login'), sourceField(args, 'account.login'));
    },
    /** An account `{account}`: `{account, pid, home, createdAt}`. */
    'account.get': (arg: unknown) => accounts.get(accountField(objectArg(arg, 'account.get'), 'account.get')),
    /** A recharge order `{order, pid, amount}`: delivered once, now or at his next login; a replayed order id adds nothing. */
    'account.recharge': (arg: unknown) => {
      const args = objectArg(arg, 'account.recharge');
      return accounts.recharge(idField(args, 'account.recharge', 'order'), pidField(args, 'account.recharge'), amountField(args, 'account.recharge'));
    },
    /** One order `{order}`: `{order, pid, amount, state, createdAt, deliveredAt}`. */
    'account.order': (arg: unknown) => accounts.order(idField(objectArg(arg, 'account.order'), 'account.order', 'order')),
    /** A player's pending orders `{pid}`, oldest first. */
    'account.pending': (arg: unknown) => accounts.pending(pidField(objectArg(arg, 'account.pending'), 'account.pending')),
  };
}

/** The optional `source` of an account request: a client's address, at most 64 characters. */
function sourceField(args: Record<string, unknown>, method: string): string | undefined {
  const source = args.source;
  if (source === undefined) return undefined;
  if (typeof source !== 'string' || source === '' || source.length > 64) {
    throw new InvalidParamsError(`${method}: "source", when given, must be the client's address (a string of 1 to 64 characters)`);
  }
  return source;
}
