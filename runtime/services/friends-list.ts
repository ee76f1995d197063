/**
 * A cross-server friends list: what a game server shows of players who may live on any home
 * server — name, level, where they are and whether they are online — kept current by profile
 * pushes (no polling). The example of `ProfileCache.follow`.
 *
 *   const friends = await FriendsList.open(node, [1001, 2002]);
 *   friends.onChange((friend) => gateway.send(viewer, { type: 'friend', ...friend }));
 *   friends.view();   // online first, then by name
 *   friends.close();
 */
import type { ServerNode } from '../cluster/server-node.js';
import type { Profile, Unsubscribe } from '../store/store.js';
import { Listeners } from '../util/listeners.js';
import { servicesOf } from './index.js';
import type { Following, ProfileEvent } from './profile-cache.js';

/** One friend as a list shows him. */
export interface Friend {
  pid: number;
  name: string;
  level: number;
  /** His home server. */
  home: string;
  /** The server he is on ('' when unknown). */
  server: string;
  online: boolean;
  guild: string;
}

function friendOf(pid: number, profile: Profile | null): Friend {
  const f = profile?.fields ?? {};
  return {
    pid,
    name: typeof f.name === 'string' ? f.name : `player${pid}`,
    level: typeof f.level === 'number' ? f.level : 1,
    home: typeof f.home === 'string' ? f.home : '',
    server: typeof f.server === 'string' ? f.server : '',
    online: f.online === true,
    guild: typeof f.guild === 'string' ? f.guild : '',
  };
}

export class FriendsList {
  private readonly changes = new Listeners<Friend>('friends list');
  private following: Following | null = null;

  private constructor() {}

  /** A friends list of `pids` on `node`, followed from now on. */
  static async open(node: ServerNode, pids: number[]): Promise<FriendsList> {
    const list = new FriendsList();
    list.following = await servicesOf(node).profiles.follow(pids, (event: ProfileEvent) => list.changed(event));
    return list;
  }

  /** The friends, online first, then by name. */
  view(): Friend[] {
    const friends = [...(this.following?.profiles() ?? new Map<number, Profile | null>())].map(([pid, profile]) => friendOf(pid, profile));
    return friends.sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name) || a.pid - b.pid);
  }

  /** One friend, or undefined when he is not on the list. */
  friend(pid: number): Friend | undefined {
    return this.view().find((friend) => friend.pid === pid);
  }

  /** Hears of every change of a friend (his whole new line). */
  onChange(listener: (friend: Friend) => void): Unsubscribe {
    return this.changes.add(listener);
  }

  /** Adds a friend; resolves with his line. */
  async add(pid: number): Promise<Friend> {
    return friendOf(pid, await this.following!.add(pid));
  }

  remove(pid: number): void {
    this.following?.remove(pid);
  }

  close(): void {
    this.following?.close();
    this.following = null;
  }

  private changed(event: ProfileEvent): void {
    this.changes.emit(friendOf(event.pid, event.profile));
  }
}
