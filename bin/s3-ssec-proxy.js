#!/usr/bin/env node
// Runs the built proxy (dist/, from `npm run build`), or the TypeScript sources through tsx in a checkout.
import { existsSync } from 'node:fs';

// V8's young generation capped at 2 MiB per semi-space: every body chunk is a Buffer whose memory is only given
// back when its small JS object is collected; with the default (larger) young generation they pile up until
// full collections run, costing ~40 % more CPU per byte and ~60 MiB more RSS (docs/BENCHMARKS.md). The flag only
// works at start, so the process replaces itself (same PID, same descriptors) unless it was given one already.
const SEMI_SPACE = '--max-semi-space-size';
const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith(SEMI_SPACE));
if (!given && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, `${SEMI_SPACE}=2`, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], process.env);
}

const dist = new URL('../dist/main.js', import.meta.url);
if (existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/main.ts', import.meta.url).href);
}
