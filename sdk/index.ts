/**
 * The in-sandbox designer API: what a script bundle's isolate runs before the bundle. It installs
 * exactly three globals — `playermgr`, `cproxyplayer`, `log` — and returns the entries the host
 * uses to start calls and settle answers (see `protocol.ts`). The host bundles this file once per
 * process (esbuild, an IIFE) and evaluates it in every new isolate, handing in its three callbacks.
 *
 * Everything a script sends is checked here first (value types, size) and again on the host.
 */
import {
  apply, captureStackTrace, defineProperty, deferred, freeze, getPrototypeOf, isSafeInteger, joinOf, keys, mapDeleteOf,
  mapGetOf, mapSetOf, rejected, stringify,
} from './intrinsics.js';
import { formatLine } from './format.js';
import type { BridgeError, HostBridge, LogLevel, RequestOp, SandboxConfig, SandboxEntries, Settlement } from './protocol.js';
import { createRemotePlayer } from './remote.js';
import { SandboxValueError, checkValue, installProxyRegistry } from './values.js';

/** Error kinds a script may see on an error (the host's error table, plus the script's own). */
const KINDS = new Set([
  'PlayerOffline', 'StaleOwner', 'ValueType', 'NotExported', 'Timeout', 'ServerUnavailable', 'Unauthenticated',
  'ReadOnlyPlayer', 'StoreUnavailable', 'PlayerMoved', 'InsufficientResource', 'NotFound', 'Config', 'Internal',
  'TokenInvalid', 'TokenExpired', 'TokenUsed', 'TokenWrongPlayer', 'TokenWrongDestination',
]);

/** Globals a script must not have: shared memory and WebAssembly (outside the memory limit), and a silent console. */
const REMOVED_GLOBALS = ['console', 'SharedArrayBuffer', 'Atomics', 'WebAssembly'];

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  site: { stack?: string };
}

const RealPromise = Promise;
const promiseThen = Promise.prototype.then;
const promiseResolve = Promise.resolve;

/** The frames of a captured stack, without its first (message) line. */
function framesOf(stack: string | undefined): string {
  if (typeof stack !== 'string') return '';
  const at = stack.indexOf('\n    at ');
  return at < 0 ? '' : stack.slice(at + 1);
}

/** An error raised in the sandbox for a host error: `kind`, `details`, and the designer's stack at the call. */
function sandboxError(error: BridgeError, site: { stack?: string } | undefined): Error {
  const made = new Error(String(error.message));
  made.name = String(error.name || `${error.kind}Error`);
  defineProperty(made, 'kind', { value: String(error.kind), enumerable: true, writable: true, configurable: true });
  defineProperty(made, 'details', { value: freeze({ ...error.details }), enumerable: true, writable: true, configurable: true });
  const frames = framesOf(site?.stack);
  if (frames) made.stack = `${made.name}: ${made.message}\n${frames}`;
  return made;
}

function read(object: object, name: string): unknown {
  try {
    return (object as Record<string, unknown>)[name];
  } catch {
    return undefined;
  }
}

/** Any thrown value as it crosses the bridge to the host. */
function toBridgeError(thrown: unknown, maxChars: number): BridgeError {
  if (thrown !== null && (typeof thrown === 'object' || typeof thrown === 'function')) {
    const kind = read(thrown, 'kind');
    const name = read(thrown, 'name');
    const message = read(thrown, 'message');
    const stack = read(thrown, 'stack');
    const rawDetails = read(thrown, 'details');
    const details: BridgeError['details'] = {};
    if (rawDetails !== null && typeof rawDetails === 'object') {
      try {
        const names = keys(rawDetails);
        for (let i = 0; i < names.length && i < 20; i++) {
          const value = (rawDetails as Record<string, unknown>)[names[i]!];
          if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
            details[names[i]!] = typeof value === 'string' ? value.slice(0, 1000) : value;
          }
        }
      } catch {
        // details that cannot be read are left out
      }
    }
    const text = typeof message === 'string'
      ? message
      : `the script threw a value that is not an Error: ${formatLine([thrown], 1000)} (throw new Error("…") to get a stack)`;
    return {
      kind: typeof kind === 'string' && KINDS.has(kind) ? kind : 'Script',
      name: typeof name === 'string' && name ? name.slice(0, 200) : 'Error',
      message: text.length > maxChars ? `${text.slice(0, maxChars)}… (cut)` : text,
      stack: typeof stack === 'string' ? stack.slice(0, 20_000) : '',
      details,
    };
  }
  return {
    kind: 'Script',
    name: 'Error',
    message: `the script threw a value that is not an Error: ${formatLine([thrown], 1000)} (throw new Error("…") to get a stack)`,
    stack: '',
    details: {},
  };
}

/**
 * Installs the globals and returns the host's entries. `bridge` holds the host's callbacks;
 * `configText` is the JSON of a SandboxConfig.
 */
export function install(bridge: HostBridge, configText: string): SandboxEntries {
  const config = JSON.parse(configText) as SandboxConfig;
  const global = globalThis;
  const pending = new Map<number, Pending>();
  let nextRequest = 0;
  let exported: Record<string, Function> = Object.create(null) as Record<string, Function>;
  const request = bridge.request;
  const finish = bridge.finish;
  const hostLog = bridge.log;

  installProxyRegistry(global);
  for (const name of REMOVED_GLOBALS) delete (global as Record<string, unknown>)[name];

  /** Sends one request to the host and answers with its promise. */
  function send(op: RequestOp, pid: number, path: string[] | null, args: readonly unknown[] | null, site: { stack?: string }): Promise<unknown> {
    const id = ++nextRequest;
    const { promise, resolve, reject } = deferred<unknown>();
    mapSetOf(pending, id, { resolve, reject, site });
    try {
      request(id, op, pid, path, args as unknown[] | null);
    } catch (error) {
      mapDeleteOf(pending, id);
      const where = path ? `player.${joinOf(path, '.')}` : op;
      return rejected(sandboxError({
        kind: 'ValueType',
        name: 'ValueTypeError',
        message: `${where}: the arguments could not be copied out of the sandbox (${String((error as Error)?.message ?? error)}); only value types cross servers. Pass plain data instead.`,
        stack: '',
        details: {},
      }, site));
    }
    return promise;
  }

  function checkPid(pid: unknown, where: string): asserts pid is number {
    if (typeof pid !== 'number' || !isSafeInteger(pid) || pid <= 0) {
      throw new TypeError(`${where}: pid must be a positive integer player id, got ${formatLine([pid], 100)}`);
    }
  }

  const dispatch = (pid: number, path: string[], args: readonly unknown[], site: { stack?: string }): Promise<unknown> => {
    try {
      checkValue(args, `player.${joinOf(path, '.')}`, 'args', config.maxValueBytes);
    } catch (error) {
      if (error instanceof SandboxValueError) {
        return rejected(sandboxError({ kind: 'ValueType', name: error.name, message: error.message, stack: '', details: error.details }, site));
      }
      return rejected(error);
    }
    return send('invoke', pid, path, args, site);
  };

  const lookup = (op: RequestOp, where: string, caller: Function) => (pid: number): Promise<unknown> => {
    const site: { stack?: string } = {};
    captureStackTrace(site, caller);
    try {
      checkPid(pid, where);
    } catch (error) {
      return rejected(error);
    }
    return send(op, pid, null, null, site);
  };

  const playermgr = {
    getkuafuplayer(pid: number): Promise<unknown> {
      return getkuafuplayer(pid);
    },
    getprofile(pid: number): Promise<unknown> {
      return getprofile(pid);
    },
  };
  const getkuafuplayer = lookup('kuafu', 'playermgr.getkuafuplayer', playermgr.getkuafuplayer);
  const getprofile = lookup('profile', 'playermgr.getprofile', playermgr.getprofile);

  const cproxyplayer = {
    new(pid: number): unknown {
      checkPid(pid, 'cproxyplayer.new');
      return createRemotePlayer(pid, dispatch);
    },
  };

  const logAt = (level: LogLevel) => (...values: unknown[]): void => {
    hostLog(level, formatLine(values, config.maxLogChars));
  };
  const log = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };

  for (const [name, value] of [['playermgr', playermgr], ['cproxyplayer', cproxyplayer], ['log', log]] as const) {
    defineProperty(global, name, { value: freeze(value), writable: false, configurable: false, enumerable: true });
  }

  /** Reports the end of call `callId` to the host (its result checked first). */
  function report(callId: number, fn: string, ok: boolean, value: unknown): void {
    if (ok) {
      try {
        checkValue(value, `${config.bundle}.${fn}`, 'result', config.maxValueBytes);
      } catch (error) {
        ok = false;
        value = error;
      }
    }
    if (ok) {
      try {
        finish(callId, true, value);
        return;
      } catch (error) {
        value = new SandboxValueError(
          `${config.bundle}.${fn}: the result could not be copied out of the sandbox (${String((error as Error)?.message ?? error)}); return plain data.`,
          'result',
        );
      }
    }
    finish(callId, false, toBridgeError(value, 10_000));
  }

  return {
    setExports(namespace: Record<string, unknown>): string[] {
      const table = Object.create(null) as Record<string, Function>;
      const names: string[] = [];
      for (const name of keys(namespace)) {
        const value = namespace[name];
        if (typeof value === 'function') {
          table[name] = value;
          names[names.length] = name;
        }
      }
      exported = table;
      return names;
    },

    start(callId: number, fn: string, args: unknown[]): void {
      const target = exported[fn];
      if (typeof target !== 'function') {
        report(callId, fn, false, {
          kind: 'NotExported',
          name: 'NotExportedError',
          message: `bundle ${config.bundle} exports no function ${stringify(fn)}; export it (export async function ${fn}(…)) or call one it exports: ${keys(exported).join(', ') || 'none'}`,
        });
        return;
      }
      let result: unknown;
      try {
        result = apply(target, undefined, args);
      } catch (error) {
        report(callId, fn, false, error);
        return;
      }
      if (result !== null && (typeof result === 'object' || typeof result === 'function') && getPrototypeOf(result) === RealPromise.prototype) {
        apply(promiseThen, result, [
          (value: unknown) => report(callId, fn, true, value),
          (error: unknown) => report(callId, fn, false, error),
        ]);
      } else if (result !== null && typeof result === 'object' && typeof read(result, 'then') === 'function') {
        const promise = apply(promiseResolve, RealPromise, [result]) as Promise<unknown>;
        apply(promiseThen, promise, [
          (value: unknown) => report(callId, fn, true, value),
          (error: unknown) => report(callId, fn, false, error),
        ]);
      } else {
        report(callId, fn, true, result);
      }
    },

    settle(batch: Settlement[]): void {
      for (let i = 0; i < batch.length; i++) {
        const settlement = batch[i]!;
        const id = settlement[0];
        const entry = mapGetOf(pending, id);
        if (entry === undefined) continue;
        mapDeleteOf(pending, id);
        if (settlement[1]) entry.resolve(settlement[2]);
        else entry.reject(sandboxError(settlement[2], entry.site));
      }
    },
  };
}
