/**
 * Every error kind kuafu can report, in one table: its JSON-RPC code, its class and the sentence
 * that tells the user what to do. Callers catch classes; the wire carries `data.kind`.
 *
 * Domain errors travel as JSON-RPC errors with codes in -32000..-32099 and `data.kind`;
 * `fromWire` turns them back into the same class on the caller's side.
 */

/** The kinds of domain error, each with its JSON-RPC code. */
export const ERROR_CODES = {
  PlayerOffline: -32000,
  StaleOwner: -32001,
  TokenInvalid: -32002,
  TokenExpired: -32003,
  TokenUsed: -32004,
  TokenWrongPlayer: -32005,
  TokenWrongDestination: -32006,
  ValueType: -32007,
  NotExported: -32008,
  Timeout: -32009,
  ServerUnavailable: -32010,
  Unauthenticated: -32011,
  ReadOnlyPlayer: -32012,
  StoreUnavailable: -32013,
  PlayerMoved: -32014,
  InsufficientResource: -32015,
  NotFound: -32016,
  Config: -32017,
  Script: -32018,
  InvalidArgument: -32019,
  WrongServer: -32030,
  AlreadyExists: -32031,
  BadCredentials: -32032,
  RequestConflict: -32033,
  TooManyAttempts: -32034,
  OutcomeUnknown: -32035,
  LimitExceeded: -32036,
  Internal: -32099,
} as const;

export type ErrorKind = keyof typeof ERROR_CODES;

/** Extra facts an error carries on the wire (`data`), besides its kind. */
export type ErrorDetails = Record<string, string | number | boolean | null>;

/** The base of every kuafu domain error. */
export class KuafuError extends Error {
  readonly kind: ErrorKind;
  readonly code: number;
  readonly details: ErrorDetails;
  constructor(kind: ErrorKind, message: string, details: ErrorDetails = {}) {
    super(message);
    this.kind = kind;
    this.code = ERROR_CODES[kind];
    this.details = details;
    this.name = `${kind}Error`;
  }
}

/** The player is not online on any server. */
export class PlayerOfflineError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('PlayerOffline', message, details); }
}
/** A save or claim carried an epoch that is no longer the player's current one: another server owns him now. */
export class StaleOwnerError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('StaleOwner', message, details); }
}
/** A transfer or login token was never issued or does not match. */
export class TokenInvalidError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('TokenInvalid', message, details); }
}
/** A token was presented after its time to live. */
export class TokenExpiredError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('TokenExpired', message, details); }
}
/** A token was presented a second time. */
export class TokenUsedError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('TokenUsed', message, details); }
}
/** A token was presented for another player than the one it was issued for. */
export class TokenWrongPlayerError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('TokenWrongPlayer', message, details); }
}
/** A token was presented at another server than the one it was issued for. */
export class TokenWrongDestinationError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('TokenWrongDestination', message, details); }
}
/** A value that cannot cross the network (function, symbol, class instance, cycle, oversized). */
export class ValueTypeError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('ValueType', message, details); }
}
/** A remote call named a method the target does not export. */
export class NotExportedError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('NotExported', message, details); }
}
/** A call did not finish within its deadline. */
export class TimeoutError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('Timeout', message, details); }
}
/** A server could not be reached, or its connection closed before it answered. */
export class ServerUnavailableError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('ServerUnavailable', message, details); }
}
/** A connection tried to call a method before proving it knows the cluster secret. */
export class UnauthenticatedError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('Unauthenticated', message, details); }
}
/** A write was attempted on a read-only (offline) copy of a player. */
export class ReadOnlyPlayerError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('ReadOnlyPlayer', message, details); }
}
/** The shared store (Redis) is unreachable. */
export class StoreUnavailableError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('StoreUnavailable', message, details); }
}
/** The player is owned by another server now; `details.at` names it. */
export class PlayerMovedError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('PlayerMoved', message, details); }
}
/** A shared resource does not hold enough for a deduction. */
export class InsufficientResourceError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('InsufficientResource', message, details); }
}
/** A named thing (player, server, guild…) does not exist. */
export class NotFoundError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('NotFound', message, details); }
}
/** The cluster configuration or a command line is wrong. */
export class ConfigError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('Config', message, details); }
}
/** A player (or service) method refused its arguments: spending more than there is, a missing reason… */
export class InvalidArgumentError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('InvalidArgument', message, details); }
}
/** A designer script failed (it threw, or broke a limit): the message names the script's own file and line. */
export class ScriptFailedError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('Script', message, details); }
}
/** The call reached a server that does not serve that guild, player or pairing; `details.server` names the one that does. */
export class WrongServerError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('WrongServer', message, details); }
}
/** Something to be created exists already (an account name, a guild membership elsewhere). */
export class AlreadyExistsError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('AlreadyExists', message, details); }
}
/** An account name and password that do not match (which of the two is wrong is not said). */
export class BadCredentialsError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('BadCredentials', message, details); }
}
/** A request id (or order id) used again for a different request: each id names one request. */
export class RequestConflictError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('RequestConflict', message, details); }
}
/** Too many failed attempts (logins of one account): `data.retryAfterMs` says when to try again. */
export class TooManyAttemptsError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('TooManyAttempts', message, details); }
}
/**
 * A call that changed a player may or may not have been applied (its save did not come back, or a
 * try of it timed out). Retry with the same call id: the answer is then exactly one of "it ran"
 * (its first result) or a clear failure (it did not run).
 */
export class OutcomeUnknownError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('OutcomeUnknown', message, details); }
}
/**
 * A configured limit of a player would be passed (his document's size, his mailbox): the call was
 * refused and nothing of it was applied. The message names the limit and its config field.
 */
export class LimitExceededError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('LimitExceeded', message, details); }
}
/** A failure on the remote side that has no kind of its own (a bug): the message says where to look. */
export class InternalError extends KuafuError {
  constructor(message: string, details: ErrorDetails = {}) { super('Internal', message, details); }
}

type ErrorClass = new (message: string, details?: ErrorDetails) => KuafuError;

const CLASSES: Record<ErrorKind, ErrorClass> = {
  PlayerOffline: PlayerOfflineError,
  StaleOwner: StaleOwnerError,
  TokenInvalid: TokenInvalidError,
  TokenExpired: TokenExpiredError,
  TokenUsed: TokenUsedError,
  TokenWrongPlayer: TokenWrongPlayerError,
  TokenWrongDestination: TokenWrongDestinationError,
  ValueType: ValueTypeError,
  NotExported: NotExportedError,
  Timeout: TimeoutError,
  ServerUnavailable: ServerUnavailableError,
  Unauthenticated: UnauthenticatedError,
  ReadOnlyPlayer: ReadOnlyPlayerError,
  StoreUnavailable: StoreUnavailableError,
  PlayerMoved: PlayerMovedError,
  InsufficientResource: InsufficientResourceError,
  NotFound: NotFoundError,
  Config: ConfigError,
  Script: ScriptFailedError,
  InvalidArgument: InvalidArgumentError,
  WrongServer: WrongServerError,
  AlreadyExists: AlreadyExistsError,
  BadCredentials: BadCredentialsError,
  RequestConflict: RequestConflictError,
  TooManyAttempts: TooManyAttemptsError,
  OutcomeUnknown: OutcomeUnknownError,
  LimitExceeded: LimitExceededError,
  Internal: InternalError,
};

/** The standard JSON-RPC 2.0 error codes. */
export const JSONRPC_CODES = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
} as const;

/** A standard JSON-RPC protocol error (parse error, invalid request, unknown method, bad params). */
export class RpcProtocolError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.code = code;
    this.data = data;
    this.name = 'RpcProtocolError';
  }
}

/** Thrown by a method handler when its argument has the wrong shape: becomes -32602 Invalid params. */
export class InvalidParamsError extends RpcProtocolError {
  constructor(message: string) {
    super(JSONRPC_CODES.InvalidParams, `Invalid params: ${message}`);
    this.name = 'InvalidParamsError';
  }
}

/** A JSON-RPC error object as it travels on the wire. */
export interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

/** Turns any thrown value into the JSON-RPC error object that reports it. */
export function toWire(error: unknown): WireError {
  if (error instanceof KuafuError) {
    return { code: error.code, message: error.message, data: { kind: error.kind, ...error.details } };
  }
  if (error instanceof RpcProtocolError) {
    return error.data === undefined
      ? { code: error.code, message: error.message }
      : { code: error.code, message: error.message, data: error.data };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: ERROR_CODES.Internal,
    message: `Internal error on the remote server: ${message}. This is a bug; the remote server's log has the stack.`,
    data: { kind: 'Internal' },
  };
}

/** Turns a JSON-RPC error object received from a peer back into the error class of its kind. */
export function fromWire(wire: WireError, context: string): Error {
  const data = wire.data;
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    const { kind, ...rest } = data as Record<string, unknown>;
    if (typeof kind === 'string' && Object.prototype.hasOwnProperty.call(CLASSES, kind)) {
      const details: ErrorDetails = {};
      for (const [key, value] of Object.entries(rest)) {
        if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) {
          details[key] = value as string | number | boolean | null;
        }
      }
      return new CLASSES[kind as ErrorKind](String(wire.message), details);
    }
  }
  return new RpcProtocolError(wire.code, `${context}: ${wire.message}`, wire.data);
}
