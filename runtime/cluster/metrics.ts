/**
 * A server's metrics, in Prometheus' text format (prom-client): each server has its own registry,
 * every series labelled `server="<name>"`, served on `GET /metrics` of its `metricsPort` (when the
 * config gives one) and answered by the `cluster.metrics` method.
 *
 * Counted as they happen: JSON-RPC calls served (by method and outcome: `ok` or the error kind),
 * logins and transfers, fenced saves (stored, refused as stale, failed), password hashes and the
 * logins and registrations refused by a limit (account servers). Read when scraped: players
 * online, peers connected, whether the store answers, script bundles (calls in flight, heap,
 * isolates made again), and the process (CPU, memory, event loop lag: prom-client's defaults).
 */
import type { Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { listenHttp } from '../util/socket-guard.js';
import type { Logger } from '../util/log.js';

/** What the metrics read from their server when scraped. */
export interface MetricsSources {
  playersOnline(): number;
  peers(): { peer: string; connected: boolean }[];
  storeUp(): boolean;
  bundles(): { name: string; inFlight: number; heapUsedBytes: number | null; isolatesRemade: number }[];
}

type Child = { inc(value?: number): void };

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly rpcCalls: Counter<'method' | 'outcome'>;
  private readonly rpcChildren = new Map<string, Child>();
  private readonly logins: Counter<'outcome'>;
  private readonly transfers: Counter<'direction'>;
  private readonly saves: Counter<'outcome'>;
  private readonly saveChildren = new Map<string, Child>();
  private readonly passwordHashes: Counter<'purpose'>;
  private readonly accountRefusals: Counter<'limit'>;
  private http: Server | null = null;
  private boundUrl = '';

  constructor(server: string, sources: MetricsSources) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ server });
    collectDefaultMetrics({ register: this.registry });
    this.rpcCalls = new Counter({
      name: 'kuafu_rpc_calls_total', help: 'JSON-RPC calls this server answered, by method and outcome (ok, or the error kind)',
      labelNames: ['method', 'outcome'], registers,
    });
    this.logins = new Counter({ name: 'kuafu_logins_total', help: 'Logins at this game server, by outcome (ok, or the error kind)', labelNames: ['outcome'], registers });
    this.transfers = new Counter({
      name: 'kuafu_transfers_total', help: 'Players who left this game server for another (out) or arrived with a transfer token (in)',
      labelNames: ['direction'], registers,
    });
    this.saves = new Counter({
      name: 'kuafu_player_saves_total',
      help: 'Player document writes (one write carries every save of that player asked for since the last: calls that changed him, a logout, a transfer): stored, stale (another server owns him), failed (store)',
      labelNames: ['outcome'], registers,
    });
    this.passwordHashes = new Counter({
      name: 'kuafu_password_hashes_total',
      help: 'Password hashes (scrypt) this account server computed for requests: login (checking a password, or the stand-in for an unknown account) and register',
      labelNames: ['purpose'], registers,
    });
    this.accountRefusals = new Counter({
      name: 'kuafu_account_refusals_total',
      help: 'Logins and registrations refused by a limit before any work: source (logins per source), account (failed logins of one account from one source), registrations (per source), busy (hashes in flight per source)',
      labelNames: ['limit'], registers,
    });
    new Gauge({
      name: 'kuafu_players_online', help: 'Players connected to this game server', registers,
      collect() { this.set(sources.playersOnline()); },
    });
    new Gauge({
      name: 'kuafu_store_up', help: '1 when the shared store answered the last heartbeat, else 0', registers,
      collect() { this.set(sources.storeUp() ? 1 : 0); },
    });
    new Gauge({
      name: 'kuafu_peer_connected', help: '1 for each peer server this one has an authenticated connection to, 0 while it reconnects',
      labelNames: ['peer'], registers,
      collect() {
        this.reset();
        for (const { peer, connected } of sources.peers()) this.set({ peer }, connected ? 1 : 0);
      },
    });
    const bundleGauge = (name: string, help: string, read: (bundle: ReturnType<MetricsSources['bundles']>[number]) => number | null) => new Gauge({
      name, help, labelNames: ['bundle'], registers,
      collect() {
        this.reset();
        for (const bundle of sources.bundles()) {
          const value = read(bundle);
          if (value !== null) this.set({ bundle: bundle.name }, value);
        }
      },
    });
    bundleGauge('kuafu_script_calls_in_flight', 'Calls running in a script bundle (current version)', (b) => b.inFlight);
    bundleGauge('kuafu_script_heap_used_bytes', "V8 heap used by a script bundle's isolate", (b) => b.heapUsedBytes);
    bundleGauge('kuafu_script_isolates_remade', 'Isolates made again for a bundle after its first: one per reload and per broken limit', (b) => b.isolatesRemade);
  }

  /** A JSON-RPC call answered: `outcome` is 'ok' or the error kind. */
  rpcServed(method: string, outcome: string): void {
    const key = `${method}\n${outcome}`;
    let child = this.rpcChildren.get(key);
    if (!child) this.rpcChildren.set(key, (child = this.rpcCalls.labels(method, outcome)));
    child.inc();
  }

  login(outcome: string): void {
    this.logins.labels(outcome).inc();
  }

  transfer(direction: 'in' | 'out'): void {
    this.transfers.labels(direction).inc();
  }

  save(outcome: 'stored' | 'stale' | 'failed'): void {
    let child = this.saveChildren.get(outcome);
    if (!child) this.saveChildren.set(outcome, (child = this.saves.labels(outcome)));
    child.inc();
  }

  /** A password hash computed for a request. */
  passwordHash(purpose: 'login' | 'register'): void {
    this.passwordHashes.labels(purpose).inc();
  }

  /** A login or registration refused by a limit. */
  accountRefused(limit: 'source' | 'account' | 'registrations' | 'busy'): void {
    this.accountRefusals.labels(limit).inc();
  }

  /** The metrics as Prometheus text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serves `GET /metrics` on `host:port` (0 picks a free port); resolves with `http://host:port/metrics`. */
  async listen(host: string, port: number, log: Logger): Promise<string> {
    // listenHttp answers 500 (and logs) for anything the handler throws: a scrape never ends the server.
    const { server, url } = await listenHttp(host, port, async (request, response) => {
      if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: the metrics are at GET /metrics\n');
        return;
      }
      let text: string;
      try {
        text = await this.text();
      } catch (error) {
        log.error('metrics: collecting failed', error);
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting the metrics failed: ${(error as Error).message}\n`);
        return;
      }
      response.writeHead(200, { 'content-type': this.registry.contentType }).end(text);
    }, log, 'metrics endpoint');
    this.http = server;
    this.boundUrl = `${url}/metrics`;
    return this.boundUrl;
  }

  /** Where the metrics are served ('' when they are not). */
  get url(): string {
    return this.boundUrl;
  }

  async close(): Promise<void> {
    const http = this.http;
    this.http = null;
    if (!http) return;
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  }
}
