/**
 * What crosses between a script host and its script worker (`script-worker.ts`). Each side gathers
 * what it has to say during a turn of its event loop and posts it as one message (an array of
 * ops): a round trip between threads costs ~50 µs one at a time on a loaded machine, so 64 calls
 * started, 64 requests sent or 64 answers that came in together cross in one message, not 64.
 */
import { KuafuError, fromWire } from '../errors.js';
import { ScriptError, ScriptLimitError, type ScriptErrorFacts, type ScriptLimit } from './script-error.js';

/** Host → worker: start a call of a bundle's exported function (`[RUN, callId, name, fn, args, needsMoreThanJson]`). */
export const RUN = 0;
/** Host → worker: the answer to a request (`[ANSWER, requestId, ok, value | error]`). */
export const ANSWER = 1;
/** Either way: a control request (`[CONTROL, id, method, params]`) or its reply (`[REPLY, id, ok, value | error]`). */
export const CONTROL = 2;
export const REPLY = 3;
/** Worker → host: the end of a call (`[DONE, callId, ok, value | error]`). */
export const DONE = 4;
/** Worker → host: a request of a script (`[REQUEST, requestId, op, pid, path, args]`). */
export const REQUEST = 5;
/** Worker → host: a script's log line (`[SCRIPT_LOG, level, bundle, message]`). */
export const SCRIPT_LOG = 6;
/** Worker → host: a line of the host's own log (`[HOST_LOG, level, message, error?]`). */
export const HOST_LOG = 7;
/** Worker → host: a bundle's figures changed (`[STATE, name, stats | null]`). */
export const STATE = 8;

export type Op = unknown[];

/** An error as it crosses between the threads. */
export type WireError =
  | { t: 'limit'; message: string; limit: ScriptLimit; facts: ScriptErrorFacts }
  | { t: 'script'; message: string; facts: ScriptErrorFacts }
  | { t: 'kuafu'; kind: string; message: string; details: Record<string, string | number | boolean | null> }
  | { t: 'error'; name: string; message: string; stack: string };

export function errorToWire(error: unknown): WireError {
  if (error instanceof ScriptLimitError) return { t: 'limit', message: error.message, limit: error.limit, facts: factsOf(error) };
  if (error instanceof ScriptError) return { t: 'script', message: error.message, facts: factsOf(error) };
  if (error instanceof KuafuError) return { t: 'kuafu', kind: error.kind, message: error.message, details: { ...error.details } };
  if (error instanceof Error) return { t: 'error', name: error.name, message: error.message, stack: error.stack ?? '' };
  return { t: 'error', name: 'Error', message: String(error), stack: '' };
}

export function errorFromWire(wire: WireError): Error {
  switch (wire.t) {
    case 'limit': {
      const { kind: _kind, ...facts } = wire.facts;
      return new ScriptLimitError(wire.message, wire.limit, facts);
    }
    case 'script':
      return new ScriptError(wire.message, wire.facts);
    case 'kuafu':
      return fromWire({ code: 0, message: wire.message, data: { ...wire.details, kind: wire.kind } }, 'script worker');
    default: {
      const error = new Error(wire.message);
      error.name = wire.name;
      if (wire.stack) error.stack = wire.stack;
      return error;
    }
  }
}

function factsOf(error: ScriptError): ScriptErrorFacts {
  return {
    bundle: error.bundle, fn: error.fn, kind: error.kind, errorName: error.errorName, errorMessage: error.errorMessage,
    location: error.location, frames: error.frames, details: error.details,
  };
}
