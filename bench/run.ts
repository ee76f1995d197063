/**
 * `npm run bench -- <name…>`: runs the named benchmarks (all when none is named); each writes
 * bench/results/<name>.json. `rpc` and `sdk-call` measure kuafu and a reference doing the same work
 * by hand in the same run and print the ratios; `transfer` and `services` have no reference yet and
 * report kuafu's own figures. The benchmarks on Redis run it as a production host would
 * (appendonly yes, appendfsync everysec) and write that mode into their results.
 */
import { runRpcBench } from './rpc.js';
import { runTransferBench } from './transfer.js';
import { runSdkCallBench } from './sdk-call.js';
import { runServicesBench } from './services.js';
import { runIsolationBench } from './isolation.js';

const BENCHES: Record<string, () => Promise<Record<string, number | string>>> = {
  rpc: runRpcBench,
  transfer: runTransferBench,
  'sdk-call': runSdkCallBench,
  services: runServicesBench,
  isolation: runIsolationBench,
};

const asked = process.argv.slice(2);
const names = asked.length > 0 ? asked : Object.keys(BENCHES);
for (const name of names) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark ${JSON.stringify(name)}; there are: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
}
for (const name of names) {
  console.log(`\n== bench ${name}`);
  await BENCHES[name]!();
}
process.exit(0);
