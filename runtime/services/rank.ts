/**
 * Leaderboards across servers: a Redis sorted set per board in Redis mode (MemoryStore keeps the
 * same order behind the same contract). Any server submits scores and reads the top N or a
 * player's place; each board has one rank server (placement.ts) that the callers go to.
 *
 * The boards named in PROFILE_BOARDS follow profile fields by themselves: the rank server of
 * such a board hears every profile publication and sets the player's score to the field's new
 * value (a level-up on any server moves him on the "level" board). Publications are not kept for
 * a subscriber that was away, so the rank server also catches up with a pass over every profile
 * when it starts, after each store reconnect, and after a score it could not write.
 */
import type { ServerNode } from '../cluster/server-node.js';
import type { ProfileChange, ProfileValue, RankEntry, Unsubscribe } from '../store/store.js';
import { rankServerFor } from './placement.js';

/** Boards kept equal to the profile field of the same name. */
export const PROFILE_BOARDS = ['level', 'power'] as const;

/** The most places one `rank.top` answers. */
export const MAX_TOP = 1000;

/** After a catch-up pass failed, the next one starts this much later, ms (a store reconnect starts one sooner). */
const CATCH_UP_RETRY_MS = 5000;

/** A profile field's value as a score: a finite number, else off the board. */
function scoreOf(value: ProfileValue | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export class RankService {
  private readonly unsubscribes: Unsubscribe[] = [];
  /** The profile boards this server keeps. */
  private followed: string[] = [];
  /**
   * While a catch-up pass runs: per board and player (`board pid`), the newest profile version
   * whose publication set that board's field meanwhile (a change of another field says nothing of it).
   */
  private applied: Map<string, number> | null = null;
  private pass: Promise<void> | null = null;
  private passAgain = false;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly node: ServerNode) {}

  start(): void {
    this.followed = PROFILE_BOARDS.filter((board) => rankServerFor(this.node.cluster, board) === this.node.name);
    if (this.followed.length === 0) return;
    this.unsubscribes.push(
      this.node.store.onProfileChange((change) => this.follow(change)),
      this.node.store.onReconnect(() => void this.catchUp()),
    );
    void this.catchUp(); // the changes made while no rank server listened
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    await this.pass;
  }

  /** A profile publication: the followed boards take the new values. */
  private follow(change: ProfileChange): void {
    for (const board of this.followed) {
      if (!(board in change.changed)) continue;
      if (this.applied) {
        const key = `${board} ${change.pid}`;
        this.applied.set(key, Math.max(this.applied.get(key) ?? 0, change.version));
      }
      this.node.store.setRankScore(board, change.pid, scoreOf(change.changed[board])).catch((error: Error) => {
        this.node.log.warn(`board ${board}: cannot set player ${change.pid}'s score (${error.message}); a pass over the profiles will`);
        void this.catchUp();
      });
    }
  }

  /**
   * Brings the followed boards up to date with every profile: one pass at a time (asked again
   * meanwhile, another pass follows). Resolves when the boards agree with the profiles.
   */
  catchUp(): Promise<void> {
    if (this.stopped || this.followed.length === 0) return Promise.resolve();
    if (this.pass) {
      this.passAgain = true;
      return this.pass;
    }
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.pass = (async () => {
      do {
        this.passAgain = false;
        try {
          await this.passOverProfiles();
        } catch (error) {
          this.node.log.warn(`boards ${this.followed.join(', ')}: catching up with the profiles failed (${(error as Error).message}); trying again in ${CATCH_UP_RETRY_MS / 1000} s`);
          if (!this.stopped) {
            this.retry = setTimeout(() => void this.catchUp(), CATCH_UP_RETRY_MS);
            this.retry.unref();
          }
          return;
        }
      } while (this.passAgain && !this.stopped);
    })().finally(() => {
      this.pass = null;
    });
    return this.pass;
  }

  /**
   * Sets every player's followed scores from his profile. A publication of a board's field that
   * arrives during the pass wins over an older read of it: its version is remembered and that read
   * skipped (a read that came first is written first, on the same connection).
   */
  private async passOverProfiles(): Promise<void> {
    const store = this.node.store;
    const applied = new Map<string, number>();
    this.applied = applied;
    try {
      let cursor = '0';
      do {
        const page = await store.scanProfiles(cursor, this.followed);
        const writes: Promise<void>[] = [];
        for (const profile of page.profiles) {
          for (const board of this.followed) {
            if (!(board in profile.fields) || (applied.get(`${board} ${profile.pid}`) ?? 0) >= profile.version) continue;
            writes.push(store.setRankScore(board, profile.pid, scoreOf(profile.fields[board])));
          }
        }
        await Promise.all(writes);
        cursor = page.cursor;
      } while (cursor !== '0' && !this.stopped);
    } finally {
      if (this.applied === applied) this.applied = null;
    }
  }

  /** Sets the player's score on the board (null takes him off it); answers his place. */
  async submit(board: string, pid: number, score: number | null): Promise<RankEntry | null> {
    await this.node.store.setRankScore(board, pid, score);
    return this.node.store.rankOf(board, pid);
  }

  top(board: string, count: number): Promise<RankEntry[]> {
    return this.node.store.rankTop(board, count);
  }

  of(board: string, pid: number): Promise<RankEntry | null> {
    return this.node.store.rankOf(board, pid);
  }
}
