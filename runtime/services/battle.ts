/**
 * Battles: a battle server resolves the battles its game server asks for. The result is a pure
 * function of the battle's input — both fighters' stats as read from their profiles, and a seed —
 * so it is deterministic and replayable: the input travels with the result, and `replay(input)`
 * anywhere gives the same rounds, the same winner and the same digest.
 *
 * The random numbers come from sfc32 seeded with the SHA-256 of the input's canonical JSON, and
 * the arithmetic is integer-only, so every machine and Node version agrees.
 */
import { createHash } from 'node:crypto';
import { InvalidParamsError } from '../errors.js';
import { shown } from '../rpc/params.js';
import type { Profile } from '../store/store.js';

/** A fighter as the battle reads him from his profile. */
export interface Fighter {
  pid: number;
  name: string;
  /** His home server (fighters may come from different homes). */
  home: string;
  level: number;
  power: number;
}

/** Everything a battle's result depends on. */
export interface BattleInput {
  a: Fighter;
  b: Fighter;
  /** Any text (e.g. the battle's id): another seed, another battle between the same fighters. */
  seed: string;
}

/** One blow. */
export interface Blow {
  round: number;
  attacker: number;
  defender: number;
  damage: number;
  critical: boolean;
  /** The defender's hit points after the blow. */
  defenderHp: number;
}

export interface BattleResult {
  input: BattleInput;
  winner: number;
  loser: number;
  /** How the battle ended: a knock-out, or the round limit (the larger share of hit points left wins). */
  ending: 'knockout' | 'rounds';
  blows: Blow[];
  /** Hit points left, by player id. */
  hp: Record<string, number>;
  /** SHA-256 of the input and the outcome: two results are the same battle if their digests are. */
  digest: string;
}

/** A battle ends after this many rounds (each fighter strikes once per round). */
export const MAX_ROUNDS = 30;

/** A fighter from a profile (level 1 and power 0 when the profile does not say). */
export function fighterFrom(pid: number, profile: Profile): Fighter {
  const { name, home, level, power } = profile.fields;
  return {
    pid,
    name: typeof name === 'string' ? name : `player${pid}`,
    home: typeof home === 'string' ? home : '',
    level: typeof level === 'number' && Number.isSafeInteger(level) && level > 0 ? level : 1,
    power: typeof power === 'number' && Number.isSafeInteger(power) && power >= 0 ? power : 0,
  };
}

/** Checks a battle input that came over the wire (battle.replay). */
export function checkBattleInput(value: unknown, method: string): BattleInput {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidParamsError(`${method} needs "input", the input of a battle result ({a, b, seed}), not ${shown(value)}`);
  }
  const input = value as Record<string, unknown>;
  const fighter = (side: 'a' | 'b'): Fighter => {
    const f = input[side] as Record<string, unknown> | null | undefined;
    const ok = f !== null && typeof f === 'object' &&
      typeof f.pid === 'number' && Number.isSafeInteger(f.pid) && f.pid > 0 &&
      typeof f.name === 'string' && typeof f.home === 'string' &&
      typeof f.level === 'number' && Number.isSafeInteger(f.level) && f.level > 0 && f.level <= 1_000_000 &&
      typeof f.power === 'number' && Number.isSafeInteger(f.power) && f.power >= 0 && f.power <= 1_000_000_000;
    if (!ok) throw new InvalidParamsError(`${method}: input.${side} must be a fighter {pid, name, home, level 1-1000000, power 0-1000000000}, not ${shown(f)}`);
    return { pid: f!.pid as number, name: f!.name as string, home: f!.home as string, level: f!.level as number, power: f!.power as number };
  };
  if (typeof input.seed !== 'string' || input.seed.length > 256) throw new InvalidParamsError(`${method}: input.seed must be a string of at most 256 characters`);
  const a = fighter('a');
  const b = fighter('b');
  if (a.pid === b.pid) throw new InvalidParamsError(`${method}: a player cannot fight himself (both fighters are ${a.pid})`);
  return { a, b, seed: input.seed };
}

/** The input as canonical JSON (fixed key order), what the seed and the digest are made of. */
function canonical(input: BattleInput): string {
  const f = (x: Fighter) => ({ pid: x.pid, name: x.name, home: x.home, level: x.level, power: x.power });
  return JSON.stringify({ a: f(input.a), b: f(input.b), seed: input.seed });
}

/** sfc32: a small, fast generator of 32-bit integers, seeded with 128 bits. */
function sfc32(seed: Buffer): () => number {
  let a = seed.readUInt32LE(0) | 0;
  let b = seed.readUInt32LE(4) | 0;
  let c = seed.readUInt32LE(8) | 0;
  let d = seed.readUInt32LE(12) | 0;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next(); // mix the seed in
  return next;
}

/** Resolves a battle: the same input always gives the same result. */
export function resolveBattle(input: BattleInput): BattleResult {
  const text = canonical(input);
  const random = sfc32(createHash('sha256').update(text).digest());
  /** An integer from 0 to n - 1. */
  const below = (n: number) => random() % n;
  const stats = (f: Fighter) => ({
    pid: f.pid,
    maxHp: 100 + f.level * 20 + f.power,
    attack: 10 + f.level * 2 + Math.floor(f.power / 10),
  });
  const fighters = [stats(input.a), stats(input.b)];
  const hp = fighters.map((f) => f.maxHp);
  // The stronger opens; equals draw lots.
  const strength = (f: Fighter) => f.level * 1000 + f.power;
  const first = strength(input.a) > strength(input.b) ? 0 : strength(input.a) < strength(input.b) ? 1 : below(2);
  const blows: Blow[] = [];
  let ending: BattleResult['ending'] = 'rounds';
  fight: for (let round = 1; round <= MAX_ROUNDS; round++) {
    for (const side of [first, 1 - first]) {
      const attacker = fighters[side]!;
      const target = 1 - side;
      const critical = below(100) < 10;
      // 80% to 120% of the attack, doubled on a critical blow.
      let damage = Math.floor((attacker.attack * (80 + below(41))) / 100);
      if (critical) damage *= 2;
      hp[target] = Math.max(0, hp[target]! - damage);
      blows.push({ round, attacker: attacker.pid, defender: fighters[target]!.pid, damage, critical, defenderHp: hp[target]! });
      if (hp[target] === 0) {
        ending = 'knockout';
        break fight;
      }
    }
  }
  let winner: number;
  if (ending === 'knockout') {
    winner = hp[0] === 0 ? 1 : 0;
  } else {
    // The larger share of hit points left (compared exactly: hp0/max0 vs hp1/max1); a tie goes to lots.
    const left = hp[0]! * fighters[1]!.maxHp - hp[1]! * fighters[0]!.maxHp;
    winner = left > 0 ? 0 : left < 0 ? 1 : below(2);
  }
  const result = {
    winner: fighters[winner]!.pid,
    loser: fighters[1 - winner]!.pid,
    ending,
    blows,
    hp: { [fighters[0]!.pid]: hp[0]!, [fighters[1]!.pid]: hp[1]! },
  };
  const digest = createHash('sha256').update(text).update(JSON.stringify(result)).digest('hex');
  return { input: JSON.parse(text) as BattleInput, ...result, digest };
}
