/**
 * The bridge between a script bundle's isolate and its host, as both sides see it. The host
 * imports these types only; the SDK (bundled into every isolate's startup code) implements them.
 *
 * The host enters the isolate on its own main thread (`applySync`, bounded by a timeout) to start a
 * call or to settle a batch of answers; the script's microtasks run inside that entry. While it
 * runs, the SDK reports to the host through three synchronous callbacks (`HostBridge`); the host
 * hands the requests of one entry to its services in one synchronous loop after the entry returns.
 */

/** What a request asks the host for. */
export type RequestOp = 'invoke' | 'kuafu' | 'profile';

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

/** The host's side of the bridge, as the SDK receives it (synchronous callbacks; arguments are copied). */
export interface HostBridge {
  /** A request from the script: a remote player call (`invoke`, with path and args) or a look-up (`kuafu`, `profile`). */
  request(id: number, op: RequestOp, pid: number, path: string[] | null, args: unknown[] | null): void;
  /** Call `callId` ended: with its result (`ok`) or an error. */
  finish(callId: number, ok: boolean, value: unknown): void;
  /** A log line from the script. */
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
}

/** The SDK's side of the bridge, as the host holds it (references into the isolate). */
export interface SandboxEntries {
  /** Hands the bundle's module namespace to the SDK; returns the names of its exported functions. */
  setExports(namespace: Record<string, unknown>): string[];
  /** Starts call `callId`: runs the exported function `fn` with `args`; its end is reported through `finish`. */
  start(callId: number, fn: string, args: unknown[]): void;
  /** Settles a batch of answers to the script's requests. */
  settle(batch: Settlement[]): void;
}
