/**
 * Mutual authentication of two servers that share the cluster secret (DESIGN §8): a challenge and
 * response with HMAC-SHA256, so the secret itself never crosses the wire and a recorded exchange
 * cannot be replayed (each side picks a fresh nonce).
 *
 * 1. server → client, on connect: `cluster.challenge {server, nonce, maxMessageBytes}` (a notification;
 *    `maxMessageBytes`: the largest message it accepts, so the client can keep its batches under it).
 * 2. client → server: `cluster.authenticate {client, nonce: clientNonce, proof: hmac(nonce, client)}`.
 * 3. server → client: result `{server, proof: hmac(clientNonce, server)}`, or an Unauthenticated error.
 * Until step 3 succeeds, anything else on the connection gets one Unauthenticated answer and the
 * connection is closed (rpc-server.ts).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The method names of the handshake. */
export const CHALLENGE_METHOD = 'cluster.challenge';
export const AUTHENTICATE_METHOD = 'cluster.authenticate';

/** A fresh 128-bit nonce, hex. */
export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

/** The proof that `who` knows `secret`, for `nonce`. */
export function proofOf(secret: string, nonce: string, who: string): string {
  return createHmac('sha256', secret).update(`${nonce}\n${who}`).digest('hex');
}

/** Checks a proof in constant time. */
export function checkProof(secret: string, nonce: string, who: string, proof: unknown): boolean {
  if (typeof proof !== 'string') return false;
  const expected = Buffer.from(proofOf(secret, nonce, who), 'utf8');
  const given = Buffer.from(proof, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
