/**
 * Set-up as a newcomer meets it, checked on the manifests: the Node range the README states is the one
 * package.json enforces and every locked package accepts (no EBADENGINE warnings on a supported Node); the
 * embedded development store is no production dependency (the image, built with --omit=dev, lacks it); and
 * .gitignore covers what the README walkthrough and `npm start` leave behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { EMBEDDED_PACKAGE } from '../../src/embedded-s3.ts';

// npm's own range semantics (semver is in the tree through npm's tooling; it ships no types).
const semver = createRequire(import.meta.url)('semver') as {
  satisfies(version: string, range: string): boolean;
  minVersion(range: string): { version: string; major: number } | null;
};

const ROOT = new URL('../..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; dev?: boolean; engines?: Record<string, string> | string[] }>;
};
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

test('the README states the Node range package.json enforces, and the pinned Node is in it', () => {
  const min = semver.minVersion(pkg.engines.node)!;
  const stated = [...readme.matchAll(/Node (?:≥|>=) ?(\d+)/g)].map((m) => Number(m[1]));
  assert.ok(stated.length > 0, 'the README states a Node version');
  for (const major of stated) assert.equal(major, min.major, `README says Node ≥ ${major}, package.json engines ${pkg.engines.node}`);
  assert.ok(semver.satisfies(`${semver.minVersion(pkg.devDependencies.node!)!.major}.0.0`, pkg.engines.node), 'the node devDependency is a supported Node');
});

test('every locked package accepts every supported Node: npm ci on one prints no EBADENGINE', () => {
  const min = semver.minVersion(pkg.engines.node)!.version;
  const refusing = Object.entries(lock.packages)
    .filter(([, p]) => p.engines && !Array.isArray(p.engines) && p.engines.node && !semver.satisfies(min, p.engines.node))
    .map(([name, p]) => `${name} (node ${(p.engines as Record<string, string>).node})`);
  assert.deepEqual(refusing, []);
});

test('the embedded store is a development dependency only (s3rver and its vulnerable dicer are gone); the image omits it', () => {
  assert.equal(pkg.dependencies[EMBEDDED_PACKAGE], undefined);
  assert.ok(pkg.devDependencies[EMBEDDED_PACKAGE], 'the embedded store for npm start and the tests');
  for (const name of [`node_modules/${EMBEDDED_PACKAGE}`, 'node_modules/s3rver', 'node_modules/dicer']) {
    const p = lock.packages[name];
    if (p) assert.equal(p.dev, true, `${name} must not be installed by npm ci --omit=dev`);
  }
  assert.equal(lock.packages['node_modules/dicer'], undefined, 'dicer (CVE-2022-24434, no fix) is not in the tree');
  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  assert.match(dockerfile, /npm (prune|ci)[^\n]*--omit=dev/, 'the image installs production dependencies only');
  const copied = [...dockerfile.matchAll(/^COPY --from=build \S+node_modules/gm)];
  assert.equal(copied.length, 1, 'node_modules reaches the runtime stage once, after the prune');
});

test('npm start serves the embedded store explicitly (--embedded); nothing else implies it', () => {
  assert.match(pkg.scripts.start!, /--embedded/);
});

test('.gitignore covers the walkthrough key file and what npm start writes (.state/: the dev CA key, the store)', () => {
  const walkthrough = /<!-- walkthrough:start -->([\s\S]*?)<!-- walkthrough:end -->/.exec(readme)![1]!;
  const written = [...walkthrough.matchAll(/(?:>|get-object .* )\s*([\w.]+\.(?:bin|txt|out))\b/g)].map((m) => m[1]!);
  assert.ok(written.includes('key.bin'), written.join());
  const paths = [...new Set(written), '.state/tls/ca-key.pem', '.state/s3/demo/x', 'keys/site.key'];
  const ignored = execFileSync('git', ['check-ignore', '--no-index', ...paths], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
  assert.deepEqual(ignored.sort(), paths.sort());
});
