/**
 * The designer's typings (issue 4 item 4): the TypeScript compiler, run as an editor would, over
 * every example in scripts/examples and over fixtures of deliberate misuses, each marked
 * `// @ts-expect-error`. Zero diagnostics pins both sides: the right uses type-check, and every
 * marked misuse is still an error (an unused `@ts-expect-error` is itself an error). The SDK that
 * runs inside the sandbox is type-checked too, against a bare ES2022 (no Node, no DOM).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PLAYER_SURFACE } from '../runtime/game/player.js';

const test = suite('typings');

const TYPINGS = resolve('typings/kuafu.d.ts');
const EXAMPLES = resolve('scripts/examples');
const MISUSES = resolve('test/fixtures/typings');
/** A line that marks the next one as a deliberate type error. */
const MARKER = /^\s*\/\/ @ts-expect-error\b/;

/** The compiler options of a tsconfig file, as an editor reads them. */
function optionsOf(configPath: string): ts.CompilerOptions {
  const read = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, resolve(configPath, '..'), undefined, configPath);
  return parsed.options;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.ts')).map((name) => join(dir, name)).sort();
}

function format(diagnostics: readonly ts.Diagnostic[]): string {
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n',
  });
}

/** Diagnostics of a program over `files`; `override` replaces the text of some files (in memory). */
function check(files: string[], options: ts.CompilerOptions, override = new Map<string, string>()): ts.Diagnostic[] {
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => override.get(resolve(name)) ?? readFile(name);
  host.fileExists = ((exists) => (name: string) => override.has(resolve(name)) || exists(name))(host.fileExists.bind(host));
  const program = ts.createProgram({ rootNames: files, options, host });
  for (const file of files) assert.ok(program.getSourceFile(file), `${file} is in the program`);
  return [...ts.getPreEmitDiagnostics(program)];
}

const scriptOptions = optionsOf('scripts/tsconfig.json');

test('every example in scripts/examples type-checks against the typings (and there are examples)', () => {
  const examples = tsFiles(EXAMPLES);
  assert.ok(examples.length >= 3, `examples: ${examples.join(', ')}`);
  assert.ok(examples.some((file) => file.endsWith('test_rpc.ts')));
  const diagnostics = check([TYPINGS, ...examples], scriptOptions);
  assert.is(diagnostics.length, 0, format(diagnostics));
});

test('the issue example is exactly the code of issue 4', () => {
  const issue = [
    'export async function main(pid: number) {',
    '  if (!(await playermgr.getkuafuplayer(pid))) return;   // online, on another server?',
    '  const player = cproxyplayer.new(pid);',
    '  await player.itemdb.additembytype(105001, 10, null, "test:rpc");',
    '  const addgold = await player.addgold(10, "test:rpc");',
    '  log.info(addgold);                                     // 10',
    '  return addgold;',
    '}',
    '',
  ].join('\n');
  assert.is(readFileSync(join(EXAMPLES, 'test_rpc.ts'), 'utf8'), issue);
});

test('every deliberate misuse is a type error and every right use next to it is not', () => {
  const fixtures = tsFiles(MISUSES);
  const marked = fixtures.reduce((sum, file) => sum + readFileSync(file, 'utf8').split('\n').filter((line) => MARKER.test(line)).length, 0);
  assert.ok(marked >= 20, `only ${marked} misuses marked`);
  const diagnostics = check([TYPINGS, ...fixtures], scriptOptions);
  assert.is(diagnostics.length, 0, format(diagnostics));
});

test('without their markers, the misuses are errors exactly on the marked lines', () => {
  const fixtures = tsFiles(MISUSES);
  const override = new Map<string, string>();
  const expected = new Map<string, Set<number>>();
  for (const file of fixtures) {
    const lines = readFileSync(file, 'utf8').split('\n');
    const marks = new Set<number>();
    lines.forEach((line, i) => {
      if (MARKER.test(line)) marks.add(i + 1); // the next line (0-based i + 1)
    });
    expected.set(resolve(file), marks);
    override.set(resolve(file), lines.map((line) => (MARKER.test(line) ? '//' : line)).join('\n'));
  }
  const diagnostics = check([TYPINGS, ...fixtures], scriptOptions, override);
  const found = new Map<string, Set<number>>();
  for (const diagnostic of diagnostics) {
    assert.ok(diagnostic.file, format([diagnostic]));
    const line = diagnostic.file!.getLineAndCharacterOfPosition(diagnostic.start!).line;
    const file = resolve(diagnostic.file!.fileName);
    assert.ok(expected.get(file)?.has(line), `an error on an unmarked line:\n${format([diagnostic])}`);
    if (!found.has(file)) found.set(file, new Set());
    found.get(file)!.add(line);
  }
  for (const [file, marks] of expected) {
    for (const line of marks) assert.ok(found.get(file)?.has(line), `no error on ${file}:${line + 1}`);
  }
});

/**
 * The method paths of interface `name` in the typings (`mail.take` for a method of the interface
 * its `mail` property names), as a designer sees them on `Remote<Player>`.
 */
function methodPaths(source: ts.SourceFile, name: string, prefix = ''): string[] {
  const found = source.statements.find((node): node is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(node) && node.name.text === name);
  assert.ok(found, `the typings declare interface ${name}`);
  const paths: string[] = [];
  for (const member of found!.members) {
    const key = member.name && ts.isIdentifier(member.name) ? member.name.text : '';
    if (ts.isMethodSignature(member)) paths.push(prefix + key);
    else if (ts.isPropertySignature(member) && member.type && ts.isTypeReferenceNode(member.type) && ts.isIdentifier(member.type.typeName)) {
      paths.push(...methodPaths(source, member.type.typeName.text, `${prefix}${key}.`));
    }
  }
  return paths;
}

test("the typings' Player is exactly the reference player's RPC surface (PLAYER_SURFACE)", () => {
  const source = ts.createSourceFile(TYPINGS, readFileSync(TYPINGS, 'utf8'), ts.ScriptTarget.ES2022, true);
  assert.equal(methodPaths(source, 'Player').sort(), Object.keys(PLAYER_SURFACE).sort());
});

test('the in-sandbox SDK type-checks on a bare ES2022 (no Node, no DOM)', () => {
  const options = optionsOf('tsconfig.sdk.json');
  assert.equal(options.types, []);
  const diagnostics = check(tsFiles(resolve('sdk')), options);
  assert.is(diagnostics.length, 0, format(diagnostics));
});

test.run();
