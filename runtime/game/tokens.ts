/**
 * One-time tokens for the client gateway (DESIGN §4, §8): a transfer token (issued by the source
 * server for one hop) and a login token (issued by the account center, or anyone holding the
 * cluster secret, for a login at the home server).
 *
 * A token is `payload.signature`: the payload names the kind, the player, the source, the
 * destination, the home, the epoch, the expiry and 128 random bits; the signature is an
 * HMAC-SHA256 of it with the cluster secret, compared in constant time. So any server can tell a
 * forged token from a real one, and a real one presented to the wrong server or for the wrong
 * player is refused with its own error. Single use is enforced by the server that consumes it.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  TokenExpiredError, TokenInvalidError, TokenUsedError, TokenWrongDestinationError, TokenWrongPlayerError,
} from '../errors.js';

export type TokenKind = 'transfer' | 'login';

/** What a token is bound to. */
export interface TokenClaims {
  kind: TokenKind;
  pid: number;
  /** The server that issued it ('' for a login token from the account center). */
  source: string;
  /** The only server that accepts it. */
  destination: string;
  /** The player's home server. */
  home: string;
  /** The route epoch the transfer starts from (0 for a login token). */
  epoch: number;
  /** Expiry, ms since the Unix epoch. */
  expiresAt: number;
  /** 128 random bits, hex: what makes the token single-use. */
  nonce: string;
}

/** The default time to live of a token: 30 s. */
export const DEFAULT_TOKEN_TTL_MS = 30_000;

function sign(secret: string, payload: string): Buffer {
  return createHmac('sha256', `kuafu-token\n${secret}`).update(payload).digest();
}

/** Makes a signed token for `claims` (nonce and expiry filled in). */
export function issueToken(secret: string, claims: Omit<TokenClaims, 'nonce' | 'expiresAt'>, ttlMs = DEFAULT_TOKEN_TTL_MS): { token: string; claims: TokenClaims } {
  const full: TokenClaims = { ...claims, expiresAt: Date.now() + ttlMs, nonce: randomBytes(16).toString('hex') };
  const payload = Buffer.from(JSON.stringify(full)).toString('base64url');
  return { token: `${payload}.${sign(secret, payload).toString('base64url')}`, claims: full };
}

/** Makes a login token for `pid` at his home server `home`. */
export function issueLoginToken(secret: string, pid: number, home: string, ttlMs = DEFAULT_TOKEN_TTL_MS): string {
  return issueToken(secret, { kind: 'login', pid, source: '', destination: home, home, epoch: 0 }, ttlMs).token;
}

/**
 * Checks a token presented at `server` by player `pid`: signature (constant time), kind, player,
 * destination, expiry, and `used` (single use). Returns its claims; throws the error of the first
 * check that fails. Does not mark it used: `TokenLedger.consume` does.
 */
export function verifyToken(secret: string, token: unknown, expect: { kind: TokenKind; pid: number; server: string }): TokenClaims {
  const refuse = (why: string) =>
    new TokenInvalidError(`The ${expect.kind} token is not valid (${why}). Log in again at the home server to get a new one.`, { pid: expect.pid });
  if (typeof token !== 'string' || token.length > 2048) throw refuse('not a kuafu token');
  const dot = token.indexOf('.');
  if (dot <= 0) throw refuse('not a kuafu token');
  const payload = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1), 'base64url');
  const expected = sign(secret, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refuse('forged or damaged');
  let claims: TokenClaims;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TokenClaims;
  } catch {
    throw refuse('unreadable');
  }
  if (claims.kind !== expect.kind) throw refuse(`a ${claims.kind} token where a ${expect.kind} token is needed`);
  if (claims.pid !== expect.pid) {
    throw new TokenWrongPlayerError(`This token was issued for player ${claims.pid}, not ${expect.pid}: a client must pass on the token it was given, unchanged.`, { pid: expect.pid });
  }
  if (claims.destination !== expect.server) {
    throw new TokenWrongDestinationError(
      `This token is for server ${claims.destination}, not ${expect.server}: connect to the server named in connect_to (go_srvname).`,
      { pid: expect.pid, destination: claims.destination },
    );
  }
  if (claims.expiresAt < Date.now()) {
    throw new TokenExpiredError(`This ${expect.kind} token expired: log in again at home server ${claims.home}.`, { pid: expect.pid, home: claims.home });
  }
  return claims;
}

/** The expiry written in a token this server issued (ms since the Unix epoch); 0 when unreadable. */
export function claimsExpiry(token: string): number {
  try {
    const claims = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as TokenClaims;
    return Number(claims.expiresAt) || 0;
  } catch {
    return 0;
  }
}

/** Remembers the tokens a server has consumed until they expire, so each is used once only. */
export class TokenLedger {
  private readonly used = new Map<string, number>();
  private lastSweep = 0;

  /** Marks the token used; throws TokenUsedError when it was used before. */
  consume(claims: TokenClaims): void {
    this.sweep();
    if (this.used.has(claims.nonce)) {
      throw new TokenUsedError(`This ${claims.kind} token was already used: log in again at home server ${claims.home}.`, { pid: claims.pid, home: claims.home });
    }
    this.used.set(claims.nonce, claims.expiresAt);
  }

  /** Whether the token was consumed. */
  wasUsed(claims: TokenClaims): boolean {
    return this.used.has(claims.nonce);
  }

  private sweep(): void {
    const now = Date.now();
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const [nonce, expiresAt] of this.used) if (expiresAt < now) this.used.delete(nonce);
  }
}
