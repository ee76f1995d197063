#!/usr/bin/env -S node --no-node-snapshot
// The kuafu command. isolated-vm needs Node's --no-node-snapshot, which Node refuses inside
// NODE_OPTIONS: when this process was started without it, start again with it.
import { spawn } from 'node:child_process';

if (!process.execArgv.includes('--no-node-snapshot')) {
  const child = spawn(process.execPath, ['--no-node-snapshot', ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
} else {
  const { main } = await import('../dist/runtime/cli/main.js');
  process.exit(await main(process.argv.slice(2)));
}
