/**
 * Module hooks (registered by preload.ts, run on Node's hooks thread): every `import … from 'uvu'`
 * of a test file gets the guarded uvu of ./uvu.ts instead, which imports the real one.
 */
const GUARDED = new URL('./uvu.js', import.meta.url).href;

interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === 'uvu' && context.parentURL !== GUARDED) return { url: GUARDED, shortCircuit: true };
  return next(specifier, context);
}
