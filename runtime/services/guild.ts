/**
 * Guilds (DESIGN §6, the seed's ordering rule): members from any server, a treasury of named
 * resources. Each guild lives on one guild server (placement.ts: a hash of its id over the guild
 * servers of the config), and every deposit and deduction, from any server, goes there.
 *
 * The guild server applies one guild's changes one at a time, in arrival order (a queue per
 * guild; what piles up while one write is out leaves as the next pipeline, which Redis runs in
 * order). Each change is one store script that checks the balance, applies, and records the
 * request id with its outcome — so a deduction the balance cannot cover is refused
 * (InsufficientResource), a retried request id returns its first outcome and changes nothing, and
 * a restart of the guild server loses nothing it answered. No server decides from a cached balance.
 */
import type { ServerNode } from '../cluster/server-node.js';
import {
  AlreadyExistsError, InsufficientResourceError, InvalidParamsError, NotFoundError, RequestConflictError, WrongServerError,
} from '../errors.js';
import type { Guild, LedgerEntry, TreasuryChange, TreasuryOutcome } from '../store/store.js';
import { servicesOf } from './index.js';
import { guildServerFor, hasRole } from './placement.js';

/** What a deposit or deduction answers. */
export interface TreasuryReceipt {
  gid: string;
  requestId: string;
  kind: 'deposit' | 'deduct';
  resource: string;
  amount: number;
  /** The resource's balance right after this change. */
  balance: number;
  /** True when this request id had been applied before: nothing changed this time. */
  replayed: boolean;
}

/** At most this many queued changes of one guild leave in one pipeline. */
const MAX_BATCH = 256;

interface Queued {
  change: TreasuryChange;
  resolve: (outcome: TreasuryOutcome) => void;
  reject: (error: Error) => void;
}

/** The guild server's side. */
export class GuildService {
  private readonly queues = new Map<string, Queued[]>();
  /** Changes applied (first time) since start, for `guild.stats`. */
  private applied = 0;
  private refused = 0;
  private replayed = 0;

  constructor(private readonly node: ServerNode) {}

  /** Creates the guild (nothing happens if it exists: `created` says which). */
  async create(gid: string, name: string): Promise<{ created: boolean; guild: Guild }> {
    this.checkHome(gid);
    return this.node.store.createGuild(gid, name);
  }

  /** The guild: name, members, treasury (read from the store, never from a cache). */
  async get(gid: string): Promise<Guild> {
    const guild = await this.node.store.getGuild(gid);
    if (!guild) throw this.missing(gid);
    return guild;
  }

  /**
   * Adds a player (from any server) to the guild and sets his profile's `guild` field, which every
   * server caching his profile then sees. A player in another guild must leave it first.
   */
  async join(gid: string, pid: number): Promise<Guild> {
    this.checkHome(gid);
    const profiles = hasRole(this.node.cluster, 'datacenter') ? servicesOf(this.node).profiles : null;
    const current = profiles ? (await profiles.get(pid))?.fields.guild : null;
    if (typeof current === 'string' && current !== '' && current !== gid) {
      throw new AlreadyExistsError(`Player ${pid} is in guild ${current}: he leaves it before he joins ${gid}.`, { pid, gid: current });
    }
    await this.node.store.setGuildMember(gid, pid, true);
    if (profiles && current !== gid) await profiles.update(pid, { guild: gid });
    return this.get(gid);
  }

  /** Removes a player from the guild and clears his profile's `guild` field. */
  async leave(gid: string, pid: number): Promise<Guild> {
    this.checkHome(gid);
    const changed = await this.node.store.setGuildMember(gid, pid, false);
    if (hasRole(this.node.cluster, 'datacenter')) {
      const profiles = servicesOf(this.node).profiles;
      if (changed || (await profiles.get(pid))?.fields.guild === gid) await profiles.update(pid, { guild: null });
    }
    return this.get(gid);
  }

  /**
   * Applies a deposit or deduction, after every change of this guild that arrived before it.
   * Refusals are errors: InsufficientResource (nothing deducted), NotFound (no such guild),
   * RequestConflict (the request id was used for another change).
   */
  async change(change: TreasuryChange): Promise<TreasuryReceipt> {
    this.checkHome(change.gid);
    const outcome = await this.enqueue(change);
    if (outcome.replayed) this.replayed++;
    const { requestId, kind, resource, amount, balance, replayed } = outcome;
    const gid = change.gid;
    switch (outcome.status) {
      case 'applied':
        if (!replayed) this.applied++;
        return { gid, requestId, kind, resource, amount, balance, replayed };
      case 'insufficient':
        if (!replayed) this.refused++;
        throw new InsufficientResourceError(
          `Guild ${gid} holds ${balance} ${resource}, less than the ${amount} this deduction needs: nothing was deducted` +
            `${replayed ? ' (request ' + requestId + ' was refused before, and stays refused)' : ''}. Deposit first, or deduct less.`,
          { gid, resource, balance, needed: amount, requestId, replayed },
        );
      case 'missing':
        throw this.missing(gid);
      case 'conflict':
        throw new RequestConflictError(
          `Request id ${requestId} was already used for another change of guild ${gid}: use a new id for each request, the same id only to retry the same request.`,
          { gid, requestId },
        );
      case 'overflow':
        throw new InvalidParamsError(`guild ${gid}'s ${resource} would pass ${Number.MAX_SAFE_INTEGER}: deposit less`);
    }
  }

  /** The guild's latest applied changes, newest first. */
  async ledger(gid: string, count: number): Promise<LedgerEntry[]> {
    if (!(await this.node.store.getGuild(gid))) throw this.missing(gid);
    return this.node.store.guildLedger(gid, count);
  }

  /** Counts since start. */
  stats(): { applied: number; refused: number; replayed: number; queued: number } {
    let queued = 0;
    for (const queue of this.queues.values()) queued += queue.length;
    return { applied: this.applied, refused: this.refused, replayed: this.replayed, queued };
  }

  // ---- internals -------------------------------------------------------------------------------

  private enqueue(change: TreasuryChange): Promise<TreasuryOutcome> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(change.gid);
      const idle = !queue;
      if (!queue) this.queues.set(change.gid, (queue = []));
      queue.push({ change, resolve, reject });
      if (idle) void this.drain(change.gid, queue);
    });
  }

  /** Applies one guild's queue, one pipeline at a time, until it is empty. */
  private async drain(gid: string, queue: Queued[]): Promise<void> {
    // Let the calls of this tick join the first pipeline.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    while (queue.length > 0) {
      const batch = queue.splice(0, MAX_BATCH);
      try {
        const outcomes = await this.node.store.applyTreasuryChanges(batch.map((q) => q.change));
        batch.forEach((q, i) => q.resolve(outcomes[i]!));
      } catch (error) {
        // The store failed (e.g. unreachable): some may have been applied; a retry with the same request id tells.
        for (const q of batch) q.reject(error as Error);
      }
    }
    this.queues.delete(gid);
  }

  private checkHome(gid: string): void {
    const home = guildServerFor(this.node.cluster, gid);
    if (home !== this.node.name) {
      throw new WrongServerError(
        `Guild ${gid} is served by guild server ${home}, not ${this.node.name}: every change of one guild goes to its one server. ` +
          `Send it there (services.guild(gid) finds it).`,
        { gid, server: home },
      );
    }
  }

  private missing(gid: string): NotFoundError {
    return new NotFoundError(`There is no guild ${gid}: create it first (guild.create).`, { gid });
  }
}
