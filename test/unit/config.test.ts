import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'ssec-config-'));

test('defaults: HTTPS on 127.0.0.1:8443, embedded upstream, 64 KiB chunks', () => {
  const c = loadConfig({ env: {} });
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8443 });
  assert.equal(c.upstream, undefined);
  assert.equal(c.tls, undefined);
  assert.equal(c.http, undefined);
  assert.equal(c.chunkSizeLog2, 16);
  assert.ok(Object.isFrozen(c));
});

test('environment variables override the file', () => {
  const file = join(dir, 'c.json');
  // The TLS files a configuration names must exist (and hold PEM).
  for (const [name, pem] of [['env.pem', 'CERTIFICATE'], ['c.pem', 'CERTIFICATE'], ['k.pem', 'PRIVATE KEY']]) {
    writeFileSync(join(dir, name!), `-----BEGIN ${pem}-----\nAAAA\n-----END ${pem}-----\n`);
  }
  writeFileSync(
    file,
    JSON.stringify({
      listen: '0.0.0.0:9443',
      upstream: { url: 'http://store:9000', region: 'eu-west-1', accessKeyId: 'FILEAK', secretAccessKey: 'filesk' },
      tls: { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') },
    }),
  );
  const c = loadConfig({
    configPath: file,
    env: { SSEC_PROXY_LISTEN: '127.0.0.1:1234', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'ENVAK', SSEC_PROXY_TLS_CERT: join(dir, 'env.pem') },
  });
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 1234 });
  assert.equal(c.upstream?.url, 'http://store:9000');
  assert.equal(c.upstream?.region, 'eu-west-1');
  assert.equal(c.region, 'eu-west-1');
  assert.equal(c.upstream?.accessKeyId, 'ENVAK');
  assert.equal(c.upstream?.secretAccessKey, 'filesk');
  assert.deepEqual(c.tls, { cert: join(dir, 'env.pem'), key: join(dir, 'k.pem') });
});

test('several client credentials from a file, each mapped to an upstream identity', () => {
  const creds = join(dir, 'creds.json');
  writeFileSync(
    creds,
    JSON.stringify([
      { accessKeyId: 'APP1', secretAccessKey: 's1', upstream: { accessKeyId: 'U1', secretAccessKey: 'us1' } },
      { accessKeyId: 'APP2', secretAccessKey: 's2' },
    ]),
  );
  const c = loadConfig({
    env: {
      SSEC_PROXY_UPSTREAM_URL: 'http://127.0.0.1:7480',
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'MAIN',
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'mainsk',
      SSEC_PROXY_CREDENTIALS_FILE: creds,
    },
  });
  assert.deepEqual(
    c.credentials.map((x) => [x.accessKeyId, x.upstream.accessKeyId]),
    [
      ['APP1', 'U1'],
      ['APP2', 'MAIN'],
    ],
  );
});

test('resource limits: defaults, the file, the environment over it; a bad value is a problem', () => {
  assert.equal(loadConfig({ env: {} }).maxConnections, 800);
  assert.equal(loadConfig({ env: {} }).maxConcurrentUploads, 128);
  const file = join(dir, 'limits.json');
  writeFileSync(file, JSON.stringify({ maxConnections: 50, maxConcurrentUploads: 7 }));
  const c = loadConfig({ configPath: file, env: { SSEC_PROXY_MAX_CONNECTIONS: '60' } });
  assert.equal(c.maxConnections, 60);
  assert.equal(c.maxConcurrentUploads, 7);
  assert.throws(() => loadConfig({ env: { SSEC_PROXY_MAX_CONNECTIONS: '0' } }), (e: unknown) => e instanceof ConfigError && /SSEC_PROXY_MAX_CONNECTIONS/.test(e.problems.join()));
});

test('a bad configuration lists every problem at once', () => {
  try {
    loadConfig({
      env: {
        SSEC_PROXY_LISTEN: 'nonsense',
        SSEC_PROXY_TLS_CERT: '/only-cert.pem',
        SSEC_PROXY_UPSTREAM_URL: 'ftp://x',
        SSEC_PROXY_ALLOW_SSEC_OVER_LOOPBACK_HTTP: 'maybe',
      },
    });
    assert.fail('expected ConfigError');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const text = e.problems.join('\n');
    for (const needle of ['SSEC_PROXY_LISTEN', 'SSEC_PROXY_TLS_KEY', 'SSEC_PROXY_UPSTREAM_URL', 'ACCESS_KEY_ID', 'SECRET_ACCESS_KEY', 'LOOPBACK']) {
      assert.match(text, new RegExp(needle), needle);
    }
    assert.ok(e.problems.length >= 6, text);
  }
});

test('`s3-ssec-proxy check-config` exits non-zero and prints every problem; 0 when valid', async () => {
  const run = (env: Record<string, string>) =>
    new Promise<{ code: number; err: string; out: string }>((resolve) => {
      execFile(process.execPath, [join(ROOT, 'bin/s3-ssec-proxy.js'), 'check-config'], { env: { PATH: process.env.PATH ?? '', ...env } }, (e, out, err) =>
        resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
      );
    });
  const bad = await run({ SSEC_PROXY_LISTEN: 'nope', SSEC_PROXY_UPSTREAM_URL: 'http://h:1' });
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /SSEC_PROXY_LISTEN/);
  assert.match(bad.err, /SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID/);
  const none = await run({});
  assert.equal(none.code, 2, 'no upstream and no --embedded: nothing to serve');
  assert.match(none.err, /SSEC_PROXY_EMBEDDED/);
  const good = await run({ SSEC_PROXY_EMBEDDED: 'true' });
  assert.equal(good.code, 0, good.err);
});

test('encrypted-only buckets: patterns from the environment or the file; a value that is not a JSON array of patterns is a problem', () => {
  assert.equal(loadConfig({ env: {} }).encryptedOnlyBuckets, undefined);
  assert.deepEqual(loadConfig({ env: { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: '["backups-*","logs"]' } }).encryptedOnlyBuckets, ['backups-*', 'logs']);
  for (const bad of ['backups-*', '{"a":1}', '[1]']) {
    assert.throws(() => loadConfig({ env: { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: bad } }), (e: unknown) => e instanceof ConfigError && /SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS/.test(e.problems.join()), bad);
  }
});
