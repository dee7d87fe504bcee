/**
 * The `pkcs11` KMS against a real SoftHSM2 token: sealed keys round-trip only under their key id and context;
 * a master key with CKA_DECRYPT false is Disabled until set back; a destroyed one is NotFound for good; a newer
 * version (CKA_ID) seals new keys while older ones still open; a token that drops the session is reopened, one
 * that refuses the PIN is Unavailable (and recovers); no error carries the PIN. The native binding is loaded
 * only by a PKCS#11 KMS (the image is built without native addons).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { KmsError } from '../../src/kms/kms.ts';
import { PKCS11_BLOB_SIZE, PKCS11_BLOB_VERSION, Pkcs11Kms } from '../../src/kms/pkcs11.ts';
import { createSoftHsm, type SoftHsm } from '../support/softhsm.ts';

const ctxA = { 'aws:s3:arn': 'arn:aws:s3:::b/a' };
const ctxB = { 'aws:s3:arn': 'arn:aws:s3:::b/b' };

async function rejectsCode(p: Promise<unknown>, code: KmsError['code'], pin?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KmsError, String(e));
    assert.equal(e.code, code, e.message);
    if (pin !== undefined) assert.ok(!`${e.message} ${String(e.cause ?? '')}`.includes(pin), 'the PIN is in the error');
    return true;
  });
}

let hsm: SoftHsm;
let kms: Pkcs11Kms;

before(() => {
  hsm = createSoftHsm('kms-unit');
  for (const k of ['first', 'second', 'toggled', 'doomed', 'rotated']) hsm.createKey(k);
  kms = new Pkcs11Kms({ module: hsm.module, token: hsm.label, pin: hsm.pin, defaultKeyId: 'first' });
});
after(() => kms?.close());

describe('pkcs11 KMS (SoftHSM2)', () => {
  test('a generated key decrypts under its key id and context only', async () => {
    assert.equal(kms.defaultKeyId, 'first');
    const g = await kms.generateKey('first', ctxA);
    assert.equal(g.plaintext.length, 32);
    assert.equal(g.sealed.length, PKCS11_BLOB_SIZE);
    assert.equal(g.sealed[0], PKCS11_BLOB_VERSION);
    assert.ok(!g.sealed.includes(g.plaintext.subarray(0, 8)), 'the external key is in the blob');
    assert.deepEqual(await kms.decrypt('first', g.sealed, ctxA), g.plaintext);
    await rejectsCode(kms.decrypt('first', g.sealed, ctxB), 'InvalidCiphertext');
    await rejectsCode(kms.decrypt('second', g.sealed, ctxA), 'InvalidCiphertext');
    const edited = Buffer.from(g.sealed);
    edited[40]! ^= 1;
    await rejectsCode(kms.decrypt('first', edited, ctxA), 'InvalidCiphertext');
    await rejectsCode(kms.decrypt('first', g.sealed.subarray(1), ctxA), 'InvalidCiphertext');
    const other = await kms.generateKey('first', ctxA);
    assert.notDeepEqual(other.plaintext, g.plaintext);
    assert.deepEqual((await kms.list()).filter((k) => k === 'first' || k === 'second'), ['first', 'second']);
  });

  test('an unknown key id is NotFound', async () => {
    await rejectsCode(kms.generateKey('nope', ctxA), 'NotFound');
    assert.equal(await kms.status('nope'), 'missing');
  });

  test('CKA_DECRYPT false: Disabled (nothing under it opens, nothing new seals) until set back', async () => {
    const g = await kms.generateKey('toggled', ctxA);
    hsm.setUsable('toggled', false);
    assert.equal(await kms.status('toggled'), 'disabled');
    await rejectsCode(kms.decrypt('toggled', g.sealed, ctxA), 'Disabled');
    await rejectsCode(kms.generateKey('toggled', ctxA), 'Disabled');
    hsm.setUsable('toggled', true);
    assert.equal(await kms.status('toggled'), 'enabled');
    assert.deepEqual(await kms.decrypt('toggled', g.sealed, ctxA), g.plaintext);
  });

  test('a destroyed key is NotFound, and what it sealed stays unreadable under a new key of the same label', async () => {
    const g = await kms.generateKey('doomed', ctxA);
    hsm.destroyKey('doomed');
    await rejectsCode(kms.decrypt('doomed', g.sealed, ctxA), 'NotFound');
    hsm.createKey('doomed');
    await rejectsCode(kms.decrypt('doomed', g.sealed, ctxA), 'InvalidCiphertext');
  });

  test('rotation: a higher CKA_ID seals new keys, the older version still opens its own', async () => {
    const old = await kms.generateKey('rotated', ctxA);
    assert.equal(old.sealed.readUInt32BE(1), 1);
    hsm.createKey('rotated', 2);
    const fresh = await kms.generateKey('rotated', ctxA);
    assert.equal(fresh.sealed.readUInt32BE(1), 2);
    assert.deepEqual(await kms.decrypt('rotated', old.sealed, ctxA), old.plaintext);
    assert.deepEqual(await kms.decrypt('rotated', fresh.sealed, ctxA), fresh.plaintext);
  });

  test('sessions closed by the token are reopened; a refused PIN is Unavailable, never echoed, and recovers', async () => {
    const g = await kms.generateKey('first', ctxA);
    hsm.closeAllSessions();
    assert.deepEqual(await kms.decrypt('first', g.sealed, ctxA), g.plaintext);
    const pin = hsm.pin;
    hsm.changePin(pin, `${pin}-changed`);
    await rejectsCode(kms.decrypt('first', g.sealed, ctxA), 'Unavailable', pin);
    await rejectsCode(kms.generateKey('first', ctxA), 'Unavailable', pin);
    hsm.changePin(`${pin}-changed`, pin);
    assert.deepEqual(await kms.decrypt('first', g.sealed, ctxA), g.plaintext);
  });

  test('a module that does not load, or a token that is not there, is Unavailable', async () => {
    await rejectsCode(new Pkcs11Kms({ module: '/nonexistent/libnope.so', token: 'x', pin: 'secret-pin-1', defaultKeyId: 'k' }).generateKey('k', ctxA), 'Unavailable', 'secret-pin-1');
    await rejectsCode(new Pkcs11Kms({ module: hsm.module, token: 'no-such-token', pin: 'secret-pin-2', defaultKeyId: 'k' }).generateKey('k', ctxA), 'Unavailable', 'secret-pin-2');
  });
});

test('the native binding is loaded only when a PKCS#11 KMS is used: a proxy without one starts without it', () => {
  const registry = pathToFileURL('src/kms/registry.ts').href;
  const script = `
    import { createRequire } from 'node:module';
    const { kmsOf } = await import(${JSON.stringify(registry)});
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('pkcs11js'));
    const before = loaded();
    await kmsOf({ kms: { pkcs11: { module: '/nonexistent.so', token: 't', pin: 'p' }, defaultKeyId: 'k' } }).status('k').catch(() => {});
    console.log(JSON.stringify([before, loaded()]));
  `;
  const out = execFileSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1)!), [false, true]);
});
