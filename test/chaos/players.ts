/**
 * The chaos run's players: each a real KuafuClient that logs in on the account server's login
 * gateway and at his home, and moves between the game servers every few seconds (sometimes logs
 * out for a while). A fault may reserve a player: his loop then leaves him alone until released.
 */
import { KuafuClient, registerAccount, type Entered } from '../../runtime/client/kuafu-client.js';
import { GAMES, HOME } from './cluster.js';

const PASSWORD = 'chaos soak password';

export interface PlayerStats {
  logins: number;
  loginFailures: number;
  moves: number;
  moveFailures: number;
  fallbacks: number;
  kicks: number;
  logouts: number;
  /** Why logins and moves failed: `login Kind`, `go Kind` → how often. */
  errors: Record<string, number>;
}

function reason(error: unknown): string {
  const e = error as { kind?: unknown; message?: unknown };
  if (typeof e?.kind === 'string') return e.kind;
  return String(e?.message ?? error).replace(/\d+/g, 'N').slice(0, 50);
}

export class ChaosPlayer {
  /** The server the runner believes holds him (his last `entered`), null when offline. */
  at: string | null = null;
  /** A fault is using him. */
  reserved = false;
  /** His loop is in the middle of an action. */
  busy = false;
  constructor(readonly pid: number, readonly account: string, readonly home: string, public client: KuafuClient, readonly stats: PlayerStats) {
    this.watch(client);
  }

  static async register(accountGateway: string, account: string, stats: PlayerStats, stepTimeoutMs: number): Promise<ChaosPlayer> {
    const made = await registerAccount(accountGateway, account, PASSWORD, { home: HOME });
    const client = await KuafuClient.forAccount(accountGateway, account, PASSWORD, { stepTimeoutMs });
    return new ChaosPlayer(made.pid, account, made.home, client, stats);
  }

  /** A fresh client for the same account (the final check logs everyone in anew). */
  async freshClient(accountGateway: string, stepTimeoutMs: number): Promise<KuafuClient> {
    const client = await KuafuClient.forAccount(accountGateway, this.account, PASSWORD, { stepTimeoutMs });
    client.on('error', () => undefined);
    return client;
  }

  private watch(client: KuafuClient): void {
    client.on('error', () => { this.at = null; }); // a move the server started that the client could not follow
    client.on('entered', (e: Entered) => { if (this.client === client) this.at = e.server; });
    client.on('kicked', () => {
      if (this.client !== client) return;
      this.stats.kicks++;
      this.at = null;
    });
    client.on('fallback', () => { this.stats.fallbacks++; });
  }

  /** Logs in at home (following wherever home sends him); false when that failed. */
  async login(): Promise<boolean> {
    this.client.close();
    try {
      const e = await this.client.login();
      this.at = e.server;
      this.stats.logins++;
      return true;
    } catch (error) {
      this.client.close();
      this.at = null;
      this.stats.loginFailures++;
      this.count(`login ${reason(error)}`);
      return false;
    }
  }

  /** Asks to move to `server`; the server he ended on, or null when he lost his connection. */
  async go(server: string): Promise<string | null> {
    try {
      const e = await this.client.go(server);
      this.at = e.server;
      this.stats.moves++;
      return e.server;
    } catch (error) {
      this.stats.moveFailures++;
      this.count(`go ${reason(error)}`);
      // A refused move leaves him where he was, but the client cannot always tell a refusal from a
      // lost connection (both may say ServerUnavailable): he logs in again either way.
      this.client.close();
      this.at = null;
      return null;
    }
  }

  async logout(): Promise<void> {
    try {
      await this.client.logout();
      this.stats.logouts++;
    } catch {
      this.client.close();
    }
    this.at = null;
  }

  private count(key: string): void {
    this.stats.errors[key] = (this.stats.errors[key] ?? 0) + 1;
  }

  /** Waits until his loop is between actions (for a fault that reserved him). */
  async idle(ms = 20_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.busy) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return true;
  }
}

/** His loop: log in when out, else every 2-5 s move to another game server (or log out for a while). */
export async function playerLoop(player: ChaosPlayer, random: () => number, stopping: () => boolean): Promise<void> {
  const nap = async (ms: number) => {
    const until = Date.now() + ms;
    while (Date.now() < until && !stopping()) await new Promise((resolve) => setTimeout(resolve, Math.min(100, until - Date.now())));
  };
  await nap(random() * 1500);
  while (!stopping()) {
    if (player.reserved) {
      await nap(100);
      continue;
    }
    player.busy = true;
    try {
      if (player.at === null) {
        if (!(await player.login())) {
          player.busy = false;
          await nap(500 + random() * 1500);
          continue;
        }
      } else {
        const roll = random();
        if (roll < 0.75) {
          const others = GAMES.filter((g) => g !== player.at);
          await player.go(others[Math.floor(random() * others.length)]!);
        } else if (roll < 0.85) {
          await player.logout();
          player.busy = false;
          await nap(1000 + random() * 3000);
          continue;
        }
      }
    } finally {
      player.busy = false;
    }
    await nap(2000 + random() * 3000);
  }
}
