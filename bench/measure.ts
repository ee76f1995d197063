/** Shared measuring: latency percentiles one call at a time, throughput with N in flight, medians, results files. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Calls `call` `count` times one after another; returns each latency in µs, sorted. */
export async function latencies(call: () => Promise<unknown>, count: number): Promise<number[]> {
  const samples = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await call();
    samples[i] = Number(process.hrtime.bigint() - start) / 1000;
  }
  return samples.sort((a, b) => a - b);
}

/** The p-th percentile (0..100) of sorted samples. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `total` calls with `inFlight` at a time; returns calls per second. */
export async function throughput(call: () => Promise<unknown>, total: number, inFlight: number): Promise<number> {
  let started = 0;
  const worker = async () => {
    while (started < total) {
      started++;
      await call();
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return total / (Number(process.hrtime.bigint() - start) / 1e9);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Writes bench/results/<name>.json (in the source tree, beside this file's source), with the machine
 * it ran on (cores, and the load average when written: other work on the machine moves every figure).
 */
export function writeResults(name: string, results: Record<string, number | string>): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = join(here, '../../bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  const [load1, load5] = loadavg();
  const machine = `${cpus().length} cores, load average ${load1!.toFixed(1)} (1 min), ${load5!.toFixed(1)} (5 min) when written`;
  writeFileSync(file, `${JSON.stringify({ ...results, machine }, null, 2)}\n`);
  return file;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** One side of a comparison: a call one at a time, and a run of `total` calls with 64 in flight (calls/s). */
export interface Side {
  c1: () => Promise<unknown>;
  c64: (total: number) => Promise<number>;
}

/** Medians of a comparison: calls per second at 64 in flight and p50 latency (µs) one at a time, and their ratios. */
export interface Comparison {
  oursPerS: number;
  rawPerS: number;
  throughputRatio: number;
  oursP50Us: number;
  rawP50Us: number;
  latencyRatio: number;
}

/**
 * Calls `a` and `b` one at a time, `count` times each, interleaved call by call (a b, b a, a b, …:
 * each goes first half the time); each side's latencies in µs, sorted. Both sides meet the same
 * machine: on these VMs the cost of a wake-up drifts by 2x within a second, so two blocks of calls
 * measured one after the other can disagree by more than the difference being measured.
 */
export async function pairedLatencies(a: () => Promise<unknown>, b: () => Promise<unknown>, count: number): Promise<[number[], number[]]> {
  const samplesA = new Array<number>(count);
  const samplesB = new Array<number>(count);
  const time = async (call: () => Promise<unknown>): Promise<number> => {
    const start = process.hrtime.bigint();
    await call();
    return Number(process.hrtime.bigint() - start) / 1000;
  };
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      samplesA[i] = await time(a);
      samplesB[i] = await time(b);
    } else {
      samplesB[i] = await time(b);
      samplesA[i] = await time(a);
    }
  }
  return [samplesA.sort((x, y) => x - y), samplesB.sort((x, y) => x - y)];
}

/** Medians of a throughput comparison at 64 in flight: calls per second of each side and their ratio. */
export interface ThroughputComparison {
  oursPerS: number;
  rawPerS: number;
  throughputRatio: number;
}

/**
 * One round of throughput at 64 in flight: both sides one after the other, ours first in odd
 * rounds and the reference first in even ones (so neither always meets a warmer or a busier
 * machine); returns calls per second of each.
 */
async function throughputRound(round: number, sides: { ours: (total: number) => Promise<number>; raw: (total: number) => Promise<number> }, total: number): Promise<{ ours: number; raw: number }> {
  const order = round % 2 === 1 ? (['ours', 'raw'] as const) : (['raw', 'ours'] as const);
  const rate = { ours: 0, raw: 0 };
  for (const name of order) rate[name] = await sides[name](total);
  return rate;
}

/**
 * Compares ours with the reference over `rounds` rounds (printing each) and takes the medians:
 * per round, latency one call at a time with the two sides interleaved call by call
 * (pairedLatencies), then throughput at 64 in flight, one side after the other, the side that
 * goes first alternating from round to round (throughputRound).
 */
export async function alternate(rounds: number, sides: { ours: Side; raw: Side }, c1Calls: number, c64Calls: number): Promise<Comparison> {
  const p50 = { ours: [] as number[], raw: [] as number[] };
  const rate = { ours: [] as number[], raw: [] as number[] };
  for (let round = 1; round <= rounds; round++) {
    const [oursLat, rawLat] = await pairedLatencies(sides.ours.c1, sides.raw.c1, c1Calls);
    const lat = { ours: oursLat, raw: rawLat };
    const cps = await throughputRound(round, { ours: sides.ours.c64, raw: sides.raw.c64 }, c64Calls);
    for (const name of ['ours', 'raw'] as const) {
      p50[name].push(percentile(lat[name], 50));
      rate[name].push(cps[name]);
      console.log(`  round ${round} ${name.padEnd(4)}  c1 p50 ${percentile(lat[name], 50).toFixed(1)} µs  p99 ${percentile(lat[name], 99).toFixed(1)} µs   c64 ${Math.round(cps[name])} calls/s${round % 2 === (name === 'ours' ? 1 : 0) ? ' (first)' : ''}`);
    }
  }
  const [oursPerS, rawPerS, oursP50Us, rawP50Us] = [median(rate.ours), median(rate.raw), median(p50.ours), median(p50.raw)];
  return {
    oursPerS: Math.round(oursPerS), rawPerS: Math.round(rawPerS), throughputRatio: round(oursPerS / rawPerS),
    oursP50Us: round(oursP50Us, 1), rawP50Us: round(rawP50Us, 1), latencyRatio: round(oursP50Us / rawP50Us),
  };
}

/** Throughput only, at 64 in flight, over `rounds` rounds (the side that goes first alternating); medians. */
export async function alternateThroughput(rounds: number, label: string, sides: { ours: (total: number) => Promise<number>; raw: (total: number) => Promise<number> }, total: number): Promise<ThroughputComparison> {
  const rate = { ours: [] as number[], raw: [] as number[] };
  for (let round = 1; round <= rounds; round++) {
    const cps = await throughputRound(round, sides, total);
    rate.ours.push(cps.ours);
    rate.raw.push(cps.raw);
    console.log(`  round ${round} ${label}  ours c64 ${Math.round(cps.ours)} calls/s, raw c64 ${Math.round(cps.raw)} calls/s (${round % 2 === 1 ? 'ours' : 'raw'} first)`);
  }
  const [oursPerS, rawPerS] = [median(rate.ours), median(rate.raw)];
  return { oursPerS: Math.round(oursPerS), rawPerS: Math.round(rawPerS), throughputRatio: round(oursPerS / rawPerS) };
}

/** Counts WebSocket messages both ways on a client's socket (each is one frame: neither side fragments). */
export interface MessageCounter {
  readonly sent: number;
  readonly received: number;
  /** Stops counting (the socket's send is given back). */
  stop(): void;
}

/** Starts counting the messages `ws` (a `ws` WebSocket, any version) sends and receives. */
export function countMessages(ws: { send: (...args: never[]) => unknown; on(event: 'message', listener: () => void): unknown; off(event: 'message', listener: () => void): unknown }): MessageCounter {
  const counter = { sent: 0, received: 0, stop: () => {} };
  const own = Object.prototype.hasOwnProperty.call(ws, 'send');
  const send = ws.send;
  ws.send = function counted(this: unknown, ...args: never[]) {
    counter.sent++;
    return send.apply(this, args);
  };
  const onMessage = () => { counter.received++; };
  ws.on('message', onMessage);
  counter.stop = () => {
    if (own) ws.send = send;
    else delete (ws as { send?: unknown }).send;
    ws.off('message', onMessage);
  };
  return counter;
}
