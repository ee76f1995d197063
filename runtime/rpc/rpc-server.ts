/**
 * The JSON-RPC 2.0 server of one kuafu server: jayson dispatches, over persistent WebSocket
 * connections (`ws`), after the peer proved it knows the cluster secret (see auth.ts).
 *
 * Every kuafu method takes one value and returns one value, both encoded by values.ts (`[plain]`
 * or superjson `{json, meta}`). A batch (an array of requests in one message) is answered with one
 * array, as JSON-RPC 2.0 says. Malformed JSON, invalid requests, unknown methods and bad params get
 * the standard JSON-RPC errors; domain errors travel with their kind (errors.ts).
 */
import jayson from 'jayson';
import type { WebSocket, WebSocketServer } from 'ws';
import { JSONRPC_CODES, KuafuError, RpcProtocolError, UnauthenticatedError, toWire } from '../errors.js';
import { closeWebSocket, listenWebSocket } from '../util/listening.js';
import type { Logger } from '../util/log.js';
import { AUTHENTICATE_METHOD, CHALLENGE_METHOD, checkProof, newNonce, proofOf } from './auth.js';
import { checkValue, decodeValue, encodeValue } from './values.js';

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
  /** Largest message accepted, bytes (default 8 MiB). */
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

const INVALID_PARAMS = {
  code: JSONRPC_CODES.InvalidParams,
  message: 'Invalid params: a kuafu method takes one value, sent as params [value] or superjson {json, meta}',
};

export class RpcServer {
  private readonly dispatcher: jayson.Server;
  private wss: WebSocketServer | null = null;
  private boundUrl = '';

  constructor(private readonly options: RpcServerOptions) {
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
      { host, port, maxPayload: this.options.maxMessageBytes ?? 8 * 1024 * 1024, skipUTF8Validation: true }, this.options.log, 'RPC server',
    );
    wss.on('connection', (ws) => this.accept(ws));
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
    const served = this.options.onServed ?? (() => undefined);
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
    const nonce = newNonce();
    const context: CallContext = { peer: '' };
    const authTimer = setTimeout(() => {
      if (!context.peer) ws.close(4001, 'authentication timeout');
    }, this.options.authTimeoutMs ?? 10_000);
    ws.on('close', () => clearTimeout(authTimer));
    ws.on('error', () => { /* the close event follows */ });
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: CHALLENGE_METHOD, params: { server: this.options.name, nonce } }));
    ws.on('message', (data) => {
      const text = data.toString();
      if (context.peer) {
        this.dispatcher.call(text, context, (error: unknown, response: unknown) => {
          const answer = error ?? response;
          if (answer) ws.send(JSON.stringify(answer));
        });
      } else {
        this.handshake(ws, text, nonce, context);
      }
    });
  }

  /** Handles a message on a connection that has not authenticated yet. */
  private handshake(ws: WebSocket, text: string, nonce: string, context: CallContext): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (error) {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: JSONRPC_CODES.ParseError, message: `Parse error: ${(error as Error).message}` } }));
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
      this.options.log.warn(`refused a connection that claimed to be ${JSON.stringify(client)}: wrong cluster secret`);
      const refusal = new UnauthenticatedError(
        `Server ${this.options.name} refused the handshake: the proof does not match its cluster secret. ` +
          `Give every server of the cluster the same secret (config "secret" or KUAFU_SECRET).`,
      );
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: single.id ?? null, error: toWire(refusal) }));
      ws.close(4003, 'wrong cluster secret');
      return;
    }
    const refusal = toWire(new UnauthenticatedError(
      `Server ${this.options.name} runs no method before the connection authenticates: ` +
        `answer its ${CHALLENGE_METHOD} with ${AUTHENTICATE_METHOD} (a kuafu PeerClient does this for you).`,
    ));
    const requests = Array.isArray(message) ? (message as JsonRpcMessage[]) : [single ?? {}];
    const replies = requests
      .filter((request) => request === null || typeof request !== 'object' || request.id !== undefined)
      .map((request) => ({ jsonrpc: '2.0', id: (request as JsonRpcMessage | null)?.id ?? null, error: refusal }));
    if (replies.length > 0) ws.send(JSON.stringify(Array.isArray(message) ? replies : replies[0]));
  }
}
