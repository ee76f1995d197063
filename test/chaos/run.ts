/**
 * `npm run chaos -- --seed N [--minutes M] [--players P] [--faults a,b,…]`: the chaos soak of issue 9
 * on real `kuafu serve` processes (HS, GS1, GS2, DC, ACCOUNT) and one real redis-server
 * (appendonly yes, appendfsync always), with real clients moving, player calls from a designer
 * script and by id, recharge orders, and faults aimed at the moments that matter (test/chaos/faults.ts).
 *
 * Prints the seed first and a summary at the end (calls by outcome, faults injected, the bounds of
 * any player out of them, every violation); exits 1 on any violation, 2 on a wrong command line.
 * The journal of calls, the faults and every server's output go to test/artifacts/chaos-<seed>-<time>/.
 * Without --seed a seed is drawn (and printed); --minutes defaults to 2; the long pause (past the
 * 30 s token lifetime) is among the faults only from 2 minutes on, unless --faults names it.
 */
import { FAULTS, type FaultName } from './faults.js';
import { runChaos } from './soak.js';

function usage(problem: string): never {
  console.error(`${problem}\nusage: npm run chaos -- --seed N [--minutes M] [--players P] [--faults ${FAULTS.join(',')}]`);
  process.exit(2);
}

const args = process.argv.slice(2);
let seed = Math.floor(Math.random() * 2 ** 31);
let minutes = 2;
let players: number | undefined;
let faults: FaultName[] | undefined;
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!;
  const value = () => {
    const v = args[++i];
    if (v === undefined) usage(`${arg} needs a value`);
    return v;
  };
  if (arg === '--seed') {
    const v = Number(value());
    if (!Number.isInteger(v) || v < 0) usage('--seed must be a non-negative integer');
    seed = v;
  } else if (arg === '--minutes') {
    const v = Number(value());
    if (!(v > 0) || v > 120) usage('--minutes must be a number of minutes above 0 (at most 120)');
    minutes = v;
  } else if (arg === '--players') {
    const v = Number(value());
    if (!Number.isInteger(v) || v < 1 || v > 200) usage('--players must be an integer from 1 to 200');
    players = v;
  } else if (arg === '--faults') {
    const names = value().split(',').filter(Boolean);
    for (const name of names) if (!(FAULTS as readonly string[]).includes(name)) usage(`unknown fault ${JSON.stringify(name)}`);
    faults = names as FaultName[];
  } else {
    usage(`unknown argument ${JSON.stringify(arg)}`);
  }
}

console.log(`chaos: seed ${seed}`);
let report: Awaited<ReturnType<typeof runChaos>>;
try {
  report = await runChaos({ seed, minutes, players, faults });
} catch (error) {
  console.error(`\n${(error as Error).message}`);
  console.log(`chaos: seed ${seed}: the run could not finish; nothing was checked`);
  process.exit(3);
}
console.log(`\n${report.summary}`);
if (report.artifacts) console.log(`artifacts: ${report.artifacts}`);
console.log(`chaos: seed ${seed}: ${report.violations.length === 0 ? 'no violation' : `${report.violations.length} violations`}`);
process.exit(report.violations.length === 0 ? 0 : 1);
