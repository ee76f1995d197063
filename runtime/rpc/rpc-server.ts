/**
 * The JSON-RPC 2.0 server of one kuafu server: jayson dispatches, over persistent WebSocket
 * connections (`ws`), after the peer proved it knows the cluster secret (see auth.ts).
 *
 * Every kuafu method takes one value and returns one value, both encoded by values.ts (`[plain]`
 * or superjson `{json, meta}`). A batch (an array of requests in one message) is answered with one
 * array, as JSON-RPC 2.0 says. Malformed JSON, invalid requests, unknown methods and bad params get
 * the standard JSON-RPC errors; domain errors travel with their kind (errors.ts).
 *
 * No message exceeds `maxMessageBytes` either way: a bigger one closes the connection (1009, by
 * `ws`), the challenge tells the client the limit (so it splits its batches under it), and an
 * answer that would be bigger (or is too large to make into one string at all) goes out in several
 * arrays, each under the limit, a reply too large for any message replaced by a ValueType error
 * for its id. Before the handshake a connection gets at most PRE_HANDSHAKE_MAX_BYTES per message
 * and one short answer, after which it is closed. What a listener throws is logged and closes that
 * one connection (socket-guard.ts), never the process.
 */
import jayson from 'jayson';
import type { WebSocket, WebSocketServer } from 'ws';
import { InternalError, JSONRPC_CODES, KuafuError, RpcProtocolError, UnauthenticatedError, ValueTypeError, toWire } from '../errors.js';
import { closeWebSocket, listenWebSocket } from '../util/listening.js';
import { failConnection, guarded } from '../util/socket-guard.js';
import type { Logger } from '../util/log.js';
import { AUTHENTICATE_METHOD, CHALLENGE_METHOD, checkProof, newNonce, proofOf } from './auth.js';
import { DEFAULT_MAX_MESSAGE_BYTES, checkValue, decodeValue, encodeValue } from './values.js';

/** What a method handler knows about the call it serves. */
export interface CallContext {
  /** The authenticated name of the calling server. */
  peer: string;
}

/** A method: takes the decoded argument, returns (or resolves to) a value. */
export type MethodHandler = (arg: any, context: CallContext) => unknown;

/** A role's dispatch table: exactly the JSON-RPC methods it answers. */
export type MethodTable = Record<string, MethodHandler>;

export interface RpcServerOptions {
  /** This server's name (sent in the challenge, proven in the handshake). */
  name: string;
  secret: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  methods: MethodTable;
  log: Logger;
  /** Largest message accepted, and sent, bytes (default DEFAULT_MAX_MESSAGE_BYTES, 8 MiB). */
  maxMessageBytes?: number;
  /** A connection that has not authenticated by then is closed (default 10 s). */
  authTimeoutMs?: number;
  /** Told of every call answered: its method and 'ok' or the error's kind (for the metrics). */
  onServed?: (method: string, outcome: string) => void;
}

interface JsonRpcMessage {
  id?: unknown;
  method?: unknown;
  params?: unknown;
}

/** The largest message a connection may send before its handshake, bytes (the handshake needs a few hundred). */
export const PRE_HANDSHAKE_MAX_BYTES = 4096;

/** Close codes: a message too big (RFC 6455), a request before the handshake. */
const CLOSE_TOO_BIG = 1009;
const CLOSE_NOT_AUTHENTICATED = 4002;

/** An id as a refusal may echo it: a number or a short string, else null (the answer stays short). */
function shortId(id: unknown): unknown {
  return typeof id === 'number' || (typeof id === 'string' && id.length <= 64) ? id : null;
}

const INVALID_PARAMS = {
  code: JSONRPC_CODES.InvalidParams,
  message: 'Invalid params: a kuafu method takes one value, sent as params [value] or superjson {json, meta}',
};

export class RpcServer {
  private readonly dispatcher: jayson.Server;
  private wss: WebSocketServer | null = null;
  private boundUrl = '';
  private readonly maxMessageBytes: number;
  /** The one answer to a request before the handshake (made once: it is the same for everyone). */
  private readonly earlyRefusal: ReturnType<typeof toWire>;

  constructor(private readonly options: RpcServerOptions) {
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.earlyRefusal = toWire(new UnauthenticatedError(
      `Server ${options.name} runs no method before the connection authenticates: ` +
        `answer its ${CHALLENGE_METHOD} with ${AUTHENTICATE_METHOD} (a kuafu PeerClient does this for you).`,
    ));
    this.dispatcher = new jayson.Server({}, { useContext: true });
    for (const name of Object.keys(options.methods)) {
      this.dispatcher.method(name, this.wrap(name, options.methods[name]!));
    }
  }

  /** The address peers connect to, `ws://host:port` (known after listen). */
  get url(): string {
    return this.boundUrl;
  }

  /** Starts listening; resolves with the bound address. */
  async listen(): Promise<string> {
    const { host, port } = this.options;
    // UTF-8 is not validated frame by frame: a message is parsed as JSON, and bytes that are not
    // UTF-8 read as U+FFFD, which a sender could as well have sent.
    const { wss, url } = await listenWebSocket(
      { host, port, maxPayload: this.maxMessageBytes, skipUTF8Validation: true }, this.options.log, 'RPC server',
    );
    wss.on('connection', (ws) => {
      try {
        this.accept(ws);
      } catch (error) {
        failConnection(ws, this.options.log, 'RPC server', error);
      }
    });
    this.wss = wss;
    this.boundUrl = url;
    return url;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    const wss = this.wss;
    this.wss = null;
    if (wss) await closeWebSocket(wss);
  }

  private wrap(name: string, handler: MethodHandler): jayson.Method {
    const log = this.options.log;
    const onServed = this.options.onServed;
    const served = (method: string, outcome: string) => {
      if (!onServed) return;
      try {
        onServed(method, outcome);
      } catch (error) {
        log.error('counting a call for the metrics failed', error);
      }
    };
    return new jayson.Method(
      ((params: unknown, context: CallContext, callback: (error: unknown, result?: unknown) => void) => {
        let arg: unknown;
        try {
          arg = decodeValue(params);
        } catch {
          served(name, 'InvalidParams');
          callback(INVALID_PARAMS);
          return;
        }
        try {
          checkValue(arg, () => `the argument of ${name}`);
        } catch (error) {
          served(name, 'InvalidParams');
          callback({ code: JSONRPC_CODES.InvalidParams, message: `Invalid params: ${(error as Error).message}` });
          return;
        }
        const fail = (error: unknown) => {
          if (!(error instanceof KuafuError || error instanceof RpcProtocolError)) log.error(`method ${name} failed`, error);
          served(name, error instanceof KuafuError ? error.kind : error instanceof RpcProtocolError ? 'InvalidParams' : 'Internal');
          callback(toWire(error));
        };
        const reply = (value: unknown) => {
          let encoded: unknown;
          try {
            encoded = encodeValue(value, () => `the result of ${name}`);
          } catch (error) {
            fail(error);
            return;
          }
          served(name, 'ok');
          callback(null, encoded);
        };
        let result: unknown;
        try {
          result = handler(arg, context);
        } catch (error) {
          fail(error);
          return;
        }
        if (result instanceof Promise) result.then(reply, fail);
        else reply(result);
      }) as unknown as jayson.MethodHandlerContext,
      { useContext: true },
    );
  }

  private accept(ws: WebSocket): void {
    const { log } = this.options;
    const nonce = newNonce();
    const context: CallContext = { peer: '' };
    const authTimer = setTimeout(() => {
      if (!context.peer) ws.close(4001, 'authentication timeout');
    }, this.options.authTimeoutMs ?? 10_000);
    ws.on('close', () => clearTimeout(authTimer));
    ws.on('error', () => { /* the close event follows */ });
    ws.send(JSON.stringify({
      jsonrpc: '2.0', method: CHALLENGE_METHOD, params: { server: this.options.name, nonce, maxMessageBytes: this.maxMessageBytes },
    }));
    ws.on('message', guarded(ws, log, 'RPC server', (data: Buffer) => {
      if (ws.readyState !== ws.OPEN) return; // closing: nothing more is read or answered
      if (context.peer) {
        this.dispatch(ws, data.toString(), context);
      } else if (data.length > PRE_HANDSHAKE_MAX_BYTES) {
        ws.close(CLOSE_TOO_BIG, `over ${PRE_HANDSHAKE_MAX_BYTES} bytes before the handshake; authenticate first`);
      } else {
        this.handshake(ws, data.toString(), nonce, context);
      }
    }));
  }

  /** Runs a message of an authenticated connection and sends its answer. */
  private dispatch(ws: WebSocket, text: string, context: CallContext): void {
    this.dispatcher.call(text, context, (error: unknown, response: unknown) => {
      // Called later for async methods (from a promise): nothing may throw out of here.
      try {
        const answer = error ?? response;
        if (answer) this.answer(ws, answer);
      } catch (failure) {
        failConnection(ws, this.options.log, 'RPC server', failure);
      }
    });
  }

  /**
   * Sends an answer (one reply, or a batch's array) as one message when it fits under the limit;
   * else (or when it is too large to make into one string) reply by reply, packed into arrays
   * under the limit, a reply that fits no message replaced by an error for its id.
   */
  private answer(ws: WebSocket, answer: unknown): void {
    if (ws.readyState !== ws.OPEN) return;
    const limit = this.maxMessageBytes;
    let text: string | null = null;
    try {
      text = JSON.stringify(answer);
    } catch {
      // Over V8's longest string (RangeError), or a reply that cannot be encoded: taken apart below.
    }
    if (text !== null && (text.length * 3 <= limit || Buffer.byteLength(text) <= limit)) {
      ws.send(text);
      return;
    }
    if (!Array.isArray(answer)) {
      ws.send(this.encodeReply(answer, limit).text);
      return;
    }
    let part: string[] = [];
    let bytes = 1; // '[' and, per reply, the reply and ',' or ']'
    for (const reply of answer) {
      const one = this.encodeReply(reply, limit - 2);
      if (part.length > 0 && bytes + one.bytes + 1 > limit) {
        ws.send(`[${part.join(',')}]`);
        part = [];
        bytes = 1;
      }
      part.push(one.text);
      bytes += one.bytes + 1;
    }
    if (part.length > 0) ws.send(`[${part.join(',')}]`);
  }

  /** One reply as text of at most `room` bytes: itself, or an error for its id when it is bigger (or cannot be encoded). */
  private encodeReply(reply: unknown, room: number): { text: string; bytes: number } {
    let problem: unknown;
    try {
      const text = JSON.stringify(reply);
      const bytes = Buffer.byteLength(text);
      if (bytes <= room) return { text, bytes };
      problem = new RangeError(`${bytes} bytes`);
    } catch (error) {
      problem = error;
    }
    const id = shortId((reply as { id?: unknown } | null)?.id);
    const limit = this.maxMessageBytes;
    this.options.log.warn(`the answer to request ${JSON.stringify(id)} could not be sent (${String(problem)}); that request is answered with an error`);
    const error = problem instanceof RangeError
      ? new ValueTypeError(
        `The result of request ${JSON.stringify(id)} is too large to send: a message between servers carries at most ${limit} bytes ` +
          `(maxMessageBytes). Ask for less at once.`,
        { path: 'the result' },
      )
      : new InternalError(`Server ${this.options.name} could not encode the answer to request ${JSON.stringify(id)}; it is logged there.`);
    const text = JSON.stringify({ jsonrpc: '2.0', id, error: toWire(error) });
    return { text, bytes: Buffer.byteLength(text) };
  }

  /**
   * Handles a message (at most PRE_HANDSHAKE_MAX_BYTES) on a connection that has not authenticated
   * yet: `cluster.authenticate` with a good proof opens it; anything else gets one short answer
   * (one error, never one per element of a batch) and the connection is closed.
   */
  private handshake(ws: WebSocket, text: string, nonce: string, context: CallContext): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (error) {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: JSONRPC_CODES.ParseError, message: `Parse error: ${(error as Error).message}` } }));
      ws.close(CLOSE_NOT_AUTHENTICATED, 'not JSON before the handshake');
      return;
    }
    const single = message !== null && typeof message === 'object' && !Array.isArray(message) ? (message as JsonRpcMessage) : null;
    if (single && single.method === AUTHENTICATE_METHOD) {
      const params = (single.params ?? {}) as Record<string, unknown>;
      const client = typeof params.client === 'string' ? params.client : '';
      if (client && typeof params.nonce === 'string' && checkProof(this.options.secret, nonce, client, params.proof)) {
        context.peer = client;
        const proof = proofOf(this.options.secret, params.nonce, this.options.name);
        ws.send(JSON.stringify({ jsonrpc: '2.0', id: single.id ?? null, result: { server: this.options.name, proof } }));
        return;
      }
      this.options.log.warn(`refused a connection that claimed to be ${JSON.stringify(client.slice(0, 64))}: wrong cluster secret`);
      const refusal = new UnauthenticatedError(
        `Server ${this.options.name} refused the handshake: the proof does not match its cluster secret. ` +
          `Give every server of the cluster the same secret (config "secret" or KUAFU_SECRET).`,
      );
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: shortId(single.id), error: toWire(refusal) }));
      ws.close(4003, 'wrong cluster secret');
      return;
    }
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: single ? shortId(single.id) : null, error: this.earlyRefusal }));
    ws.close(CLOSE_NOT_AUTHENTICATED, `a request before the handshake: answer ${CHALLENGE_METHOD} with ${AUTHENTICATE_METHOD}`);
  }
}
