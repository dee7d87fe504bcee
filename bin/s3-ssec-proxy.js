#!/usr/bin/env node
// Runs the TypeScript sources through tsx in a checkout, or the built proxy (dist/) where there are none.
// Plain JavaScript that any Node runs: the version is checked before anything that needs Node 24 is imported,
// so an older system Node gets a sentence saying what to run instead of a TypeError from deep in undici.
import { existsSync } from 'node:fs';

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

// A checkout runs its sources (tsx, a devDependency), so a dist/ left by an earlier `npm run build` never runs
// stale code; an install without sources (the image, a package) runs dist/.
const sources = new URL('../src/main.ts', import.meta.url);
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import(new URL('../dist/main.js', import.meta.url).href);
}
