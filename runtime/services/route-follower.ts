/**
 * The datacenter's part in "the route fields of a profile follow every transfer by themselves":
 * it hears every route publication and copies the player's route into his profile (`home`,
 * `server`, `online`) with one store script that reads the route itself — so the order in which
 * publications are handled cannot matter, and a copy that changes nothing writes nothing. Each
 * player is followed by one datacenter (placement.ts). The first time a player shows up, his
 * profile is filled with the name and level of his stored document (only fields it lacks).
 */
import type { ServerNode } from '../cluster/server-node.js';
import type { Profile, Unsubscribe } from '../store/store.js';
import { datacenterFor } from './placement.js';

/** How many times, and how far apart (growing), a missing document is looked for again. */
const FILL_TRIES = 8;
const FILL_RETRY_MS = 100;

export class ProfileRouteFollower {
  private readonly unsubscribes: Unsubscribe[] = [];
  /** Players with a copy under way, and those that changed again meanwhile. */
  private readonly busy = new Set<number>();
  private readonly again = new Set<number>();
  /** Players whose name was looked for in their document already. */
  private readonly filled = new Set<number>();
  /** Players whose document was not there yet, and how many times it was looked for. */
  private readonly lookedFor = new Map<number, number>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly node: ServerNode) {}

  start(): void {
    this.unsubscribes.push(this.node.store.onRouteChange((change) => {
      if (datacenterFor(this.node.cluster, change.pid) === this.node.name) void this.follow(change.pid);
    }));
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** Copies the player's route into his profile now; answers the profile (null: he has no route). */
  async sync(pid: number): Promise<Profile | null> {
    const profile = await this.node.store.syncProfileRoute(pid);
    if (profile && !('name' in profile.fields) && !this.filled.has(pid)) return (await this.fillFromDocument(pid)) ?? profile;
    return profile;
  }

  private async follow(pid: number): Promise<void> {
    if (this.busy.has(pid)) {
      this.again.add(pid); // one more copy after this one: it reads the route as it is then
      return;
    }
    this.busy.add(pid);
    try {
      do {
        this.again.delete(pid);
        await this.sync(pid);
      } while (this.again.has(pid));
    } catch (error) {
      this.node.log.warn(`profile ${pid}: route fields not updated: ${(error as Error).message}`);
    } finally {
      this.busy.delete(pid);
      this.again.delete(pid);
    }
  }

  private async fillFromDocument(pid: number): Promise<Profile | null> {
    const stored = await this.node.store.loadDocument(pid);
    if (!stored) {
      // A new player's document is saved a moment after his first claim: look again shortly (a few times).
      const tries = (this.lookedFor.get(pid) ?? 0) + 1;
      if (this.lookedFor.size > 100_000) this.lookedFor.clear();
      this.lookedFor.set(pid, tries);
      if (tries <= FILL_TRIES) {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          void this.follow(pid);
        }, FILL_RETRY_MS * tries);
        timer.unref();
        this.timers.add(timer);
      }
      return null;
    }
    this.lookedFor.delete(pid);
    this.filled.add(pid);
    if (this.filled.size > 100_000) this.filled.clear();
    const doc = stored?.data as { name?: unknown; level?: unknown } | undefined;
    const fields: Record<string, string | number> = {};
    if (typeof doc?.name === 'string') fields.name = doc.name;
    if (typeof doc?.level === 'number') fields.level = doc.level;
    return Object.keys(fields).length > 0 ? this.node.store.fillProfile(pid, fields) : null;
  }
}
