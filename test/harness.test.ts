import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createConnection, type Socket } from 'node:net';
import { startRedis, type RedisHandle } from './harness/redis.js';

/** Minimal RESP client over a raw socket: inline commands, one reply each. */
class RawRedis {
  private buf = '';
  private waiters: Array<() => void> = [];
  private constructor(private sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static connect(port: number): Promise<RawRedis> {
    return new Promise((resolve, reject) => {
      const sock = createConnection({ host: '127.0.0.1', port });
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new RawRedis(sock));
      });
    });
  }

  /** Parse one reply (+simple, -error, :int, $bulk) from the buffer, or undefined if incomplete. */
  private take(): string | null | undefined {
    const nl = this.buf.indexOf('\r\n');
    if (nl === -1) return undefined;
    const type = this.buf[0];
    const head = this.buf.slice(1, nl);
    if (type === '$') {
      const len = Number(head);
      if (len === -1) {
        this.buf = this.buf.slice(nl + 2);
        return null;
      }
      if (this.buf.length < nl + 2 + len + 2) return undefined;
      const value = this.buf.slice(nl + 2, nl + 2 + len);
      this.buf = this.buf.slice(nl + 2 + len + 2);
      return value;
    }
    this.buf = this.buf.slice(nl + 2);
    if (type === '-') throw new Error(`redis error: ${head}`);
    return head;
  }

  async command(line: string): Promise<string | null> {
    this.sock.write(line + '\r\n');
    for (;;) {
      const r = this.take();
      if (r !== undefined) return r;
      await new Promise<void>((resolve, reject) => {
        const onClose = (): void => reject(new Error('connection closed'));
        this.sock.once('close', onClose);
        this.waiters.push(() => {
          this.sock.off('close', onClose);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

let redis: RedisHandle | undefined;

test.after(async () => {
  await redis?.stop();
});

test('startRedis gives a working server whose data survives restart()', async () => {
  redis = await startRedis();
  assert.is(redis.url, `redis://127.0.0.1:${redis.port}`);

  let c = await RawRedis.connect(redis.port);
  assert.is(await c.command('PING'), 'PONG');
  assert.is(await c.command('SET k v'), 'OK');
  assert.is(await c.command('GET k'), 'v');
  c.close();

  await redis.restart();

  c = await RawRedis.connect(redis.port);
  assert.is(await c.command('GET k'), 'v');
  assert.is(await c.command('GET missing'), null);
  c.close();

  await redis.stop();
  redis = undefined;
});

test.run();
