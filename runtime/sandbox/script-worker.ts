/**
 * The script worker: a `worker_threads` worker that owns a script host's isolates (DESIGN §7), so
 * that designer code never runs on the game server's main thread — a script that spins, or loops
 * on awaits answered without I/O, keeps this thread busy, not the gateway, the RPC port or the
 * heartbeat. Inside, the bridge to each isolate is the fast synchronous one (`instance.ts`).
 *
 * What the scripts ask of the server (player calls, look-ups, service calls, log lines) is posted
 * to the main thread, gathered per turn: all the requests an entry sent go in one message, and the
 * answers come back the same way (`worker-protocol.ts`). The process must run with
 * `--no-node-snapshot` (the worker inherits it; isolated-vm needs it).
 */
import { readlinkSync } from 'node:fs';
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { Profile } from '../store/store.js';
import type { LogLevel, Logger } from '../util/log.js';
import { ScriptEngine, type HostLimits } from './engine.js';
import type { KuafuPlayerInfo, ScriptServices } from './script-services.js';
import {
  ANSWER, CONTROL, DONE, HOST_LOG, REPLY, REQUEST, RUN, SCRIPT_LOG, STATE, errorFromWire, errorToWire, type Op, type WireError,
} from './worker-protocol.js';

const port = parentPort!;

// Script work yields the CPU to the server's own threads: when the main thread and a spinning script
// want the same core, the main thread gets it. (Linux: a thread's nice value is its own; elsewhere,
// or when the system refuses, the worker runs at the process's priority.)
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, constants.priority.PRIORITY_BELOW_NORMAL);
} catch {
  // not Linux, or not allowed
}
const { limits } = workerData as { limits: HostLimits };

let out: Op[] = [];
let flushScheduled = false;
/**
 * Bundles whose figures changed since the last message (sent in front of it): an isolate made,
 * stopped or retired, a reload, a quarantine — not every call (the host counts its calls in flight
 * itself). Figures that drift (CPU, heap, handles) are sent again at most once a second while the
 * bundle runs: reading the heap costs ~35 µs.
 */
const dirty = new Set<string>();
const active = new Set<string>();
let refreshTimer: NodeJS.Timeout | undefined;
const REFRESH_MS = 1000;

function push(op: Op): void {
  out.push(op);
  if (!flushScheduled) {
    flushScheduled = true;
    // A microtask: everything one entry sent (its requests, the ends of its calls) goes in one
    // message, right after the entry.
    queueMicrotask(flush);
  }
}

function markDirty(name: string): void {
  dirty.add(name);
  if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flush);
  }
}

function flush(): void {
  flushScheduled = false;
  let batch = out;
  out = [];
  if (dirty.size > 0) {
    const states: Op[] = [];
    for (const name of dirty) states.push([STATE, name, stateOf(name)]);
    dirty.clear();
    batch = states.concat(batch);
  }
  if (batch.length > 0) port.postMessage(batch);
}

function stateOf(name: string): unknown {
  return engine.has(name) ? engine.stats(name, true) : null;
}

/** Bundle `name` ran a call: its drifting figures are sent again within a second. */
function touch(name: string): void {
  active.add(name);
  refreshTimer ??= setTimeout(refresh, REFRESH_MS).unref();
}

function refresh(): void {
  refreshTimer = undefined;
  for (const name of active) markDirty(name);
  active.clear();
}

/** Requests waiting for the main thread's answer. */
const waiting = new Map<number, (ok: boolean, value: unknown) => void>();
let nextRequest = 0;

function request(op: string, pid: number, path: string[] | null, args: unknown[] | null, done: (ok: boolean, value: unknown) => void): void {
  const id = ++nextRequest;
  waiting.set(id, done);
  push([REQUEST, id, op, pid, path, args]);
}

function asPromise<T>(op: string, pid: number, path: string[] | null, args: unknown[] | null): Promise<T> {
  return new Promise<T>((resolve, reject) => request(op, pid, path, args, (ok, value) => (ok ? resolve(value as T) : reject(value))));
}

/** The server's ScriptServices, seen from the worker: every request crosses to the main thread. */
const services: ScriptServices = {
  invokePlayer: (pid, path, args) => asPromise('invoke', pid, path, args),
  invokePlayerWith: (pid, path, args, done) => request('invoke', pid, path, args, done),
  getKuafuPlayer: (pid) => asPromise<KuafuPlayerInfo | null>('kuafu', pid, null, null),
  getProfile: (pid) => asPromise<Profile | null>('profile', pid, null, null),
  callService: (service, target, method, args) => asPromise('service', 0, [service, target, method], args),
  // A log line goes at once (with what is queued before it): written during a long stretch of
  // work, or just before a limit is broken, it is not held back until the entry ends.
  log: (level, bundle, message) => {
    out.push([SCRIPT_LOG, level, bundle, message]);
    flush();
  },
};

function logger(name: string): Logger {
  const line = (level: LogLevel) => (message: string) => push([HOST_LOG, level, `${name}${message}`, null]);
  return {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: (message, error) => push([HOST_LOG, 'error', `${name}${message}`, error === undefined ? null : errorToWire(error)]),
    child: (child) => logger(`${name}[${child}] `),
  };
}

const engine = new ScriptEngine(limits, services, logger(''), markDirty);

function run(callId: number, name: string, fn: string, args: unknown[], needsMoreThanJson: boolean): void {
  let result: Promise<unknown>;
  try {
    result = engine.run(name, fn, args, needsMoreThanJson);
  } catch (error) {
    push([DONE, callId, false, errorToWire(error)]);
    return;
  }
  touch(name);
  result.then(
    (value) => {
      if (engine.hasRetiring(name)) markDirty(name); // its calls split between versions: say where they are
      push([DONE, callId, true, value]);
    },
    (error: unknown) => {
      if (engine.hasRetiring(name)) markDirty(name);
      push([DONE, callId, false, errorToWire(error)]);
    },
  );
}

async function control(id: number, method: string, params: Record<string, unknown>): Promise<void> {
  try {
    let value: unknown;
    switch (method) {
      case 'reload':
        value = engine.reload(params.name as string, params.bundle as { code: string; map?: string; file?: string }, params.prelude as string);
        break;
      case 'unload':
        engine.unload(params.name as string);
        break;
      case 'measureColdLoad':
        value = await engine.measureColdLoad(params.name as string, params.samples as number);
        break;
      case 'stats':
        value = engine.stats(params.name as string, true);
        break;
      case 'close':
        engine.close();
        break;
      default:
        throw new Error(`the script worker has no control ${method}`);
    }
    push([REPLY, id, true, value]);
  } catch (error) {
    push([REPLY, id, false, errorToWire(error)]);
  }
}

port.on('message', (batch: Op[]) => {
  for (const op of batch) {
    switch (op[0]) {
      case RUN:
        run(op[1] as number, op[2] as string, op[3] as string, op[4] as unknown[], op[5] as boolean);
        break;
      case ANSWER: {
        const done = waiting.get(op[1] as number);
        if (done === undefined) break;
        waiting.delete(op[1] as number);
        done(op[2] as boolean, op[2] ? op[3] : errorFromWire(op[3] as WireError));
        break;
      }
      case CONTROL:
        void control(op[1] as number, op[2] as string, op[3] as Record<string, unknown>);
        break;
    }
  }
});
