/**
 * The script host (DESIGN §7): one per game server. It loads named script bundles and runs their
 * exported functions, each bundle in its own isolated-vm isolate (see `instance.ts` for the bridge
 * and the limits).
 *
 *   const host = new ScriptHost({ services });
 *   await host.loadFile('scripts/examples/test_rpc.ts');        // bundles it with esbuild
 *   const added = await host.run('test_rpc', 'main', [pid]);     // 10, or a ScriptError
 *
 * A bundle that breaks a limit is disposed and made again on its next call; the host keeps serving
 * every other bundle. `reload` swaps a bundle without a restart: new calls run the new version,
 * calls in flight finish on the one they started on (its isolate is disposed when they end).
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { ConfigError, NotExportedError, NotFoundError, ValueTypeError } from '../errors.js';
import { DEFAULT_MAX_VALUE_BYTES, checkValue } from '../rpc/values.js';
import { createLogger, type Logger } from '../util/log.js';
import { bundleScript, type ScriptBundle } from './bundler.js';
import { BundleInstance, type BundleVersion, type Limits } from './instance.js';
import { sdkPrelude } from './prelude.js';
import type { ScriptServices } from './script-services.js';
import { StackMapper, inlineSourceMap, mapDirOf, parseSourceMap } from './source-maps.js';

export interface ScriptHostOptions {
  /** What scripts reach on this server: remote players, profiles, the log. */
  services: ScriptServices;
  /** Memory limit of each bundle's isolate, in MiB (default 64, at least 8). */
  memoryLimitMiB?: number;
  /** Wall-clock deadline of one call, awaits included, in ms (default 5000). */
  deadlineMs?: number;
  /**
   * The longest one stretch of synchronous script work may hold this server's main thread, in ms
   * (default 1000, at most `deadlineMs`). Script code runs on the main thread between awaits; a
   * loop that runs longer than this (by up to 50 ms more: limits end on a 50 ms grid) is stopped.
   */
  syncLimitMs?: number;
  /** The largest value that may cross the sandbox's edge, in bytes (default 1 MiB). */
  maxValueBytes?: number;
  /** The longest script log line, in characters (default 8192). */
  maxLogChars?: number;
  /** Remote calls and look-ups one bundle may have waiting for answers at once (default 1024). */
  maxRequestsInFlight?: number;
  /** Log lines one bundle may write in a second (default 200); more are dropped, and counted on the next line. */
  maxLogLinesPerSecond?: number;
  /** Where the host reports its own failures (default: a logger named `scripts`). */
  logger?: Logger;
}

/** A bundle to load: its JavaScript (a source map may be inline), or a bundle with its map. */
export type ScriptSource = string | ScriptBundle;

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
  /** V8 heap in use and allocated, and memory outside the heap counted against the limit, in MiB. */
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

interface Entry {
  version: BundleVersion;
  current: BundleInstance | undefined;
  retiring: Set<BundleInstance>;
  isolatesMade: number;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

/** Runs designer script bundles in isolates: one host per game server. */
export class ScriptHost {
  private readonly services: ScriptServices;
  private readonly limits: Limits;
  private readonly logger: Logger;
  private readonly bundles = new Map<string, Entry>();
  private prelude: string | undefined;
  private versions = 0;
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
      maxValueBytes: positive(options.maxValueBytes, DEFAULT_MAX_VALUE_BYTES, 'maxValueBytes'),
      maxLogChars: positive(options.maxLogChars, 8192, 'maxLogChars'),
      maxRequestsInFlight: positive(options.maxRequestsInFlight, 1024, 'maxRequestsInFlight'),
      maxLogLinesPerSecond: positive(options.maxLogLinesPerSecond, 200, 'maxLogLinesPerSecond'),
    };
    this.services = options.services;
    this.logger = options.logger ?? createLogger('scripts');
  }

  /** The limits every isolate of this host runs under. */
  get settings(): Readonly<Limits> {
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
    const version = this.makeVersion(name, bundle);
    const instance = this.makeInstance(version);
    const before = this.bundles.get(name);
    if (before) {
      before.version = version;
      before.isolatesMade++;
      if (before.current) {
        before.retiring.add(before.current);
        before.current.retire();
      }
      before.current = instance;
    } else {
      this.bundles.set(name, { version, current: instance, retiring: new Set(), isolatesMade: 0 });
    }
    return { name, version: version.version, exports: [...instance.exports], loadMs: instance.loadMs };
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
    const entry = this.bundles.get(name);
    if (!entry) return;
    this.bundles.delete(name);
    entry.current?.retire();
    entry.current = undefined;
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
   * designer's `.ts` file and line), a ScriptLimitError (the bundle broke a limit), or, for the
   * caller's own mistakes, NotFoundError (no such bundle), NotExportedError (no such function),
   * ValueTypeError (arguments that are not value types).
   */
  run(name: string, fn = 'main', args: unknown[] = []): Promise<unknown> {
    try {
      return this.start(name, fn, args);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private start(name: string, fn: string, args: unknown[]): Promise<unknown> {
    this.checkOpen();
    const entry = this.bundles.get(name);
    if (!entry) {
      const loaded = this.names();
      throw new NotFoundError(`no script bundle named "${name}" is loaded on this server; load it first (loaded: ${loaded.length ? loaded.join(', ') : 'none'})`);
    }
    if (!Array.isArray(args)) throw new ValueTypeError(`${name}.${fn}: args must be a list of values, e.g. [pid]`);
    const needsMoreThanJson = checkValue(args, () => `${name}.${fn}: args`, this.limits.maxValueBytes);
    if (!entry.current) {
      entry.current = this.makeInstance(entry.version);
      entry.isolatesMade++;
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

  /** Figures of bundle `name`: load time and memory of its isolate, calls in flight. */
  stats(name: string): BundleStats {
    const entry = this.bundles.get(name);
    if (!entry) throw new NotFoundError(`no script bundle named "${name}" is loaded on this server`);
    const heap = entry.current?.heap() ?? null;
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
      cpuMs: heap?.cpuMs ?? null,
      references: heap?.references ?? null,
      inFlight: entry.current?.inFlight ?? 0,
      retiringInFlight,
      retiring: entry.retiring.size,
      isolatesMade: entry.isolatesMade,
    };
  }

  /**
   * Measures bundle `name`'s cold load: makes `samples` fresh isolates with its current version
   * (startup code, bundle, top-level code), measures each, and disposes them. The live isolate is
   * not touched. For benchmarks (`bundle_cold_load_ms`, `isolate_idle_mib`).
   */
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

  /** Stops every bundle: calls in flight fail with `Stopped`; the host takes no more calls. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.bundles.values()) {
      for (const old of entry.retiring) old.stop('the script host was closed');
      entry.current?.stop('the script host was closed');
    }
    this.bundles.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new ConfigError('this script host is closed; make a new ScriptHost');
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

  private makeInstance(version: BundleVersion): BundleInstance {
    return new BundleInstance(version, this.prelude!, this.limits, this.services, this.logger, (dead) => this.onDead(dead));
  }

  private onDead(instance: BundleInstance): void {
    const entry = this.bundles.get(instance.name);
    if (!entry) return;
    if (entry.current === instance) entry.current = undefined;
    entry.retiring.delete(instance);
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
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(`a script bundle name is letters, digits, "_", "-" and "." (at most 100), got ${JSON.stringify(name)}`);
  }
  return name;
}
