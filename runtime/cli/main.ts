/**
 * The `kuafu` command. Each subcommand is a file of its own; this one reads the command line,
 * dispatches, and turns errors into one clear line and an exit code.
 */
import { parseArgs } from 'node:util';
import { ConfigError, KuafuError, RpcProtocolError } from '../errors.js';
import { runServe } from './serve.js';
import { runStatus } from './status.js';
import { runUp } from './up.js';
import { runDemo } from './demo.js';
import { runRoute, runTransfer } from './transfer.js';
import { runBundle } from './bundle.js';
import { runScript } from './script.js';

const HELP = `kuafu — cross-server toolkit for game-server clusters

Usage:
  kuafu up [--config F] [--redis URL]         start every server of the config in this process
                                              (embedded in-memory store unless --redis)
  kuafu serve --server NAME [--config F] [--redis URL]
                                              start one server of the config (one process per
                                              server; they share state through Redis)
  kuafu status [--config F] [--redis URL]     list the servers and whether each answers
  kuafu transfer <pid> <server> [--config F] [--redis URL]
                                              move an online player to another game server
  kuafu route <pid> [--config F] [--redis URL]
                                              where a player is: home, server, epoch, online, mark
  kuafu demo [--config F]                     the seed's story on an embedded cluster, with a real
                                              client; exit 0 only if every step checked out
  kuafu bundle <files…> [--out DIR]           bundle designer scripts (esbuild, one file each, with
                                              source maps) for the script host; default out dist/scripts
  kuafu script run <file.ts|bundle.js> --on <server> [--fn main] [--args JSON] [--config F]
                                              load a script on a game server of a running cluster
                                              and run one of its functions; prints the result or
                                              the error at the script's own file and line
  kuafu help                                  this text

--config defaults to the shipped cluster.json on 127.0.0.1: game servers HS, GS1 and GS2 (each with
its battle server), a datacenter (DC), and the GUILD, RANK and ACCOUNT function servers.
KUAFU_SECRET overrides the config's secret; KUAFU_LOG_LEVEL=debug|info|warn|error sets the log level.`;

export interface CommandOptions {
  config?: string;
  redis?: string;
  server?: string;
  out?: string;
  on?: string;
  fn?: string;
  args?: string;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(HELP);
    return command ? 0 : 2;
  }
  let values: CommandOptions;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { config: { type: 'string' }, redis: { type: 'string' }, server: { type: 'string' }, out: { type: 'string' },
        on: { type: 'string' }, fn: { type: 'string' }, args: { type: 'string' } },
      strict: true,
    }));
  } catch (error) {
    console.error(`kuafu ${command}: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  try {
    switch (command) {
      case 'up':
        return await runUp(values);
      case 'serve':
        return await runServe(values);
      case 'status':
        return await runStatus(values);
      case 'demo':
        return await runDemo(values);
      case 'transfer':
        return await runTransfer(values, positionals);
      case 'route':
        return await runRoute(values, positionals);
      case 'bundle':
        return await runBundle(positionals, values);
      case 'script':
        return await runScript(values, positionals);
      default:
        console.error(`kuafu: unknown command ${JSON.stringify(command)}.\n\n${HELP}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof KuafuError || error instanceof RpcProtocolError) {
      console.error(`kuafu ${command}: ${error.message}`);
      return error instanceof ConfigError ? 2 : 1;
    }
    throw error;
  }
}

/** Resolves when the process is asked to stop (SIGINT or SIGTERM). */
export function untilStopped(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}
