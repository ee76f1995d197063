/**
 * Leaderboards across servers: a Redis sorted set per board in Redis mode (MemoryStore keeps the
 * same order behind the same contract). Any server submits scores and reads the top N or a
 * player's place; each board has one rank server (placement.ts) that the callers go to.
 *
 * The boards named in PROFILE_BOARDS follow profile fields by themselves: the rank server of
 * such a board hears every profile publication and sets the player's score to the field's new
 * value (a level-up on any server moves him on the "level" board).
 */
import type { ServerNode } from '../cluster/server-node.js';
import type { RankEntry, Unsubscribe } from '../store/store.js';
import { rankServerFor } from './placement.js';

/** Boards kept equal to the profile field of the same name. */
export const PROFILE_BOARDS = ['level', 'power'] as const;

/** The most places one `rank.top` answers. */
export const MAX_TOP = 1000;

export class RankService {
  private readonly unsubscribes: Unsubscribe[] = [];

  constructor(private readonly node: ServerNode) {}

  start(): void {
    const followed = PROFILE_BOARDS.filter((board) => rankServerFor(this.node.cluster, board) === this.node.name);
    if (followed.length === 0) return;
    this.unsubscribes.push(this.node.store.onProfileChange((change) => {
      for (const board of followed) {
        if (!(board in change.changed)) continue;
        const value = change.changed[board];
        const score = typeof value === 'number' && Number.isFinite(value) ? value : null;
        this.node.store.setRankScore(board, change.pid, score).catch((error: Error) =>
          this.node.log.warn(`board ${board}: cannot set player ${change.pid}'s score: ${error.message}`));
      }
    }));
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
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
