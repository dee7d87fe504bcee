#!/usr/bin/env node
// Runs the built proxy (dist/, from `npm run build`), or the TypeScript sources through tsx in a checkout.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/main.js', import.meta.url);
if (existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/main.ts', import.meta.url).href);
}
