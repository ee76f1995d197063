/**
 * The calls a chaos run makes, and what each was answered (the journal the checker reads):
 *
 * - direct `player.invoke {pid, path, args, id}` to the server that holds the player, retried with
 *   the same id as docs/protocol.md advises: on Timeout, ServerUnavailable and OutcomeUnknown
 *   (outcome unknown), following PlayerMoved; some callers also try a StoreUnavailable again with
 *   the same id ("try again later"). Gold calls use `kept:` ids, so the player's document says
 *   which of them ran; item adds use a type id of their own, mails a title of their own.
 * - designer-script calls: `script.run` of the chaos bundle on a game server, whose one
 *   `cproxyplayer` call answers `{ok, value}` or the kind the script caught;
 * - recharge orders: `account.recharge` on the account server (retried with the same order id).
 *
 * Outcomes (issue 9): `ok` — answered OK, so durable; `failed` — a clear failure, so never applied,
 * now or later; `unknown` — Timeout, ServerUnavailable, OutcomeUnknown (or something this runner
 * cannot classify): applied at most once, or not at all.
 */
import { KuafuError, RpcProtocolError } from '../../runtime/errors.js';
import type { PeerClient } from '../../runtime/rpc/peer-client.js';

export type OpKind = 'gold' | 'item' | 'mail' | 'recharge';
export type Via = 'direct' | 'script' | 'account';
export type Outcome = 'ok' | 'failed' | 'unknown' | 'running';

export interface Op {
  n: number;
  kind: OpKind;
  via: Via;
  pid: number;
  /** Gold added (gold, recharge). */
  amount: number;
  /** Item type id (item): one type per call, so the document shows whether it ran and how often. */
  typeId: number;
  /** Items added (item). */
  count: number;
  /** Mail title (mail): unique per call. */
  title: string;
  /** Call id (direct), order id (recharge). */
  id: string;
  /** The game server the script ran on (script). */
  server: string;
  /** Whether this caller tries a StoreUnavailable again with the same id. */
  retryStore: boolean;
  /** Direct: the server its first try goes to, whatever the route says (a caller with a stale route cache); '' for none. */
  firstTarget: string;
  startedAt: number;
  endedAt: number;
  outcome: Outcome;
  /** Each try: `SERVER:OK` or `SERVER:Kind` (direct), the kind the script saw, the recharge answers. */
  tries: string[];
  value: unknown;
  /** The fault under way when the call started ('' for none). */
  fault: string;
  /** Recharge: what account.recharge answered ('delivered', 'pending', or '' when it failed). */
  answered: string;
  /** Recharge: the order's state at the end ('delivered', 'pending', 'missing'). */
  finalState: string;
  /** An error kind that fits neither rule (counted apart in the summary). */
  unclassified: boolean;
}

/** Kinds that leave the outcome unknown: retry with the same id. */
export const UNKNOWN_KINDS = new Set(['Timeout', 'ServerUnavailable', 'OutcomeUnknown']);
/** Kinds that are clear failures: not applied, now or later. */
export const CLEAR_KINDS = new Set([
  'PlayerOffline', 'StaleOwner', 'TokenInvalid', 'TokenExpired', 'TokenUsed', 'TokenWrongPlayer', 'TokenWrongDestination',
  'ValueType', 'NotExported', 'Unauthenticated', 'ReadOnlyPlayer', 'StoreUnavailable', 'PlayerMoved', 'InsufficientResource',
  'NotFound', 'Config', 'InvalidArgument', 'WrongServer', 'AlreadyExists', 'BadCredentials', 'RequestConflict', 'TooManyAttempts',
]);

/** The error kind of anything a PeerClient rejected with (`data.kind` also for kinds this build has no class for). */
export function kindOf(error: unknown): string {
  if (error instanceof KuafuError) return error.kind;
  if (error instanceof RpcProtocolError) {
    const data = error.data as { kind?: unknown } | undefined;
    if (data && typeof data === 'object' && typeof data.kind === 'string') return data.kind;
    return `JSON-RPC ${error.code}`;
  }
  return error instanceof Error ? `Error(${error.message.slice(0, 80)})` : 'Error';
}

/** `data.at` of a PlayerMoved, '' when none. */
export function movedTo(error: unknown): string {
  if (error instanceof KuafuError) return typeof error.details.at === 'string' ? error.details.at : '';
  if (error instanceof RpcProtocolError) {
    const data = error.data as { at?: unknown } | undefined;
    return data && typeof data.at === 'string' ? data.at : '';
  }
  return '';
}

export type Class = 'unknown' | 'failed' | 'unclassified';

export function classify(kind: string): Class {
  if (UNKNOWN_KINDS.has(kind)) return 'unknown';
  if (CLEAR_KINDS.has(kind)) return 'failed';
  return 'unclassified';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface CallEnv {
  peer(name: string): PeerClient;
  /** The server that holds the player now, as well as the runner can tell. */
  owner(pid: number): Promise<string>;
  rpcTimeoutMs: number;
  stopping(): boolean;
}

/** How long a direct call keeps retrying its id before it gives up with its outcome unknown. */
const DIRECT_BUDGET_MS = 30_000;

/**
 * A direct player.invoke by id, retried as the protocol advises. The outcome: ok if a try answered
 * OK; else unknown if any try's outcome was unknown (a later clear failure does not say whether an
 * earlier try ran); else the clear failure.
 */
export async function invokeById(env: CallEnv, op: Op, path: string[], args: unknown[]): Promise<void> {
  const deadline = Date.now() + DIRECT_BUDGET_MS;
  let hint = '';
  let storeRetries = op.retryStore ? 3 : 0;
  let anyUnknown = false;
  for (let attempt = 0; attempt < 40 && Date.now() < deadline; attempt++) {
    const target = hint || (attempt === 0 && op.firstTarget) || await env.owner(op.pid);
    hint = '';
    try {
      op.value = await env.peer(target).call('player.invoke', { pid: op.pid, path, args, id: op.id }, { timeoutMs: env.rpcTimeoutMs });
      op.tries.push(`${target}:OK`);
      op.outcome = 'ok';
      return;
    } catch (error) {
      const kind = kindOf(error);
      op.tries.push(`${target}:${kind}`);
      if (kind === 'PlayerMoved') {
        hint = movedTo(error);
        await sleep(hint ? 20 : 200);
        continue;
      }
      const cls = classify(kind);
      if (cls === 'unclassified') {
        op.unclassified = true;
        anyUnknown = true;
        break;
      }
      if (cls === 'unknown') {
        anyUnknown = true;
        await sleep(Math.min(1000, 50 * 2 ** Math.min(attempt, 5)));
        continue;
      }
      if (kind === 'StoreUnavailable' && storeRetries-- > 0 && !env.stopping()) {
        await sleep(500);
        continue;
      }
      break;
    }
  }
  op.outcome = anyUnknown ? 'unknown' : 'failed';
}

/** A call through the designer script on game server `op.server`. */
export async function invokeByScript(env: CallEnv, op: Op, fn: 'gold' | 'item', args: unknown[], scriptTimeoutMs: number): Promise<void> {
  try {
    const answer = await env.peer(op.server).call<{ ok: boolean; value?: unknown; kind?: string; message?: string }>(
      'script.run', { bundle: 'chaos', fn, args }, { timeoutMs: scriptTimeoutMs },
    );
    if (answer.ok) {
      op.tries.push('OK');
      op.value = answer.value;
      op.outcome = 'ok';
      return;
    }
    const kind = answer.kind || 'Script';
    op.tries.push(`script saw ${kind}`);
    const cls = classify(kind);
    if (cls === 'unclassified') op.unclassified = true;
    op.outcome = cls === 'failed' ? 'failed' : 'unknown';
  } catch (error) {
    const kind = kindOf(error);
    op.tries.push(`script.run ${kind}`);
    // The bundle not loaded (a server just restarted): the script never ran. Anything else: it may have.
    op.outcome = kind === 'NotFound' ? 'failed' : 'unknown';
    if (kind !== 'NotFound' && classify(kind) === 'unclassified' && kind !== 'Script') op.unclassified = true;
  }
}

/** A recharge order on the account server, retried with the same order id while its outcome is unknown. */
export async function recharge(env: CallEnv, op: Op, account: string): Promise<void> {
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const answer = await env.peer(account).call<{ state: string }>('account.recharge', { order: op.id, pid: op.pid, amount: op.amount }, { timeoutMs: 30_000 });
      op.tries.push(`answered ${answer.state}`);
      op.answered = answer.state;
      op.outcome = answer.state === 'delivered' ? 'ok' : 'unknown';
      return;
    } catch (error) {
      const kind = kindOf(error);
      op.tries.push(kind);
      if (env.stopping() || classify(kind) === 'failed' && kind !== 'StoreUnavailable') break;
      await sleep(1000);
    }
  }
  // The order may or may not have been stored: its state at the end decides.
  op.outcome = 'unknown';
}
