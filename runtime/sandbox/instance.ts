/**
 * One isolate running one version of one script bundle, and the bridge to it.
 *
 * The bridge (LIBRARY-NOTES, second design): the host enters the isolate synchronously on its own
 * main thread — `applySync` on the SDK's `start` (the calls asked for since the last turn) or
 * `settle` (the answers that came in since the last turn) — and every entry is bounded by the
 * sync `timeout`. The script's microtasks run inside the entry. Values go in as JSON text when
 * JSON carries them exactly (cheaper than a structured copy).
 *
 * What the script sends meanwhile (remote calls, look-ups, the ends of calls) goes into the SDK's
 * outbox, which the entry answers: isolated-vm copies an entry's result after the microtasks ran,
 * so one copy carries everything out. The host checks every message again (the SDK runs next to
 * the script), then hands the requests of that entry to its ScriptServices in one synchronous
 * loop (so calls of one tick go out as one batch per server). Log lines go out at once, through a
 * synchronous `ivm.Callback` (so a line written just before a limit is broken is not lost).
 *
 * Limits: memory (`memoryLimit`; V8 disposes the isolate when it is broken), CPU of every entry
 * (the sync `timeout`), and a wall-clock deadline per call that covers awaits (one timer per
 * isolate, armed for the oldest call in flight). A broken limit disposes the isolate: the calls
 * that broke it get a ScriptLimitError naming the limit and the bundle (when a batch of calls
 * started together broke it, each of them does); the other calls in flight on that isolate get a
 * ScriptError of kind `Stopped`. The host makes a new isolate for the bundle on its next call.
 */
import ivm from 'isolated-vm';
import { performance } from 'node:perf_hooks';
import { KuafuError, ValueTypeError } from '../errors.js';
import { checkValue } from '../rpc/values.js';
import type { Logger } from '../util/log.js';
import type { BridgeError, LogLevel, Outbox, RequestOp, SandboxConfig, Settlement } from '../../sdk/protocol.js';
import { ScriptError, ScriptLimitError, type ScriptLimit } from './script-error.js';
import type { ScriptServices } from './script-services.js';
import { SDK_FILENAME, type StackMapper } from './source-maps.js';
import { SDK_GLOBAL } from './prelude.js';
import { requestBytes } from './sizes.js';

/** The limits of every isolate of a host. */
export interface Limits {
  memoryLimitMiB: number;
  deadlineMs: number;
  syncLimitMs: number;
  maxValueBytes: number;
  maxLogChars: number;
  /** Remote calls and look-ups one isolate may have waiting for answers at once. */
  maxRequestsInFlight: number;
  /** Bytes of requests one isolate may have waiting for answers at once, each counted with its own size. */
  maxBytesInFlight: number;
  /** CPU time one call may use, counted across all its turns (the isolate's CPU while it is in flight). */
  cpuLimitMs: number;
  /** Log lines one isolate may write in a second; more are dropped (and counted). */
  maxLogLinesPerSecond: number;
}

/** One loaded version of a bundle. */
export interface BundleVersion {
  name: string;
  version: number;
  code: string;
  /** The file name the bundle runs under inside its isolate (`<name>.bundle.js`). */
  filename: string;
  mapper: StackMapper;
}

interface CallRecord {
  id: number;
  fn: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  /** When its deadline passes (performance.now() ms). */
  deadline: number;
  cpuAtStart: bigint;
}

interface OutgoingRequest {
  id: number;
  op: RequestOp;
  pid: number;
  path: string[] | null;
  args: unknown[] | null;
  /** Its size as the limits count it. */
  bytes: number;
}

/** Why an isolate was stopped for a limit, as the host's quarantine counts it. */
export interface LimitBreak {
  limit: ScriptLimit;
  fn: string;
  /** Whether it was the bundle's top-level code (re-run on every new isolate). */
  atLoad: boolean;
}

type Ref = ivm.Reference<any>;

/** What isolated-vm is told for an entry: arguments (JSON text, or copied), the outbox copied out, the sync limit. */
interface EntryOptions {
  arguments?: { copy: true };
  result: { copy: true };
  timeout: number;
}
const TEXT_IN: EntryOptions = { result: { copy: true }, timeout: 0 };
const COPY_IN: EntryOptions = { arguments: { copy: true }, result: { copy: true }, timeout: 0 };

/** The grid the sync limits of entries end on, ms (see BundleInstance.syncTimeout). */
const SYNC_LIMIT_GRID_MS = 50;

const LOG_LEVELS = new Set<LogLevel>(['debug', 'info', 'warn', 'error']);
const MAX_PATH_LENGTH = 16;
const MAX_NAME_LENGTH = 128;

let nextCallId = 0;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One isolate of one bundle version. */
export class BundleInstance {
  /** `live`: takes new calls; `retiring`: a newer version took over, finishing its calls; `dead`: disposed. */
  state: 'live' | 'retiring' | 'dead' = 'live';
  /** The names of the bundle's exported functions. */
  readonly exports: string[];
  /** How long making this isolate and loading the bundle took (ms). */
  readonly loadMs: number;
  /** Calls run on this isolate, in all. */
  callsStarted = 0;

  private readonly isolate: ivm.Isolate;
  private context: ivm.Context | undefined;
  private startRef: Ref | undefined;
  private settleRef: Ref | undefined;
  private takeRef: Ref | undefined;
  private readonly calls = new Map<number, CallRecord>();
  /** Requests taken in from the current entry, handed to the services when it ends. */
  private toSend: OutgoingRequest[] = [];
  private settlements: Settlement[] = [];
  /** Whether JSON carries every settlement queued so far exactly (then it goes in as text: cheaper). */
  private settlementsJson = true;
  private settleScheduled = false;
  private entered = false;
  /** When the current (or last) entry began (performance.now() ms). */
  private entryStartedAt = 0;
  /** Calls waiting for the next start entry (`[callId, fn, args]`), their records, and whether JSON carries all their args. */
  private startQueue: Array<[number, string, unknown[]]> = [];
  private startRecords: CallRecord[] = [];
  private startJson = true;
  private startScheduled = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Requests handed to the services and not answered yet (or about to be handed over), and their bytes. */
  private requestsInFlight = 0;
  private bytesInFlight = 0;
  private logWindowStart = 0;
  private logLinesInWindow = 0;
  private logLinesDropped = 0;

  constructor(
    readonly version: BundleVersion,
    prelude: string,
    private readonly limits: Limits,
    private readonly services: ScriptServices,
    private readonly logger: Logger,
    private readonly onDead: (instance: BundleInstance) => void,
    private readonly onBreak: (instance: BundleInstance, broke: LimitBreak) => void = () => {},
  ) {
    const began = performance.now();
    this.isolate = new ivm.Isolate({
      memoryLimit: limits.memoryLimitMiB,
      onCatastrophicError: (message) => {
        logger.error(`isolated-vm lost control of the isolate of bundle ${version.name} (${message}); restart this server`);
      },
    });
    try {
      this.exports = this.boot(prelude);
    } catch (error) {
      const failure = this.loadError(error);
      this.state = 'dead';
      this.releaseHandles();
      if (!this.isolate.isDisposed) this.isolate.dispose();
      throw failure;
    }
    this.loadMs = performance.now() - began;
  }

  get name(): string {
    return this.version.name;
  }

  /** Calls in flight on this isolate. */
  get inFlight(): number {
    return this.calls.size;
  }

  /** Starts the SDK, then the bundle; answers the bundle's exported function names. */
  private boot(prelude: string): string[] {
    const context = this.isolate.createContextSync();
    this.context = context;
    const config: SandboxConfig = {
      bundle: this.version.name,
      maxValueBytes: this.limits.maxValueBytes,
      maxLogChars: this.limits.maxLogChars,
      maxRequestsInFlight: this.limits.maxRequestsInFlight,
      maxBytesInFlight: this.limits.maxBytesInFlight,
    };
    const entries = context.evalClosureSync(
      `${prelude}\nreturn ${SDK_GLOBAL}.install({ log: $0 }, $1);`,
      [new ivm.Callback(this.onLog), JSON.stringify(config)],
      { result: { reference: true }, timeout: this.limits.syncLimitMs, filename: SDK_FILENAME },
    ) as Ref;
    let setExports: Ref | undefined;
    try {
      this.startRef = entries.getSync('start', { reference: true }) as Ref;
      this.settleRef = entries.getSync('settle', { reference: true }) as Ref;
      this.takeRef = entries.getSync('take', { reference: true }) as Ref;
      setExports = entries.getSync('setExports', { reference: true }) as Ref;
    } finally {
      entries.release();
    }
    let module: ivm.Module | undefined;
    try {
      module = this.isolate.compileModuleSync(this.version.code, { filename: this.version.filename });
      const imports = module.dependencySpecifiers;
      if (imports.length > 0) {
        throw new ScriptError(
          `bundle ${this.name} imports ${imports.map((name) => JSON.stringify(name)).join(', ')}: a script bundle must be self-contained; bundle it with \`kuafu bundle\` (or load the .ts file) so its imports are built in`,
          { bundle: this.name, fn: '(load)', kind: 'Script', errorName: 'Error', errorMessage: 'imports', location: null, frames: [] },
        );
      }
      module.instantiateSync(context, () => {
        throw new Error('a script bundle has no imports');
      });
      module.evaluateSync({ timeout: this.limits.syncLimitMs });
      const namespace = module.namespace;
      let names: string[];
      let early: Outbox;
      try {
        [names, early] = setExports.applySync(undefined, [namespace.derefInto()], {
          result: { copy: true }, timeout: this.limits.syncLimitMs,
        }) as [string[], Outbox];
      } finally {
        namespace.release();
      }
      // Requests of the top-level code: no call is running, so each is refused.
      this.absorb(early);
      if (this.settlements.length > 0) this.scheduleSettle();
      return names;
    } finally {
      setExports.release();
      module?.release();
    }
  }

  /** A failure while loading, as the designer should read it. */
  private loadError(error: unknown): Error {
    if (error instanceof ScriptError) return error;
    const limit = this.limitOf(error);
    if (limit) {
      return new ScriptLimitError(this.limitMessage(limit, 'while loading (its top-level code)'), limit, {
        bundle: this.name, fn: '(load)', errorName: 'Error', errorMessage: messageOf(error), location: null, frames: [],
      });
    }
    const name = error instanceof Error ? error.name : 'Error';
    const raw = messageOf(error);
    const stack = error instanceof Error ? error.stack ?? '' : '';
    const { frames, top } = this.version.mapper.mapStack(stack);
    // Syntax errors carry their position in the message: "… [name.bundle.js:3:5]".
    const message = this.version.mapper.mapText(raw);
    const where = top ?? null;
    return new ScriptError(
      `bundle ${this.name} failed to load${where ? ` at ${where.file}:${where.line}:${where.column}` : ''}: ${name}: ${message}`,
      { bundle: this.name, fn: '(load)', kind: 'Script', errorName: name, errorMessage: message, location: where, frames },
    );
  }

  /** Runs the exported function `fn` with `args` (already checked); resolves with its result. */
  call(fn: string, args: unknown[], needsMoreThanJson = true): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      if (this.state !== 'live') {
        reject(new ScriptError(`bundle ${this.name}: its isolate is ${this.state === 'dead' ? 'disposed' : 'retiring'}; call the host again`, {
          bundle: this.name, fn, kind: 'Stopped', errorName: 'Error', errorMessage: 'not live', location: null, frames: [],
        }));
        return;
      }
      const id = ++nextCallId;
      const record: CallRecord = {
        id, fn, resolve, reject,
        deadline: performance.now() + this.limits.deadlineMs,
        cpuAtStart: this.isolate.cpuTime,
      };
      this.calls.set(id, record);
      if (this.deadlineTimer === undefined) this.armDeadline();
      else if (this.calls.size === 1) this.deadlineTimer.ref();
      this.callsStarted++;
      this.startQueue.push([id, fn, args]);
      this.startRecords.push(record);
      if (needsMoreThanJson) this.startJson = false;
      if (!this.startScheduled) {
        this.startScheduled = true;
        queueMicrotask(this.startNow);
      }
    });
  }

  /**
   * Starts the calls queued since the last turn, in one entry: calls made in one tick (64 players
   * answered at once, each asking for the next call) cost one entry, not one each.
   */
  private readonly startNow = (): void => {
    this.startScheduled = false;
    if (this.state === 'dead' || this.startQueue.length === 0) return;
    if (this.entered) return; // enter() schedules again when it returns
    const batch = this.startQueue;
    const records = this.startRecords;
    const json = this.startJson;
    this.startQueue = [];
    this.startRecords = [];
    this.startJson = true;
    this.enter(records, () => (json
      ? this.startRef!.applySync(undefined, [JSON.stringify(batch)], this.entryOptions(TEXT_IN))
      : this.startRef!.applySync(undefined, [batch], this.entryOptions(COPY_IN))
    ) as Outbox);
  };

  /** A newer version took over: dispose now when idle, else once the calls in flight end. */
  retire(): void {
    if (this.state !== 'live') return;
    this.state = 'retiring';
    if (this.calls.size === 0 && !this.entered) this.dispose();
  }

  /** Disposes the isolate; calls still in flight fail with `Stopped` and `reason`. */
  stop(reason: string): void {
    if (this.state === 'dead') return;
    for (const record of [...this.calls.values()]) {
      this.fail(record, new ScriptError(`bundle ${this.name}: call ${record.fn} was stopped: ${reason}; it did not finish`, {
        bundle: this.name, fn: record.fn, kind: 'Stopped', errorName: 'Error', errorMessage: reason, location: null, frames: [],
      }));
    }
    this.dispose();
  }

  /** The CPU time the isolate has used (ms), or null when disposed. */
  cpuMs(): number | null {
    return this.state === 'dead' || this.isolate.isDisposed ? null : Number(this.isolate.cpuTime) / 1e6;
  }

  /** The isolated-vm handles the isolate holds, or null when disposed. */
  references(): number | null {
    return this.state === 'dead' || this.isolate.isDisposed ? null : this.isolate.referenceCount;
  }

  /** Heap figures of the isolate (MiB) and its CPU time (ms), or null when disposed (reading them costs ~35 µs). */
  heap(): { usedMiB: number; totalMiB: number; externalMiB: number; cpuMs: number; references: number } | null {
    if (this.state === 'dead' || this.isolate.isDisposed) return null;
    const stats = this.isolate.getHeapStatisticsSync();
    const MiB = 1024 * 1024;
    return {
      usedMiB: stats.used_heap_size / MiB,
      totalMiB: stats.total_heap_size / MiB,
      externalMiB: stats.externally_allocated_size / MiB,
      cpuMs: Number(this.isolate.cpuTime) / 1e6,
      references: this.isolate.referenceCount,
    };
  }

  /**
   * The sync limit of one entry, as isolated-vm's `timeout` (ms). isolated-vm arms a timer per
   * entry and leaves it, disarmed, in its timer thread's queue until it would have expired; the
   * thread wakes for each one (measured: ~0.5 wake-ups, each a context switch, per script run
   * with one remote call, at one run at a time). Entries therefore end their limit on a grid
   * of SYNC_LIMIT_GRID_MS, so the timers of many entries expire together and the thread wakes
   * once for them: the limit is syncLimitMs plus at most the grid step.
   */
  private syncTimeout(): number {
    const now = performance.now();
    let end = now + this.limits.syncLimitMs;
    // Nor past the deadline of the oldest call in flight: a loop begun just before it cannot outlast it.
    // Nor past the oldest call's CPU budget.
    const oldest = this.calls.values().next().value as CallRecord | undefined;
    if (oldest !== undefined) {
      if (oldest.deadline < end) end = oldest.deadline;
      const cpuLeft = this.limits.cpuLimitMs - Number(this.isolate.cpuTime - oldest.cpuAtStart) / 1e6;
      if (now + cpuLeft < end) end = now + cpuLeft;
    }
    return Math.max(1, Math.ceil(Math.ceil(end / SYNC_LIMIT_GRID_MS) * SYNC_LIMIT_GRID_MS - now));
  }

  /** The options of an entry (one object per kind, reused: isolated-vm reads them on every entry), with this entry's limit. */
  private entryOptions(options: EntryOptions): EntryOptions {
    options.timeout = this.syncTimeout();
    return options;
  }

  // ---- entries into the isolate ----------------------------------------------------------------

  /**
   * Runs one synchronous entry into the isolate and takes in what the script sent during it; then
   * hands the requests to the services in one loop. An entry that throws broke a limit (or the
   * sandbox itself): `starting` are the calls the entry started, if it started some.
   */
  private enter(starting: CallRecord[] | undefined, body: () => Outbox): void {
    // The budgets are checked at every entry, whatever answered the await: answers settled without
    // I/O (a local player, a cache) come back without the event loop turning, so the deadline's
    // timer alone could not fire in time.
    if (this.overBudget()) return;
    this.entered = true;
    this.entryStartedAt = performance.now();
    let outbox: Outbox;
    try {
      outbox = body();
    } catch (error) {
      const recovered = this.limitOf(error) === null ? this.afterUnhandledRejection(error) : null;
      if (recovered === null) {
        this.entered = false;
        this.breakOn(error, starting);
        return;
      }
      outbox = recovered;
    }
    this.entered = false;
    this.absorb(outbox);
    this.flushOutbox();
    if (this.state === 'retiring' && this.calls.size === 0) {
      this.dispose();
      return;
    }
    if (this.settlements.length > 0 && !this.settleScheduled) this.scheduleSettle();
    if (this.startQueue.length > 0 && !this.startScheduled) {
      this.startScheduled = true;
      queueMicrotask(this.startNow);
    }
  }

  /**
   * An entry threw without breaking a limit. The SDK's entries catch everything the script
   * throws, so this is a promise the script left unhandled that rejected (isolated-vm throws the
   * first such rejection out of the entry, in place of its result). Like Node, report it in the
   * log; unlike Node, keep going: take the entry's outbox with a second, tiny entry. Null when
   * that fails too (then the sandbox itself is broken).
   */
  private afterUnhandledRejection(error: unknown): Outbox | null {
    try {
      const outbox = this.takeRef!.applySync(undefined, [], this.entryOptions(TEXT_IN)) as Outbox;
      const stack = error instanceof Error ? error.stack ?? `${error.name}: ${error.message}` : String(error);
      const { frames } = this.version.mapper.mapStack(stack);
      const head = error instanceof Error ? `${error.name}: ${this.version.mapper.mapText(error.message)}` : String(error);
      this.onLog('error', `a promise the script did not handle was rejected (await it, or add .catch): ${head}${frames.length ? `\n${frames.join('\n')}` : ''}`);
      return outbox;
    } catch {
      return null;
    }
  }

  /**
   * Whether the oldest call in flight broke its deadline (wall clock) or its CPU budget; if so it
   * fails with the limit and the isolate is stopped. The oldest call started first, so it has had
   * the most time and the most of the isolate's CPU: no other call can be over before it.
   */
  private overBudget(): boolean {
    const oldest = this.calls.values().next().value as CallRecord | undefined;
    if (oldest === undefined) return false;
    if (performance.now() >= oldest.deadline) {
      this.onDeadline(oldest);
      return true;
    }
    const cpuMs = Number(this.isolate.cpuTime - oldest.cpuAtStart) / 1e6;
    if (cpuMs >= this.limits.cpuLimitMs) {
      this.onCpuBudget(oldest, cpuMs);
      return true;
    }
    return false;
  }

  /** The oldest call used up its CPU budget: it fails with the limit; the isolate is stopped. */
  private onCpuBudget(oldest: CallRecord, cpuMs: number): void {
    this.fail(oldest, new ScriptLimitError(this.limitMessage('cpu-call', `call ${oldest.fn}`, cpuMs), 'cpu', {
      bundle: this.name, fn: oldest.fn, errorName: 'Error', errorMessage: 'cpu budget', location: null, frames: [],
      details: { limitMs: this.limits.cpuLimitMs, overrunMs: round1(cpuMs - this.limits.cpuLimitMs) },
    }));
    this.onBreak(this, { limit: 'cpu', fn: oldest.fn, atLoad: false });
    this.stop(`call ${oldest.fn} of the same bundle used more than its ${this.limits.cpuLimitMs} ms of CPU and the bundle's isolate was disposed; retry it`);
  }

  /** Takes in an entry's outbox: ends of calls settle them; requests are checked and queued. */
  private absorb(outbox: unknown): void {
    if (!Array.isArray(outbox)) return;
    for (const message of outbox) {
      if (!Array.isArray(message)) continue;
      if (message[0] === 1) this.onFinish(message[1], message[2], message[3]);
      else if (message[0] === 0) this.onRequest(message[1], message[2], message[3], message[4], message[5]);
    }
  }

  /**
   * The next settle entry waits for the event loop's next turn (setImmediate, not a microtask):
   * a script looping on awaits answered without I/O must not keep the loop from its timers and
   * sockets. Answers that come in meanwhile go in with it.
   */
  private scheduleSettle(): void {
    this.settleScheduled = true;
    setImmediate(this.settleNow);
  }

  private readonly settleNow = (): void => {
    this.settleScheduled = false;
    if (this.state === 'dead' || this.settlements.length === 0) return;
    if (this.entered) return; // enter() schedules again when it returns
    const batch = this.settlements;
    const json = this.settlementsJson;
    this.settlements = [];
    this.settlementsJson = true;
    this.enter(undefined, () => (json
      ? this.settleRef!.applySync(undefined, [JSON.stringify(batch)], this.entryOptions(TEXT_IN))
      : this.settleRef!.applySync(undefined, [batch], this.entryOptions(COPY_IN))
    ) as Outbox);
  };

  /** Queues one settlement (an error's details may hold numbers JSON cannot carry). */
  private settle(settlement: Settlement): void {
    if (!settlement[1]) {
      for (const detail of Object.values(settlement[2].details)) {
        if (typeof detail === 'number' && (!Number.isFinite(detail) || Object.is(detail, -0))) this.settlementsJson = false;
      }
    }
    this.settlements.push(settlement);
  }

  private flushOutbox(): void {
    if (this.toSend.length === 0) return;
    const batch = this.toSend;
    this.toSend = [];
    // One synchronous loop: the services batch the calls of one tick per server.
    const direct = this.services.invokePlayerWith;
    for (const request of batch) {
      if (request.op === 'invoke' && direct !== undefined) {
        // The answer comes straight to onAnswer (no promise in between).
        try {
          direct.call(this.services, request.pid, request.path!, request.args!, (ok, value) => this.onAnswer(request, ok, value));
        } catch (error) {
          queueMicrotask(() => this.onAnswer(request, false, error));
        }
        continue;
      }
      let answer: Promise<unknown>;
      try {
        answer = Promise.resolve(this.serve(request));
      } catch (error) {
        answer = Promise.reject(error);
      }
      answer.then(
        (value) => this.onAnswer(request, true, value),
        (error: unknown) => this.onAnswer(request, false, error),
      );
    }
  }

  private serve(request: OutgoingRequest): Promise<unknown> {
    switch (request.op) {
      case 'invoke':
        return this.services.invokePlayer(request.pid, request.path!, request.args!);
      case 'kuafu':
        return this.services.getKuafuPlayer(request.pid);
      case 'profile':
        return this.services.getProfile(request.pid);
      case 'service':
        return this.services.callService(request.path![0]!, request.path![1]!, request.path![2]!, request.args!);
    }
  }

  private onAnswer(request: OutgoingRequest, ok: boolean, value: unknown): void {
    if (this.state === 'dead') return;
    this.requestsInFlight--;
    this.bytesInFlight -= request.bytes;
    if (ok) {
      try {
        if (checkLabelled(value, () => `the answer to ${describeRequest(request)}: result`, this.limits.maxValueBytes)) {
          this.settlementsJson = false;
        }
      } catch (error) {
        ok = false;
        value = error;
      }
    }
    this.settle(ok ? [request.id, true, value] : [request.id, false, this.bridgeError(value, request)]);
    if (!this.settleScheduled && !this.entered) this.scheduleSettle();
  }

  /** A host error as the script will see it: its kind, and a message that says what to do. */
  private bridgeError(error: unknown, request: OutgoingRequest): BridgeError {
    if (error instanceof KuafuError) {
      return { kind: error.kind, name: error.name, message: error.message, stack: '', details: { ...error.details } };
    }
    this.logger.error(`bundle ${this.name}: ${describeRequest(request)} failed on this server`, error);
    return {
      kind: 'Internal',
      name: 'InternalError',
      message: `${describeRequest(request)} failed on the server: ${messageOf(error)}. This is a server bug, not a script bug; the server's log has the stack.`,
      stack: '',
      details: {},
    };
  }

  // ---- what the sandbox sends (taken in after each entry) -------------------------------------------

  private onRequest(id: unknown, op: unknown, pid: unknown, path: unknown, args: unknown): void {
    if (this.state === 'dead' || typeof id !== 'number') return;
    const problem = this.checkRequest(op, pid, path, args);
    if (problem !== null) {
      this.settle([id, false, problem]);
      return;
    }
    if (this.requestsInFlight >= this.limits.maxRequestsInFlight) {
      this.settle([id, false, {
        kind: 'Sandbox',
        name: 'SandboxError',
        message: `bundle ${this.name} has ${this.requestsInFlight} remote calls waiting for answers, the most it may; await some before making more (e.g. in batches of a few hundred; the host's limit scriptLimits.maxRequestsInFlight is ${this.limits.maxRequestsInFlight})`,
        stack: '',
        details: { limit: this.limits.maxRequestsInFlight, setting: 'maxRequestsInFlight' },
      }]);
      return;
    }
    // Each request counted with its own size (a value shared by many requests is copied for each).
    const room = this.limits.maxBytesInFlight - this.bytesInFlight;
    const bytes = requestBytes(path as string[] | null, args as unknown[] | null, room);
    if (bytes > room) {
      this.settle([id, false, {
        kind: 'Sandbox',
        name: 'SandboxError',
        message: `bundle ${this.name} has ${this.bytesInFlight} bytes of requests waiting for answers and this one would take it past the ${this.limits.maxBytesInFlight} bytes it may (the host's limit scriptLimits.maxBytesInFlight; every request counts the size of its own arguments); await some before sending more`,
        stack: '',
        details: { limit: this.limits.maxBytesInFlight, setting: 'maxBytesInFlight' },
      }]);
      return;
    }
    this.requestsInFlight++;
    this.bytesInFlight += bytes;
    this.toSend.push({ id, op: op as RequestOp, pid: pid as number, path: path as string[] | null, args: args as unknown[] | null, bytes });
  }

  /** The host checks every request again: the SDK runs inside the sandbox, next to the script. */
  private checkRequest(op: unknown, pid: unknown, path: unknown, args: unknown): BridgeError | null {
    const refuse = (kind: string, message: string): BridgeError => ({ kind, name: `${kind}Error`, message, stack: '', details: {} });
    if (op !== 'invoke' && op !== 'kuafu' && op !== 'profile' && op !== 'service') return refuse('ValueType', `unknown request ${String(op)}`);
    if (op !== 'service' && (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0)) {
      return refuse('ValueType', `pid must be a positive integer player id, got ${typeof pid === 'number' ? pid : typeof pid}`);
    }
    if (this.calls.size === 0) {
      return refuse('Sandbox', `bundle ${this.name} made a request while none of its calls was running (at its top level, or after its call ended); make remote calls inside an exported function`);
    }
    if (op === 'kuafu' || op === 'profile') return null;
    if (op === 'service') {
      if (!isServicePath(path)) return refuse('NotExported', 'a service call needs a service, a target and a method, e.g. services.guild("wolves").deduct(…)');
    } else if (!Array.isArray(path) || path.length === 0 || path.length > MAX_PATH_LENGTH
      || !path.every((part) => typeof part === 'string' && part.length > 0 && part.length <= MAX_NAME_LENGTH)) {
      return refuse('NotExported', 'a remote call needs a method path of 1 to 16 names, e.g. player.itemdb.additembytype(…)');
    }
    const what = () => describeRequest({ op, pid: 0, path });
    if (!Array.isArray(args)) return refuse('ValueType', `${what()}: the arguments must be a list`);
    try {
      checkLabelled(args, () => `${what()}: args`, this.limits.maxValueBytes);
    } catch (error) {
      const message = error instanceof ValueTypeError ? error.message : messageOf(error);
      return refuse('ValueType', message);
    }
    return null;
  }

  private onFinish(callId: unknown, ok: unknown, value: unknown): void {
    if (typeof callId !== 'number') return;
    const record = this.calls.get(callId);
    if (record === undefined) return;
    if (ok === true) {
      try {
        checkLabelled(value, () => `${this.name}.${record.fn}: result`, this.limits.maxValueBytes);
      } catch (error) {
        this.fail(record, error as Error);
        return;
      }
      this.calls.delete(record.id);
      this.idleCheck();
      record.resolve(value);
    } else {
      this.fail(record, this.scriptError(record.fn, value));
    }
  }

  /** A log line, sent by the SDK at once through a synchronous callback (inside an entry). */
  private readonly onLog = (level: unknown, text: unknown): void => {
    if (this.state === 'dead') return;
    const at = typeof level === 'string' && LOG_LEVELS.has(level as LogLevel) ? (level as LogLevel) : 'info';
    let line = typeof text === 'string' ? text : String(text);
    if (line.length > this.limits.maxLogChars + 100) line = `${line.slice(0, this.limits.maxLogChars)}… (cut)`;
    // At most maxLogLinesPerSecond lines a second; the lines dropped are counted on the next one.
    const now = performance.now();
    if (now - this.logWindowStart >= 1000) {
      this.logWindowStart = now;
      this.logLinesInWindow = 0;
    }
    if (++this.logLinesInWindow > this.limits.maxLogLinesPerSecond) {
      this.logLinesDropped++;
      return;
    }
    if (this.logLinesDropped > 0) {
      line = `(${this.logLinesDropped} line(s) dropped before this one: more than ${this.limits.maxLogLinesPerSecond} a second) ${line}`;
      this.logLinesDropped = 0;
    }
    try {
      this.services.log(at, this.name, this.version.mapper.mapText(line));
    } catch (error) {
      this.logger.error(`bundle ${this.name}: the host's log failed`, error);
    }
  };

  // ---- errors and limits -----------------------------------------------------------------------

  /** The designer-facing error for an error the script ended with. */
  private scriptError(fn: string, raw: unknown): ScriptError {
    const error = (raw !== null && typeof raw === 'object' ? raw : {}) as Partial<BridgeError>;
    const text = (value: unknown, fallback: string) => (typeof value === 'string' ? value : fallback);
    const kind = text(error.kind, 'Script');
    const name = text(error.name, 'Error');
    const message = this.version.mapper.mapText(text(error.message, String(raw)));
    const { frames, top } = this.version.mapper.mapStack(text(error.stack, ''));
    const details: Record<string, string | number | boolean | null> = {};
    if (error.details !== null && typeof error.details === 'object') {
      for (const [key, value] of Object.entries(error.details)) {
        if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) details[key] = value;
      }
    }
    return new ScriptError(
      `${this.name}.${fn} failed${top ? ` at ${top.file}:${top.line}:${top.column}` : ''}: ${name}: ${message}`,
      { bundle: this.name, fn, kind, errorName: name, errorMessage: message, location: top, frames, details },
    );
  }

  private limitOf(error: unknown): ScriptLimit | null {
    const message = messageOf(error);
    if (this.isolate.isDisposed || /memory limit/i.test(message)) return 'memory';
    if (/execution timed out/i.test(message)) return 'cpu';
    return null;
  }

  private limitMessage(limit: ScriptLimit | 'cpu-call', during: string, cpuMs?: number): string {
    const { deadlineMs, syncLimitMs, memoryLimitMiB } = this.limits;
    const after = 'its isolate was stopped and will be made again on its next call';
    switch (limit) {
      case 'memory':
        return `bundle ${this.name} broke its memory limit (${memoryLimitMiB} MiB) ${during}; ${after}. Look for data that grows without bound (an endless push, a cache never emptied).`;
      case 'cpu':
        return `bundle ${this.name} ran JavaScript for more than ${syncLimitMs} ms without awaiting ${during} (the limit on one stretch of synchronous work); ${after}. Look for an endless loop.`;
      case 'cpu-call':
        return `bundle ${this.name} used more than ${this.limits.cpuLimitMs} ms of CPU ${during} (${cpuMs === undefined ? '' : `${cpuMs.toFixed(1)} ms: `}the isolate's CPU while the call was running, counted across its awaits); ${after}. Look for heavy work repeated in a loop.`;
      case 'deadline':
        return `bundle ${this.name} did not finish ${during} within its ${deadlineMs} ms deadline (wall clock, awaits included${cpuMs === undefined ? '' : `; it used ${cpuMs.toFixed(1)} ms of CPU meanwhile`}); ${after}. Look for an await that never settles or a remote call that is too slow.`;
    }
  }

  /** An entry threw: a limit was broken (or the sandbox failed); the culprits get the limit error. */
  private breakOn(error: unknown, starting: CallRecord[] | undefined): void {
    if (this.state === 'dead') return;
    const limit = this.limitOf(error);
    if (limit === 'cpu') {
      // The entry's limit is cut short at the oldest call's deadline: then that call broke its deadline.
      const oldest = this.calls.values().next().value as CallRecord | undefined;
      if (oldest !== undefined && performance.now() >= oldest.deadline - 1) {
        this.onDeadline(oldest);
        return;
      }
      // Or at its CPU budget.
      const cpuMs = oldest === undefined || this.isolate.isDisposed ? 0 : Number(this.isolate.cpuTime - oldest.cpuAtStart) / 1e6;
      if (oldest !== undefined && cpuMs >= this.limits.cpuLimitMs - 1) {
        this.onCpuBudget(oldest, cpuMs);
        return;
      }
    }
    const overrunMs = round1(performance.now() - this.entryStartedAt - this.limits.syncLimitMs);
    const culprits = starting ?? [...this.calls.values()];
    for (const record of culprits) {
      if (!this.calls.has(record.id)) continue;
      const during = `during call ${record.fn}`;
      this.fail(record, limit
        ? new ScriptLimitError(this.limitMessage(limit, during), limit, {
          bundle: this.name, fn: record.fn, errorName: 'Error', errorMessage: messageOf(error), location: null, frames: [],
          details: limit === 'cpu' ? { limitMs: this.limits.syncLimitMs, overrunMs } : { limitMiB: this.limits.memoryLimitMiB },
        })
        : new ScriptError(`bundle ${this.name}: the sandbox failed ${during}: ${messageOf(error)}; its isolate was stopped and will be made again on its next call`, {
          bundle: this.name, fn: record.fn, kind: 'Internal', errorName: 'Error', errorMessage: messageOf(error), location: null, frames: [],
        }));
    }
    if (!limit) this.logger.error(`bundle ${this.name}: an entry into the sandbox failed`, error);
    else this.onBreak(this, { limit, fn: culprits[0]?.fn ?? '(unknown)', atLoad: false });
    const what = limit === 'memory' ? `its memory limit (${this.limits.memoryLimitMiB} MiB)` : limit === 'cpu' ? `its ${this.limits.syncLimitMs} ms limit on synchronous work` : 'the sandbox';
    const culprit = culprits.length === 1 ? `call ${culprits[0]!.fn}` : 'a call';
    this.stop(`${culprit} of the same bundle broke ${what} and the bundle's isolate was disposed; retry it`);
  }

  private onDeadline(record: CallRecord): void {
    if (this.state === 'dead' || !this.calls.has(record.id)) return;
    const cpuMs = this.isolate.isDisposed ? undefined : Number(this.isolate.cpuTime - record.cpuAtStart) / 1e6;
    this.fail(record, new ScriptLimitError(this.limitMessage('deadline', `call ${record.fn}`, cpuMs), 'deadline', {
      bundle: this.name, fn: record.fn, errorName: 'Error', errorMessage: 'deadline', location: null, frames: [],
      details: { limitMs: this.limits.deadlineMs, overrunMs: round1(performance.now() - record.deadline) },
    }));
    this.onBreak(this, { limit: 'deadline', fn: record.fn, atLoad: false });
    this.stop(`call ${record.fn} of the same bundle broke its ${this.limits.deadlineMs} ms deadline and the bundle's isolate was disposed; retry it`);
  }

  private fail(record: CallRecord, error: Error): void {
    if (!this.calls.delete(record.id)) return;
    this.idleCheck();
    record.reject(error);
  }

  /**
   * One timer per isolate watches the deadlines: every call has the same deadline length, so the
   * oldest call in flight (the first in `calls`, which keeps insertion order) is the next to expire.
   */
  private armDeadline(): void {
    const oldest = this.calls.values().next().value as CallRecord | undefined;
    if (oldest === undefined) return;
    this.deadlineTimer = setTimeout(this.checkDeadline, Math.max(0, oldest.deadline - performance.now()) + 1);
  }

  private readonly checkDeadline = (): void => {
    this.deadlineTimer = undefined;
    if (this.state === 'dead') return;
    const oldest = this.calls.values().next().value as CallRecord | undefined;
    if (oldest === undefined) return;
    if (performance.now() >= oldest.deadline) this.onDeadline(oldest);
    else this.armDeadline();
  };

  /**
   * No call in flight: the deadline timer stays armed (arming one per call cost more than the
   * rest of a call's bookkeeping) but no longer keeps the process alive; when it fires with no
   * call in flight it simply goes.
   */
  private idleCheck(): void {
    if (this.calls.size === 0 && this.deadlineTimer !== undefined) this.deadlineTimer.unref();
  }

  private releaseHandles(): void {
    for (const handle of [this.startRef, this.settleRef, this.takeRef, this.context]) {
      try {
        handle?.release();
      } catch {
        // already gone with the isolate
      }
    }
    this.startRef = undefined;
    this.settleRef = undefined;
    this.takeRef = undefined;
    this.context = undefined;
  }

  private dispose(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.calls.clear();
    this.toSend = [];
    this.settlements = [];
    this.settlementsJson = true;
    this.startQueue = [];
    this.startRecords = [];
    this.startJson = true;
    this.releaseHandles();
    if (!this.isolate.isDisposed) this.isolate.dispose();
    this.onDead(this);
  }
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/** checkValue with a label made only when the value is refused (almost every value passes). */
function checkLabelled(value: unknown, label: () => string, maxBytes: number): boolean {
  return checkValue(value, label, maxBytes);
}

/** A service request's path: `[service, target, method]` (the target is '' for battle). */
function isServicePath(path: unknown): path is [string, string, string] {
  return Array.isArray(path) && path.length === 3 && path.every((part, i) => typeof part === 'string'
    && part.length <= MAX_NAME_LENGTH && (part.length > 0 || i === 1));
}

export function describeRequest(request: Pick<OutgoingRequest, 'op' | 'pid' | 'path'>): string {
  switch (request.op) {
    case 'invoke':
      return `player.${(request.path ?? []).join('.')}`;
    case 'kuafu':
      return `playermgr.getkuafuplayer(${request.pid})`;
    case 'profile':
      return `playermgr.getprofile(${request.pid})`;
    case 'service': {
      const [service, target, method] = request.path ?? [];
      return `services.${service}(${service === 'profile' || target === '' ? target : JSON.stringify(target)}).${method}`;
    }
  }
}
