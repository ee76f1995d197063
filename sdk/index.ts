/**
 * The in-sandbox designer API: what a script bundle's isolate runs before the bundle. It installs
 * exactly four globals — `playermgr`, `cproxyplayer`, `services`, `log` — and returns the entries the host
 * uses to start calls and settle answers (see `protocol.ts`). The host bundles this file once per
 * process (esbuild, an IIFE) and evaluates it in every new isolate, handing in its log callback.
 *
 * Everything a script sends is checked and copied here first (value types, size), and checked
 * again on the host. The SDK keeps the built-ins it needs from before the script ran
 * (`intrinsics.ts`), so a script that replaces them in its own isolate cannot change how it works.
 */
import {
  apply, copyOf, create, defineProperty, deferred, freeze, getPrototypeOf, isSafeInteger, joinOf, keys, mapDeleteOf, mapGetOf,
  mapSetOf, parse, put, rejected, stringify,
} from './intrinsics.js';
import { formatLine } from './format.js';
import type { BridgeError, HostBridge, LogLevel, Outbox, RequestOp, SandboxConfig, SandboxEntries, Settlement } from './protocol.js';
import { remotePlayers } from './remote.js';
import { createServices, describeServiceCall } from './services.js';
import { installProxyRegistry, snapshotValue } from './values.js';

/** Error kinds a script may see on an error (the host's error table, plus the script's own). */
const KINDS = new Set([
  'PlayerOffline', 'StaleOwner', 'ValueType', 'NotExported', 'Timeout', 'ServerUnavailable', 'Unauthenticated',
  'ReadOnlyPlayer', 'StoreUnavailable', 'PlayerMoved', 'InsufficientResource', 'NotFound', 'Config', 'Internal',
  'TokenInvalid', 'TokenExpired', 'TokenUsed', 'TokenWrongPlayer', 'TokenWrongDestination', 'Sandbox',
  'InvalidArgument', 'WrongServer', 'AlreadyExists', 'BadCredentials', 'RequestConflict',
  'TooManyAttempts', 'OutcomeUnknown', 'LimitExceeded', 'Quarantined',
]);

/** What one request or result costs besides its values (its id, op, pid: as the host counts it). */
const REQUEST_BYTES = 24;

interface PendingRequest {
  resolve: (settled: Settlement) => void;
  bytes: number;
}

/** Globals a script must not have: shared memory and WebAssembly (outside the memory limit), and a silent console. */
const REMOVED_GLOBALS = ['console', 'SharedArrayBuffer', 'Atomics', 'WebAssembly'];

const RealPromise = Promise;
const setHas = Set.prototype.has;
const promiseThen = Promise.prototype.then;
const promiseResolve = Promise.resolve;

/** An error raised in the sandbox for a host error: with its `kind` and `details`. */
function sandboxError(error: BridgeError): Error {
  const made = new Error(String(error.message));
  made.name = String(error.name || `${error.kind}Error`);
  defineProperty(made, 'kind', { value: String(error.kind), enumerable: true, writable: true, configurable: true });
  defineProperty(made, 'details', { value: freeze({ ...error.details }), enumerable: true, writable: true, configurable: true });
  return made;
}

/**
 * Waits for the answer to a request and turns a failure into an error. The error is made here,
 * inside an async function the script awaits, so V8's async stack shows the script's own line
 * (`at async main (…)`) without capturing a stack on every call.
 */
async function relay(answer: Promise<Settlement>): Promise<unknown> {
  const settled = await answer;
  if (settled[1]) return settled[2];
  throw sandboxError(settled[2]);
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
            put(details, names[i]!, typeof value === 'string' ? value.slice(0, 1000) : value);
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
      kind: typeof kind === 'string' && apply(setHas, KINDS, [kind]) ? kind : 'Script',
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
 * Installs the globals and returns the host's entries. `bridge` holds the host's log callback;
 * `configText` is the JSON of a SandboxConfig.
 */
export function install(bridge: HostBridge, configText: string): SandboxEntries {
  const config = JSON.parse(configText) as SandboxConfig;
  const global = globalThis;
  /** Requests waiting for their answers: how to settle each, and its size as the limits count it. */
  const pending = new Map<number, PendingRequest>();
  let pendingCount = 0;
  let pendingBytes = 0;
  /** Bytes of results put in the outbox during the current entry. */
  let entryBytes = 0;
  const size = { bytes: 0 };
  let nextRequest = 0;
  let exported: Record<string, Function> = Object.create(null) as Record<string, Function>;
  /** What the script sent since the current entry began (the entry answers it). */
  let outbox: Outbox = [];
  const hostLog = bridge.log;

  installProxyRegistry(global);
  for (const name of REMOVED_GLOBALS) delete (global as Record<string, unknown>)[name];

  /**
   * Queues one request for the host and answers the promise of its settlement; `bytes` is the size
   * of its arguments. Bounded here, before the host copies anything (DESIGN §7): at most
   * maxRequestsInFlight requests waiting for answers, and at most maxBytesInFlight bytes of them
   * (plus the results sent in this entry), each request counted with its own size — a string
   * shared by 2,500 requests is held once here but copied 2,500 times by the host.
   */
  function send(op: RequestOp, pid: number, path: string[] | null, args: unknown[] | null, bytes: number, what: string): Promise<unknown> {
    if (pendingCount >= config.maxRequestsInFlight) {
      return rejected(sandboxError({
        kind: 'Sandbox', name: 'SandboxError', stack: '',
        message: `bundle ${config.bundle} has ${pendingCount} remote calls waiting for answers, the most it may; await some before making more (e.g. in batches of a few hundred; the host's limit scriptLimits.maxRequestsInFlight is ${config.maxRequestsInFlight})`,
        details: { limit: config.maxRequestsInFlight, setting: 'maxRequestsInFlight' },
      }));
    }
    let total = bytes + REQUEST_BYTES;
    if (path !== null) for (let i = 0; i < path.length; i++) total += path[i]!.length + 2;
    if (pendingBytes + entryBytes + total > config.maxBytesInFlight) {
      return rejected(sandboxError({
        kind: 'Sandbox', name: 'SandboxError', stack: '',
        message: `${what}: bundle ${config.bundle} has ${pendingBytes + entryBytes} bytes of requests waiting for answers (and results sent just now), and this one is ${total} bytes: more than the ${config.maxBytesInFlight} bytes it may (the host's limit scriptLimits.maxBytesInFlight; every request counts the size of its own arguments, even when requests share a value); await some before sending more`,
        details: { limit: config.maxBytesInFlight, setting: 'maxBytesInFlight', bytes: total },
      }));
    }
    const id = ++nextRequest;
    const { promise, resolve } = deferred<Settlement>();
    mapSetOf(pending, id, { resolve, bytes: total });
    pendingCount++;
    pendingBytes += total;
    put(outbox, outbox.length, [0, id, op, pid, path, args]);
    return relay(promise);
  }

  function checkPid(pid: unknown, where: string): asserts pid is number {
    if (typeof pid !== 'number' || !isSafeInteger(pid) || pid <= 0) {
      throw new TypeError(`${where}: pid must be a positive integer player id, got ${formatLine([pid], 100)}`);
    }
  }

  const dispatch = (pid: number, path: string[], args: readonly unknown[]): Promise<unknown> => {
    let copy: unknown[];
    const where = () => `player.${joinOf(path, '.')}`;
    try {
      copy = snapshotValue(args, where, 'args', config.maxValueBytes, size) as unknown[];
    } catch (error) {
      return rejected(error);
    }
    return send('invoke', pid, copyOf(path), copy, size.bytes, where());
  };
  const remotePlayer = remotePlayers(dispatch);

  const lookup = (op: RequestOp, where: string) => (pid: number): Promise<unknown> => {
    try {
      checkPid(pid, where);
    } catch (error) {
      return rejected(error);
    }
    return send(op, pid, null, null, 0, where);
  };
  const getkuafuplayer = lookup('kuafu', 'playermgr.getkuafuplayer');
  const getprofile = lookup('profile', 'playermgr.getprofile');
  const playermgr = {
    getkuafuplayer(pid: number): Promise<unknown> {
      return getkuafuplayer(pid);
    },
    getprofile(pid: number): Promise<unknown> {
      return getprofile(pid);
    },
  };

  const cproxyplayer = {
    new(pid: number): unknown {
      checkPid(pid, 'cproxyplayer.new');
      return remotePlayer(pid);
    },
  };

  /** `services.<service>(target).<method>(...args)`: the args checked and copied now, like a player call's. */
  const services = createServices((service, target, method, args) => {
    let copy: unknown[];
    const where = describeServiceCall(service, target, method);
    try {
      copy = snapshotValue(args, where, 'args', config.maxValueBytes, size) as unknown[];
    } catch (error) {
      return rejected(error);
    }
    return send('service', 0, [service, target, method], copy, size.bytes, where);
  });

  const logAt = (level: LogLevel) => (...values: unknown[]): void => {
    hostLog(level, formatLine(values, config.maxLogChars));
  };
  const log = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };

  for (const [name, value] of [['playermgr', playermgr], ['cproxyplayer', cproxyplayer], ['services', services], ['log', log]] as const) {
    defineProperty(global, name, { value: freeze(value), writable: false, configurable: false, enumerable: true });
  }

  /** Puts the end of call `callId` in the outbox (its result checked and copied first). */
  function report(callId: number, fn: string, ok: boolean, value: unknown): void {
    if (ok) {
      try {
        const copy = snapshotValue(value, () => `${config.bundle}.${fn}`, 'result', config.maxValueBytes, size);
        const bytes = size.bytes + REQUEST_BYTES;
        if (pendingBytes + entryBytes + bytes > config.maxBytesInFlight) {
          value = sandboxError({
            kind: 'Sandbox', name: 'SandboxError', stack: '',
            message: `${config.bundle}.${fn}: its result (${bytes} bytes) did not fit in what the bundle may hand the host at once: ${pendingBytes + entryBytes} bytes of requests waiting for answers and results of calls that ended just now, of at most ${config.maxBytesInFlight} (the host's limit scriptLimits.maxBytesInFlight)`,
            details: { limit: config.maxBytesInFlight, setting: 'maxBytesInFlight', bytes },
          });
        } else {
          entryBytes += bytes;
          put(outbox, outbox.length, [1, callId, true, copy]);
          return;
        }
      } catch (error) {
        value = error;
      }
    }
    put(outbox, outbox.length, [1, callId, false, toBridgeError(value, 10_000)]);
  }

  /** Runs the exported function `fn` for call `callId`; its end goes in the outbox (now or later). */
  function begin(callId: number, fn: string, args: unknown[]): void {
    const target = exported[fn];
    if (typeof target !== 'function') {
      report(callId, fn, false, {
        kind: 'NotExported',
        name: 'NotExportedError',
        message: `bundle ${config.bundle} exports no function ${stringify(fn)}; export it (export async function ${fn}(…)) or call one it exports: ${joinOf(keys(exported), ', ') || 'none'}`,
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
  }

  return {
    setExports(namespace: Record<string, unknown>): [string[], Outbox] {
      const table = create(null) as Record<string, Function>;
      const names: string[] = [];
      const all = keys(namespace);
      for (let i = 0; i < all.length; i++) {
        const name = all[i]!;
        const value = namespace[name];
        if (typeof value === 'function') {
          table[name] = value;
          names[names.length] = name;
        }
      }
      exported = table;
      // What the top-level code sent (the host refuses it): nothing else has run in this isolate yet.
      const early = outbox;
      outbox = [];
      return [names, early];
    },

    start(batchIn: Array<[number, string, unknown[]]> | string): Outbox {
      outbox = [];
      entryBytes = 0;
      const batch = typeof batchIn === 'string' ? (parse(batchIn) as Array<[number, string, unknown[]]>) : batchIn;
      for (let i = 0; i < batch.length; i++) {
        const call = batch[i]!;
        begin(call[0], call[1], call[2]);
      }
      // The script's microtasks run after this returns, before the host copies the outbox.
      return outbox;
    },

    take(): Outbox {
      const sent = outbox;
      outbox = [];
      entryBytes = 0;
      return sent;
    },

    settle(batchIn: Settlement[] | string): Outbox {
      outbox = [];
      entryBytes = 0;
      const batch = typeof batchIn === 'string' ? (parse(batchIn) as Settlement[]) : batchIn;
      for (let i = 0; i < batch.length; i++) {
        const settlement = batch[i]!;
        const request = mapGetOf(pending, settlement[0]);
        if (request === undefined) continue;
        mapDeleteOf(pending, settlement[0]);
        pendingCount--;
        pendingBytes -= request.bytes;
        request.resolve(settlement);
      }
      return outbox;
    },
  };
}
