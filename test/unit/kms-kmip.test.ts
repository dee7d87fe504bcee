/**
 * The `kmip` KMS against a real KMIP server (PyKMIP's, test/support/kmip.ts): the FORMAT.md §13.6 vector opens
 * on the server under the vector's master key and is reproduced byte for byte; sealed keys open only under their
 * key id and context; a newer version seals while older ones open; a revoked (Deactivated) key is Disabled, and
 * readable again once its bytes are registered anew; a destroyed one is NotFound; a server that is down or hangs
 * is Unavailable within the deadline, and is used again once it is back.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { KmsError } from '../../src/kms/kms.ts';
import { KMIP_BLOB_SIZE, KMIP_BLOB_VERSION, KmipKms, type KmipSettings } from '../../src/kms/kmip.ts';
import { keyName, startKmipServer, type KmipServer } from '../support/kmip.ts';

const ctxA = { 'aws:s3:arn': 'arn:aws:s3:::b/a' };
const ctxB = { 'aws:s3:arn': 'arn:aws:s3:::b/b' };
const count = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => from + i));

async function rejectsCode(p: Promise<unknown>, code: KmsError['code']): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KmsError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

let server: KmipServer;
let settings: Omit<KmipSettings, 'defaultKeyId'>;
let kms: KmipKms;
const kmses: KmipKms[] = [];
const make = (defaultKeyId: string, extra: Partial<KmipSettings> = {}) => {
  const k = new KmipKms({ ...settings, defaultKeyId, ...extra });
  kmses.push(k);
  return k;
};

before(async () => {
  server = await startKmipServer();
  settings = { host: server.host, port: server.port, ca: readFileSync(server.caFile), cert: readFileSync(server.certFile), key: readFileSync(server.keyFile) };
  kms = make('first');
});
after(async () => {
  for (const k of kmses) k.close();
  await server?.close();
});

describe('kmip KMS (PyKMIP server)', () => {
  test('the FORMAT.md §13.6 vector: the server opens it, and the same draws seal it byte for byte', async () => {
    const absent = keyName('master-1');
    // The vector's key id is master-1; its binding is in the AAD, so a server key of another Name cannot open it.
    await server.createKey('master-1', 1, count(0, 32));
    const ctx = { 'aws:s3:arn': 'arn:aws:s3:::vector-bucket/sse-s3.bin' };
    const sealed = Buffer.from(
      '0300000001606162636465666768696a6baa9ad916ff05c528345fb3603ec08f0c7624dbdad031648efbf8da3720afa957bf64b2a7da30ebfd0a2915cc0c8cbdf7',
      'hex',
    );
    assert.ok(readFileSync(new URL('../../docs/FORMAT.md', import.meta.url), 'utf8').includes(sealed.toString('hex')), 'the vector is in FORMAT.md');
    assert.deepEqual(await kms.decrypt('master-1', sealed, ctx), count(0x40, 32));
    const draws = [count(0x60, 12), count(0x40, 32)];
    const fixed = make('master-1', { randomBytes: () => draws.shift()! });
    const g = await fixed.generateKey('master-1', ctx);
    assert.deepEqual(g.sealed, sealed);
    assert.deepEqual(g.plaintext, count(0x40, 32));
    await rejectsCode(kms.decrypt(absent, sealed, ctx), 'NotFound');
  });

  test('a generated key decrypts under its key id and context only', async () => {
    for (const k of ['first', 'second']) await server.createKey(k);
    const g = await kms.generateKey('first', ctxA);
    assert.equal(g.plaintext.length, 32);
    assert.equal(g.sealed.length, KMIP_BLOB_SIZE);
    assert.equal(g.sealed[0], KMIP_BLOB_VERSION);
    assert.equal(g.sealed.readUInt32BE(1), 1);
    assert.deepEqual(await kms.decrypt('first', g.sealed, ctxA), g.plaintext);
    await rejectsCode(kms.decrypt('first', g.sealed, ctxB), 'InvalidCiphertext');
    await rejectsCode(kms.decrypt('second', g.sealed, ctxA), 'InvalidCiphertext');
    const edited = Buffer.from(g.sealed);
    edited[40]! ^= 1;
    await rejectsCode(kms.decrypt('first', edited, ctxA), 'InvalidCiphertext');
    await rejectsCode(kms.decrypt('first', g.sealed.subarray(1), ctxA), 'InvalidCiphertext');
    const wrongVersion = Buffer.from(g.sealed);
    wrongVersion.writeUInt32BE(7, 1);
    await rejectsCode(kms.decrypt('first', wrongVersion, ctxA), 'InvalidCiphertext');
    assert.equal(await kms.status('first'), 'enabled');
    await rejectsCode(kms.generateKey('no-such-key', ctxA), 'NotFound');
    assert.equal(await kms.status('no-such-key'), 'missing');
  });

  test('a client sending a Username and Password credential is served (PyKMIP without auth plugins reads and ignores it)', async () => {
    const withPassword = make('first', { credentials: { username: 'proxy', password: 'kmip-pass' } });
    const g = await withPassword.generateKey('first', ctxA);
    assert.deepEqual(await withPassword.decrypt('first', g.sealed, ctxA), g.plaintext);
  });

  test('rotation: a new version seals new keys, the old one still opens what it sealed', async () => {
    const id = keyName('rotated');
    await server.createKey(id, 1);
    const old = await kms.generateKey(id, ctxA);
    await server.createKey(id, 2);
    const young = await kms.generateKey(id, ctxA);
    assert.equal(old.sealed.readUInt32BE(1), 1);
    assert.equal(young.sealed.readUInt32BE(1), 2);
    assert.deepEqual(await kms.decrypt(id, old.sealed, ctxA), old.plaintext);
    assert.deepEqual(await kms.decrypt(id, young.sealed, ctxA), young.plaintext);
  });

  test('revoked: Disabled (KMIP cannot reactivate); the same bytes registered again under the name make it usable', async () => {
    const id = keyName('toggled');
    await server.createKey(id);
    const g = await kms.generateKey(id, ctxA);
    await server.revokeKey(id);
    await rejectsCode(kms.decrypt(id, g.sealed, ctxA), 'Disabled');
    await rejectsCode(kms.generateKey(id, ctxA), 'Disabled');
    assert.equal(await kms.status(id), 'disabled');
    await server.reinstateKey(id);
    assert.deepEqual(await kms.decrypt(id, g.sealed, ctxA), g.plaintext);
    assert.equal(await kms.status(id), 'enabled');
  });

  test('destroyed: NotFound, for good', async () => {
    const id = keyName('doomed');
    await server.createKey(id);
    const g = await kms.generateKey(id, ctxA);
    await server.destroyKey(id);
    await rejectsCode(kms.decrypt(id, g.sealed, ctxA), 'NotFound');
    assert.equal(await kms.status(id), 'missing');
  });

  test('a server that is down or does not answer is Unavailable; once back it is used again', async () => {
    const id = keyName('outage');
    await server.createKey(id);
    // A short deadline for the calls that must fail, the default one (a loaded machine) for those that must not.
    const quick = make(id, { timeoutMs: 1500 });
    const sure = make(id, { timeoutMs: 20_000 });
    const g = await sure.generateKey(id, ctxA); // its kept connection dies with the server: replaced unnoticed
    await server.stop();
    try {
      await rejectsCode(quick.decrypt(id, g.sealed, ctxA), 'Unavailable');
      await rejectsCode(quick.generateKey(id, ctxA), 'Unavailable');
    } finally {
      await server.start();
    }
    assert.deepEqual(await sure.decrypt(id, g.sealed, ctxA), g.plaintext);
    server.pause();
    try {
      await rejectsCode(quick.decrypt(id, g.sealed, ctxA), 'Unavailable');
    } finally {
      server.resume();
    }
    assert.deepEqual(await sure.decrypt(id, g.sealed, ctxA), g.plaintext);
  });
});
