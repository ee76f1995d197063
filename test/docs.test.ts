/**
 * The docs site (issue 6): typedoc builds it from typings/ and docs/ with warnings treated as
 * errors, then a real headless Chromium (Debian's package, through playwright-core) reads it as a
 * designer would: the index loads, the search finds `cproxyplayer`, the `cproxyplayer.new` page
 * shows its example, and every link of the designer guide opens a page that exists (and, for a
 * `#anchor`, a heading that exists). Screenshots go to test/artifacts/ for review.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ERROR_CODES } from '../runtime/errors.js';
import { launchBrowser, serveDirectory, type BrowserHandle, type StaticSite } from './harness/browser.js';

const test = suite('docs site');

/** The repository (this file runs as dist/test/docs.test.js). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = join(ROOT, 'test/artifacts');
/** Generous: typedoc and Chromium share a loaded 2-core machine with the rest of the suite. */
const BUILD_TIMEOUT_MS = 180_000;
const PAGE_TIMEOUT_MS = 60_000;

let out = '';
let site: StaticSite | undefined;
let browser: BrowserHandle | undefined;
let page: Page;
/** Errors the pages threw, and requests that failed, on any page opened (none is expected). */
const problems: string[] = [];

/** Runs `npm run docs`'s typedoc into `outDir`; resolves with its exit code and everything it printed. */
function buildSite(outDir: string): Promise<{ code: number | null; output: string }> {
  const typedoc = join(ROOT, 'node_modules/typedoc/bin/typedoc');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [typedoc, '--out', outDir], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`typedoc did not finish within ${BUILD_TIMEOUT_MS} ms:\n${output}`));
    }, BUILD_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

/** Opens `path` of the site and checks it answered 200. */
async function open(path: string): Promise<void> {
  assert.ok(site && browser, 'the site was not built or the browser did not start: see the first test');
  const response = await page.goto(`${site!.url}/${path}`, { waitUntil: 'load' });
  assert.ok(response, `no response for ${path}`);
  assert.is(response!.status(), 200, `${path} answered ${response!.status()}`);
}

test.before(async () => {
  out = mkdtempSync(join(tmpdir(), 'kuafu-docs-site-'));
});

test.after(async () => {
  await browser?.close();
  await site?.close();
  if (out) rmSync(out, { recursive: true, force: true });
});

test('npm run docs builds the site from typings/ and docs/ with no warning', async () => {
  const { code, output } = await buildSite(out);
  assert.is(code, 0, `typedoc failed (exit ${code}):\n${output}`);
  assert.not.match(output, /\[warning\]|\[error\]/, `typedoc printed a warning or an error:\n${output}`);
  for (const page of ['index.html', 'functions/cproxyplayer.new.html', 'documents/Designer_guide.html', 'documents/Host_guide.html', 'documents/Protocol_reference.html']) {
    assert.ok(existsSync(join(out, page)), `the site has no ${page}`);
  }
  site = await serveDirectory(out);
  browser = await launchBrowser();
  page = await browser.context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(PAGE_TIMEOUT_MS);
  page.on('pageerror', (error) => problems.push(`page error on ${page.url()}: ${error.message}`));
  page.on('response', (response) => {
    if (response.url().startsWith(site!.url) && response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
  });
});

test('the index loads, with the guides and the script API', async () => {
  await open('index.html');
  assert.match(await page.title(), /kuafu/);
  const content = page.locator('.col-content');
  await content.getByRole('heading', { name: 'Guides' }).waitFor();
  assert.match(await content.innerText(), /kuafu \(跨服, "cross-server"\) is a toolkit/);
  for (const guide of ['Designer guide', 'Host guide', 'Protocol reference']) {
    assert.ok(await content.getByRole('link', { name: guide, exact: true }).count() > 0, `the index links the ${guide}`);
  }
  // The navigation (built by the site's own script) lists the guides and the globals, by category.
  const navigation = page.locator('nav.tsd-navigation');
  await navigation.getByText('Guides', { exact: true }).waitFor();
  await navigation.locator('a[href$="documents/Designer_guide.html"]').waitFor({ state: 'attached' });
  await navigation.locator('a[href$="modules/cproxyplayer.html"]', { hasText: 'cproxyplayer' }).waitFor({ state: 'attached' });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'docs-index.png'), fullPage: true });
  assert.ok(statSync(join(ARTIFACTS, 'docs-index.png')).size > 10_000, 'the index screenshot is not empty');
  assert.equal(problems, []);
});

test('the search finds cproxyplayer, and leads to cproxyplayer.new', async () => {
  await open('index.html');
  await page.locator('#tsd-search-trigger').click();
  const input = page.locator('#tsd-search-input');
  await input.waitFor({ state: 'visible' });
  await input.fill('cproxyplayer');
  const results = page.locator('#tsd-search-results li');
  const found = results.filter({ hasText: /^\s*cproxyplayer\s*$/ }).first();
  await found.waitFor();
  // The result opens the cproxyplayer page, which lists new.
  await Promise.all([page.waitForURL(/modules\/cproxyplayer\.html$/), found.locator('a').click()]);
  const member = page.locator('.col-content a[href$="functions/cproxyplayer.new.html"]').first();
  await member.waitFor();
  await Promise.all([page.waitForURL(/functions\/cproxyplayer\.new\.html$/), member.click()]);
  await page.locator('.col-content').getByRole('heading', { name: 'Example' }).waitFor();
  assert.equal(problems, []);
});

test('the cproxyplayer.new page shows its example', async () => {
  await open('functions/cproxyplayer.new.html');
  const content = page.locator('.col-content');
  await content.getByRole('heading', { name: 'Example' }).waitFor();
  const code = await content.locator('pre code').allTextContents();
  const example = code.find((text) => text.includes('cproxyplayer.new(pid)'));
  assert.ok(example, `the page shows a code example calling cproxyplayer.new(pid); it shows: ${JSON.stringify(code)}`);
  assert.match(example!, /await player\.addgold\(10, "test:rpc"\)/);
  assert.ok(await content.locator('pre code').first().isVisible(), 'the example is visible');
  assert.match(await content.innerText(), /wherever he is/, 'with its description');
  await page.screenshot({ path: join(ARTIFACTS, 'docs-cproxyplayer-new.png'), fullPage: true });
  assert.equal(problems, []);
});

test("every link of the designer guide opens a page that exists", async () => {
  await open('documents/Designer_guide.html');
  const guideUrl = page.url();
  await page.screenshot({ path: join(ARTIFACTS, 'docs-designer-guide.png'), fullPage: true });
  const hrefs = await page.locator('.col-content a[href]').evaluateAll((links) => links.map((link) => (link as unknown as { href: string }).href));
  const internal = [...new Set(hrefs.filter((href) => href.startsWith(site!.url)))];
  // The guide links the reference, the other guides, its own sections and the example scripts.
  assert.ok(internal.length >= 15, `the designer guide has ${internal.length} internal links: ${JSON.stringify(internal)}`);
  const external = hrefs.filter((href) => !href.startsWith(site!.url));
  assert.equal(external, [], 'the designer guide links nothing outside the site');
  const broken: string[] = [];
  for (const href of internal) {
    const url = new URL(href);
    const target = `${url.origin}${url.pathname}`;
    if (target !== guideUrl.split('#')[0] || !url.hash) {
      const response = await page.goto(target, { waitUntil: 'load' });
      if (!response || response.status() !== 200) {
        broken.push(`${href}: ${response ? response.status() : 'no response'}`);
        continue;
      }
    } else if (page.url().split('#')[0] !== target) {
      await page.goto(target, { waitUntil: 'load' });
    }
    if (url.hash) {
      const id = decodeURIComponent(url.hash.slice(1));
      // Runs in the page (this project's TypeScript has no DOM types).
      const found = await page.evaluate((anchor) => {
        const doc = (globalThis as unknown as { document: { getElementById(id: string): unknown; getElementsByName(name: string): { length: number } } }).document;
        return doc.getElementById(anchor) !== null || doc.getElementsByName(anchor).length > 0;
      }, id);
      if (!found) broken.push(`${href}: no element #${id} on the page`);
    }
  }
  assert.equal(broken, [], 'every internal link of the designer guide resolves');
  assert.equal(problems, []);
});

test('the protocol reference lists every JSON-RPC method and every error kind the servers have', () => {
  const protocol = readFileSync(join(ROOT, 'docs/protocol.md'), 'utf8');
  const guide = readFileSync(join(ROOT, 'docs/designer-guide.md'), 'utf8');
  // A role's methods are one dispatch table: `'name.method': (arg…) =>` (the player surface is not one).
  const methods = new Set<string>();
  for (const dir of ['runtime/roles', 'runtime/game']) {
    for (const file of readdirSync(join(ROOT, dir)).filter((name) => name.endsWith('.ts') && name !== 'player.ts')) {
      for (const match of readFileSync(join(ROOT, dir, file), 'utf8').matchAll(/^\s*'([a-z]+\.[A-Za-z]+)':\s*(?:async\s*)?\(/gm)) methods.add(match[1]!);
    }
  }
  assert.ok(methods.size >= 20, `found the methods in runtime/: ${[...methods].join(', ')}`);
  const unlisted = [...methods].filter((method) => !protocol.includes(`\`${method}\``));
  assert.equal(unlisted, [], 'docs/protocol.md lists every method');
  const kinds = Object.keys(ERROR_CODES);
  assert.equal(kinds.filter((kind) => !protocol.includes(`\`${kind}\``)), [], 'docs/protocol.md lists every error kind');
  assert.equal(kinds.filter((kind) => !guide.includes(`\`${kind}\``)), [], 'the designer guide names every error kind');
});

test.run();
