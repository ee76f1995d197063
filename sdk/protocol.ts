/**
 * The bridge between a script bundle's isolate and its host, as both sides see it. The host
 * imports these types only; the SDK (bundled into every isolate's startup code) implements them.
 *
 * The host enters the isolate on its own main thread (`applySync`, bounded by a timeout) to start a
 * call or to settle a batch of answers; the script's microtasks run inside that entry. What the
 * script sends meanwhile — requests to the host, the ends of calls — goes into the SDK's outbox,
 * and the entry answers the outbox: isolated-vm copies an entry's result after the isolate's
 * microtasks ran, so one entry carries everything out in one copy. The host then hands the
 * requests of that entry to its services in one synchronous loop.
 */

/**
 * What a request asks the host for: a player method (`invoke`), a player's whereabouts (`kuafu`)
 * or profile (`profile`), a function service's method (`service`).
 */
export type RequestOp = 'invoke' | 'kuafu' | 'profile' | 'service';

/** An error as it crosses the bridge, in either direction: plain strings only. */
export interface BridgeError {
  /** A kuafu error kind (`PlayerOffline`, `ValueType`, …) or `Script` for the designer's own error. */
  kind: string;
  /** The error's name (`TypeError`, `PlayerOfflineError`, …). */
  name: string;
  message: string;
  /** The V8 stack inside the isolate (bundle positions), or '' when there is none. */
  stack: string;
  /** Facts the error carries (`path`, `at`, …). */
  details: Record<string, string | number | boolean | null>;
}

/** One answer the host settles: `[requestId, true, value]` or `[requestId, false, error]`. */
export type Settlement = [id: number, ok: true, value: unknown] | [id: number, ok: false, error: BridgeError];

/**
 * A request in the outbox: `[0, requestId, op, pid, path, args]`. Path and args for `invoke` (the
 * method's path on the player) and `service`; a `service` request has pid 0 and the path
 * `[service, target, method]` (`services.guild("wolves").deduct(…)` is `['guild', 'wolves', 'deduct']`).
 */
export type RequestMessage = [type: 0, id: number, op: RequestOp, pid: number, path: string[] | null, args: unknown[] | null];
/** The end of a call in the outbox: `[1, callId, true, result]` or `[1, callId, false, error]`. */
export type FinishMessage = [type: 1, callId: number, ok: boolean, value: unknown];
/** What an entry answers: everything the script sent during it, in order. */
export type Outbox = Array<RequestMessage | FinishMessage>;

/** The host's side of the bridge, as the SDK receives it: a synchronous callback (arguments are copied). */
export interface HostBridge {
  /** A log line from the script (sent at once, so it is not lost if the entry then breaks a limit). */
  log(level: LogLevel, text: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What the host tells the SDK when the isolate starts. */
export interface SandboxConfig {
  /** The bundle's name (for error messages). */
  bundle: string;
  /** The largest value that may cross the bridge, in bytes (roughly). */
  maxValueBytes: number;
  /** The longest log line, in characters; longer ones are cut. */
  maxLogChars: number;
  /** Requests that may wait for their answers at once; more are refused before they are sent. */
  maxRequestsInFlight: number;
  /**
   * Bytes of requests that may wait for their answers at once, plus the results sent in one
   * entry, each counted with its own size (DESIGN §7: bounded before the host copies them).
   */
  maxBytesInFlight: number;
}

/** The SDK's side of the bridge, as the host holds it (references into the isolate). */
export interface SandboxEntries {
  /**
   * Hands the bundle's module namespace to the SDK; answers the names of its exported functions
   * and the outbox of the bundle's top-level code (requests made there are refused by the host).
   */
  setExports(namespace: Record<string, unknown>): [names: string[], outbox: Outbox];
  /**
   * Starts a batch of calls `[callId, fn, args]`: runs each exported function `fn` with its `args`;
   * each call's end comes in an outbox. The batch may come as JSON text (cheaper to copy in, when
   * JSON carries it exactly).
   */
  start(batch: Array<[callId: number, fn: string, args: unknown[]]> | string): Outbox;
  /** Settles a batch of answers to the script's requests (as JSON text when JSON carries it exactly). */
  settle(batch: Settlement[] | string): Outbox;
  /**
   * Answers the outbox as it is (and empties it). For after an entry whose result was lost: when
   * a promise the script left unhandled rejects, isolated-vm throws that rejection out of the
   * entry instead of answering its result.
   */
  take(): Outbox;
}
