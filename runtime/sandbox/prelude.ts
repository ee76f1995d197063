/**
 * The SDK's startup code: `sdk/index.ts` bundled once per process (esbuild, an IIFE assigning
 * `__kuafuSdk`) and evaluated in every new isolate before its bundle.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

/** The global name the SDK bundle assigns (local to the closure it is evaluated in). */
export const SDK_GLOBAL = '__kuafuSdk';

let prelude: Promise<string> | undefined;

/** Where the SDK's source is: `<package>/sdk/index.ts` (this file is `<package>/dist/runtime/sandbox/prelude.js`). */
export function sdkEntry(): string {
  return fileURLToPath(new URL('../../../sdk/index.ts', import.meta.url));
}

/** The SDK as one script (bundled on first use, then cached for the process). */
export function sdkPrelude(): Promise<string> {
  prelude ??= build().catch((error: unknown) => {
    prelude = undefined;
    throw error;
  });
  return prelude;
}

async function build(): Promise<string> {
  const entry = sdkEntry();
  if (!existsSync(entry)) {
    throw new Error(`the script SDK's source is missing (${entry}); reinstall kuafu (its sdk/ folder ships with the package)`);
  }
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: SDK_GLOBAL,
    platform: 'neutral',
    target: 'es2022',
    legalComments: 'none',
    logLevel: 'silent',
    charset: 'utf8',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild produced no output for the script SDK');
  return output.text;
}
