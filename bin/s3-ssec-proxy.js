#!/usr/bin/env node
// Runs the built proxy (dist/) when it is current, else the TypeScript sources through tsx in a checkout.
// Plain JavaScript that any Node runs: the version is checked before anything that needs Node 24 is imported,
// so an older system Node gets a sentence saying what to run instead of a TypeError from deep in undici.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const REQUIRED_MAJOR = 24;
const major = Number(process.versions.node.split('.')[0]);
if (major < REQUIRED_MAJOR) {
  const checkoutNode = new URL('../node_modules/.bin/node', import.meta.url);
  process.stderr.write(
    `s3-ssec-proxy needs Node ${REQUIRED_MAJOR} or later; this is Node ${process.versions.node} (${process.execPath}).\n` +
      (existsSync(checkoutNode)
        ? `This checkout has Node ${REQUIRED_MAJOR}, installed by npm ci: run \`${['npx s3-ssec-proxy', ...process.argv.slice(2)].join(' ')}\`` +
          ` (npx and npm scripts put it first on PATH).\n`
        : `Install Node ${REQUIRED_MAJOR} (or run \`npm ci\` in the checkout, which installs it under node_modules/.bin) and run this again.\n`),
  );
  process.exit(3);
}

// V8's young generation capped at 2 MiB per semi-space: every body chunk is a Buffer whose memory is only given
// back when its small JS object is collected; with the default (larger) young generation they pile up until
// full collections run, costing ~40 % more CPU per byte and ~60 MiB more RSS (docs/BENCHMARKS.md). The flag only
// works at start, so the process replaces itself (same PID, same descriptors) unless it was given one already.
const SEMI_SPACE = '--max-semi-space-size';
const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith(SEMI_SPACE));
if (!given && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, `${SEMI_SPACE}=2`, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], process.env);
}

// dist/ (from `npm run build`) runs when it is at least as new as every source file: the image and a package
// (no sources), and the benches (which build first). A checkout whose sources changed since its last build runs
// them through tsx (a devDependency) instead of stale code.
const dist = new URL('../dist/main.js', import.meta.url);
const src = new URL('../src/', import.meta.url);
if (existsSync(dist) && (!existsSync(src) || newestMtime(src) <= statSync(dist).mtimeMs)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('main.ts', src).href);
}

function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}
