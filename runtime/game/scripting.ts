/**
 * Designer scripts on a game server: the script host (runtime/sandbox) given the real cluster —
 * players reached wherever they are, profiles from the store, the function services (the
 * allowlist of runtime/services/script-surface.ts), the server's log — plus the
 * methods that load and run bundles remotely (`kuafu script run`) and a watcher that reloads
 * the scripts folder when a file changes.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import type { ServerNode } from '../cluster/server-node.js';
import { InvalidArgumentError, InvalidParamsError, JSONRPC_CODES, RpcProtocolError, ScriptFailedError } from '../errors.js';
import { objectArg, stringField } from '../rpc/params.js';
import type { MethodTable } from '../rpc/rpc-server.js';
import { callScriptService } from '../services/script-surface.js';
import { ScriptError, ScriptHost, type KuafuPlayerInfo, type ScriptServices } from '../sandbox/index.js';
import type { Profile } from '../store/store.js';

/** ScriptServices on the real cluster. */
export class ClusterScriptServices implements ScriptServices {
  constructor(private readonly node: ServerNode) {}

  invokePlayer(pid: number, path: string[], args: unknown[]): Promise<unknown> {
    return this.node.players.invoke(pid, path, args);
  }

  invokePlayerWith(pid: number, path: string[], args: unknown[], done: (ok: boolean, value: unknown) => void): void {
    this.node.players.invokeWith(pid, path, args, done);
  }

  async getKuafuPlayer(pid: number): Promise<KuafuPlayerInfo | null> {
    const route = await this.node.store.getRoute(pid);
    if (!route || !route.online) return null;
    const owner = route.at || route.home;
    if (owner === this.node.name) return null;
    return { pid, home_srvname: route.home, go_srvname: route.at, online: true };
  }

  getProfile(pid: number): Promise<Profile | null> {
    return this.node.services.profiles.get(pid);
  }

  async callService(service: string, target: string, method: string, args: unknown[]): Promise<unknown> {
    try {
      return await callScriptService(this.node, service, target, method, args);
    } catch (error) {
      throw forScript(error, service, target, method);
    }
  }

  log(level: 'debug' | 'info' | 'warn' | 'error', bundle: string, message: string): void {
    this.node.log[level](`[script ${bundle}] ${message}`);
  }
}

/**
 * Arguments a service refused — here (`the amount must be a number`) or on its server (`guild.deduct
 * needs "amount", a positive integer`) — reach the script as kind InvalidArgument, as a player
 * method's do, not as a server bug.
 */
function forScript(error: unknown, service: string, target: string, method: string): unknown {
  if (!(error instanceof RpcProtocolError) || error.code !== JSONRPC_CODES.InvalidParams) return error;
  const marker = 'Invalid params: ';
  const at = error.message.lastIndexOf(marker);
  const reason = at >= 0 ? error.message.slice(at + marker.length) : error.message;
  const where = `services.${service}(${service === 'profile' || target === '' ? target : JSON.stringify(target)}).${method}`;
  return new InvalidArgumentError(reason.startsWith('services.') ? reason : `${where}: ${reason}`, { service, method });
}

/** The script error as a domain error that travels to the caller with its designer-facing message. */
function forCaller(error: unknown): unknown {
  if (!(error instanceof ScriptError)) return error;
  const location = error.location;
  const limits: Record<string, number> = {};
  // A broken limit says which and by how much (limitMs, overrunMs); a quarantine when to retry (retryAfterMs).
  for (const key of ['limitMs', 'overrunMs', 'limitMiB', 'retryAfterMs']) {
    const value = error.details[key];
    if (typeof value === 'number') limits[key] = value;
  }
  return new ScriptFailedError(error.designerStack, {
    bundle: error.bundle, fn: error.fn, scriptKind: error.kind,
    file: location?.file ?? null, line: location?.line ?? null, column: location?.column ?? null,
    ...limits,
  });
}

export class Scripting {
  readonly host: ScriptHost;
  private watcher: FSWatcher | null = null;
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(private readonly node: ServerNode) {
    this.host = new ScriptHost({
      ...node.cluster.scriptLimits, worker: node.cluster.scriptWorker, services: new ClusterScriptServices(node), logger: node.log.child('scripts'),
    });
  }

  /** The methods `kuafu script run` uses. */
  methods(): MethodTable {
    return {
      /** Loads (or reloads) a bundle: `{name, code, map?}`. */
      'script.load': async (arg: unknown) => {
        const args = objectArg(arg, 'script.load');
        const name = stringField(args, 'script.load', 'name');
        const code = stringField(args, 'script.load', 'code');
        if (args.map !== undefined && typeof args.map !== 'string') throw new InvalidParamsError('script.load: "map" must be the source map text');
        try {
          return await this.host.reload(name, { code, map: args.map as string | undefined, file: typeof args.file === 'string' ? args.file : undefined });
        } catch (error) {
          throw forCaller(error);
        }
      },
      /** Runs an exported function of a loaded bundle: `{bundle, fn?, args?}`. */
      'script.run': async (arg: unknown) => {
        const args = objectArg(arg, 'script.run');
        const bundle = stringField(args, 'script.run', 'bundle');
        const fn = args.fn === undefined ? 'main' : stringField(args, 'script.run', 'fn');
        const callArgs = args.args === undefined ? [] : args.args;
        if (!Array.isArray(callArgs)) throw new InvalidParamsError('script.run: "args" must be an array');
        try {
          return await this.host.run(bundle, fn, callArgs);
        } catch (error) {
          throw forCaller(error);
        }
      },
      /** The loaded bundles and their figures. */
      'script.list': () => this.host.names().map((name) => this.host.stats(name)),
    };
  }

  /** Loads every script of `dir` (`.ts`, not `.d.ts`, named by file) and reloads one when it changes. */
  async watchFolder(dir: string): Promise<void> {
    for (const file of await scriptFiles(dir)) await this.loadQuietly(file);
    this.watcher = watch(dir, { recursive: true }, (_event, name) => {
      if (!name || !isScript(name)) return;
      const file = join(dir, name.toString());
      clearTimeout(this.pending.get(file));
      // Editors write a file in several steps: load once it has been quiet for a moment.
      this.pending.set(file, setTimeout(() => {
        this.pending.delete(file);
        void this.loadQuietly(file, true);
      }, 100));
    });
    this.watcher.on('error', (error) => this.node.log.warn(`script watcher: ${error.message}`));
  }

  async close(): Promise<void> {
    this.watcher?.close();
    for (const timer of this.pending.values()) clearTimeout(timer);
    await this.host.close();
  }

  private async loadQuietly(file: string, reload = false): Promise<void> {
    try {
      const info = await this.host.loadFile(file);
      this.node.log[reload ? 'info' : 'debug'](`script ${info.name} ${reload ? 're' : ''}loaded from ${relative(process.cwd(), file)} (version ${info.version}, exports ${info.exports.join(', ') || 'nothing'})`);
    } catch (error) {
      this.node.log.warn(`script ${relative(process.cwd(), file)} not loaded: ${(error as Error).message}`);
    }
  }
}

function isScript(name: string | Buffer): boolean {
  const text = name.toString();
  return (extname(text) === '.ts' && !text.endsWith('.d.ts')) && !text.includes('node_modules');
}

async function scriptFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && isScript(entry.name))
    .map((entry) => join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name))
    .sort();
}
