/**
 * Listening sockets, the same way everywhere: a WebSocket server that resolves once it listens and
 * logs its later errors, its closing (every connection dropped), and the address a server tells
 * others (`scheme://host:port`, an IPv6 host in brackets).
 *
 * The WebSocket server runs on an HTTP server of its own whose header and request timeouts are set
 * and checked often (Node checks them only every 30 s by default: a half-sent upgrade was held
 * 78 s), and that holds at most `maxConnections` connections at once, open or still handshaking: one
 * more is answered `503` and closed before anything else is read from it.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ServerOptions } from 'ws';
import type { Logger } from './log.js';

/** `scheme://host:port` for a socket bound on `host` (IPv6 hosts in brackets). */
export function addressUrl(scheme: 'ws' | 'http', host: string, address: AddressInfo | string | null): string {
  const port = typeof address === 'object' && address ? address.port : 0;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** What a listening socket holds back (every field optional: the defaults below). */
export interface ListenLimits {
  /** Connections held at once, open or still handshaking (default: no cap). */
  maxConnections?: number;
  /** The upgrade request's headers must have arrived within this, ms (default 10 000). */
  headersTimeoutMs?: number;
  /** The whole upgrade request within this, ms (default 10 000; at least headersTimeoutMs). */
  requestTimeoutMs?: number;
  /** How often those two deadlines are checked, ms (default 1000). */
  connectionsCheckingIntervalMs?: number;
}

export const DEFAULT_LISTEN_LIMITS = { headersTimeoutMs: 10_000, requestTimeoutMs: 10_000, connectionsCheckingIntervalMs: 1000 } as const;

/** How long a refused connection may take to read its 503 before it is dropped, ms. */
const REFUSED_LINGER_MS = 1000;

interface Listening {
  http: Server;
  sockets: Set<Duplex>;
}

const listening = new WeakMap<WebSocketServer, Listening>();

/** A WebSocket server listening on `options.host:options.port` (0: a free port), and its address. */
export async function listenWebSocket(
  options: ServerOptions & { host: string; port: number; limits?: ListenLimits }, log: Logger, label: string,
): Promise<{ wss: WebSocketServer; url: string }> {
  const { host, port, limits = {}, ...wsOptions } = options;
  const headersTimeout = limits.headersTimeoutMs ?? DEFAULT_LISTEN_LIMITS.headersTimeoutMs;
  const http = createServer({
    headersTimeout,
    requestTimeout: Math.max(headersTimeout, limits.requestTimeoutMs ?? DEFAULT_LISTEN_LIMITS.requestTimeoutMs),
    connectionsCheckingInterval: limits.connectionsCheckingIntervalMs ?? DEFAULT_LISTEN_LIMITS.connectionsCheckingIntervalMs,
  });
  const wss = new WebSocketServer({ ...wsOptions, noServer: true });
  const sockets = new Set<Duplex>();
  const refused = new WeakSet<Duplex>();
  const max = limits.maxConnections ?? Infinity;
  let full = false;
  http.on('connection', (socket: Socket) => {
    if (sockets.size >= max) {
      refused.add(socket);
      refuse(socket, `${label} is full (${max} connections): try again in a moment`);
      if (!full) log.warn(`${label}: ${max} connections, the configured cap; refusing more until some close`);
      full = true;
      return;
    }
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      if (full && sockets.size < max) full = false;
    });
  });
  http.on('request', (request: IncomingMessage, response) => {
    if (refused.has(request.socket)) return;
    const text = 'This port speaks WebSocket only: connect with a WebSocket client (ws://).\n';
    response.writeHead(426, { 'content-type': 'text/plain', connection: 'close', 'content-length': Buffer.byteLength(text) }).end(text);
  });
  http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (refused.has(socket)) return;
    try {
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    } catch (error) {
      log.error(`${label}: upgrade failed`, error);
      socket.destroy();
    }
  });
  // A malformed or late request: Node answers 400 or 408 itself and drops the connection.
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  http.on('error', (error) => log.error(`${label} error`, error));
  wss.on('error', (error) => log.error(`${label} error`, error));
  listening.set(wss, { http, sockets });
  return { wss, url: addressUrl('ws', host, http.address()) };
}

/** Answers 503 on a connection over the cap and closes it (dropped if it does not read it soon). */
function refuse(socket: Socket, reason: string): void {
  const body = `${reason}\n`;
  socket.on('error', () => { /* it goes anyway */ });
  socket.end(`HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** How many connections `wss`'s listening socket holds now, open or still handshaking. */
export function connectionCount(wss: WebSocketServer): number {
  return listening.get(wss)?.sockets.size ?? 0;
}

/** Drops every connection of `wss` and stops it listening. */
export async function closeWebSocket(wss: WebSocketServer): Promise<void> {
  for (const ws of wss.clients) ws.terminate();
  const own = listening.get(wss);
  listening.delete(wss);
  await new Promise<void>((resolve) => wss.close(() => resolve()));
  if (!own) return;
  for (const socket of own.sockets) socket.destroy();
  own.http.closeAllConnections();
  await new Promise<void>((resolve) => own.http.close(() => resolve()));
}
