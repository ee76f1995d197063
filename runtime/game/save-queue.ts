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
  /** One promise for everyone waiting for this save (64 calls in a tick: one promise, not 64). */
  done: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class SaveQueue {
  private pending = new Map<number, PendingSave>();
  private scheduled = false;
  private readonly flushBound = () => this.flush();

  constructor(private readonly store: Store) {}

  /** Saves the player's document (taken when the batch leaves) under `epoch`; resolves once stored. */
  save(pid: number, epoch: number, snapshot: () => Snapshot): Promise<void> {
    let entry = this.pending.get(pid);
    if (!entry || entry.epoch !== epoch) {
      if (entry) this.flush(); // a save under another epoch must not be merged: send what is queued first
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const done = new Promise<void>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      entry = { epoch, snapshot, done, resolve, reject };
      this.pending.set(pid, entry);
    }
    entry.snapshot = snapshot;
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flushBound);
    }
    return entry.done;
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const entries: PendingSave[] = [];
    let answer: Promise<(Error | null)[]>;
    try {
      const saves = [];
      for (const [pid, entry] of batch) {
        const { data, calls } = entry.snapshot();
        saves.push({ pid, epoch: entry.epoch, data, calls });
        entries.push(entry);
      }
      answer = this.store.saveDocuments(saves);
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (results) => {
        for (let i = 0; i < entries.length; i++) {
          const error = results[i];
          if (error) entries[i]!.reject(error);
          else entries[i]!.resolve();
        }
      },
      (error: Error) => {
        for (const entry of batch.values()) entry.reject(error);
      },
    );
  }
}
