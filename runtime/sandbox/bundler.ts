/**
 * Script bundles (DESIGN §7): esbuild turns a designer's `.ts` script and whatever it imports into
 * one self-contained ES module (target es2022) with a standard v3 source map (sources embedded).
 * Used by `kuafu bundle` and by the script host when it is handed a `.ts` file.
 *
 * esbuild strips types without checking them: type errors are the editor's job (`typings/`);
 * syntax errors and imports that cannot be bundled fail here with esbuild's file:line message.
 */
import { builtinModules } from 'node:module';
import { basename, dirname, extname, join, resolve } from 'node:path';
import * as esbuild from 'esbuild';

/** A script bundle as the host loads it. */
export interface ScriptBundle {
  /** The bundle: one ES module with no imports. */
  code: string;
  /** Its source map (v3, JSON text or object), if any. */
  map?: string | object;
  /** Where the bundle file lives (or would live): its map's `sources` are relative to its directory. */
  file?: string;
}

/** A script that does not bundle: esbuild's messages, each with file:line:column. */
export class BundleError extends Error {
  readonly file: string;
  readonly messages: esbuild.Message[];
  constructor(file: string, messages: esbuild.Message[], formatted: string) {
    super(formatted);
    this.name = 'BundleError';
    this.file = file;
    this.messages = messages;
  }
}

const NODE_BUILTINS = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

/** Refuses Node's modules with a message for designers (esbuild's own suggests bundling for node). */
const sandboxImports: esbuild.Plugin = {
  name: 'kuafu-sandbox-imports',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (NODE_BUILTINS.has(args.path)) {
        return {
          errors: [{
            text: `cannot import "${args.path}": scripts run in a sandbox without Node's modules (no filesystem, network, process or timers); use the globals playermgr, cproxyplayer and log`,
          }],
        };
      }
      return undefined;
    });
  },
};

/** The options every script bundle is built with. */
export function scriptBuildOptions(entry: string, outfile: string): esbuild.BuildOptions {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    sourcemap: 'linked',
    sourcesContent: true,
    logLevel: 'silent',
    charset: 'utf8',
    plugins: [sandboxImports],
  };
}

/** The output file of a script: `<outDir>/<name>.js`. */
export function bundleOutFile(entry: string, outDir: string): string {
  return join(resolve(outDir), `${basename(entry, extname(entry))}.js`);
}

/**
 * Bundles one script in memory. `outFile` is where the bundle would be written (default: next to
 * the script, `<name>.js`); the map's sources are relative to it.
 */
export async function bundleScript(entry: string, outFile = bundleOutFile(entry, dirname(entry))): Promise<ScriptBundle & { file: string }> {
  let result: esbuild.BuildResult<{ write: false }>;
  try {
    result = await esbuild.build({ ...scriptBuildOptions(entry, outFile), write: false });
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    if (Array.isArray(failure.errors) && failure.errors.length > 0) {
      const formatted = await esbuild.formatMessages(failure.errors, { kind: 'error', color: false });
      throw new BundleError(entry, failure.errors, `${entry} does not bundle:\n${formatted.join('').trimEnd()}`);
    }
    throw error;
  }
  let code: string | undefined;
  let map: string | undefined;
  for (const file of result.outputFiles) {
    if (file.path.endsWith('.map')) map = file.text;
    else if (file.path.endsWith('.js')) code = file.text;
  }
  if (code === undefined) throw new Error(`esbuild produced no JavaScript for ${entry}`);
  return { code, map, file: outFile };
}
