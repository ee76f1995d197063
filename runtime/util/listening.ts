/**
 * Listening sockets, the same way everywhere: a WebSocket server that resolves once it listens and
 * logs its later errors, its closing (every connection dropped), and the address a server tells
 * others (`scheme://host:port`, an IPv6 host in brackets).
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type ServerOptions } from 'ws';
import type { Logger } from './log.js';

/** `scheme://host:port` for a socket bound on `host` (IPv6 hosts in brackets). */
export function addressUrl(scheme: 'ws' | 'http', host: string, address: AddressInfo | string | null): string {
  const port = typeof address === 'object' && address ? address.port : 0;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A WebSocket server listening on `options.host:options.port` (0: a free port), and its address. */
export async function listenWebSocket(
  options: ServerOptions & { host: string; port: number }, log: Logger, label: string,
): Promise<{ wss: WebSocketServer; url: string }> {
  const wss = new WebSocketServer(options);
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('error', (error) => log.error(`${label} error`, error));
  return { wss, url: addressUrl('ws', options.host, wss.address()) };
}

/** Drops every connection of `wss` and stops it listening. */
export async function closeWebSocket(wss: WebSocketServer): Promise<void> {
  for (const ws of wss.clients) ws.terminate();
  await new Promise<void>((resolve) => wss.close(() => resolve()));
}
