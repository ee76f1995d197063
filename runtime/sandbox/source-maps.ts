/**
 * Script errors point at the designer's own TypeScript (DESIGN §7). V8 reports positions in the
 * bundle the isolate runs; esbuild's standard v3 source map leads them back to the `.ts` file and
 * line. Node's built-in `SourceMap` (node:module) does the decoding.
 */
import { SourceMap, type SourceMapPayload } from 'node:module';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A place in a designer's source file (1-based line and column). */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** The file name the SDK's startup code runs under inside every isolate; its frames are left out of designer stacks. */
export const SDK_FILENAME = 'kuafu-sdk.js';

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Parses a source map given as text or object; null when there is none or it is not a v3 map. */
export function parseSourceMap(map: string | object | undefined): SourceMapPayload | null {
  if (map === undefined) return null;
  const payload = (typeof map === 'string' ? JSON.parse(map) : map) as Partial<SourceMapPayload>;
  if (payload.version !== 3 || typeof payload.mappings !== 'string' || !Array.isArray(payload.sources)) return null;
  return {
    file: payload.file ?? '',
    version: 3,
    sources: payload.sources,
    sourcesContent: payload.sourcesContent ?? [],
    names: payload.names ?? [],
    mappings: payload.mappings,
    sourceRoot: payload.sourceRoot ?? '',
  };
}

/** The inline source map of a bundle (`//# sourceMappingURL=data:…;base64,…`), if it has one. */
export function inlineSourceMap(code: string): string | undefined {
  const match = /\/\/# sourceMappingURL=data:application\/json(?:;charset=[\w-]+)?;base64,([A-Za-z0-9+/=]+)\s*$/.exec(code);
  return match ? Buffer.from(match[1]!, 'base64').toString('utf8') : undefined;
}

/** Maps positions in one bundle (as V8 names it inside the isolate) back to the designer's sources. */
export class StackMapper {
  private readonly map: SourceMap | null;
  private readonly sources: string[];
  private readonly position: RegExp;

  /**
   * @param bundleFilename the file name the bundle runs under inside the isolate.
   * @param payload its source map, or null (positions then stay bundle positions).
   * @param mapDir the directory the map's `sources` are relative to (where the bundle file lives), if known.
   */
  constructor(readonly bundleFilename: string, payload: SourceMapPayload | null, mapDir?: string) {
    this.map = payload ? new SourceMap(payload) : null;
    this.sources = (payload?.sources ?? []).map((source) => displayPath(source, payload?.sourceRoot ?? '', mapDir));
    this.position = new RegExp(`${escape(bundleFilename)}:(\\d+):(\\d+)`, 'g');
  }

  /** The designer's location of a bundle position (1-based), or null when the map does not cover it. */
  locate(line: number, column: number): SourceLocation | null {
    if (!this.map) return null;
    const entry = this.map.findEntry(line - 1, column - 1) as Partial<{
      originalSource: string; originalLine: number; originalColumn: number;
    }>;
    if (entry.originalSource === undefined || entry.originalLine === undefined) return null;
    const index = (this.map.payload.sources ?? []).indexOf(entry.originalSource);
    const file = index >= 0 ? this.sources[index]! : displayPath(entry.originalSource, '', undefined);
    return { file, line: entry.originalLine + 1, column: (entry.originalColumn ?? 0) + 1 };
  }

  /** Rewrites every bundle position in `text` (a stack, a log line) to the designer's `file:line:column`. */
  mapText(text: string): string {
    if (!text.includes(this.bundleFilename)) return text;
    return text.replace(this.position, (whole, line: string, column: string) => {
      const where = this.locate(Number(line), Number(column));
      return where ? `${where.file}:${where.line}:${where.column}` : whole;
    });
  }

  /**
   * A V8 stack from the isolate as the designer should read it: positions mapped to the `.ts`
   * files, the SDK's own frames left out. `top` is the first frame in the designer's code.
   */
  mapStack(stack: string): { frames: string[]; top: SourceLocation | null } {
    const frames: string[] = [];
    let top: SourceLocation | null = null;
    for (const line of stack.split('\n')) {
      if (!/^\s+at /.test(line)) continue;
      if (line.includes('<isolated-vm boundary>')) break; // the host's own frames follow
      if (line.includes(SDK_FILENAME)) continue;
      if (top === null) {
        this.position.lastIndex = 0;
        const match = this.position.exec(line);
        if (match) {
          const line = Number(match[1]);
          const column = Number(match[2]);
          top = this.locate(line, column) ?? { file: this.bundleFilename, line, column };
        }
        this.position.lastIndex = 0;
      }
      frames.push(`    ${this.mapText(line.trim())}`);
    }
    return { frames, top };
  }
}

/** A map source as a designer reads it: relative to the working directory when it can be resolved. */
function displayPath(source: string, sourceRoot: string, mapDir: string | undefined): string {
  let path = source;
  if (path.startsWith('file://')) path = fileURLToPath(path);
  else if (sourceRoot) path = sourceRoot.endsWith('/') ? sourceRoot + path : `${sourceRoot}/${path}`;
  if (!isAbsolute(path)) {
    if (!mapDir) return path;
    path = resolve(mapDir, path);
  }
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

/** The directory a bundle file's map sources are relative to. */
export function mapDirOf(bundleFile: string | undefined): string | undefined {
  return bundleFile ? dirname(resolve(bundleFile)) : undefined;
}
