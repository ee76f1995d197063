/**
 * A persistent JSON-RPC 2.0 connection from this server to one peer (WebSocket, `ws`).
 *
 * - Connects on first use and again, by itself, on the first call after a loss; authenticates
 *   with the cluster secret before anything else (auth.ts) and checks the peer's own proof.
 * - Calls made in the same tick travel as one JSON-RPC batch in one message; replies are matched
 *   by id (they may come in any order). That is where kuafu gains over one message per call.
 *   A batch bigger than the peer accepts in one message (`maxMessageBytes`, or less when the
 *   peer's challenge says so) is split into several, each under it; one call too large for any
 *   message is refused before it is sent (ValueTypeError naming its argument).
 * - Every call has a deadline (TimeoutError); a peer that cannot be reached, or whose connection
 *   closes before it answers, fails its calls with ServerUnavailableError at once.
 * - Arguments are checked before anything is sent (values.ts): a ValueTypeError names the part.
 */
import WebSocket from 'ws';
import {
  InternalError, ServerUnavailableError, TimeoutError, UnauthenticatedError, ValueTypeError, fromWire, type WireError,
} from '../errors.js';
import { AUTHENTICATE_METHOD, CHALLENGE_METHOD, checkProof, newNonce, proofOf } from './auth.js';
import { performance } from 'node:perf_hooks';
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_VALUE_BYTES, decodeValue, encodeChecked, encodeValue } from './values.js';

export interface PeerClientOptions {
  /** Our own server name, proven in the handshake. */
  self: string;
  /** The server this connection calls. */
  peer: string;
  secret: string;
  /** Where the peer listens now, `ws://host:port` (asked again before every connect). */
  resolveUrl: () => Promise<string> | string;
  /** The default deadline of a call, ms (default 5000). */
  timeoutMs?: number;
  /** Largest argument, bytes (default 1 MiB). */
  maxValueBytes?: number;
  /**
   * Largest message the peer accepts, bytes (default DEFAULT_MAX_MESSAGE_BYTES, an RpcServer's
   * default): no message sent is bigger. A peer whose challenge names a smaller limit gets that.
   */
  maxMessageBytes?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** This call's deadline, ms. */
  timeoutMs?: number;
}

/** How a call ends: `(true, result)` or `(false, error)`. Called once, never synchronously. */
export type CallDone = (ok: boolean, value: unknown) => void;

interface Pending {
  method: string;
  done: CallDone;
  /** When the call times out (performance.now() ms), and its deadline as asked. */
  deadline: number;
  timeoutMs: number;
}

interface Reply {
  id?: unknown;
  result?: unknown;
  error?: WireError;
  method?: unknown;
  params?: unknown;
}

type State = 'idle' | 'connecting' | 'authenticating' | 'open';

/** A peer's challenge naming a smaller message limit than this is ignored (the handshake alone takes a few hundred bytes). */
const MIN_MESSAGE_LIMIT = 1024;

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

export class PeerClient {
  private ws: WebSocket | null = null;
  private state: State = 'idle';
  private url = '';
  private clientNonce = '';
  private lastError = '';
  private readonly pending = new Map<number, Pending>();
  /** The requests of this tick (their text, id), and the sum of their lengths. */
  private outbox: string[] = [];
  private outboxIds: number[] = [];
  private outboxChars = 0;
  private flushScheduled = false;
  private nextId = 1;
  private closed = false;
  private readonly timeoutMs: number;
  private readonly maxValueBytes: number;
  private readonly maxMessageBytes: number;
  /** What the peer accepts in one message: maxMessageBytes, or what its challenge said when less. */
  private messageLimit: number;
  private readonly flushBound = () => this.flush();
  /**
   * One timer watches every call's deadline (a timer per call cost more than the rest of a call's
   * bookkeeping): armed for the earliest deadline, it expires what is due and re-arms. With no call
   * waiting it is left unreferenced (it does not keep the process alive).
   */
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private timerRefed = false;
  private readonly sweepBound = () => this.sweep();

  constructor(private readonly options: PeerClientOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.messageLimit = this.maxMessageBytes;
  }

  /** The peer's name. */
  get peer(): string {
    return this.options.peer;
  }

  /** Whether the connection is open and authenticated now. */
  get connected(): boolean {
    return this.state === 'open';
  }

  /** Calls `method` on the peer with one value; resolves with its result. */
  call<T = unknown>(method: string, arg?: unknown, options?: CallOptions): Promise<T> {
    let wire: unknown;
    try {
      wire = encodeValue(arg, () => `the argument of ${method}`, this.maxValueBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<T>((resolve, reject) => this.send(method, wire, options, (ok, value) => (ok ? resolve(value as T) : reject(value))));
  }

  /**
   * `call` for an argument its caller checked already (checkValue with this connection's size
   * limit, or a smaller one): `needsSuperjson` is what the check answered.
   */
  callChecked<T = unknown>(method: string, arg: unknown, needsSuperjson: boolean, options?: CallOptions): Promise<T> {
    return new Promise<T>((resolve, reject) => this.send(method, encodeChecked(arg, needsSuperjson), options, (ok, value) => (ok ? resolve(value as T) : reject(value))));
  }

  /**
   * `callChecked` that reports to `done` instead of answering a promise (no promise, and no turn of
   * the microtask queue between the reply and its caller).
   */
  callCheckedWith(method: string, arg: unknown, needsSuperjson: boolean, done: CallDone, options?: CallOptions): void {
    this.send(method, encodeChecked(arg, needsSuperjson), options, done);
  }

  private send(method: string, wire: unknown, options: CallOptions | undefined, done: CallDone): void {
    if (this.closed) {
      const error = new ServerUnavailableError(`The connection to ${this.options.peer} was closed by this server; make a new PeerClient.`, { server: this.options.peer });
      queueMicrotask(() => done(false, error));
      return;
    }
    let params: string;
    try {
      params = JSON.stringify(wire);
    } catch (error) {
      queueMicrotask(() => done(false, error));
      return;
    }
    const id = this.nextId++;
    const text = `{"jsonrpc":"2.0","id":${id},"method":${JSON.stringify(method)},"params":${params}}`;
    // UTF-8 takes at most 3 bytes per UTF-16 unit: only a long text needs counting.
    if (text.length * 3 > this.messageLimit) {
      const bytes = Buffer.byteLength(text);
      if (bytes > this.messageLimit) {
        const error = this.tooLarge(method, bytes);
        queueMicrotask(() => done(false, error));
        return;
      }
    }
    const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
    const deadline = performance.now() + timeoutMs;
    this.pending.set(id, { method, done, deadline, timeoutMs });
    if (deadline < this.timerAt) this.armTimer(deadline);
    else if (!this.timerRefed) {
      this.timer!.ref();
      this.timerRefed = true;
    }
    this.outbox.push(text);
    this.outboxIds.push(id);
    this.outboxChars += text.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushBound);
    }
  }

  private armTimer(at: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.sweepBound, Math.max(1, Math.ceil(at - performance.now())));
    this.timerRefed = true;
  }

  /** Expires the calls whose deadline passed; re-arms for the earliest of the others. */
  private sweep(): void {
    this.timer = null;
    this.timerAt = Infinity;
    this.timerRefed = false;
    const now = performance.now();
    let next = Infinity;
    for (const [id, call] of this.pending) {
      if (call.deadline <= now) this.expire(id, call.timeoutMs);
      else if (call.deadline < next) next = call.deadline;
    }
    if (next !== Infinity) this.armTimer(next);
  }

  /** No call waits: the timer stays armed, but no longer keeps the process alive. */
  private idleTimer(): void {
    if (this.pending.size === 0 && this.timerRefed) {
      this.timer!.unref();
      this.timerRefed = false;
    }
  }

  /** Closes the connection; calls still waiting fail with ServerUnavailableError. */
  close(): void {
    this.closed = true;
    this.ws?.terminate();
    this.failAll(() => `the connection to ${this.options.peer} was closed by this server`);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    this.timerRefed = false;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outbox.length === 0) return;
    if (this.state !== 'open') {
      if (this.state === 'idle') this.connect();
      return;
    }
    const batch = this.outbox;
    const ids = this.outboxIds;
    const chars = this.outboxChars;
    this.outbox = [];
    this.outboxIds = [];
    this.outboxChars = 0;
    if ((chars + batch.length + 1) * 3 <= this.messageLimit) {
      this.ws!.send(batch.length === 1 ? batch[0]! : `[${batch.join(',')}]`);
    } else {
      this.sendSplit(batch, ids);
    }
  }

  /** Sends a tick's requests as messages of at most `messageLimit` bytes; a request bigger than that alone is refused. */
  private sendSplit(batch: string[], ids: number[]): void {
    const limit = this.messageLimit;
    let part: string[] = [];
    let bytes = 1; // '[' and, per request, the request and ',' or ']'
    const sendPart = () => {
      this.ws!.send(part.length === 1 ? part[0]! : `[${part.join(',')}]`);
      part = [];
      bytes = 1;
    };
    for (let i = 0; i < batch.length; i++) {
      const text = batch[i]!;
      const size = Buffer.byteLength(text);
      if (size > limit) {
        // Checked when it was made, against a limit the peer's challenge has lowered since.
        const call = this.pending.get(ids[i]!);
        if (call) {
          this.pending.delete(ids[i]!);
          end(call, false, this.tooLarge(call.method, size));
        }
        continue;
      }
      if (part.length > 0 && bytes + size + 1 > limit) sendPart();
      part.push(text);
      bytes += size + 1;
    }
    if (part.length > 0) sendPart();
    if (this.pending.size === 0) this.idleTimer();
  }

  /** The refusal of a call whose request alone is bigger than a message to the peer may be. */
  private tooLarge(method: string, bytes: number): ValueTypeError {
    const label = `the argument of ${method}`;
    return new ValueTypeError(
      `${label} is too large to send: its request is ${bytes} bytes, and server ${this.options.peer} accepts at most ` +
        `${this.messageLimit} bytes in one message (maxMessageBytes). Send less in one call.`,
      { path: label },
    );
  }

  private connect(): void {
    this.state = 'connecting';
    this.lastError = '';
    this.messageLimit = this.maxMessageBytes; // until this connection's challenge says otherwise
    Promise.resolve()
      .then(() => this.options.resolveUrl())
      .then(
        (url) => {
          if (this.closed) return;
          this.url = url;
          const ws = new WebSocket(url, {
            perMessageDeflate: false,
            handshakeTimeout: this.timeoutMs,
            // Frames between servers go unmasked (a zero mask): masking guards browsers' traffic
            // through caching proxies, not an authenticated link between two servers, and it cost
            // a copy and an XOR of every message on both ends.
            generateMask: zeroMask,
            skipUTF8Validation: true,
          });
          this.ws = ws;
          ws.on('open', () => { this.state = 'authenticating'; });
          ws.on('message', (data) => this.receive(data.toString()));
          ws.on('error', (error) => { this.lastError = error.message; });
          ws.on('close', (code, reason) => this.lost(ws, code, reason.toString()));
        },
        (error: Error) => {
          this.state = 'idle';
          this.failAll(() => error.message, error);
        },
      );
  }

  private lost(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    const wasOpen = this.state === 'open';
    this.ws = null;
    this.state = 'idle';
    const why = this.lastError || reason || `closed with code ${code}`;
    if (wasOpen) {
      this.failAll((method) =>
        `The connection to server ${this.options.peer} (${this.url}) closed before it answered ${method} (${why}); ` +
          `the call may or may not have run. Check the server with 'kuafu status'.`);
    } else {
      this.failAll(() =>
        `Cannot connect to server ${this.options.peer} at ${this.url} (${why}). ` +
          `Is it running? 'kuafu status' lists the servers that answer.`);
    }
  }

  private receive(text: string): void {
    let message: Reply | Reply[];
    try {
      message = JSON.parse(text) as Reply | Reply[];
    } catch {
      return; // a peer that sends non-JSON is broken; its calls run into their deadlines
    }
    if (this.state === 'authenticating') {
      this.handshake(message as Reply);
      return;
    }
    if (Array.isArray(message)) {
      for (const reply of message) this.settle(reply);
    } else {
      this.settle(message);
    }
  }

  private handshake(message: Reply): void {
    const { peer, self, secret } = this.options;
    if (message.method === CHALLENGE_METHOD) {
      const challenge = (message.params ?? {}) as { server?: unknown; nonce?: unknown; maxMessageBytes?: unknown };
      if (challenge.server !== peer || typeof challenge.nonce !== 'string') {
        this.refuse(`expected server ${peer} at ${this.url}, but ${JSON.stringify(challenge.server)} answered. Check the addresses in the config or registry.`);
        return;
      }
      const accepts = challenge.maxMessageBytes;
      if (typeof accepts === 'number' && Number.isSafeInteger(accepts) && accepts >= MIN_MESSAGE_LIMIT && accepts < this.messageLimit) {
        this.messageLimit = accepts;
      }
      this.clientNonce = newNonce();
      const proof = proofOf(secret, challenge.nonce, self);
      this.ws!.send(JSON.stringify({ jsonrpc: '2.0', id: 0, method: AUTHENTICATE_METHOD, params: { client: self, nonce: this.clientNonce, proof } }));
      return;
    }
    if (message.id === 0) {
      if (message.error) {
        this.refuse(message.error.message);
        return;
      }
      const result = (message.result ?? {}) as { server?: unknown; proof?: unknown };
      if (result.server !== peer || !checkProof(secret, this.clientNonce, peer, result.proof)) {
        this.refuse(`server ${peer} at ${this.url} could not prove it knows the cluster secret. Give every server the same secret.`);
        return;
      }
      this.state = 'open';
      this.flush();
    }
  }

  private refuse(why: string): void {
    const ws = this.ws;
    this.ws = null;
    this.state = 'idle';
    ws?.terminate();
    this.failAll(() => why, new UnauthenticatedError(why, { server: this.options.peer }));
  }

  private settle(reply: Reply): void {
    const id = reply.id as number;
    const call = this.pending.get(id);
    if (!call) return; // already timed out
    this.pending.delete(id);
    if (this.pending.size === 0) this.idleTimer();
    if (reply.error) {
      end(call, false, fromWire(reply.error, `server ${this.options.peer}, method ${call.method}`));
      return;
    }
    let value: unknown;
    try {
      value = decodeValue(reply.result);
    } catch {
      end(call, false, new InternalError(`Server ${this.options.peer} sent an unreadable result for ${call.method}; is it the same kuafu version?`));
      return;
    }
    end(call, true, value);
  }

  private expire(id: number, timeoutMs: number): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.idleTimer();
    end(call, false, new TimeoutError(
      `Server ${this.options.peer} did not answer ${call.method} within ${timeoutMs} ms: it may be overloaded, ` +
        `paused or unreachable. The call may or may not have run.`,
      { server: this.options.peer, timeoutMs },
    ));
  }

  /** Fails every waiting call: with `error` when given, else ServerUnavailableError(message(method)). */
  private failAll(message: (method: string) => string, error?: Error): void {
    const calls = [...this.pending.values()];
    this.pending.clear();
    this.idleTimer();
    this.outbox = [];
    this.outboxIds = [];
    this.outboxChars = 0;
    for (const call of calls) {
      end(call, false, error ?? new ServerUnavailableError(message(call.method), { server: this.options.peer }));
    }
  }
}

/** Ends a call; what its caller does with the answer is the caller's business (an error there is not the connection's). */
function end(call: Pending, ok: boolean, value: unknown): void {
  try {
    call.done(ok, value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
