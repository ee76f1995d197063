/**
 * Socket listeners that cannot throw out. Node ends the process on an exception thrown in a socket
 * listener (a `ws` 'message' handler, an HTTP request handler): here what a handler throws is
 * logged and ends that one connection (WebSocket: close 1011), or answers that one request 500,
 * and the server goes on.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import { addressUrl } from './listening.js';
import type { Logger } from './log.js';

/** The close code of a connection ended because the server failed to handle it (RFC 6455 "internal error"). */
export const CLOSE_INTERNAL_ERROR = 1011;

/** Ends one connection after its handler failed: logs `error`, closes with 1011 (or drops it). */
export function failConnection(ws: WebSocket, log: Logger, label: string, error: unknown): void {
  log.error(`${label}: handling a message failed; that connection is closed, the server goes on`, error);
  try {
    ws.close(CLOSE_INTERNAL_ERROR, 'the server failed to handle a message (it is logged)');
  } catch {
    ws.terminate();
  }
}

/**
 * `listener` as a socket listener of connection `ws` that cannot throw out: what it throws is
 * logged and closes that connection (failConnection).
 */
export function guarded<A extends unknown[]>(ws: WebSocket, log: Logger, label: string, listener: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      listener(...args);
    } catch (error) {
      failConnection(ws, log, label, error);
    }
  };
}

/** Answers one HTTP request; may be async. */
export type HttpHandler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

/**
 * An HTTP server on `host:port` (0: a free port) and its address. What `handler` throws (or its
 * promise rejects with) is logged and answered 500, or ends that connection when the answer had
 * begun; the server goes on.
 */
export async function listenHttp(host: string, port: number, handler: HttpHandler, log: Logger, label: string): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    const failed = (error: unknown) => {
      log.error(`${label}: answering ${request.method} ${(request.url ?? '').slice(0, 200)} failed; the server goes on`, error);
      try {
        if (response.headersSent) response.destroy();
        else response.writeHead(500, { 'content-type': 'text/plain' }).end(`${label} failed to answer this request (it is logged)\n`);
      } catch {
        response.destroy();
      }
    };
    try {
      const answered = handler(request, response);
      if (answered instanceof Promise) answered.catch(failed);
    } catch (error) {
      failed(error);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error(`${label} error`, error));
  return { server, url: addressUrl('http', host, server.address()) };
}
