/** The reference the benchmarks measure against: a plain jayson WebSocket client, one connection, one request per call. */
import jayson from 'jayson';

export interface RawClient {
  /** One request of `method` with `params`; resolves with its result. */
  call: () => Promise<unknown>;
  /** One request of `method` with these params instead; resolves with its result. */
  callWith: (params: unknown[]) => Promise<unknown>;
  close: () => void;
  /** The client's one WebSocket (to count its messages). */
  ws: import('ws').WebSocket;
}

/** Opens a jayson WebSocket client to `url` whose `call` sends `method` with `params`. */
export async function rawJaysonClient(url: string, method: string, params: unknown[]): Promise<RawClient> {
  const client = jayson.Client.websocket({ url, timeout: 10_000 } as never) as unknown as {
    ws: import('ws').WebSocket;
    request(method: string, params: unknown[], callback: (error: unknown, response: { error?: unknown; result?: unknown }) => void): void;
  };
  await new Promise<void>((resolve, reject) => {
    client.ws.once('open', () => resolve());
    client.ws.once('error', reject);
  });
  const callWith = (args: unknown[]) =>
    new Promise((resolve, reject) =>
      client.request(method, args, (error, response) => {
        if (error) reject(error);
        else if (response.error) reject(new Error(JSON.stringify(response.error)));
        else resolve(response.result);
      }),
    );
  const call = () => callWith(params);
  return { call, callWith, close: () => client.ws.close(), ws: client.ws };
}

