/**
 * uvu as test files get it under the runner (test/run.ts loads preload.ts, whose hooks send every
 * `import … from 'uvu'` here): the same `suite`, `test` and `exec`, but every suite is recorded
 * where it is defined, with its tests, whether its `run()` was called and whether it actually ran,
 * so that preload.ts can report a suite that was defined and never run. An error thrown by a
 * `before` or `after` hook is printed (uvu itself only counts the suite's tests as not passed).
 */
import { exec, suite as uvuSuite, test as uvuTest, type Callback, type Test } from 'uvu';
import { recordSuite, type SuiteRecord } from './registry.js';

export { exec };
export type { Callback, Test } from 'uvu';

/** Where the suite was made: the first frame of the stack outside this file. */
function definedAt(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(1).map((line) => line.trim());
  const here = import.meta.url;
  const outside = frames.find((frame) => !frame.includes(here) && !frame.includes('uvu-guard/uvu.'));
  return (outside ?? 'an unknown place').replace(/^at\s+/, '');
}

/**
 * A hook that says so when it throws: uvu counts the suite's tests as not passed, but prints nothing
 * of an error thrown by a `before` or `after` hook.
 */
function reported<T>(record: SuiteRecord, kind: string, hook: Callback<T>): Callback<T> {
  return async (context) => {
    try {
      await hook(context);
    } catch (error) {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stderr.write(`[uvu-guard] the ${kind} hook of suite ${JSON.stringify(record.name)} failed: ${text}\n`);
      throw error;
    }
  };
}

/** A hook registrar (`test.before`, `test.after`) whose hooks report their errors. */
function reportingHook<T>(record: SuiteRecord, kind: string, hook: Test<T>['before']): Test<T>['before'] {
  const each = hook.each;
  const wrapped = ((handler: Callback<T>) => hook(reported(record, kind, handler))) as Test<T>['before'];
  wrapped.each = (handler: Callback<T>) => each(reported(record, `${kind}.each`, handler));
  return wrapped;
}

function guard<T>(inner: Test<T>, record: SuiteRecord): Test<T> {
  // The runner runs the `before` hooks first, in order: this one, added first, says the suite ran.
  inner.before(() => { record.ran = true; });
  inner.before = reportingHook(record, 'before', inner.before);
  inner.after = reportingHook(record, 'after', inner.after);
  const run = inner.run;
  inner.run = () => {
    record.runCalled = true;
    run();
  };
  const only = inner.only;
  inner.only = (name, handler) => {
    record.tests++;
    only(name, handler);
  };
  return new Proxy(inner, {
    apply(target, self, args: Parameters<Test<T>>) {
      record.tests++;
      return Reflect.apply(target, self, args);
    },
  });
}

export function suite<T = Record<string, any>>(title?: string, context?: T): Test<T> {
  const record = recordSuite({ name: title ?? '', where: definedAt(), implicit: false });
  return guard(uvuSuite(title, context), record);
}

/** uvu's unnamed default suite: it counts as defined once a test or a run() uses it. */
export const test: Test = guard(uvuTest, recordSuite({ name: '(uvu\'s default test suite)', where: 'uvu', implicit: true }));
