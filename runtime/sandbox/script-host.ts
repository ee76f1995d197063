/**
 * The script host (DESIGN §7): one per game server. It loads named script bundles and runs their
 * exported functions, each bundle in its own isolated-vm isolate (see `instance.ts` for the bridge
 * and the limits, `engine.ts` for the bundles and their quarantine).
 *
 *   const host = new ScriptHost({ services });
 *   await host.loadFile('scripts/examples/test_rpc.ts');        // bundles it with esbuild
 *   const added = await host.run('test_rpc', 'main', [pid]);     // 10, or a ScriptError
 *
 * The isolates live on this thread, or — with `worker: true` (config `"scriptWorker": true`) — in a
 * script worker (`script-worker.ts`, a `worker_threads` worker): script code then never runs on
 * this thread, so a script that spins or loops on awaits cannot hold up this server's gateway, RPC
 * or heartbeat. Calls started, requests of scripts and their answers cross between the threads in
 * batches, one message per turn of either side's event loop. On this thread, every stretch of
 * script work is bounded by `syncLimitMs`, answers re-enter the isolate only on the event loop's
 * next turn, and a bundle that keeps breaking its limits is quarantined.
 *
 * A bundle that breaks a limit is disposed and made again on its next call; the host keeps serving
 * every other bundle. `reload` swaps a bundle without a restart: new calls run the new version,
 * calls in flight finish on the one they started on (its isolate is disposed when they end).
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ConfigError, NotExportedError, NotFoundError, ValueTypeError } from '../errors.js';
import { DEFAULT_MAX_VALUE_BYTES, checkValue } from '../rpc/values.js';
import { createLogger, type LogLevel, type Logger } from '../util/log.js';
import { bundleScript, type ScriptBundle } from './bundler.js';
import { describeRequest } from './instance.js';
import type { RequestOp } from '../../sdk/protocol.js';
import { BUNDLE_NAME, ScriptEngine, type BundleInfo, type BundleStats, type ColdLoadMeasurement, type HostLimits } from './engine.js';
import { sdkPrelude } from './prelude.js';
import { ScriptError } from './script-error.js';
import type { ScriptServices } from './script-services.js';
import { inlineSourceMap } from './source-maps.js';
import {
  ANSWER, CONTROL, DONE, HOST_LOG, REPLY, REQUEST, RUN, SCRIPT_LOG, STATE, errorFromWire, errorToWire, type Op, type WireError,
} from './worker-protocol.js';

export type { BundleInfo, BundleStats, ColdLoadMeasurement } from './engine.js';

export interface ScriptHostOptions {
  /** What scripts reach on this server: remote players, profiles, the log. */
  services: ScriptServices;
  /**
   * Whether the isolates run in a script worker of their own (default false): script code then
   * never runs on this thread, at the price of two thread hops per remote call of a script (~50 µs
   * each way on a loaded machine). On this thread (the default) a script that spins holds it for
   * up to `syncLimitMs` at a time.
   */
  worker?: boolean;
  /** Memory limit of each bundle's isolate, in MiB (default 64, at least 8). */
  memoryLimitMiB?: number;
  /** Wall-clock deadline of one call, awaits included, in ms (default 5000); checked at every entry into the isolate, and by a timer. */
  deadlineMs?: number;
  /**
   * The longest one stretch of synchronous script work may run, in ms (default 1000, at most
   * `deadlineMs`; limits end on a 50 ms grid, so up to 50 ms more). A loop that runs longer is
   * stopped; so is one that would run past its call's deadline.
   */
  syncLimitMs?: number;
  /** CPU time one call may use across all its turns, in ms (default 2000, at most `deadlineMs`): the isolate's CPU while the call is in flight. */
  cpuLimitMs?: number;
  /** The largest value that may cross the sandbox's edge, in bytes (default 1 MiB). */
  maxValueBytes?: number;
  /** The longest script log line, in characters (default 8192). */
  maxLogChars?: number;
  /** Remote calls and look-ups one bundle may have waiting for answers at once (default 1024). */
  maxRequestsInFlight?: number;
  /**
   * Bytes of requests one bundle may have waiting for answers at once, plus the results it hands
   * over in one turn, each counted with its own size (default 16 MiB): what the host copies out of
   * an isolate is bounded by this before it is copied.
   */
  maxBytesInFlight?: number;
  /** Log lines one bundle may write in a second (default 200); more are dropped, and counted on the next line. */
  maxLogLinesPerSecond?: number;
  /** Limit breaks within `quarantineWindowMs` (default 3 within 60 s) that put a bundle in quarantine. */
  quarantineAfterBreaks?: number;
  quarantineWindowMs?: number;
  /** How long a quarantined bundle's calls are refused, in ms (default 30 s; a reload lifts it). */
  quarantineMs?: number;
  /** Where the host reports its own failures (default: a logger named `scripts`). */
  logger?: Logger;
}

/** A bundle to load: its JavaScript (a source map may be inline), or a bundle with its map. */
export type ScriptSource = string | ScriptBundle;

/** Where the isolates are: this thread's engine, or the script worker. */
interface Backend {
  reload(name: string, bundle: ScriptBundle, prelude: string): Promise<BundleInfo>;
  unload(name: string): void;
  run(name: string, fn: string, args: unknown[], needsMoreThanJson: boolean): Promise<unknown>;
  stats(name: string): BundleStats;
  measureColdLoad(name: string, samples: number): Promise<ColdLoadMeasurement>;
  close(): Promise<void>;
}

/** Runs designer script bundles in isolates: one host per game server. */
export class ScriptHost {
  private readonly limits: HostLimits;
  private readonly logger: Logger;
  private readonly backend: Backend;
  /** The loaded bundles and their exported functions (as of their last load). */
  private readonly bundles = new Map<string, string[]>();
  private prelude: string | undefined;
  private closed = false;

  constructor(options: ScriptHostOptions) {
    if (!options || typeof options.services !== 'object' || options.services === null) {
      throw new ConfigError('new ScriptHost({ services }) needs the ScriptServices of this server (invokePlayer, getKuafuPlayer, getProfile, callService, log)');
    }
    const deadlineMs = positive(options.deadlineMs, 5000, 'deadlineMs');
    this.limits = {
      memoryLimitMiB: Math.max(8, positive(options.memoryLimitMiB, 64, 'memoryLimitMiB')),
      deadlineMs,
      syncLimitMs: Math.min(deadlineMs, positive(options.syncLimitMs, 1000, 'syncLimitMs')),
      cpuLimitMs: Math.min(deadlineMs, positive(options.cpuLimitMs, 2000, 'cpuLimitMs')),
      maxValueBytes: positive(options.maxValueBytes, DEFAULT_MAX_VALUE_BYTES, 'maxValueBytes'),
      maxLogChars: positive(options.maxLogChars, 8192, 'maxLogChars'),
      maxRequestsInFlight: positive(options.maxRequestsInFlight, 1024, 'maxRequestsInFlight'),
      maxBytesInFlight: positive(options.maxBytesInFlight, 16 * 1024 * 1024, 'maxBytesInFlight'),
      maxLogLinesPerSecond: positive(options.maxLogLinesPerSecond, 200, 'maxLogLinesPerSecond'),
      quarantineAfterBreaks: positive(options.quarantineAfterBreaks, 3, 'quarantineAfterBreaks'),
      quarantineWindowMs: positive(options.quarantineWindowMs, 60_000, 'quarantineWindowMs'),
      quarantineMs: positive(options.quarantineMs, 30_000, 'quarantineMs'),
    };
    this.logger = options.logger ?? createLogger('scripts');
    this.backend = options.worker !== true
      ? new ThreadBackend(new ScriptEngine(this.limits, options.services, this.logger))
      : new WorkerBackend(this.limits, options.services, this.logger);
  }

  /** The limits every isolate of this host runs under. */
  get settings(): Readonly<HostLimits> {
    return this.limits;
  }

  /** Loads a new bundle under `name` (made and started now: a bundle that does not load throws here). */
  async load(name: string, source: ScriptSource): Promise<BundleInfo> {
    if (this.bundles.has(checkName(name))) {
      throw new ConfigError(`a script bundle named "${name}" is already loaded; use reload("${name}", …) to replace it`);
    }
    return this.reload(name, source);
  }

  /**
   * Loads `source` under `name`, replacing the version loaded before (if any): new calls run the
   * new version, calls in flight finish on theirs. A version that does not load throws, and the
   * one before keeps serving.
   */
  async reload(name: string, source: ScriptSource): Promise<BundleInfo> {
    this.checkOpen();
    checkName(name);
    const bundle = typeof source === 'string' ? { code: source } : source;
    if (!bundle || typeof bundle.code !== 'string') {
      throw new ConfigError(`reload("${name}", …) needs the bundle's JavaScript (a string, or { code, map?, file? })`);
    }
    this.prelude ??= await sdkPrelude();
    this.checkOpen();
    const info = await this.backend.reload(name, { code: bundle.code, map: bundle.map, file: bundle.file }, this.prelude);
    this.bundles.set(name, info.exports);
    return info;
  }

  /**
   * Loads (or reloads) a script file: a `.ts`/`.js` script is bundled with esbuild; a bundle made
   * by `kuafu bundle` (`.js` next to its `.js.map`) is loaded as it is. The name defaults to the
   * file's name without extension.
   */
  async loadFile(file: string, name = basename(file, extname(file))): Promise<BundleInfo> {
    if (!existsSync(file)) throw new NotFoundError(`script file ${file} does not exist`);
    const extension = extname(file);
    if (extension === '.ts' || extension === '.mts') return this.reload(name, await bundleScript(file));
    if (extension !== '.js' && extension !== '.mjs') {
      throw new ConfigError(`cannot load ${file}: a script is a .ts file or a bundle (.js) made by kuafu bundle`);
    }
    const code = await readFile(file, 'utf8');
    const mapFile = `${file}.map`;
    const map = existsSync(mapFile) ? await readFile(mapFile, 'utf8') : undefined;
    if (map === undefined && inlineSourceMap(code) === undefined && /^\s*import\s/m.test(code)) {
      // A plain script with imports: bundle it rather than fail on its imports.
      return this.reload(name, await bundleScript(file));
    }
    return this.reload(name, { code, map, file });
  }

  /** Removes a bundle: calls in flight finish first, then its isolate is disposed. */
  unload(name: string): void {
    if (!this.bundles.delete(name)) return;
    this.backend.unload(name);
  }

  /** Whether a bundle is loaded under `name`. */
  has(name: string): boolean {
    return this.bundles.has(name);
  }

  /** The names of the loaded bundles. */
  names(): string[] {
    return [...this.bundles.keys()];
  }

  /**
   * Runs the exported function `fn` of bundle `name` with `args` (value types): resolves with its
   * result (a value type). Fails with a ScriptError (the script threw: its message names the
   * designer's `.ts` file and line; kind `Quarantined` while the bundle is quarantined), a
   * ScriptLimitError (the bundle broke a limit), or, for the caller's own mistakes, NotFoundError
   * (no such bundle), NotExportedError (no such function), ValueTypeError (arguments that are not
   * value types).
   */
  run(name: string, fn = 'main', args: unknown[] = []): Promise<unknown> {
    try {
      this.checkOpen();
      const exports = this.bundles.get(name);
      if (!exports) {
        const loaded = this.names();
        throw new NotFoundError(`no script bundle named "${name}" is loaded on this server; load it first (loaded: ${loaded.length ? loaded.join(', ') : 'none'})`);
      }
      if (!Array.isArray(args)) throw new ValueTypeError(`${name}.${fn}: args must be a list of values, e.g. [pid]`);
      const needsMoreThanJson = checkValue(args, () => `${name}.${fn}: args`, this.limits.maxValueBytes);
      if (!exports.includes(fn)) {
        throw new NotExportedError(
          `bundle ${name} exports no function "${fn}"; it exports ${exports.length ? exports.join(', ') : 'no function'}. Export it from the script (export async function ${fn}(…)).`,
          { bundle: name, fn },
        );
      }
      return this.backend.run(name, fn, args, needsMoreThanJson);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Figures of bundle `name`: load time and memory of its isolate, calls in flight. */
  stats(name: string): BundleStats {
    if (!this.bundles.has(name)) throw new NotFoundError(`no script bundle named "${name}" is loaded on this server`);
    return this.backend.stats(name);
  }

  /**
   * Measures bundle `name`'s cold load: makes `samples` fresh isolates with its current version
   * (startup code, bundle, top-level code), measures each, and disposes them. The live isolate is
   * not touched. For benchmarks (`bundle_cold_load_ms`, `isolate_idle_mib`).
   */
  async measureColdLoad(name: string, samples = 5): Promise<ColdLoadMeasurement> {
    this.checkOpen();
    if (!this.bundles.has(name)) throw new NotFoundError(`no script bundle named "${name}" is loaded on this server`);
    return this.backend.measureColdLoad(name, samples);
  }

  /** Stops every bundle: calls in flight fail with `Stopped`; the host takes no more calls. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.bundles.clear();
    await this.backend.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new ConfigError('this script host is closed; make a new ScriptHost');
  }
}

/** The isolates on this thread. */
class ThreadBackend implements Backend {
  constructor(private readonly engine: ScriptEngine) {}

  async reload(name: string, bundle: ScriptBundle, prelude: string): Promise<BundleInfo> {
    return this.engine.reload(name, bundle, prelude);
  }

  unload(name: string): void {
    this.engine.unload(name);
  }

  run(name: string, fn: string, args: unknown[], needsMoreThanJson: boolean): Promise<unknown> {
    return this.engine.run(name, fn, args, needsMoreThanJson);
  }

  stats(name: string): BundleStats {
    return this.engine.stats(name);
  }

  measureColdLoad(name: string, samples: number): Promise<ColdLoadMeasurement> {
    return this.engine.measureColdLoad(name, samples);
  }

  async close(): Promise<void> {
    this.engine.close();
  }
}

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  /** The call's bundle and function (for a call). */
  name?: string;
  fn?: string;
}

/**
 * The isolates in a script worker. Calls started in one turn of this thread's event loop, and the
 * answers to the scripts' requests that came in during it, go to the worker in one message (sent
 * from setImmediate: everything the poll phase brought in goes together).
 */
class WorkerBackend implements Backend {
  private worker: Worker | undefined;
  private out: Op[] = [];
  private flushScheduled = false;
  private readonly calls = new Map<number, Waiting>();
  private readonly controls = new Map<number, Waiting>();
  private nextId = 0;
  /** The bundles' figures as the worker last reported them. */
  private readonly states = new Map<string, BundleStats>();
  /** Calls in flight per bundle, counted here (the worker reports the split between versions). */
  private readonly inFlight = new Map<string, number>();
  private readonly stateAt = new Map<string, number>();
  /** The loaded bundles' sources: a worker that died is made again with them. */
  private readonly sources = new Map<string, ScriptBundle>();
  private prelude = '';
  private referenced = false;
  private closing = false;

  constructor(private readonly limits: HostLimits, private readonly services: ScriptServices, private readonly logger: Logger) {}

  async reload(name: string, bundle: ScriptBundle, prelude: string): Promise<BundleInfo> {
    this.prelude = prelude;
    const info = await this.control('reload', { name, bundle, prelude }) as BundleInfo;
    this.sources.set(name, bundle);
    return info;
  }

  unload(name: string): void {
    this.sources.delete(name);
    this.states.delete(name);
    void this.control('unload', { name }).catch(() => {});
  }

  run(name: string, fn: string, args: unknown[], needsMoreThanJson: boolean): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const id = ++this.nextId;
      this.calls.set(id, { resolve, reject, name, fn });
      this.inFlight.set(name, (this.inFlight.get(name) ?? 0) + 1);
      this.send([RUN, id, name, fn, args, needsMoreThanJson]);
    });
  }

  stats(name: string): BundleStats {
    const state = this.states.get(name);
    if (!state) throw new NotFoundError(`no script bundle named "${name}" is loaded on this server`);
    const inFlight = Math.max(0, (this.inFlight.get(name) ?? 0) - state.retiringInFlight);
    return { ...state, exports: [...state.exports], inFlight, quarantinedForMs: Math.max(0, state.quarantinedForMs - (performance.now() - this.stateAt.get(name)!)) };
  }

  async measureColdLoad(name: string, samples: number): Promise<ColdLoadMeasurement> {
    return this.control('measureColdLoad', { name, samples }) as Promise<ColdLoadMeasurement>;
  }

  async close(): Promise<void> {
    // The calls in flight fail now, as the host closes (the worker stops their isolates).
    const reason = 'the script host was closed';
    for (const waiting of this.calls.values()) {
      waiting.reject(new ScriptError(`bundle ${waiting.name}: call ${waiting.fn} was stopped: ${reason}; it did not finish`, {
        bundle: waiting.name!, fn: waiting.fn!, kind: 'Stopped', errorName: 'Error', errorMessage: reason, location: null, frames: [],
      }));
    }
    this.calls.clear();
    this.inFlight.clear();
    for (const waiting of this.controls.values()) waiting.reject(new ConfigError('this script host is closed; make a new ScriptHost'));
    this.controls.clear();
    this.out = [];
    this.closing = true;
    const worker = this.worker;
    this.worker = undefined;
    // Ending the worker disposes its isolates; nothing waits on it any more.
    if (worker) void worker.terminate().catch(() => {});
  }

  private callEnded(name: string): void {
    const left = (this.inFlight.get(name) ?? 1) - 1;
    if (left > 0) this.inFlight.set(name, left);
    else this.inFlight.delete(name);
  }

  private control(method: string, params: Record<string, unknown>): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const id = ++this.nextId;
      this.controls.set(id, { resolve, reject });
      this.send([CONTROL, id, method, params]);
    });
  }

  private send(op: Op): void {
    this.out.push(op);
    this.keepAlive();
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.out.length === 0) return;
    const batch = this.out;
    this.out = [];
    const worker = this.ensureWorker();
    try {
      worker.postMessage(batch);
    } catch {
      // Something in the batch cannot be copied (everything is checked first: this is a bug); send the rest.
      for (const op of batch) {
        try {
          worker.postMessage([op]);
        } catch (error) {
          this.logger.error(`the script worker could not be sent op ${String(op[0])}`, error);
          const waiting = op[0] === RUN ? this.calls.get(op[1] as number) : op[0] === CONTROL ? this.controls.get(op[1] as number) : undefined;
          if (waiting) {
            this.calls.delete(op[1] as number);
            this.controls.delete(op[1] as number);
            waiting.reject(error as Error);
          } else if (op[0] === ANSWER) {
            worker.postMessage([[ANSWER, op[1], false, errorToWire(error)]]);
          }
        }
      }
    }
  };

  /** The worker keeps the process alive only while something waits for it. */
  private keepAlive(): void {
    const busy = this.calls.size > 0 || this.controls.size > 0;
    if (busy === this.referenced || !this.worker) return;
    this.referenced = busy;
    if (busy) this.worker.ref();
    else this.worker.unref();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./script-worker.js', import.meta.url), { workerData: { limits: this.limits } });
    this.worker = worker;
    this.referenced = true;
    this.keepAlive();
    worker.on('message', (batch: Op[]) => this.receive(batch));
    worker.on('error', (error) => this.logger.error('the script worker failed', error));
    worker.on('exit', (code) => this.onExit(worker, code));
    return worker;
  }

  /** The worker stopped without being asked: what waited on it fails; the next call makes a new one with the loaded bundles. */
  private onExit(worker: Worker, code: number): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    if (this.closing) return;
    this.logger.error(`the script worker stopped (exit code ${code}); it is made again, with the loaded bundles, on the next call`);
    const stopped = (what: string) => new ScriptError(`the script worker stopped while ${what} was running; it did not finish`, {
      bundle: '', fn: '', kind: 'Stopped', errorName: 'Error', errorMessage: 'worker stopped', location: null, frames: [],
    });
    for (const waiting of this.calls.values()) waiting.reject(stopped('the call'));
    for (const waiting of this.controls.values()) waiting.reject(stopped('a load'));
    this.calls.clear();
    this.controls.clear();
    this.inFlight.clear();
    for (const [name, bundle] of this.sources) {
      this.control('reload', { name, bundle, prelude: this.prelude }).catch((error: unknown) => this.logger.error(`bundle ${name} did not load in the new script worker`, error));
    }
  }

  private receive(batch: Op[]): void {
    for (const op of batch) {
      switch (op[0]) {
        case STATE: {
          const stats = op[2] as BundleStats | null;
          if (stats === null) this.states.delete(op[1] as string);
          else {
            this.states.set(op[1] as string, stats);
            this.stateAt.set(op[1] as string, performance.now());
          }
          break;
        }
        case DONE: {
          const waiting = this.calls.get(op[1] as number);
          if (!waiting) break;
          this.calls.delete(op[1] as number);
          this.callEnded(waiting.name!);
          if (op[2]) waiting.resolve(op[3]);
          else waiting.reject(errorFromWire(op[3] as WireError));
          break;
        }
        case REQUEST:
          this.serve(op[1] as number, op[2] as string, op[3] as number, op[4] as string[] | null, op[5] as unknown[] | null);
          break;
        case SCRIPT_LOG:
          try {
            this.services.log(op[1] as LogLevel, op[2] as string, op[3] as string);
          } catch (error) {
            this.logger.error(`bundle ${op[2] as string}: the host's log failed`, error);
          }
          break;
        case HOST_LOG: {
          const level = op[1] as LogLevel;
          if (level === 'error') this.logger.error(op[2] as string, op[3] === null ? undefined : errorFromWire(op[3] as WireError));
          else this.logger[level](op[2] as string);
          break;
        }
        case REPLY: {
          const waiting = this.controls.get(op[1] as number);
          if (!waiting) break;
          this.controls.delete(op[1] as number);
          if (op[2]) waiting.resolve(op[3]);
          else waiting.reject(errorFromWire(op[3] as WireError));
          break;
        }
      }
    }
    this.keepAlive();
  }

  /** A script's request, handed to this server's services (the requests of one message in one synchronous loop). */
  private serve(id: number, op: string, pid: number, path: string[] | null, args: unknown[] | null): void {
    const answer = (ok: boolean, value: unknown) => {
      if (ok) {
        // Checked here too: what is not a value cannot be posted to the worker at all.
        try {
          checkValue(value, () => `the answer to ${describeRequest({ op: op as RequestOp, pid, path })}: result`, this.limits.maxValueBytes);
        } catch (error) {
          ok = false;
          value = error;
        }
      }
      const wire = ok ? value : errorToWire(value);
      this.out.push([ANSWER, id, ok, wire]);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    };
    const direct = this.services.invokePlayerWith;
    if (op === 'invoke' && direct !== undefined) {
      try {
        direct.call(this.services, pid, path!, args!, answer);
      } catch (error) {
        queueMicrotask(() => answer(false, error));
      }
      return;
    }
    let promise: Promise<unknown>;
    try {
      switch (op) {
        case 'invoke':
          promise = this.services.invokePlayer(pid, path!, args!);
          break;
        case 'kuafu':
          promise = this.services.getKuafuPlayer(pid);
          break;
        case 'profile':
          promise = this.services.getProfile(pid);
          break;
        case 'service':
          promise = this.services.callService(path![0]!, path![1]!, path![2]!, args!);
          break;
        default:
          throw new Error(`unknown request ${op}`);
      }
    } catch (error) {
      promise = Promise.reject(error);
    }
    Promise.resolve(promise).then((value) => answer(true, value), (error: unknown) => answer(false, error));
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(`ScriptHost option ${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

function checkName(name: string): string {
  if (typeof name !== 'string' || !BUNDLE_NAME.test(name)) {
    throw new ConfigError(`a script bundle name is letters, digits, "_", "-" and "." (at most 100), got ${JSON.stringify(name)}`);
  }
  return name;
}
