/** The suites a test process defined (shared by the guarded uvu and the report at exit). */
export interface SuiteRecord {
  name: string;
  /** Where it was made (file:line:column). */
  where: string;
  /** uvu's default `test` suite: defined only if something used it. */
  implicit: boolean;
  /** Tests added to it (test() and test.only()). */
  tests: number;
  /** Its run() was called. */
  runCalled: boolean;
  /** uvu actually ran it (its hooks and tests were run). */
  ran: boolean;
}

const KEY = Symbol.for('kuafu.test.suites');

/** The suites of this process, in the order they were made. */
export function suites(): SuiteRecord[] {
  const global = globalThis as { [KEY]?: SuiteRecord[] };
  return (global[KEY] ??= []);
}

export function recordSuite(record: Omit<SuiteRecord, 'tests' | 'runCalled' | 'ran'>): SuiteRecord {
  const full: SuiteRecord = { ...record, tests: 0, runCalled: false, ran: false };
  suites().push(full);
  return full;
}
