/**
 * The bundles of one script host and their isolates, wherever the isolates run: in the game
 * server's script worker (the default: see `script-worker.ts`) or on the thread that made the
 * host (`worker: false`). `ScriptHost` is its public face.
 *
 * A bundle that breaks a limit is disposed and made again on its next call; one that keeps
 * breaking them (`quarantineAfterBreaks` breaks within `quarantineWindowMs`, or top-level code that
 * breaks a limit when its isolate is made again) is quarantined for `quarantineMs`: its calls fail
 * at once with a ScriptError of kind `Quarantined`, and the host logs one line. A reload lifts it.
 */
import { ConfigError, NotExportedError, NotFoundError, ValueTypeError } from '../errors.js';
import { checkValue } from '../rpc/values.js';
import type { Logger } from '../util/log.js';
import type { ScriptBundle } from './bundler.js';
import { BundleInstance, type BundleVersion, type Limits, type LimitBreak } from './instance.js';
import { ScriptError, ScriptLimitError } from './script-error.js';
import type { ScriptServices } from './script-services.js';
import { StackMapper, inlineSourceMap, mapDirOf, parseSourceMap } from './source-maps.js';

/** What a loaded bundle looks like from the outside. */
export interface BundleInfo {
  name: string;
  /** Bumped by every load or reload of this name. */
  version: number;
  /** The bundle's exported functions: what `run` can call. */
  exports: string[];
  /** How long making its isolate and loading it took, in ms. */
  loadMs: number;
}

/** Figures of one bundle, for operators and benchmarks. */
export interface BundleStats extends Omit<BundleInfo, 'loadMs'> {
  /** Whether an isolate is running the current version (false after a break, until the next call). */
  live: boolean;
  /** How long making the current isolate and loading the bundle took, in ms (null when not live). */
  coldLoadMs: number | null;
  /**
   * V8 heap in use and allocated, and memory outside the heap counted against the limit, in MiB.
   * Reading them costs ~35 µs, so with the script worker they are as of the last sample (taken at
   * most once a second while the bundle runs).
   */
  heapUsedMiB: number | null;
  heapTotalMiB: number | null;
  externalMiB: number | null;
  /** CPU the current isolate has used, in ms. */
  cpuMs: number | null;
  /** isolated-vm handles (references, scripts, contexts) the current isolate holds: steady unless something leaks. */
  references: number | null;
  /** Calls in flight on the current version, and on older versions still finishing. */
  inFlight: number;
  retiringInFlight: number;
  /** Older versions' isolates kept until their calls end. */
  retiring: number;
  /** Isolates made for this name after the first (breaks of a limit, reloads). */
  isolatesMade: number;
  /** Limits broken by this bundle's calls, in all. */
  limitBreaks: number;
  /** How much longer the bundle is quarantined, in ms (0: it is not). */
  quarantinedForMs: number;
}

/** A cold-load measurement: fresh isolates made and loaded, then disposed. */
export interface ColdLoadMeasurement {
  samples: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Memory of a freshly loaded, idle isolate: V8 heap in use plus external memory, in MiB. */
  idleMiB: number;
}

/** Every limit of a host: those of each isolate, and the quarantine. */
export interface HostLimits extends Limits {
  /** Limit breaks within `quarantineWindowMs` that put a bundle in quarantine. */
  quarantineAfterBreaks: number;
  quarantineWindowMs: number;
  /** How long a quarantine lasts, in ms. */
  quarantineMs: number;
}

interface Entry {
  version: BundleVersion;
  current: BundleInstance | undefined;
  retiring: Set<BundleInstance>;
  isolatesMade: number;
  /** When the recent limit breaks happened (performance.now() ms), within the window. */
  breaks: number[];
  limitBreaks: number;
  /** Until when (performance.now() ms) the bundle is quarantined, and why. */
  quarantinedUntil: number;
  quarantineReason: string;
}

export const BUNDLE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

/** The bundles of one host and their isolates. */
export class ScriptEngine {
  private readonly bundles = new Map<string, Entry>();
  private versions = 0;
  private closed = false;

  /** `onChange(name)`: a bundle's figures changed (an isolate made, stopped or retired; a reload; a quarantine). */
  constructor(
    private readonly limits: HostLimits,
    private readonly services: ScriptServices,
    private readonly logger: Logger,
    private readonly onChange: (name: string) => void = () => {},
  ) {}

  /** Loads `bundle` under `name`, replacing the version loaded before (see ScriptHost.reload). */
  reload(name: string, bundle: ScriptBundle, prelude: string): BundleInfo {
    this.checkOpen();
    const version = this.makeVersion(name, bundle);
    const instance = this.makeInstance(version, prelude);
    const before = this.bundles.get(name);
    if (before) {
      before.version = version;
      before.isolatesMade++;
      // A new version starts with a clean record.
      before.breaks = [];
      before.quarantinedUntil = 0;
      if (before.current) {
        before.retiring.add(before.current);
        before.current.retire();
      }
      before.current = instance;
    } else {
      this.bundles.set(name, {
        version, current: instance, retiring: new Set(), isolatesMade: 0, breaks: [], limitBreaks: 0, quarantinedUntil: 0, quarantineReason: '',
      });
    }
    this.onChange(name);
    return { name, version: version.version, exports: [...instance.exports], loadMs: instance.loadMs };
  }

  /** Removes a bundle: calls in flight finish first, then its isolate is disposed. */
  unload(name: string): void {
    const entry = this.bundles.get(name);
    if (!entry) return;
    this.bundles.delete(name);
    entry.current?.retire();
    entry.current = undefined;
    this.onChange(name);
  }

  has(name: string): boolean {
    return this.bundles.has(name);
  }

  /** Whether older versions of `name` are still finishing calls. */
  hasRetiring(name: string): boolean {
    return (this.bundles.get(name)?.retiring.size ?? 0) > 0;
  }

  names(): string[] {
    return [...this.bundles.keys()];
  }

  /**
   * Runs `fn` of bundle `name` (see ScriptHost.run). Throws at once for the caller's own mistakes;
   * `needsMoreThanJson` is null when the arguments are still to be checked.
   */
  run(name: string, fn: string, args: unknown[], needsMoreThanJson: boolean | null = null): Promise<unknown> {
    this.checkOpen();
    const entry = this.bundles.get(name);
    if (!entry) {
      const loaded = this.names();
      throw new NotFoundError(`no script bundle named "${name}" is loaded on this server; load it first (loaded: ${loaded.length ? loaded.join(', ') : 'none'})`);
    }
    if (needsMoreThanJson === null) {
      if (!Array.isArray(args)) throw new ValueTypeError(`${name}.${fn}: args must be a list of values, e.g. [pid]`);
      needsMoreThanJson = checkValue(args, () => `${name}.${fn}: args`, this.limits.maxValueBytes);
    }
    this.checkQuarantine(entry, fn);
    if (!entry.current) {
      try {
        entry.current = this.makeInstance(entry.version);
      } catch (error) {
        if (error instanceof ScriptLimitError) {
          // Top-level code that broke a limit would break it again on every new isolate.
          this.onBreak(entry, { limit: error.limit, fn: '(load)', atLoad: true }, error.message);
        }
        throw error;
      }
      entry.isolatesMade++;
      this.onChange(name);
    }
    const instance = entry.current;
    if (!instance.exports.includes(fn)) {
      throw new NotExportedError(
        `bundle ${name} exports no function "${fn}"; it exports ${instance.exports.length ? instance.exports.join(', ') : 'no function'}. Export it from the script (export async function ${fn}(…)).`,
        { bundle: name, fn },
      );
    }
    return instance.call(fn, args, needsMoreThanJson);
  }

  /** Figures of bundle `name`; `withHeap: false` leaves out the heap figures (they cost ~35 µs to read). */
  stats(name: string, withHeap = true): BundleStats {
    const entry = this.bundles.get(name);
    if (!entry) throw new NotFoundError(`no script bundle named "${name}" is loaded on this server`);
    const heap = withHeap ? entry.current?.heap() ?? null : null;
    let retiringInFlight = 0;
    for (const old of entry.retiring) retiringInFlight += old.inFlight;
    return {
      name,
      version: entry.version.version,
      exports: entry.current ? [...entry.current.exports] : [],
      live: entry.current !== undefined,
      coldLoadMs: entry.current?.loadMs ?? null,
      heapUsedMiB: heap?.usedMiB ?? null,
      heapTotalMiB: heap?.totalMiB ?? null,
      externalMiB: heap?.externalMiB ?? null,
      cpuMs: entry.current?.cpuMs() ?? null,
      references: entry.current?.references() ?? null,
      inFlight: entry.current?.inFlight ?? 0,
      retiringInFlight,
      retiring: entry.retiring.size,
      isolatesMade: entry.isolatesMade,
      limitBreaks: entry.limitBreaks,
      quarantinedForMs: Math.max(0, Math.ceil(entry.quarantinedUntil - performance.now())),
    };
  }

  /** Measures bundle `name`'s cold load (see ScriptHost.measureColdLoad). */
  async measureColdLoad(name: string, samples = 5): Promise<ColdLoadMeasurement> {
    this.checkOpen();
    const entry = this.bundles.get(name);
    if (!entry) throw new NotFoundError(`no script bundle named "${name}" is loaded on this server`);
    const times: number[] = [];
    const idle: number[] = [];
    for (let i = 0; i < Math.max(1, samples); i++) {
      const instance = new BundleInstance(entry.version, this.prelude!, this.limits, this.services, this.logger, () => {});
      times.push(instance.loadMs);
      const heap = instance.heap();
      if (heap) idle.push(heap.usedMiB + heap.externalMiB);
      instance.stop('a cold-load measurement ended');
      await new Promise((resolve) => setImmediate(resolve));
    }
    times.sort((a, b) => a - b);
    idle.sort((a, b) => a - b);
    return {
      samples: times.length,
      medianMs: times[Math.floor(times.length / 2)]!,
      minMs: times[0]!,
      maxMs: times[times.length - 1]!,
      idleMiB: idle[Math.floor(idle.length / 2)] ?? 0,
    };
  }

  /** Stops every bundle: calls in flight fail with `Stopped`; no more calls are taken. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.bundles.values()) {
      for (const old of entry.retiring) old.stop('the script host was closed');
      entry.current?.stop('the script host was closed');
    }
    this.bundles.clear();
  }

  private prelude: string | undefined;

  private checkOpen(): void {
    if (this.closed) throw new ConfigError('this script host is closed; make a new ScriptHost');
  }

  private checkQuarantine(entry: Entry, fn: string): void {
    if (entry.quarantinedUntil === 0) return;
    const left = entry.quarantinedUntil - performance.now();
    if (left <= 0) {
      entry.quarantinedUntil = 0;
      return;
    }
    const name = entry.version.name;
    const seconds = Math.ceil(left / 1000);
    throw new ScriptError(
      `bundle ${name} is quarantined for ${seconds} s more: ${entry.quarantineReason}. Its calls are refused until then; fix the script and reload it (a reload lifts the quarantine)`,
      {
        bundle: name, fn, kind: 'Quarantined', errorName: 'QuarantinedError', errorMessage: entry.quarantineReason, location: null, frames: [],
        details: { retryAfterMs: Math.ceil(left), quarantineMs: this.limits.quarantineMs },
      },
    );
  }

  /** A call of the bundle broke a limit (its isolate is being stopped): counts towards a quarantine. */
  private onBreak(entry: Entry, broke: LimitBreak, message?: string): void {
    const now = performance.now();
    entry.limitBreaks++;
    const window = this.limits.quarantineWindowMs;
    entry.breaks = entry.breaks.filter((at) => now - at < window);
    entry.breaks.push(now);
    const name = entry.version.name;
    if (!broke.atLoad && entry.breaks.length < this.limits.quarantineAfterBreaks) return;
    const what = broke.limit === 'memory' ? 'its memory limit' : broke.limit === 'deadline' ? 'its deadline' : 'its CPU limit';
    entry.quarantineReason = broke.atLoad
      ? `its top-level code broke ${what} when its isolate was made again (it would on every new isolate)`
      : `its calls broke their limits ${entry.breaks.length} times within ${Math.round(window / 1000)} s (the last: ${broke.fn} broke ${what})`;
    entry.quarantinedUntil = now + this.limits.quarantineMs;
    entry.breaks = [];
    this.logger.warn(`bundle ${name} (version ${entry.version.version}) quarantined for ${Math.round(this.limits.quarantineMs / 1000)} s: ${entry.quarantineReason}${message ? ` — ${message}` : ''}`);
    this.onChange(name);
  }

  private makeVersion(name: string, bundle: ScriptBundle): BundleVersion {
    const filename = `${name}.bundle.js`;
    let payload = null;
    try {
      payload = parseSourceMap(bundle.map ?? inlineSourceMap(bundle.code));
    } catch (error) {
      this.logger.warn(`bundle ${name}: its source map is not valid JSON (${(error as Error).message}); errors will show bundle positions`);
    }
    return { name, version: ++this.versions, code: bundle.code, filename, mapper: new StackMapper(filename, payload, mapDirOf(bundle.file)) };
  }

  private makeInstance(version: BundleVersion, prelude?: string): BundleInstance {
    if (prelude !== undefined) this.prelude = prelude;
    return new BundleInstance(version, this.prelude!, this.limits, this.services, this.logger, (dead) => this.onDead(dead), (instance, broke) => {
      const entry = this.bundles.get(instance.name);
      if (entry && entry.version === instance.version) this.onBreak(entry, broke);
    });
  }

  private onDead(instance: BundleInstance): void {
    const entry = this.bundles.get(instance.name);
    if (!entry) return;
    if (entry.current === instance) entry.current = undefined;
    entry.retiring.delete(instance);
    this.onChange(instance.name);
  }
}
