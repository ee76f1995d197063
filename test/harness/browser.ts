/**
 * A real headless Chromium for tests, driven by playwright-core (no browser download: Debian's
 * `chromium` package), and a small static HTTP server for what it opens.
 *
 *   const site = await serveDirectory('docs/site');
 *   const browser = await launchBrowser();
 *   const page = await browser.context.newPage();
 *   await page.goto(`${site.url}/index.html`);
 *   await browser.close(); await site.close();
 *
 * If chromium is missing and we are root with apt-get available, it is installed with apt-get
 * (guarded by a lock file so parallel test processes don't install twice), as the redis harness
 * does for redis-server. Otherwise an Error tells the user what to run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { ensureDebianProgram, isExecutable, which, type DebianProgram } from './debian-package.js';
import { chromium, type BrowserContext } from 'playwright-core';

const INSTALL_HINT = 'chromium is not installed. Install it with: sudo apt-get update && sudo apt-get install -y chromium';
const INSTALL_LOCK_STALE_MS = 30 * 60_000;
/** Where Debian's package puts the browser (what playwright is given as executablePath). */
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/**
 * The flags of every launch: no sandbox (tests may run as root), no GPU, and no background
 * networking of any kind (the machine may have no internet; Chromium's own connections would be
 * refused many at a time).
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---------------------------------------------------------------------------
// Locating / installing the binary
// ---------------------------------------------------------------------------

const CHROMIUM: DebianProgram = {
  label: 'browser',
  packageName: 'chromium',
  find: () => CANDIDATES.find(isExecutable) ?? which('chromium') ?? which('chromium-browser'),
  hint: INSTALL_HINT,
  lockStaleMs: INSTALL_LOCK_STALE_MS,
};

/** Path to Debian's chromium, installing it with apt-get when possible. */
export function ensureChromiumBinary(): Promise<string> {
  return ensureDebianProgram(CHROMIUM);
}

// ---------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------

export interface BrowserHandle {
  /** A browser context with a fresh profile (its own --user-data-dir). */
  context: BrowserContext;
  /** The chromium binary in use. */
  executablePath: string;
  /** Closes the browser and removes its profile. Idempotent. */
  close(): Promise<void>;
}

/** Launches headless Chromium with a fresh profile. */
export async function launchBrowser(options: { timeoutMs?: number } = {}): Promise<BrowserHandle> {
  const executablePath = await ensureChromiumBinary();
  const profile = mkdtempSync(join(tmpdir(), 'kuafu-chromium-'));
  let context: BrowserContext;
  try {
    // A persistent context is how playwright takes a --user-data-dir: a fresh one per launch.
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: options.timeoutMs ?? 120_000,
      viewport: { width: 1280, height: 900 },
    });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  let closed = false;
  return {
    context,
    executablePath,
    close: async () => {
      if (closed) return;
      closed = true;
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------
// A static file server
// ---------------------------------------------------------------------------

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.md': 'text/markdown; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

export interface StaticSite {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  /** Every path asked for, with the status answered, in order. */
  requests: { path: string; status: number }[];
  close(): Promise<void>;
}

/** Serves `dir` read-only on 127.0.0.1 (a free port); `/` is `index.html`. */
export async function serveDirectory(dir: string): Promise<StaticSite> {
  const root = resolve(dir);
  const requests: { path: string; status: number }[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      let path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      if (path.endsWith('/')) path += 'index.html';
      const file = normalize(join(root, path));
      let status = 200;
      try {
        if (!file.startsWith(root + sep) || !(await stat(file)).isFile()) throw new Error('not a file');
        const body = await readFile(file);
        res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
        res.end(body);
      } catch {
        status = 404;
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(`not found: ${path}`);
      }
      requests.push({ path, status });
    })();
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}
