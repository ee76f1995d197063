/**
 * Fenced saves, batched per tick: the saves asked for in one tick travel to the store in one
 * pipeline (`Store.saveDocuments`), one per player (his latest state), each fenced by the epoch
 * the player was loaded under. Whoever waits for a save learns whether it was stored.
 */
import type { Store } from '../store/store.js';

/** What a save takes when its batch leaves: the document and the call results to remember with it. */
export interface Snapshot {
  data: unknown;
  calls?: [string, string][];
}

interface PendingSave {
  epoch: number;
  snapshot: () => Snapshot;
  waiters: { resolve: () => void; reject: (error: Error) => void }[];
}

export class SaveQueue {
  private pending = new Map<number, PendingSave>();
  private scheduled = false;

  constructor(private readonly store: Store) {}

  /** Saves the player's document (taken when the batch leaves) under `epoch`; resolves once stored. */
  save(pid: number, epoch: number, snapshot: () => Snapshot): Promise<void> {
    return new Promise((resolve, reject) => {
      let entry = this.pending.get(pid);
      if (!entry || entry.epoch !== epoch) {
        if (entry) void this.flush(); // a save under another epoch must not be merged: send what is queued first
        entry = { epoch, snapshot, waiters: [] };
        this.pending.set(pid, entry);
      }
      entry.snapshot = snapshot;
      entry.waiters.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        process.nextTick(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = [...this.pending.entries()];
    this.pending = new Map();
    if (batch.length === 0) return;
    let results: (Error | null)[];
    try {
      const saves = batch.map(([pid, entry]) => ({ pid, epoch: entry.epoch, ...entry.snapshot() }));
      results = await this.store.saveDocuments(saves);
    } catch (error) {
      results = batch.map(() => error as Error);
    }
    batch.forEach(([, entry], i) => {
      const error = results[i];
      for (const waiter of entry.waiters) {
        if (error) waiter.reject(error);
        else waiter.resolve();
      }
    });
  }
}
