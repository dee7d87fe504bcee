/**
 * One schema for the file and the environment: every problem at once, each named by where its value came from
 * (the variable, or the file and its field), unknown names reported with the nearest known one, and the files a
 * configuration names checked before anything listens.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, type LoadOptions } from '../../src/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'ssec-config-sources-'));

function problems(opts: LoadOptions): string[] {
  try {
    loadConfig(opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  return [];
}

function file(name: string, doc: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

test('a schema failure in the file hides nothing: file and environment problems are listed together, each by its source', () => {
  const path = file('bad.json', { listen: 'nonsense', tls: { cert: 5, key: join(dir, 'none.pem') }, maxConnections: 0, allowSigV2: 'yes' });
  const p = problems({ configPath: path, env: { SSEC_PROXY_WORKERS: 'many', SSEC_PROXY_ADMIN_LISTEN: 'x' } });
  const text = p.join('\n');
  assert.match(text, new RegExp(`config file ${path}: listen: must be host:port`));
  assert.match(text, new RegExp(`config file ${path}: tls\\.cert: `));
  assert.match(text, new RegExp(`config file ${path}: tls\\.key: .*none\\.pem does not exist`));
  assert.match(text, new RegExp(`config file ${path}: maxConnections: must be an integer`));
  assert.match(text, new RegExp(`config file ${path}: allowSigV2: `));
  assert.match(text, /SSEC_PROXY_WORKERS: must be a number/);
  assert.match(text, /SSEC_PROXY_ADMIN_LISTEN: must be host:port/);
  assert.ok(p.length >= 7, text);
});

test('a value from the file is named by the file and field, the same value from the environment by the variable', () => {
  const path = file('up.json', { upstream: { url: 'http://store:9000' } });
  const fromFile = problems({ configPath: path, env: {} }).join('\n');
  assert.match(fromFile, /upstream\.accessKeyId.*required when an upstream URL is set/);
  const bad = file('url.json', { upstream: { url: 'ftp://x', accessKeyId: 'a', secretAccessKey: 'b' } });
  assert.match(problems({ configPath: bad, env: {} }).join('\n'), new RegExp(`config file ${bad}: upstream\\.url: must be an http\\(s\\) URL`));
  assert.match(problems({ env: { SSEC_PROXY_UPSTREAM_URL: 'ftp://x', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'b' } }).join('\n'), /^SSEC_PROXY_UPSTREAM_URL: must be an http\(s\) URL/m);
});

test('an unknown SSEC_PROXY_* variable or file field is a problem that suggests the nearest known name', () => {
  assert.match(problems({ env: { SSEC_PROXY_UPSTREAM_ULR: 'http://x:1' } }).join('\n'), /SSEC_PROXY_UPSTREAM_ULR: not a setting .*did you mean SSEC_PROXY_UPSTREAM_URL\?/);
  const path = file('typo.json', { upstream: { regoin: 'eu-west-1' }, listn: '0.0.0.0:1' });
  const text = problems({ configPath: path, env: {} }).join('\n');
  assert.match(text, /upstream\.regoin: unknown field \(did you mean "region"\?\)/);
  assert.match(text, /listn: unknown field \(did you mean "listen"\?\)/);
  // The _FILE forms and SSEC_PROXY_CONFIG are known.
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'sk\n');
  const c = loadConfig({ env: { SSEC_PROXY_CONFIG: '', SSEC_PROXY_UPSTREAM_URL: 'http://s:1', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY_FILE: secret } });
  assert.equal(c.upstream?.secretAccessKey, 'sk');
});

test('a bad value in the environment is a problem; the file value it overrides is not used in its place', () => {
  const path = file('limits.json', { maxConnections: 50 });
  assert.match(problems({ configPath: path, env: { SSEC_PROXY_MAX_CONNECTIONS: 'lots' } }).join('\n'), /SSEC_PROXY_MAX_CONNECTIONS: must be a number/);
});

test('files the configuration names must exist and hold what they should: TLS, CA bundle, credentials, KMS keys, PIN', () => {
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello');
  const text = problems({
    env: {
      SSEC_PROXY_TLS_CERT: notPem,
      SSEC_PROXY_TLS_KEY: join(dir, 'missing-key.pem'),
      SSEC_PROXY_UPSTREAM_CA_FILE: join(dir, 'missing-ca.pem'),
      SSEC_PROXY_CREDENTIALS_FILE: join(dir, 'missing-creds.json'),
      SSEC_PROXY_KMS_LOCAL_KEYS: join(dir, 'missing-keys.json'),
    },
  }).join('\n');
  assert.match(text, /SSEC_PROXY_TLS_CERT: .*not\.pem holds no PEM certificate/);
  assert.match(text, /SSEC_PROXY_TLS_KEY: .*missing-key\.pem does not exist/);
  assert.match(text, /SSEC_PROXY_UPSTREAM_CA_FILE: .*missing-ca\.pem does not exist/);
  assert.match(text, /SSEC_PROXY_CREDENTIALS_FILE: .*missing-creds\.json does not exist/);
  assert.match(text, /SSEC_PROXY_KMS_LOCAL_KEYS: .*missing-keys\.json does not exist/);
  const pin = file('p11.json', { kms: { pkcs11: { module: join(dir, 'no.so'), token: 't', pinFile: join(dir, 'no-pin') }, defaultKey: 'k' } });
  const p11 = problems({ configPath: pin, env: {} }).join('\n');
  assert.match(p11, /kms\.pkcs11\.pinFile: .*no-pin does not exist/);
  assert.match(p11, /kms\.pkcs11\.module: .*no\.so does not exist/);
});

test('serving needs an upstream or the embedded store said explicitly; never both', () => {
  assert.match(problems({ env: {}, serving: true }).join('\n'), /no upstream S3 store is set.*--embedded/);
  assert.equal(loadConfig({ env: { SSEC_PROXY_EMBEDDED: 'true' }, serving: true }).embedded, true);
  assert.equal(loadConfig({ env: {} }).upstream, undefined, 'without serving (tests, tools) no store is required');
  const both = { SSEC_PROXY_EMBEDDED: 'true', SSEC_PROXY_UPSTREAM_URL: 'http://s:1', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'b' };
  assert.match(problems({ env: both, serving: true }).join('\n'), /SSEC_PROXY_EMBEDDED: the embedded store is for when no upstream is set/);
});

const UPSTREAM = { SSEC_PROXY_CONFIG: '', SSEC_PROXY_UPSTREAM_URL: 'http://s:1', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'b' };

test('a misspelt field of a client credential is a problem, not a credential without its bucket limit', () => {
  const creds = file('creds-typo.json', [{ accessKeyId: 'AK', secretAccessKey: 'SK', bucket: ['only-this'] }]);
  const found = problems({ env: { ...UPSTREAM, SSEC_PROXY_CREDENTIALS_FILE: creds } });
  assert.ok(found.some((p) => p.includes(creds) && p.includes('bucket')), found.join('\n'));
});

test('a JSON syntax error in a file holding secrets is placed, never quoted', () => {
  const secret = 'wJalrXUtnFEMIK7MDENGbPxRfiCY';
  const path = join(dir, 'creds-broken.json');
  writeFileSync(path, `[{"accessKeyId": "AK", "secretAccessKey": ${secret}}]`);
  const found = problems({ env: { ...UPSTREAM, SSEC_PROXY_CREDENTIALS_FILE: path } });
  assert.ok(found.some((p) => p.includes(path) && p.includes('not valid JSON')), found.join('\n'));
  assert.ok(!found.join('\n').includes(secret.slice(0, 6)), 'no part of the secret in the problems');
  const config = join(dir, 'config-broken.json');
  writeFileSync(config, `{"upstream": {"secretAccessKey": ${secret}}}`);
  const fromConfig = problems({ configPath: config, env: {} });
  assert.ok(!fromConfig.join('\n').includes(secret.slice(0, 6)), fromConfig.join('\n'));
});

test('Kubernetes service-link variables of a Service named ssec-proxy are not unknown settings', () => {
  const env = { ...UPSTREAM, SSEC_PROXY_SERVICE_HOST: '10.0.0.1', SSEC_PROXY_SERVICE_PORT: '8443', SSEC_PROXY_SERVICE_PORT_HTTPS: '8443', SSEC_PROXY_PORT: 'tcp://10.0.0.1:8443', SSEC_PROXY_PORT_8443_TCP_ADDR: '10.0.0.1' };
  assert.deepEqual(problems({ env }), []);
  assert.ok(problems({ env: { ...UPSTREAM, SSEC_PROXY_LISTN: '127.0.0.1:1' } }).some((p) => p.includes('SSEC_PROXY_LISTEN')));
});
