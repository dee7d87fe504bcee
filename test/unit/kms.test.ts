/**
 * The KMS interface and the `local` KMS: sealed keys round-trip only under their key id, version and context;
 * disabled and unknown keys fail with their codes; the cache of unwrapped keys is bounded, expires and wipes
 * what leaves it; the vectors of docs/FORMAT.md §13 are reproduced byte for byte.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { CachingKms } from '../../src/kms/cache.ts';
import { canonicalContext, KmsError, type Kms } from '../../src/kms/kms.ts';
import { LOCAL_BLOB_SIZE, LocalKms, localKek, parseLocalKeys } from '../../src/kms/local.ts';
import { openEnvelope } from '../../src/sse-c/envelope.ts';
import { encryptionContext, formatKmsMeta, parseKmsMeta } from '../../src/sse-kms/managed.ts';
import { parseBucketEncryption, bucketEncryptionOf } from '../../src/sse-kms/bucket-encryption.ts';

const ctxA = { 'aws:s3:arn': 'arn:aws:s3:::b/a' };
const ctxB = { 'aws:s3:arn': 'arn:aws:s3:::b/b' };

function kmsOf(spec: Record<string, unknown>): LocalKms {
  return new LocalKms(parseLocalKeys(JSON.stringify(spec)));
}

const b64 = () => randomBytes(32).toString('base64');

async function rejectsCode(p: Promise<unknown>, code: KmsError['code']): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof KmsError && e.code === code);
}

describe('local KMS', () => {
  const kms = kmsOf({ first: b64(), second: b64(), off: { versions: [b64()], disabled: true } });

  test('the first key is the default; a generated key decrypts under its key id and context only', async () => {
    assert.equal(kms.defaultKeyId, 'first');
    const g = await kms.generateKey('first', ctxA);
    assert.equal(g.plaintext.length, 32);
    assert.equal(g.sealed.length, LOCAL_BLOB_SIZE);
    assert.deepEqual(await kms.decrypt('first', g.sealed, ctxA), g.plaintext);
    await rejectsCode(kms.decrypt('first', g.sealed, ctxB), 'InvalidCiphertext');
    await rejectsCode(kms.decrypt('first', g.sealed, { ...ctxA, extra: 'x' }), 'InvalidCiphertext');
    await rejectsCode(kms.decrypt('second', g.sealed, ctxA), 'InvalidCiphertext');
    for (const i of [0, 1, 4, 5, 40, 80]) {
      const edited = Buffer.from(g.sealed);
      edited[i]! ^= 1;
      await rejectsCode(kms.decrypt('first', edited, ctxA), 'InvalidCiphertext');
    }
    await rejectsCode(kms.decrypt('first', g.sealed.subarray(1), ctxA), 'InvalidCiphertext');
  });

  test('disabled and unknown keys: status, and neither seals nor decrypts', async () => {
    assert.equal(await kms.status('first'), 'enabled');
    assert.equal(await kms.status('off'), 'disabled');
    assert.equal(await kms.status('nope'), 'missing');
    await rejectsCode(kms.generateKey('off', ctxA), 'Disabled');
    await rejectsCode(kms.generateKey('nope', ctxA), 'NotFound');
    const g = await kms.generateKey('first', ctxA);
    await rejectsCode(kms.decrypt('nope', g.sealed, ctxA), 'NotFound');
    assert.deepEqual(await kms.list(), ['first', 'second', 'off']);
  });

  test('rotation: the newest version seals, older versions still decrypt', async () => {
    const v1 = b64();
    const before = kmsOf({ k: v1 });
    const old = await before.generateKey('k', ctxA);
    const after = kmsOf({ k: { versions: [v1, b64()] } });
    assert.equal(after.versions('k'), 2);
    assert.deepEqual(await after.decrypt('k', old.sealed, ctxA), old.plaintext);
    const fresh = await after.generateKey('k', ctxA);
    assert.equal(fresh.sealed.readUInt32BE(1), 2);
    await rejectsCode(before.decrypt('k', fresh.sealed, ctxA), 'InvalidCiphertext');
  });

  test('the keys file: every problem named, no key value echoed', () => {
    const secret = Buffer.alloc(31, 7).toString('base64');
    assert.throws(() => parseLocalKeys('{'), /not valid JSON/);
    assert.throws(() => parseLocalKeys('{}'), /holds no key/);
    assert.throws(
      () => parseLocalKeys(JSON.stringify({ short: secret, 'bad id!': b64() })),
      (e: Error) => /short/.test(e.message) && /bad id!/.test(e.message) && !e.message.includes(secret),
    );
  });

  test('the context is bound canonically: key order does not matter, lengths are prefixed', () => {
    assert.deepEqual(canonicalContext({ a: '1', b: '2' }), canonicalContext({ b: '2', a: '1' }));
    assert.notDeepEqual(canonicalContext({ ab: 'c' }), canonicalContext({ a: 'bc' }));
  });
});

/** A KMS that counts decrypts and can be told to fail. */
function counting(inner: Kms): Kms & { decrypts: number } {
  const k = {
    decrypts: 0,
    defaultKeyId: inner.defaultKeyId,
    generateKey: inner.generateKey.bind(inner),
    decrypt: async (...a: Parameters<Kms['decrypt']>) => {
      k.decrypts++;
      return inner.decrypt(...a);
    },
    status: inner.status.bind(inner),
    list: inner.list.bind(inner),
  };
  return k;
}

describe('cache of unwrapped keys', () => {
  test('a hit makes no KMS call; the caller gets its own copy', async () => {
    const inner = counting(kmsOf({ k: b64() }));
    const cache = new CachingKms(inner);
    const g = await cache.generateKey('k', ctxA);
    const a = await cache.decrypt('k', g.sealed, ctxA);
    a.fill(0); // the caller wipes its copy
    const b = await cache.decrypt('k', g.sealed, ctxA);
    assert.deepEqual(b, g.plaintext);
    assert.equal(inner.decrypts, 1);
    // Another context is another entry (and fails at the KMS).
    await rejectsCode(cache.decrypt('k', g.sealed, ctxB), 'InvalidCiphertext');
    assert.equal(cache.size, 1);
  });

  test('bounded: the least recently used entry is evicted (and wiped)', async () => {
    const inner = counting(kmsOf({ k: b64() }));
    const cache = new CachingKms(inner, { maxEntries: 2 });
    const keys = await Promise.all([1, 2, 3].map(() => cache.generateKey('k', ctxA)));
    await cache.decrypt('k', keys[0]!.sealed, ctxA);
    await cache.decrypt('k', keys[1]!.sealed, ctxA);
    await cache.decrypt('k', keys[0]!.sealed, ctxA); // 0 is now the most recent
    await cache.decrypt('k', keys[2]!.sealed, ctxA); // evicts 1
    assert.equal(cache.size, 2);
    assert.equal(inner.decrypts, 3);
    await cache.decrypt('k', keys[0]!.sealed, ctxA);
    assert.equal(inner.decrypts, 3);
    await cache.decrypt('k', keys[1]!.sealed, ctxA);
    assert.equal(inner.decrypts, 4);
  });

  test('entries expire after the TTL', async () => {
    let now = 1000;
    const inner = counting(kmsOf({ k: b64() }));
    const cache = new CachingKms(inner, { ttlMs: 100, now: () => now });
    const g = await cache.generateKey('k', ctxA);
    await cache.decrypt('k', g.sealed, ctxA);
    now += 99;
    await cache.decrypt('k', g.sealed, ctxA);
    assert.equal(inner.decrypts, 1);
    now += 1;
    assert.deepEqual(await cache.decrypt('k', g.sealed, ctxA), g.plaintext);
    assert.equal(inner.decrypts, 2);
  });

  test('clear() wipes what the cache held', async () => {
    const cache = new CachingKms(kmsOf({ k: b64() }));
    const g = await cache.generateKey('k', ctxA);
    await cache.decrypt('k', g.sealed, ctxA);
    cache.clear();
    assert.equal(cache.size, 0);
  });
});

describe('bucket encryption policy', () => {
  test('first matching pattern wins; anything else is refused', () => {
    const rules = parseBucketEncryption({ 'logs-*': 'sse-kms:team/key', '*': 'sse-s3' });
    assert.deepEqual(bucketEncryptionOf(rules, 'logs-1'), { kind: 'sse-kms', keyId: 'team/key' });
    assert.deepEqual(bucketEncryptionOf(rules, 'other'), { kind: 'sse-s3' });
    assert.deepEqual(bucketEncryptionOf(undefined, 'other'), { kind: 'none' });
    assert.throws(() => parseBucketEncryption({ b: 'sse-xyz' }), /not one of/);
    assert.throws(() => parseBucketEncryption(['sse-s3']), /JSON object/);
  });
});

describe('vectors (docs/FORMAT.md §13.4)', () => {
  const file = JSON.parse(readFileSync(new URL('../vectors/kms-local.json', import.meta.url), 'utf8'));
  const doc = readFileSync(new URL('../../docs/FORMAT.md', import.meta.url), 'utf8');

  for (const v of file.vectors) {
    test(v.name, async () => {
      const versions = (v.masterKeyVersions as string[]).map((h) => Buffer.from(h, 'hex'));
      const draws = [Buffer.from(v.externalKey, 'hex'), Buffer.from(v.salt, 'hex')];
      const kms = new LocalKms(new Map([[v.keyId, { versions, disabled: false }]]), { randomBytes: () => draws.shift()! });
      const managed = { mode: v.mode, keyId: v.keyId, ...(v.clientContext ? { context: v.clientContext } : {}) };
      const context = encryptionContext(managed, v.bucket, v.key);
      assert.deepEqual(context, v.context);
      assert.equal(canonicalContext(context).toString('hex'), v.canonicalContext);
      assert.equal(localKek(versions.at(-1)!, Buffer.from(v.salt, 'hex'), v.keyId, context).toString('hex'), v.kek);
      const g = await kms.generateKey(v.keyId, context);
      assert.equal(g.sealed.toString('hex'), v.sealed);
      assert.equal(formatKmsMeta(managed, g.sealed), v.kmsMeta);
      const parsed = parseKmsMeta(v.kmsMeta);
      assert.deepEqual(parsed.key, managed);
      assert.equal((await kms.decrypt(v.keyId, parsed.sealed, context)).toString('hex'), v.externalKey);
      const opened = openEnvelope(v.envelope, Buffer.from(v.externalKey, 'hex'), v.bucket, v.key);
      assert.equal(opened.dataKey.toString('hex'), v.dataKey);
      for (const value of [v.kek, v.sealed, v.kmsMeta, v.envelope]) assert.ok(doc.includes(value), `FORMAT.md shows ${value.slice(0, 20)}…`);
    });
  }

  test('the generator reproduces the committed file', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', new URL('../vectors/generate-kms.ts', import.meta.url).pathname], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), file);
  });
});
