/**
 * `npm run bench -- <name…>`: runs the named benchmarks (all when none is named). Each benchmark
 * measures kuafu and its reference in the same run, prints the ratio, and writes
 * bench/results/<name>.json.
 */
import { runRpcBench } from './rpc.js';
import { runTransferBench } from './transfer.js';
import { runSdkCallBench } from './sdk-call.js';
import { runServicesBench } from './services.js';
import { runIsolationBench } from './isolation.js';

const BENCHES: Record<string, () => Promise<Record<string, number>>> = {
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
