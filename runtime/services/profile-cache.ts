/**
 * Every server's cache of player profiles: the seed's "update + instant sync".
 *
 * - Reads go through the cache; a miss reads the store once (one load per player at a time).
 * - Every change the store publishes (`onProfileChange`: the changed fields and the new version)
 *   is applied at once to a cached profile, in version order: the next version is merged, an older
 *   or repeated one is ignored, and a gap (a publication was lost) makes the cache read the
 *   profile again. Publications that arrive while a profile is being read are held and applied on
 *   top of what was read.
 * - `follow(pids, listener)`: a server that shows profiles (a friends list, a guild roster) is told
 *   of every change of those players; followed profiles stay cached.
 * - After a store reconnect (`onReconnect`: publications may have been missed) the cache is rebuilt:
 *   profiles nobody follows are dropped, followed ones are read again (followers are told when
 *   what they show changed). No missed change leaves a stale value behind.
 * - Writes go to the player's datacenter (`profile.update`); the writer's own cache takes the
 *   answer at once, every other server gets the publication.
 *
 * Cached profiles are frozen: share them, never change them.
 */
import type { ServerNode } from '../cluster/server-node.js';
import { ServerUnavailableError, TimeoutError } from '../errors.js';
import { Listeners } from '../util/listeners.js';
import {
  ownerOf, type Profile, type ProfileChange, type ProfileValue, type Route, type Unsubscribe,
} from '../store/store.js';
import { checkNotFollowed, profileFieldsArg } from './checks.js';
import { datacenterFor, hasRole } from './placement.js';

/** What a follower is told. */
export interface ProfileEvent {
  pid: number;
  /** The profile now (null: the player has none, e.g. after a store lost its data). */
  profile: Profile | null;
  /** The fields that changed, or null when the profile was read again as a whole (after a reconnect or a lost publication). */
  changed: Record<string, ProfileValue> | null;
}

export type ProfileListener = (event: ProfileEvent) => void;

interface Entry {
  /** undefined until the first read finishes. */
  profile: Profile | null | undefined;
  /** The read under way, if any. */
  loading: Promise<Profile | null> | null;
  /** Publications that arrived during the read. */
  buffered: ProfileChange[];
  /** Who follows this player: the entry stays while there are any. */
  listeners: Set<ProfileListener>;
}

/** A follower's handle: the players it follows, more or fewer of them, and the end of it. */
export interface Following {
  /** The followed players' profiles as cached now. */
  profiles(): Map<number, Profile | null>;
  /** Follows one more player; resolves with his profile. */
  add(pid: number): Promise<Profile | null>;
  /** Stops following one player. */
  remove(pid: number): void;
  /** Stops following them all. */
  close(): void;
}

/** How often the cache may ask a datacenter to bring one player's route fields up to date, ms. */
const ROUTE_REPAIR_INTERVAL_MS = 5000;

function frozen(profile: Profile | null): Profile | null {
  if (!profile) return null;
  Object.freeze(profile.fields);
  return Object.freeze(profile);
}

function merged(profile: Profile | null, change: ProfileChange): Profile {
  return frozen({ pid: change.pid, version: change.version, fields: { ...(profile?.fields ?? {}), ...change.changed } })!;
}

function same(a: Profile | null | undefined, b: Profile | null): boolean {
  if (!a || !b) return a === b;
  if (a.version !== b.version) return false;
  const keys = Object.keys(a.fields);
  return keys.length === Object.keys(b.fields).length && keys.every((key) => key in b.fields && a.fields[key] === b.fields[key]);
}

function differences(before: Profile | null, after: Profile): Record<string, ProfileValue> {
  const changed: Record<string, ProfileValue> = {};
  for (const [name, value] of Object.entries(after.fields)) {
    if (!before || !(name in before.fields) || before.fields[name] !== value) changed[name] = value;
  }
  return changed;
}

export class ProfileCache {
  private readonly entries = new Map<number, Entry>();
  private readonly unsubscribes: Unsubscribe[] = [];
  private readonly everyChange = new Listeners<ProfileEvent>('profile cache');
  private readonly repairsAsked = new Map<number, number>();
  private rebuilds = 0;

  constructor(private readonly node: ServerNode, private readonly maxEntries = 100_000) {}

  /** Starts following the store's publications. */
  start(): void {
    if (this.unsubscribes.length > 0) return;
    this.unsubscribes.push(
      this.node.store.onProfileChange((change) => this.apply(change)),
      this.node.store.onReconnect(() => this.rebuild()),
    );
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    this.entries.clear();
  }

  /** How many profiles are cached. */
  get size(): number {
    return this.entries.size;
  }

  /** How many times the cache was rebuilt after a store reconnect. */
  get rebuildCount(): number {
    return this.rebuilds;
  }

  /** The player's profile (null when he has none): from the cache, else read from the store. */
  get(pid: number): Promise<Profile | null> {
    const entry = this.entries.get(pid);
    if (entry) {
      if (entry.loading) return entry.loading;
      if (entry.profile !== undefined) return Promise.resolve(entry.profile);
      return this.load(pid, entry); // a followed player whose first read failed
    }
    const created: Entry = { profile: undefined, loading: null, buffered: [], listeners: new Set() };
    this.entries.set(pid, created);
    return this.load(pid, created);
  }

  /** Several profiles, in the order asked. */
  getMany(pids: number[]): Promise<(Profile | null)[]> {
    return Promise.all(pids.map((pid) => this.get(pid)));
  }

  /** The cached profile only (no store read): undefined when it is not cached. */
  peek(pid: number): Profile | null | undefined {
    const entry = this.entries.get(pid);
    return entry && !entry.loading ? entry.profile : undefined;
  }

  /**
   * Sets some fields of the player's profile through his datacenter (`profile.update`); returns
   * the new profile, which this cache holds at once. Every other server gets the publication.
   */
  async update(pid: number, fields: Record<string, ProfileValue>): Promise<Profile> {
    const datacenter = datacenterFor(this.node.cluster, pid);
    let profile: Profile;
    if (datacenter === this.node.name) {
      // The same checks the datacenter's method makes.
      profileFieldsArg({ fields }, 'profile.update');
      checkNotFollowed(fields, 'profile.update');
      profile = await this.node.store.updateProfile(pid, fields);
    } else {
      // Setting the same fields twice is harmless, so a call whose answer was lost may be sent again.
      for (let attempt = 1; ; attempt++) {
        try {
          profile = await this.node.call<Profile>(datacenter, 'profile.update', { pid, fields });
          break;
        } catch (error) {
          if (attempt >= 3 || !(error instanceof ServerUnavailableError || error instanceof TimeoutError)) throw error;
        }
      }
    }
    this.accept(profile);
    return profile;
  }

  /**
   * Follows the players `pids`: `listener` hears of every change of their profiles from now on.
   * Resolves once their profiles are cached.
   */
  async follow(pids: number[], listener: ProfileListener): Promise<Following> {
    const followed = new Set<number>();
    const add = (pid: number): Promise<Profile | null> => {
      followed.add(pid);
      let entry = this.entries.get(pid);
      if (!entry) {
        entry = { profile: undefined, loading: null, buffered: [], listeners: new Set() };
        this.entries.set(pid, entry);
        entry.listeners.add(listener);
        return this.load(pid, entry);
      }
      entry.listeners.add(listener);
      return this.get(pid);
    };
    const remove = (pid: number): void => {
      followed.delete(pid);
      this.entries.get(pid)?.listeners.delete(listener);
    };
    const following: Following = {
      profiles: () => new Map([...followed].map((pid) => [pid, this.peek(pid) ?? null])),
      add,
      remove,
      close: () => { for (const pid of [...followed]) remove(pid); },
    };
    try {
      await Promise.all(pids.map(add));
    } catch (error) {
      following.close();
      throw error;
    }
    return following;
  }

  /** Hears of every change applied to any cached profile (diagnostics, benchmarks). */
  onChange(listener: ProfileListener): Unsubscribe {
    return this.everyChange.add(listener);
  }

  // ---- internals -------------------------------------------------------------------------------

  private load(pid: number, entry: Entry): Promise<Profile | null> {
    const before = entry.profile;
    const loading: Promise<Profile | null> = this.node.store.getProfile(pid).then(
      (stored) => {
        if (this.entries.get(pid) !== entry || entry.loading !== loading) return stored; // dropped, or read again since
        entry.loading = null;
        let profile = frozen(stored);
        const held = entry.buffered.sort((a, b) => a.version - b.version);
        entry.buffered = [];
        for (const change of held) {
          const version = profile?.version ?? 0;
          if (change.version <= version) continue;
          if (change.version > version + 1) {
            // A publication was lost: read again (followers are told once it is in).
            entry.profile = before;
            return this.load(pid, entry);
          }
          profile = merged(profile, change);
        }
        entry.profile = profile;
        if (before !== undefined && !same(before, profile)) this.notify(pid, entry, profile, null);
        this.trim();
        this.checkRoute(pid, profile);
        return profile;
      },
      (error: unknown) => {
        if (entry.loading === loading) {
          entry.loading = null;
          // Never read and nobody follows it: forget it (a followed one is read again on the next get).
          if (entry.profile === undefined && entry.listeners.size === 0) this.entries.delete(pid);
        }
        throw error;
      },
    );
    entry.loading = loading;
    return loading;
  }

  /** A publication: apply it to a cached profile, in version order. */
  private apply(change: ProfileChange): void {
    const entry = this.entries.get(change.pid);
    if (!entry) return; // not cached here: nothing to keep fresh
    if (entry.loading) {
      entry.buffered.push(change);
      return;
    }
    const current = entry.profile ?? null;
    const version = current?.version ?? 0;
    if (change.version <= version) return;
    if (change.version > version + 1) {
      void this.load(change.pid, entry).catch((error: Error) => this.node.log.warn(`profile ${change.pid}: cannot read it again: ${error.message}`));
      return;
    }
    const profile = merged(current, change);
    entry.profile = profile;
    this.notify(change.pid, entry, profile, change.changed);
  }

  /** A whole profile this server just wrote (the datacenter's answer). */
  private accept(profile: Profile): void {
    const entry = this.entries.get(profile.pid);
    if (!entry || entry.loading || entry.profile === undefined) return;
    const current = entry.profile;
    if (current && current.version >= profile.version) return;
    const copy = frozen({ pid: profile.pid, version: profile.version, fields: { ...profile.fields } })!;
    entry.profile = copy;
    this.notify(profile.pid, entry, copy, differences(current, copy));
  }

  /** After a store reconnect: drop what nobody follows, read the followed profiles again. */
  private rebuild(): void {
    this.rebuilds++;
    for (const [pid, entry] of this.entries) {
      if (entry.listeners.size === 0) {
        this.entries.delete(pid);
        continue;
      }
      entry.buffered = [];
      void this.load(pid, entry).catch((error: Error) => {
        this.node.log.warn(`profile ${pid}: cannot read it again after the store reconnected: ${error.message}`);
        // The next reconnect (or a publication with a gap) tries again.
      });
    }
  }

  private notify(pid: number, entry: Entry, profile: Profile | null, changed: Record<string, ProfileValue> | null): void {
    const event: ProfileEvent = { pid, profile, changed };
    for (const listener of entry.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.node.log.error(`a profile listener threw for player ${pid}`, error);
      }
    }
    this.everyChange.emit(event);
  }

  /** Forgets the oldest profiles nobody follows once there are more than `maxEntries`. */
  private trim(): void {
    if (this.entries.size <= this.maxEntries) return;
    for (const [pid, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries) break;
      if (entry.listeners.size === 0 && !entry.loading) this.entries.delete(pid);
    }
  }

  /**
   * The route fields of a profile follow the player's route (the datacenter copies each route
   * publication). If a read shows them behind the route this server knows, the datacenter missed
   * a publication: ask it to copy the route again (its script reads the route itself, so a
   * needless ask changes nothing).
   */
  private checkRoute(pid: number, profile: Profile | null): void {
    const route: Route | undefined = this.node.routes.peek(pid);
    if (!route || !hasRole(this.node.cluster, 'datacenter')) return;
    const fields = profile?.fields;
    if (fields && fields.home === route.home && fields.server === ownerOf(route) && fields.online === route.online) return;
    const now = Date.now();
    if ((this.repairsAsked.get(pid) ?? 0) > now - ROUTE_REPAIR_INTERVAL_MS) return;
    this.repairsAsked.set(pid, now);
    if (this.repairsAsked.size > 10_000) this.repairsAsked.clear();
    const datacenter = datacenterFor(this.node.cluster, pid);
    const repair = datacenter === this.node.name
      ? this.node.store.syncProfileRoute(pid)
      : this.node.call(datacenter, 'profile.syncRoute', { pid });
    repair.catch((error: Error) => this.node.log.debug(`profile ${pid}: route fields not repaired: ${error.message}`));
  }
}
