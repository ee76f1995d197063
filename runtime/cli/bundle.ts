/**
 * `kuafu bundle <files…> [--out DIR]`: bundles each designer script (esbuild) into one
 * self-contained ES module with its source map, ready for a server's script host. Default output:
 * `dist/scripts/`. Prints each output and its size; a script that does not bundle prints esbuild's
 * message (file:line:column) and the command exits 1.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { ConfigError } from '../errors.js';
import { BundleError, bundleOutFile, bundleScript } from '../sandbox/bundler.js';

export interface BundleCommandOptions {
  out?: string;
}

/** The default output directory of `kuafu bundle`. */
export const DEFAULT_BUNDLE_OUT = 'dist/scripts';

/** A path as the user reads it: relative to the working directory when it is under it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' || rel.startsWith('..') ? path : rel;
}

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}

export async function runBundle(files: string[], options: BundleCommandOptions): Promise<number> {
  if (files.length === 0) {
    throw new ConfigError('kuafu bundle needs at least one script, e.g. kuafu bundle scripts/examples/test_rpc.ts [--out dist/scripts]');
  }
  const outDir = options.out ?? DEFAULT_BUNDLE_OUT;
  const outputs = new Map<string, string>();
  for (const file of files) {
    if (!existsSync(file)) throw new ConfigError(`kuafu bundle: ${file} does not exist`);
    const out = bundleOutFile(file, outDir);
    const other = outputs.get(out);
    if (other !== undefined) {
      throw new ConfigError(`kuafu bundle: ${other} and ${file} would both be written to ${shown(out)}; bundle them into different --out directories or rename one`);
    }
    outputs.set(out, file);
  }
  await mkdir(outDir, { recursive: true });
  let failed = 0;
  for (const [out, file] of outputs) {
    try {
      const bundle = await bundleScript(file, out);
      await writeFile(out, bundle.code);
      if (bundle.map !== undefined) await writeFile(`${out}.map`, typeof bundle.map === 'string' ? bundle.map : JSON.stringify(bundle.map));
      const mapSize = bundle.map === undefined ? 0 : Buffer.byteLength(typeof bundle.map === 'string' ? bundle.map : JSON.stringify(bundle.map));
      console.log(`${shown(out)}  ${size(Buffer.byteLength(bundle.code))}  (map ${size(mapSize)})`);
    } catch (error) {
      if (!(error instanceof BundleError)) throw error;
      console.error(error.message);
      failed++;
    }
  }
  if (failed > 0) {
    console.error(`kuafu bundle: ${failed} of ${outputs.size} script(s) did not bundle`);
    return 1;
  }
  return 0;
}
