/**
 * Fenced saves, batched per tick: the saves asked for in one tick travel to the store in one
 * pipeline (`Store.saveDocuments`), one per player (his latest state), each fenced by the epoch
 * the player was loaded under. Whoever waits for a save learns whether it was stored.
 *
 * At most one save of a player is on its way at a time: saves asked for meanwhile wait and leave
 * together, as one write, once it is back. So the store sees a player's states in order, and a
 * save that failed is never followed by one that carries what the failed one carried. Outcomes:
 * - stored: every waiter resolves;
 * - refused (StaleOwner, NotFound): the store says it did not apply it, and waiters get that;
 * - failed once sent (the store did not answer, or answered an error): nobody knows whether it
 *   landed, so its waiters get OutcomeUnknown; a save queued behind it is not sent (its waiters get
 *   StoreUnavailable: not applied), and the owner must read the player back before going on.
 */
import { InternalError, NotFoundError, OutcomeUnknownError, StaleOwnerError, StoreUnavailableError } from '../errors.js';
import type { Store } from '../store/store.js';

/** What a save takes when its batch leaves: the document and the call results to remember with it. */
export interface Snapshot {
  data: unknown;
  /** The document already encoded (encodeDocument), when the saver encoded it: the store writes this text. */
  text?: string;
  calls?: [string, string][];
}

/** How one write of a player's document ended (for the metrics: one per write, not per waiter). */
export type WriteOutcome = 'stored' | 'stale' | 'failed';

interface PendingSave {
  pid: number;
  epoch: number;
  snapshot: () => Snapshot;
  /** One promise for everyone waiting for this save (64 calls in a tick: one promise, not 64). */
  done: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class SaveQueue {
  private pending = new Map<number, PendingSave>();
  /** Players with a save on its way to the store. */
  private readonly inFlight = new Set<number>();
  private scheduled = false;
  private readonly flushBound = () => this.flush();

  /**
   * `failed(pid, epoch, error)` is told, synchronously and before any waiter hears, that a save
   * sent under `epoch` did not come back stored (so the owner stops trusting its copy at once).
   */
  constructor(
    private readonly store: Store,
    private readonly written: (outcome: WriteOutcome) => void = () => undefined,
    private readonly failed: (pid: number, epoch: number, error: Error) => void = () => undefined,
  ) {}

  /** Saves the player's document (taken when the batch leaves) under `epoch`; resolves once stored. */
  save(pid: number, epoch: number, snapshot: () => Snapshot): Promise<void> {
    let entry = this.pending.get(pid);
    if (entry && entry.epoch !== epoch) {
      // A save under an older epoch still waiting: the store refuses it anyway (a newer claim exists).
      this.pending.delete(pid);
      entry.reject(new StaleOwnerError(`Player ${pid} was claimed again (epoch ${epoch}) before his save under epoch ${entry.epoch} left: that save was not applied.`, { pid }));
      entry = undefined;
    }
    if (!entry) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const done = new Promise<void>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      entry = { pid, epoch, snapshot, done, resolve, reject };
      this.pending.set(pid, entry);
    }
    entry.snapshot = snapshot;
    this.schedule();
    return entry.done;
  }

  private schedule(): void {
    if (this.scheduled || this.pending.size === 0) return;
    this.scheduled = true;
    process.nextTick(this.flushBound);
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.size === 0) return;
    const entries: PendingSave[] = [];
    for (const [pid, entry] of this.pending) {
      if (this.inFlight.has(pid)) continue; // leaves once the one on its way is back
      this.pending.delete(pid);
      entries.push(entry);
    }
    if (entries.length === 0) return;
    const saves = [];
    const sent: PendingSave[] = [];
    for (const entry of entries) {
      let snapshot: Snapshot;
      try {
        snapshot = entry.snapshot();
      } catch (error) {
        // Nothing left: the document could not be taken (or the saver refused it, e.g. past its
        // size limit). Not applied; the owner's copy holds it, so it must be read back.
        this.failed(entry.pid, entry.epoch, error as Error);
        this.dropQueued(entry.pid, entry.epoch, null);
        entry.reject(error as Error);
        continue;
      }
      saves.push({ pid: entry.pid, epoch: entry.epoch, data: snapshot.data, text: snapshot.text, calls: snapshot.calls });
      sent.push(entry);
      this.inFlight.add(entry.pid);
    }
    if (sent.length === 0) return;
    let answer: Promise<(Error | null)[]>;
    try {
      answer = this.store.saveDocuments(saves);
    } catch (error) {
      // Refused before anything left (e.g. a document that cannot be encoded): not applied.
      for (const entry of sent) {
        this.inFlight.delete(entry.pid);
        this.failedBeforeSending(entry, error as Error);
      }
      this.schedule();
      return;
    }
    answer.then(
      (results) => {
        for (let i = 0; i < sent.length; i++) this.settle(sent[i]!, results[i] ?? null);
        this.schedule();
      },
      (error: Error) => {
        for (const entry of sent) this.settle(entry, error);
        this.schedule();
      },
    );
  }

  /** One sent save is back: stored, refused, or its outcome unknown. */
  private settle(entry: PendingSave, error: Error | null): void {
    this.inFlight.delete(entry.pid);
    if (!error) {
      this.written('stored');
      entry.resolve();
      return;
    }
    const refused = error instanceof StaleOwnerError || error instanceof NotFoundError;
    this.written(error instanceof StaleOwnerError ? 'stale' : 'failed');
    const reported = refused
      ? error
      : new OutcomeUnknownError(
        `The save of player ${entry.pid} did not come back (${error.message}): the change may or may not be stored. ` +
          'Retry with the same call id once the store answers: it then says which.',
        { pid: entry.pid },
      );
    this.failed(entry.pid, entry.epoch, reported);
    this.dropQueued(entry.pid, entry.epoch, refused ? error : null);
    entry.reject(reported);
  }

  private failedBeforeSending(entry: PendingSave, error: Error): void {
    this.written('failed');
    this.failed(entry.pid, entry.epoch, error);
    this.dropQueued(entry.pid, entry.epoch, null);
    entry.reject(error);
  }

  /**
   * Takes back a save not yet sent (a method that ran with it failed halfway through changing the
   * player): its waiters hear it was not applied; the owner reads the player back.
   */
  cancel(pid: number, epoch: number, why: string): void {
    const queued = this.pending.get(pid);
    if (!queued || queued.epoch !== epoch) return;
    this.pending.delete(pid);
    queued.reject(new InternalError(
      `Player ${pid} was not saved: ${why} (a bug of the player model: a method should check before it changes anything), ` +
        'so this change, made alongside it, was not applied either. Retry.',
      { pid },
    ));
  }

  /** A save queued behind one that failed is not sent: what it carries rests on what failed. */
  private dropQueued(pid: number, epoch: number, refusal: Error | null): void {
    const queued = this.pending.get(pid);
    if (!queued || queued.epoch !== epoch) return;
    this.pending.delete(pid);
    queued.reject(refusal ?? new StoreUnavailableError(
      `Player ${pid} was not saved: the save before this one failed, so this change was not applied. Retry once the store answers.`,
      { pid },
    ));
  }
}
