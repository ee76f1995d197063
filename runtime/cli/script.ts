/**
 * `kuafu script run <file.ts|bundle.js> --on <server> [--fn main] [--args JSON]`: loads a script on
 * one game server of a running cluster and runs one of its functions; prints the result, or the
 * designer-facing error (it names the script's own file and line).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { ConfigError, InvalidParamsError, ScriptFailedError } from '../errors.js';
import { BundleError, bundleScript } from '../sandbox/index.js';
import { checkValue } from '../rpc/values.js';
import { inspect } from 'node:util';
import { callServer, knownServers } from './cluster-client.js';
import { configFor } from './load.js';
import type { CommandOptions } from './main.js';

const USAGE = 'kuafu script run <file.ts|bundle.js> --on <server> [--fn main] [--args JSON]';

export async function runScript(options: CommandOptions, positionals: string[]): Promise<number> {
  const [verb, file] = positionals;
  if (verb !== 'run' || !file) throw new InvalidParamsError(`usage: ${USAGE}`);
  if (!options.on) throw new InvalidParamsError(`name the game server to run it on with --on (usage: ${USAGE})`);
  if (!existsSync(file)) throw new ConfigError(`${file} does not exist`);
  let args: unknown = [];
  if (options.args !== undefined) {
    try {
      args = JSON.parse(options.args);
    } catch (error) {
      throw new InvalidParamsError(`--args must be JSON, e.g. --args '[1000001]': ${(error as Error).message}`);
    }
  }
  if (!Array.isArray(args)) args = [args];
  const name = basename(file, extname(file));
  let bundle: { code: string; map?: string; file?: string };
  if (extname(file) === '.ts') {
    const made = await bundleScript(file).catch((error: unknown) => {
      if (error instanceof BundleError) throw new ScriptFailedError(error.message, { file });
      throw error;
    });
    bundle = { code: made.code, map: typeof made.map === 'string' || made.map === undefined ? made.map : JSON.stringify(made.map), file: made.file };
  } else {
    const map = existsSync(`${file}.map`) ? await readFile(`${file}.map`, 'utf8') : undefined;
    bundle = { code: await readFile(file, 'utf8'), map, file };
  }
  const config = configFor(options);
  const server = (await knownServers(config)).find((s) => s.name === options.on);
  if (!server || !server.url) throw new ConfigError(`${options.on} is not a server of ${config.source} that can be reached; 'kuafu status' lists them.`);
  await callServer(config, server, 'script.load', { name, code: bundle.code, map: bundle.map, file: bundle.file }, 30_000);
  const result = await callServer(config, server, 'script.run', { bundle: name, fn: options.fn ?? 'main', args }, 30_000);
  // Plain JSON prints as JSON; a result with Maps, Sets, Dates or bigints prints as Node shows them.
  console.log(result === undefined ? '(no result)' : checkValue(result, 'the result') ? inspect(result, { depth: null, colors: false }) : JSON.stringify(result, null, 2));
  return 0;
}
