/**
 * The cluster config: which servers there are (name, roles, ports), the secret they share, and the
 * store. One JSON file; `kuafu up` starts all of its servers in one process, `kuafu serve` one of them.
 *
 * ```json
 * {
 *   "secret": "at least 16 characters, the same on every server",
 *   "host": "127.0.0.1",
 *   "store": { "kind": "memory" },
 *   "servers": [
 *     { "name": "HS",  "roles": ["game"], "rpcPort": 7101, "gatewayPort": 7201 },
 *     { "name": "DC",  "roles": ["datacenter"], "rpcPort": 7110 }
 *   ],
 *   "gatewayLimits": { "maxConnections": 10000, "loginTimeoutMs": 10000 }
 * }
 * ```
 * `KUAFU_SECRET` in the environment overrides `secret`; `--redis URL` overrides `store`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, NotFoundError } from '../errors.js';

/** The roles a server can host (DESIGN §1). */
export const ROLES = ['game', 'datacenter', 'guild', 'rank', 'account', 'battle'] as const;
export type Role = (typeof ROLES)[number];

export interface ServerConfig {
  /** Unique name: letters, digits, '_', '-', '.'. */
  name: string;
  roles: Role[];
  /** Interface to listen on; defaults to the cluster's `host`. */
  host: string;
  /** JSON-RPC port for the other servers; 0 picks a free one (peers find it in the registry). */
  rpcPort: number;
  /** Client gateway port: a game server's player gateway, an account server's login gateway; 0 picks a free one; absent: none. */
  gatewayPort?: number;
  /** The battle server paired with this game server (DESIGN §1: each game server has its own). */
  battle?: string;
  /** HTTP port serving this server's metrics at GET /metrics (Prometheus text); 0 picks a free one; absent: none. */
  metricsPort?: number;
  /** The limits of its client gateway: the cluster's `gatewayLimits`, with this server's own `gatewayLimits` over them. */
  gatewayLimits?: GatewayLimits;
}

/** What one client gateway (a game server's, an account server's login gateway) holds back. */
export interface GatewayLimits {
  /** Connections the gateway holds at once, open or still handshaking; one more is refused (HTTP 503). */
  maxConnections: number;
  /** A connection that has not logged in by then is closed (code 4001), ms. */
  loginTimeoutMs: number;
  /** The HTTP upgrade request's headers must have arrived by then (else 408 and closed), ms. */
  headersTimeoutMs: number;
  /** The whole upgrade request by then, ms (at least headersTimeoutMs). */
  requestTimeoutMs: number;
  /** How often those two deadlines are checked, ms. */
  connectionsCheckingIntervalMs: number;
}

export const DEFAULT_GATEWAY_LIMITS: Readonly<GatewayLimits> = {
  maxConnections: 10_000,
  loginTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  connectionsCheckingIntervalMs: 1000,
};

const GATEWAY_LIMITS = Object.keys(DEFAULT_GATEWAY_LIMITS) as (keyof GatewayLimits)[];

/**
 * What an account server lets one source address (a client's IP address; an IPv6 one by its /64)
 * do through its login gateway. Each login and each registration costs a password hash (scrypt),
 * whether the account exists or not; these bound that work per source, and make failed logins
 * count per source and account, so that strangers cannot lock an owner out.
 */
export interface LoginLimits {
  /** Logins one source may try in a minute; past that, TooManyAttempts without any work. */
  loginsPerSourcePerMinute: number;
  /** Failed logins of one account from one source in a minute before that source is refused for that account. */
  failedLoginsPerAccountPerSource: number;
  /** Accounts one source may try to register in an hour. */
  registrationsPerSourcePerHour: number;
  /** Password hashes one source may have running at once (logins and registrations); one more is refused. */
  hashesInFlightPerSource: number;
}

export const DEFAULT_LOGIN_LIMITS: Readonly<LoginLimits> = {
  loginsPerSourcePerMinute: 30,
  failedLoginsPerAccountPerSource: 5,
  registrationsPerSourcePerHour: 10,
  hashesInFlightPerSource: 2,
};

const LOGIN_LIMITS = Object.keys(DEFAULT_LOGIN_LIMITS) as (keyof LoginLimits)[];

/** The shared store: in-process memory, or Redis (one node, or any node of a Redis Cluster with `cluster: true`). */
export type StoreConfig = { kind: 'memory' } | { kind: 'redis'; url: string; cluster?: boolean };

export interface ClusterConfig {
  /** Where the config came from, for messages. */
  source: string;
  secret: string;
  host: string;
  store: StoreConfig;
  servers: ServerConfig[];
  /** Default deadline of a call between servers, ms. */
  rpcTimeoutMs: number;
  /** How often a server refreshes its registry record, ms; it expires after 3 missed beats. */
  heartbeatMs: number;
  /**
   * The folder of designer scripts every game server loads and watches ('' for none). Relative
   * to the config file; defaults to `scripts` beside it when that folder exists.
   */
  scriptsDir: string;
  /**
   * A module whose `playerModel` export (or default export) is the game servers' PlayerModel: the
   * host's own player and RPC surface ('' for the reference player). Relative to the config file.
   */
  playerModel: string;
  /** The limits of the designer scripts' isolates on every game server (unset: the script host's defaults). */
  scriptLimits: ScriptLimitsConfig;
  /** What a player may hold, and how long kept call results last (unset: the defaults below). */
  playerLimits: PlayerLimitsConfig;
  /** The limits of every client gateway (each server's `gatewayLimits` may change some for its own). */
  gatewayLimits: GatewayLimits;
  /** What one source address may do through an account server's login gateway. */
  loginLimits: LoginLimits;
  /**
   * Whether each game server runs its scripts' isolates in a script worker (a thread of their own),
   * so that no script can hold up its main thread (default false: on the main thread, each stretch
   * of script work bounded by syncLimitMs).
   */
  scriptWorker: boolean;
}

/** What the config may set of the script host's limits (runtime/sandbox/script-host.ts has the defaults). */
export interface ScriptLimitsConfig {
  /** Memory limit of each bundle's isolate, MiB (default 64). */
  memoryLimitMiB?: number;
  /** Deadline of one script call, awaits included, ms (default 5000). */
  deadlineMs?: number;
  /** The longest stretch of synchronous script work, ms (default 1000). */
  syncLimitMs?: number;
  /** The largest value crossing the sandbox's edge, bytes (default 1 MiB). */
  maxValueBytes?: number;
  /** CPU one script call may use across its awaits, ms (default 2000). */
  cpuLimitMs?: number;
  /** Requests one bundle may have waiting for answers (default 1024). */
  maxRequestsInFlight?: number;
  /** Bytes of requests one bundle may have waiting for answers, each counted with its own size (default 16 MiB). */
  maxBytesInFlight?: number;
  /** Limit breaks within quarantineWindowMs that quarantine a bundle (default 3 within 60000). */
  quarantineAfterBreaks?: number;
  quarantineWindowMs?: number;
  /** How long a quarantine lasts, ms (default 30000). */
  quarantineMs?: number;
}

const SCRIPT_LIMITS = [
  'memoryLimitMiB', 'deadlineMs', 'syncLimitMs', 'maxValueBytes', 'cpuLimitMs', 'maxRequestsInFlight', 'maxBytesInFlight',
  'quarantineAfterBreaks', 'quarantineWindowMs', 'quarantineMs',
] as const;

/**
 * What the config may set of a player's limits (runtime/game/player.ts has the defaults:
 * DEFAULT_PLAYER_LIMITS; runtime/store/store.ts the kept calls' retention).
 */
export interface PlayerLimitsConfig {
  /** The largest stored player document, bytes (default 1 MiB): a change past it is refused (LimitExceeded). */
  documentBytes?: number;
  /** The most mails in one mailbox (default 100). */
  mails?: number;
  /** The longest mail title, bytes (default 256). */
  mailTitleBytes?: number;
  /** The longest mail body, bytes (default 4096). */
  mailBodyBytes?: number;
  /** The most item entries attached to one mail (default 32). */
  mailItems?: number;
  /** How long the result of a `kept:` call (a recharge delivery) is remembered after it ran, days (default 30). */
  keptCallDays?: number;
}

const PLAYER_LIMITS = ['documentBytes', 'mails', 'mailTitleBytes', 'mailBodyBytes', 'mailItems', 'keptCallDays'] as const;

/** The secret of the shipped default config: fine on loopback, refused anywhere else. */
export const DEVELOPMENT_SECRET = 'kuafu-development-secret-change-me';

/** The config shipped with kuafu, used when `--config` is left out. */
export const DEFAULT_CONFIG_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../cluster.json');

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function fail(source: string, message: string): never {
  throw new ConfigError(`${source}: ${message}`, { source });
}

function port(source: string, where: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    fail(source, `${where} must be a port number from 0 to 65535 (0 picks a free port), not ${JSON.stringify(value)}`);
  }
  return value;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Checks a parsed config and fills in defaults; throws ConfigError naming the field to fix. */
export function parseConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = process.env): ClusterConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(source, 'the config must be a JSON object');
  const config = raw as Record<string, unknown>;
  const secret = env.KUAFU_SECRET ?? config.secret;
  if (typeof secret !== 'string' || secret.length < 16) {
    fail(source, '"secret" must be a string of at least 16 characters, the same on every server (or set KUAFU_SECRET)');
  }
  const host = config.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') fail(source, '"host" must be an interface address such as "127.0.0.1"');

  let store: StoreConfig = { kind: 'memory' };
  if (config.store !== undefined) {
    const s = config.store as Record<string, unknown>;
    if (s?.kind === 'memory') store = { kind: 'memory' };
    else if (s?.kind === 'redis' && typeof s.url === 'string' && s.url.startsWith('redis') && (s.cluster === undefined || typeof s.cluster === 'boolean')) {
      store = s.cluster ? { kind: 'redis', url: s.url, cluster: true } : { kind: 'redis', url: s.url };
    } else {
      fail(source, '"store" must be {"kind": "memory"} or {"kind": "redis", "url": "redis://host:port"} (add "cluster": true when url names a node of a Redis Cluster)');
    }
  }

  const gatewayLimits = parseGatewayLimits(source, '"gatewayLimits"', config.gatewayLimits, DEFAULT_GATEWAY_LIMITS);
  const loginLimits: LoginLimits = { ...DEFAULT_LOGIN_LIMITS };
  if (config.loginLimits !== undefined) {
    const given = config.loginLimits as Record<string, unknown>;
    if (given === null || typeof given !== 'object' || Array.isArray(given)) fail(source, `"loginLimits" must be an object with some of ${LOGIN_LIMITS.join(', ')}`);
    for (const [key, value] of Object.entries(given)) {
      if (!(LOGIN_LIMITS as string[]).includes(key)) fail(source, `"loginLimits.${key}" is not a login limit; the limits are ${LOGIN_LIMITS.join(', ')}`);
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) fail(source, `"loginLimits.${key}" must be a positive whole number, not ${JSON.stringify(value)}`);
      loginLimits[key as keyof LoginLimits] = value;
    }
  }

  if (!Array.isArray(config.servers) || config.servers.length === 0) fail(source, '"servers" must list at least one server');
  const names = new Set<string>();
  const servers = config.servers.map((entry: unknown, i: number): ServerConfig => {
    const s = (entry ?? {}) as Record<string, unknown>;
    const where = `servers[${i}]`;
    if (typeof s.name !== 'string' || !NAME.test(s.name)) {
      fail(source, `${where}.name must be 1-64 letters, digits, '_', '-' or '.', not ${JSON.stringify(s.name)}`);
    }
    if (names.has(s.name)) fail(source, `${where}.name ${s.name} is used twice; server names are unique`);
    names.add(s.name);
    if (!Array.isArray(s.roles) || s.roles.length === 0 || !s.roles.every((r) => (ROLES as readonly unknown[]).includes(r))) {
      fail(source, `${where}.roles must list roles among ${ROLES.join(', ')}, not ${JSON.stringify(s.roles)}`);
    }
    const serverHost = s.host ?? host;
    if (typeof serverHost !== 'string' || serverHost === '') fail(source, `${where}.host must be an interface address`);
    if (!isLoopback(serverHost) && secret === DEVELOPMENT_SECRET && !env.KUAFU_SECRET) {
      fail(source, `${where} listens on ${serverHost}, beyond this machine, with the shipped development secret: set your own "secret" (or KUAFU_SECRET) first`);
    }
    const server: ServerConfig = { name: s.name, roles: [...new Set(s.roles as Role[])], host: serverHost, rpcPort: port(source, `${where}.rpcPort`, s.rpcPort) };
    if (s.gatewayPort !== undefined) {
      server.gatewayPort = port(source, `${where}.gatewayPort`, s.gatewayPort);
      if (server.roles.includes('game') && server.roles.includes('account')) {
        fail(source, `${where}.gatewayPort: ${s.name} is both a game server and an account server, and one port cannot be both gateways; put the account role on a server of its own`);
      }
    }
    if (s.metricsPort !== undefined) server.metricsPort = port(source, `${where}.metricsPort`, s.metricsPort);
    server.gatewayLimits = parseGatewayLimits(source, `${where}.gatewayLimits`, s.gatewayLimits, gatewayLimits);
    if (s.battle !== undefined) {
      if (typeof s.battle !== 'string' || !NAME.test(s.battle)) fail(source, `${where}.battle must name the battle server paired with ${s.name}, not ${JSON.stringify(s.battle)}`);
      if (!server.roles.includes('game')) fail(source, `${where}.battle: only a game server has a battle server, and ${s.name} has no "game" role`);
      server.battle = s.battle;
    }
    return server;
  });
  checkBattlePairs(source, servers);

  const positive = (key: string, fallback: number): number => {
    const value = config[key] ?? fallback;
    if (typeof value !== 'number' || !(value > 0)) fail(source, `"${key}" must be a positive number of milliseconds`);
    return value;
  };
  let scriptsDir = '';
  const base = existsSync(source) ? dirname(resolve(source)) : process.cwd();
  if (config.scriptsDir !== undefined) {
    if (typeof config.scriptsDir !== 'string') fail(source, '"scriptsDir" must be a folder path (relative to the config file), or "" for none');
    scriptsDir = config.scriptsDir === '' ? '' : resolve(base, config.scriptsDir);
    if (scriptsDir && !existsSync(scriptsDir)) fail(source, `"scriptsDir" ${scriptsDir} does not exist`);
  } else if (existsSync(source) && existsSync(resolve(base, 'scripts'))) {
    scriptsDir = resolve(base, 'scripts');
  }
  let playerModel = '';
  if (config.playerModel !== undefined) {
    if (typeof config.playerModel !== 'string' || config.playerModel === '') {
      fail(source, '"playerModel" must be the path of a JavaScript module (relative to the config file) that exports playerModel');
    }
    playerModel = resolve(base, config.playerModel);
    if (!existsSync(playerModel)) fail(source, `"playerModel" ${playerModel} does not exist: build your player model module first (it must be JavaScript, e.g. tsc's output)`);
  }
  if (config.scriptWorker !== undefined && typeof config.scriptWorker !== 'boolean') fail(source, '"scriptWorker" must be true or false');
  const scriptWorker = config.scriptWorker === true;
  const scriptLimits: ScriptLimitsConfig = {};
  if (config.scriptLimits !== undefined) {
    const given = config.scriptLimits as Record<string, unknown>;
    if (given === null || typeof given !== 'object' || Array.isArray(given)) fail(source, `"scriptLimits" must be an object with some of ${SCRIPT_LIMITS.join(', ')}`);
    for (const [key, value] of Object.entries(given)) {
      if (!(SCRIPT_LIMITS as readonly string[]).includes(key)) fail(source, `"scriptLimits.${key}" is not a script limit; the limits are ${SCRIPT_LIMITS.join(', ')}`);
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(source, `"scriptLimits.${key}" must be a positive number`);
      scriptLimits[key as (typeof SCRIPT_LIMITS)[number]] = value;
    }
    if (scriptLimits.memoryLimitMiB !== undefined && scriptLimits.memoryLimitMiB < 8) fail(source, '"scriptLimits.memoryLimitMiB" must be at least 8 (MiB)');
  }
  const playerLimits: PlayerLimitsConfig = {};
  if (config.playerLimits !== undefined) {
    const given = config.playerLimits as Record<string, unknown>;
    if (given === null || typeof given !== 'object' || Array.isArray(given)) fail(source, `"playerLimits" must be an object with some of ${PLAYER_LIMITS.join(', ')}`);
    for (const [key, value] of Object.entries(given)) {
      if (!(PLAYER_LIMITS as readonly string[]).includes(key)) fail(source, `"playerLimits.${key}" is not a player limit; the limits are ${PLAYER_LIMITS.join(', ')}`);
      if (key === 'keptCallDays' ? typeof value !== 'number' || !Number.isFinite(value) || value <= 0 : !Number.isSafeInteger(value) || (value as number) <= 0) {
        fail(source, `"playerLimits.${key}" must be a positive ${key === 'keptCallDays' ? 'number of days' : 'integer'}`);
      }
      playerLimits[key as (typeof PLAYER_LIMITS)[number]] = value as number;
    }
  }
  return {
    source, secret, host, store, servers, rpcTimeoutMs: positive('rpcTimeoutMs', 5000), heartbeatMs: positive('heartbeatMs', 1000), scriptsDir, playerModel,
    scriptLimits, scriptWorker, playerLimits, gatewayLimits, loginLimits,
  };
}

/** `given` (a config's gatewayLimits object, or undefined) over `base`; `where` names it in messages. */
function parseGatewayLimits(source: string, where: string, given: unknown, base: Readonly<GatewayLimits>): GatewayLimits {
  const limits: GatewayLimits = { ...base };
  if (given === undefined) return limits;
  const field = (key: string) => (where.startsWith('"') ? `"${where.slice(1, -1)}.${key}"` : `${where}.${key}`);
  if (given === null || typeof given !== 'object' || Array.isArray(given)) fail(source, `${where} must be an object with some of ${GATEWAY_LIMITS.join(', ')}`);
  for (const [key, value] of Object.entries(given)) {
    if (!(GATEWAY_LIMITS as string[]).includes(key)) fail(source, `${field(key)} is not a gateway limit; the limits are ${GATEWAY_LIMITS.join(', ')}`);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      fail(source, `${field(key)} must be a positive whole number${key === 'maxConnections' ? ' (of connections)' : ' of milliseconds'}, not ${JSON.stringify(value)}`);
    }
    limits[key as keyof GatewayLimits] = value;
  }
  if (!('headersTimeoutMs' in given) && limits.headersTimeoutMs > limits.requestTimeoutMs) limits.headersTimeoutMs = limits.requestTimeoutMs;
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    fail(source, `${field('headersTimeoutMs')} (${limits.headersTimeoutMs}) must not be longer than ${field('requestTimeoutMs')} (${limits.requestTimeoutMs}): the headers are part of the request`);
  }
  return limits;
}

/** Each game server's "battle" names a battle server, and each battle server is paired with exactly one game server. */
function checkBattlePairs(source: string, servers: ServerConfig[]): void {
  const pairedWith = new Map<string, string>();
  for (const game of servers) {
    if (!game.battle) continue;
    const battle = servers.find((s) => s.name === game.battle);
    if (!battle || !battle.roles.includes('battle')) {
      fail(source, `${game.name}'s "battle" is ${game.battle}, which is not a server with the "battle" role in this config`);
    }
    const other = pairedWith.get(game.battle);
    if (other) fail(source, `battle server ${game.battle} is paired with both ${other} and ${game.name}: each game server has its own`);
    pairedWith.set(game.battle, game.name);
  }
  for (const battle of servers.filter((s) => s.roles.includes('battle'))) {
    if (!pairedWith.has(battle.name)) {
      fail(source, `battle server ${battle.name} is paired with no game server: set "battle": "${battle.name}" on the game server it serves`);
    }
  }
}

/** Reads and checks a config file (the shipped default when `path` is left out). */
export function loadConfig(path?: string, env: NodeJS.ProcessEnv = process.env): ClusterConfig {
  const file = resolve(path ?? DEFAULT_CONFIG_PATH);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read the cluster config ${file}: ${(error as Error).message}. Pass an existing file with --config.`, { source: file });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file} is not valid JSON: ${(error as Error).message}`, { source: file });
  }
  return parseConfig(raw, file, env);
}

/** The config's server named `name`, or a ConfigError listing the names there are. */
export function serverNamed(config: ClusterConfig, name: string): ServerConfig {
  const server = config.servers.find((s) => s.name === name);
  if (!server) {
    throw new ConfigError(`${config.source} has no server named ${name}; it has ${config.servers.map((s) => s.name).join(', ')}.`, { source: config.source });
  }
  return server;
}

/** The longest part of a name from outside that messages repeat. */
const NAME_SHOWN = 64;

/** A name from outside as messages repeat it: cut short when long. */
export function shownName(name: string): string {
  return name.length > NAME_SHOWN ? `${name.slice(0, NAME_SHOWN)}…` : name;
}

/** NotFoundError for a server name that is not in the config. */
export function notInConfig(server: string): NotFoundError {
  const shown = shownName(server);
  return new NotFoundError(
    `There is no server ${JSON.stringify(shown)} in the cluster config; 'kuafu status' lists the servers.`,
    { server: shown },
  );
}
