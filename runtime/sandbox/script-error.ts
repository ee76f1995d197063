/**
 * Designer-facing errors of the script host. A script that throws (its own error, or a remote
 * error it did not catch) gives a ScriptError whose message and stack name the designer's `.ts`
 * file and line. A bundle that breaks a limit gives a ScriptLimitError naming the limit and the
 * bundle. Errors of the caller (unknown bundle, arguments that are not values, a function the
 * bundle does not export) are the host's own kinds: NotFoundError, ValueTypeError, NotExportedError.
 */
import type { SourceLocation } from './source-maps.js';

/**
 * What went wrong in a script:
 * - `Script`: the designer's code threw;
 * - a kuafu error kind (`PlayerOffline`, `NotExported`, `ValueType`, `Timeout`, …): a remote call
 *   failed and the script did not catch it;
 * - `Timeout` / `MemoryLimit`: the bundle broke a limit (ScriptLimitError);
 * - `Stopped`: the call was cut short because its isolate was disposed (another call of the same
 *   bundle broke a limit, or the host closed): it did not finish and may be retried.
 */
export type ScriptErrorKind = string;

export interface ScriptErrorFacts {
  bundle: string;
  fn: string;
  kind: ScriptErrorKind;
  /** The original error's name inside the sandbox (`TypeError`, `PlayerOfflineError`, …). */
  errorName: string;
  /** The original error's message. */
  errorMessage: string;
  /** The first frame in the designer's own code, mapped to the `.ts` file. */
  location: SourceLocation | null;
  /** The stack frames, mapped to the designer's files (`    at main (scripts/x.ts:4:9)`). */
  frames: string[];
  details?: Record<string, string | number | boolean | null>;
}

/** A script failed: the message says where (the designer's `.ts` file and line) and why. */
export class ScriptError extends Error {
  readonly bundle: string;
  readonly fn: string;
  readonly kind: ScriptErrorKind;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly location: SourceLocation | null;
  readonly frames: string[];
  readonly details: Record<string, string | number | boolean | null>;

  constructor(message: string, facts: ScriptErrorFacts) {
    super(message);
    this.name = 'ScriptError';
    this.bundle = facts.bundle;
    this.fn = facts.fn;
    this.kind = facts.kind;
    this.errorName = facts.errorName;
    this.errorMessage = facts.errorMessage;
    this.location = facts.location;
    this.frames = facts.frames;
    this.details = facts.details ?? {};
    this.stack = `${this.name}: ${message}${facts.frames.length ? `\n${facts.frames.join('\n')}` : ''}`;
  }

  /** The error as a script designer reads it: the message and the stack in the designer's own files. */
  get designerStack(): string {
    return this.stack ?? this.message;
  }
}

/** Which limit a bundle broke. */
export type ScriptLimit = 'deadline' | 'cpu' | 'memory';

/** A bundle broke a limit: its isolate was disposed (it is recreated on next use). */
export class ScriptLimitError extends ScriptError {
  readonly limit: ScriptLimit;
  constructor(message: string, limit: ScriptLimit, facts: Omit<ScriptErrorFacts, 'kind'>) {
    super(message, { ...facts, kind: limit === 'memory' ? 'MemoryLimit' : 'Timeout' });
    this.name = 'ScriptLimitError';
    this.limit = limit;
    this.stack = `${this.name}: ${message}`;
  }
}
