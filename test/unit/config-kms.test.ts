/**
 * The KMS and bucket-encryption settings of the configuration: a bad keys file or policy stops the start with
 * every problem named (never a key's value); a policy that needs a KMS, or names a key the KMS lacks, too.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'ssec-config-kms-'));
const good = join(dir, 'keys.json');
writeFileSync(good, JSON.stringify({ 'site-key': randomBytes(32).toString('base64'), other: randomBytes(32).toString('base64') }));

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig({ env });
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  return [];
}

test('a keys file and a policy load into the configuration', () => {
  const c = loadConfig({ env: { SSEC_PROXY_KMS_LOCAL_KEYS: good, SSEC_PROXY_BUCKET_ENCRYPTION: '{"logs-*": "sse-s3", "t": "sse-kms:other"}' } });
  assert.deepEqual(c.kms, { localKeys: good });
  assert.deepEqual(c.bucketEncryption, [
    { pattern: 'logs-*', policy: { kind: 'sse-s3' } },
    { pattern: 't', policy: { kind: 'sse-kms', keyId: 'other' } },
  ]);
  assert.equal(loadConfig({ env: {} }).kms, undefined);
});

test('a missing or malformed keys file is a problem, and no key value is echoed', () => {
  assert.match(problems({ SSEC_PROXY_KMS_LOCAL_KEYS: join(dir, 'nope.json') }).join('\n'), /SSEC_PROXY_KMS_LOCAL_KEYS: .*nope\.json/);
  const bad = join(dir, 'bad.json');
  const short = randomBytes(16).toString('base64');
  writeFileSync(bad, JSON.stringify({ k: short }));
  const p = problems({ SSEC_PROXY_KMS_LOCAL_KEYS: bad }).join('\n');
  assert.match(p, /key "k"/);
  assert.ok(!p.includes(short));
});

test('a policy that is not one, needs a KMS, or names a key the KMS lacks', () => {
  assert.match(problems({ SSEC_PROXY_BUCKET_ENCRYPTION: '{"b": "sse-aes"}' }).join('\n'), /not one of/);
  assert.match(problems({ SSEC_PROXY_BUCKET_ENCRYPTION: '{"b": "sse-s3"}' }).join('\n'), /needs a KMS/);
  assert.match(
    problems({ SSEC_PROXY_KMS_LOCAL_KEYS: good, SSEC_PROXY_BUCKET_ENCRYPTION: '{"b": "sse-kms:missing"}' }).join('\n'),
    /names key "missing"/,
  );
  assert.deepEqual(problems({ SSEC_PROXY_BUCKET_ENCRYPTION: '{"b": "require-sse-c"}' }), []);
});

test('a PKCS#11 token: module, token or slot, PIN (or PIN file) and default key; one KMS kind; the PIN never echoed', () => {
  const module = join(dir, 'libfake.so');
  writeFileSync(module, '');
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, 'file-pin-9876\n');
  const base = { SSEC_PROXY_KMS_PKCS11_MODULE: module, SSEC_PROXY_KMS_PKCS11_TOKEN: 'proxy', SSEC_PROXY_KMS_DEFAULT_KEY: 'site-key' };
  assert.deepEqual(loadConfig({ env: { ...base, SSEC_PROXY_KMS_PKCS11_PIN_FILE: pinFile } }).kms, {
    pkcs11: { module, token: 'proxy', pin: 'file-pin-9876' },
    defaultKeyId: 'site-key',
  });
  const pin = 'env-pin-1234';
  const all = (env: Record<string, string>) => problems(env).join('\n');
  const checked: Array<[Record<string, string>, RegExp]> = [
    [{ ...base, SSEC_PROXY_KMS_PKCS11_PIN: pin, SSEC_PROXY_KMS_LOCAL_KEYS: good }, /configure one KMS, not several/],
    [{ ...base }, /needs the user PIN/],
    [{ ...base, SSEC_PROXY_KMS_PKCS11_PIN: pin, SSEC_PROXY_KMS_PKCS11_SLOT: '0' }, /exactly one/],
    [{ ...base, SSEC_PROXY_KMS_PKCS11_PIN: pin, SSEC_PROXY_KMS_PKCS11_TOKEN: '', SSEC_PROXY_KMS_PKCS11_SLOT: '-1' }, /slot index/],
    [{ ...base, SSEC_PROXY_KMS_PKCS11_PIN: pin, SSEC_PROXY_KMS_DEFAULT_KEY: '' }, /needs the label of its default master key/],
    [{ ...base, SSEC_PROXY_KMS_PKCS11_PIN: pin, SSEC_PROXY_KMS_PKCS11_MODULE: join(dir, 'missing.so') }, /missing\.so does not exist/],
    [{ SSEC_PROXY_KMS_PKCS11_PIN: pin }, /SSEC_PROXY_KMS_PKCS11_PIN: set, but no KMS is/],
    [{ SSEC_PROXY_KMS_LOCAL_KEYS: good, SSEC_PROXY_KMS_DEFAULT_KEY: 'absent' }, /"absent" is not in/],
  ];
  for (const [env, expected] of checked) {
    const p = all(env);
    assert.match(p, expected);
    assert.ok(!p.includes(pin), 'the PIN is in a problem');
  }
  assert.deepEqual(loadConfig({ env: { SSEC_PROXY_KMS_LOCAL_KEYS: good, SSEC_PROXY_KMS_DEFAULT_KEY: 'other' } }).kms, { localKeys: good, defaultKeyId: 'other' });
});

test('a KMIP server: endpoint, client certificate and key files (CA optional), credential, default key; one KMS kind; secrets never echoed', () => {
  const pem = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `-----BEGIN ${body}-----\nc2VjcmV0LWJ5dGVzLTU1NTU=\n-----END ${body}-----\n`);
    return path;
  };
  const ca = pem('kmip-ca.pem', 'CERTIFICATE');
  const cert = pem('kmip-client.pem', 'CERTIFICATE');
  const key = pem('kmip-client.key', 'PRIVATE KEY');
  const base = {
    SSEC_PROXY_KMS_KMIP_ENDPOINT: 'kmip.example:5696',
    SSEC_PROXY_KMS_KMIP_CERT_FILE: cert,
    SSEC_PROXY_KMS_KMIP_KEY_FILE: key,
    SSEC_PROXY_KMS_DEFAULT_KEY: 'site-key',
  };
  assert.deepEqual(loadConfig({ env: { ...base, SSEC_PROXY_KMS_KMIP_CA_FILE: ca } }).kms, {
    kmip: { host: 'kmip.example', port: 5696, caFile: ca, certFile: cert, keyFile: key },
    defaultKeyId: 'site-key',
  });
  assert.deepEqual(loadConfig({ env: base }).kms, { kmip: { host: 'kmip.example', port: 5696, certFile: cert, keyFile: key }, defaultKeyId: 'site-key' });
  const passwordFile = join(dir, 'kmip-password');
  writeFileSync(passwordFile, 'kmip-pass-4242\n');
  assert.deepEqual(loadConfig({ env: { ...base, SSEC_PROXY_KMS_KMIP_USERNAME: 'proxy', SSEC_PROXY_KMS_KMIP_PASSWORD_FILE: passwordFile } }).kms, {
    kmip: { host: 'kmip.example', port: 5696, certFile: cert, keyFile: key, credentials: { username: 'proxy', password: 'kmip-pass-4242' } },
    defaultKeyId: 'site-key',
  });
  const checked: Array<[Record<string, string>, RegExp]> = [
    [{ ...base, SSEC_PROXY_KMS_KMIP_PASSWORD: 'kmip-pass-4242' }, /give both or neither/],
    [{ ...base, SSEC_PROXY_KMS_LOCAL_KEYS: good }, /configure one KMS, not several/],
    [{ ...base, SSEC_PROXY_KMS_KMIP_ENDPOINT: 'kmip.example' }, /SSEC_PROXY_KMS_KMIP_ENDPOINT: must be host:port/],
    [{ ...base, SSEC_PROXY_KMS_KMIP_KEY_FILE: '' }, /SSEC_PROXY_KMS_KMIP_KEY_FILE: the KMIP server needs the client certificate and its key/],
    [{ ...base, SSEC_PROXY_KMS_KMIP_CERT_FILE: join(dir, 'absent.pem') }, /SSEC_PROXY_KMS_KMIP_CERT_FILE: .*absent\.pem/],
    [{ ...base, SSEC_PROXY_KMS_KMIP_CA_FILE: good }, /SSEC_PROXY_KMS_KMIP_CA_FILE: .* holds no PEM/],
    [{ ...base, SSEC_PROXY_KMS_DEFAULT_KEY: '' }, /the KMIP KMS needs the name of its default master key/],
    [{ SSEC_PROXY_KMS_KMIP_CERT_FILE: cert }, /SSEC_PROXY_KMS_KMIP_CERT_FILE: set, but SSEC_PROXY_KMS_KMIP_ENDPOINT is not/],
  ];
  for (const [env, expected] of checked) {
    const p = problems(env).join('\n');
    assert.match(p, expected);
    assert.ok(!p.includes('c2VjcmV0'), 'a PEM body is in a problem');
    assert.ok(!p.includes('kmip-pass-4242'), 'the password is in a problem');
  }
});
