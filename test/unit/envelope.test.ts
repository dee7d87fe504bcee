import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isFormatError } from '../../src/format/errors.ts';
import { deriveKek, openEnvelope, parseEnvelopeHeader, resealEnvelope, sealEnvelope } from '../../src/sse-c/envelope.ts';

const customerKey = randomBytes(32);
const otherKey = randomBytes(32);
const BUCKET = 'bucket';
const KEY = 'photos/2024/cat.jpg';

describe('envelope: encoding', () => {
  it('is 112 base64url characters holding version 1, algorithm 1, chunkSizeLog2, flags 0', () => {
    const { value, dataKey, chunkSize } = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY });
    assert.match(value, /^[A-Za-z0-9_-]{112}$/);
    const blob = Buffer.from(value, 'base64url');
    assert.equal(blob.length, 84);
    assert.deepEqual([...blob.subarray(0, 4)], [1, 1, 16, 0]);
    assert.equal(dataKey.length, 32);
    assert.equal(chunkSize, 65536);
    assert.deepEqual(parseEnvelopeHeader(value), { version: 1, algorithm: 1, chunkSizeLog2: 16, chunkSize: 65536 });
  });

  it('seals DK with AES-256-GCM under HKDF(customerKey, salt, label || names), zero nonce, AAD = header', () => {
    const { value, dataKey } = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, chunkSizeLog2: 12 });
    const blob = Buffer.from(value, 'base64url');
    const salt = blob.subarray(4, 36);
    const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    const info = Buffer.concat([Buffer.from('s3-ssec-proxy/v1/kek'), u32(BUCKET.length), Buffer.from(BUCKET), u32(KEY.length), Buffer.from(KEY)]);
    const kek = Buffer.from(hkdfSync('sha256', customerKey, salt, info, 32));
    assert.deepEqual(deriveKek(customerKey, salt, BUCKET, KEY), kek);
    const d = createDecipheriv('aes-256-gcm', kek, Buffer.alloc(12), { authTagLength: 16 });
    d.setAAD(blob.subarray(0, 4));
    d.setAuthTag(blob.subarray(68, 84));
    assert.deepEqual(Buffer.concat([d.update(blob.subarray(36, 68)), d.final()]), dataKey);
  });

  it('draws the data key, then the salt; a given data key draws only the salt', () => {
    const requests: number[] = [];
    const rb = (n: number) => (requests.push(n), Buffer.alloc(n, requests.length));
    const a = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, randomBytes: rb });
    assert.deepEqual(requests, [32, 32]);
    assert.deepEqual(a.dataKey, Buffer.alloc(32, 1));
    assert.deepEqual(Buffer.from(a.value, 'base64url').subarray(4, 36), Buffer.alloc(32, 2));
    requests.length = 0;
    sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, dataKey: Buffer.alloc(32, 9), randomBytes: rb });
    assert.deepEqual(requests, [32]);
  });

  it('a fresh salt every time: the same data key never gives the same envelope', () => {
    const dataKey = randomBytes(32);
    const a = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, dataKey });
    const b = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, dataKey });
    assert.notEqual(a.value, b.value);
    assert.deepEqual(openEnvelope(b.value, customerKey, BUCKET, KEY).dataKey, dataKey);
  });
});

describe('envelope: binding', () => {
  const sealed = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY });
  const unsealFails = (e: unknown) => isFormatError(e, 'EnvelopeUnsealFailed');

  it('opens with the same key and names', () => {
    const opened = openEnvelope(sealed.value, customerKey, BUCKET, KEY);
    assert.deepEqual(opened, { dataKey: sealed.dataKey, chunkSize: 65536, version: 1 });
  });

  it('fails with another customer key, bucket or object key', () => {
    assert.throws(() => openEnvelope(sealed.value, otherKey, BUCKET, KEY), unsealFails);
    assert.throws(() => openEnvelope(sealed.value, customerKey, 'bucket2', KEY), unsealFails);
    assert.throws(() => openEnvelope(sealed.value, customerKey, BUCKET, `${KEY} `), unsealFails);
    assert.throws(() => openEnvelope(sealed.value, customerKey, BUCKET, 'photos/2024/Cat.jpg'), unsealFails);
  });

  it('any other (bucket, key) pair fails, including moved boundaries', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), (b1, k1, b2, k2) => {
        fc.pre(b1 !== b2 || k1 !== k2);
        const s = sealEnvelope({ customerKey, bucket: b1, key: k1, chunkSizeLog2: 12 });
        assert.throws(() => openEnvelope(s.value, customerKey, b2, k2), unsealFails);
      }),
      { numRuns: 200 },
    );
    const s = sealEnvelope({ customerKey, bucket: 'ab', key: 'c' });
    assert.throws(() => openEnvelope(s.value, customerKey, 'a', 'bc'), unsealFails);
  });

  it('binds 1024-byte UTF-8 object keys (beyond node hkdf info limit)', () => {
    const longKey = 'é'.repeat(512);
    assert.equal(Buffer.byteLength(longKey), 1024);
    const s = sealEnvelope({ customerKey, bucket: BUCKET, key: longKey });
    assert.deepEqual(openEnvelope(s.value, customerKey, BUCKET, longKey).dataKey, s.dataKey);
    assert.throws(() => openEnvelope(s.value, customerKey, BUCKET, `${'é'.repeat(511)}e`), unsealFails);
  });

  it('every single-bit change of the envelope is rejected', () => {
    const blob = Buffer.from(sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, chunkSizeLog2: 12 }).value, 'base64url');
    for (let byte = 0; byte < blob.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(blob);
        bad[byte]! ^= 1 << bit;
        const log2 = bad[2]!;
        // Header fields this reader cannot use are UnsupportedVersion; a usable but edited header fails the AAD.
        const expected = byte === 0 || byte === 1 || byte === 3 || (byte === 2 && (log2 < 12 || log2 > 24)) ? 'UnsupportedVersion' : 'EnvelopeUnsealFailed';
        assert.throws(() => openEnvelope(bad.toString('base64url'), customerKey, BUCKET, KEY), (e) => isFormatError(e, expected), `byte ${byte} bit ${bit}`);
      }
    }
  });
});

describe('envelope: malformed input', () => {
  const { value } = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY });
  for (const [label, bad] of [
    ['empty', ''],
    ['one char short', value.slice(0, -1)],
    ['one char long', `${value}A`],
    ['padding', `${value.slice(0, -1)}=`],
    ['standard alphabet', `${value.slice(0, -1)}+`],
    ['whitespace', ` ${value.slice(1)}`],
    ['non-ASCII', `${value.slice(0, -1)}é`],
  ] as const) {
    it(`${label} is EnvelopeMalformed`, () => {
      assert.throws(() => openEnvelope(bad, customerKey, BUCKET, KEY), (e) => isFormatError(e, 'EnvelopeMalformed'));
      assert.throws(() => parseEnvelopeHeader(bad), (e) => isFormatError(e, 'EnvelopeMalformed'));
    });
  }
  it('rejects bad arguments as programmer errors', () => {
    assert.throws(() => sealEnvelope({ customerKey: Buffer.alloc(31), bucket: BUCKET, key: KEY }), RangeError);
    assert.throws(() => openEnvelope(value, Buffer.alloc(33), BUCKET, KEY), RangeError);
    assert.throws(() => sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, chunkSizeLog2: 11 }), RangeError);
    assert.throws(() => sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, chunkSizeLog2: 25 }), RangeError);
    assert.throws(() => sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, dataKey: Buffer.alloc(16) }), RangeError);
    assert.throws(() => sealEnvelope({ customerKey, bucket: BUCKET, key: 'lone \ud800 surrogate' }), TypeError);
    assert.equal(sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, chunkSizeLog2: 24 }).chunkSize, 2 ** 24);
  });
});

describe('envelope: reseal (copies and key rotation)', () => {
  const original = sealEnvelope({ customerKey, bucket: BUCKET, key: KEY, chunkSizeLog2: 13 });

  it('keeps the data key and chunk size, binds the new key and name, uses a fresh salt', () => {
    const moved = resealEnvelope(original.value, customerKey, BUCKET, KEY, otherKey, 'dst', 'copy.jpg');
    assert.deepEqual(moved.dataKey, original.dataKey);
    assert.equal(moved.chunkSize, 2 ** 13);
    assert.deepEqual(openEnvelope(moved.value, otherKey, 'dst', 'copy.jpg'), { dataKey: original.dataKey, chunkSize: 2 ** 13, version: 1 });
    assert.throws(() => openEnvelope(moved.value, customerKey, 'dst', 'copy.jpg'), (e) => isFormatError(e, 'EnvelopeUnsealFailed'));
    assert.throws(() => openEnvelope(moved.value, otherKey, BUCKET, KEY), (e) => isFormatError(e, 'EnvelopeUnsealFailed'));
    assert.notDeepEqual(Buffer.from(moved.value, 'base64url').subarray(4, 36), Buffer.from(original.value, 'base64url').subarray(4, 36));
  });

  it('copy-to-self with the same key gives a new envelope for the same data key', () => {
    const same = resealEnvelope(original.value, customerKey, BUCKET, KEY, customerKey, BUCKET, KEY, () => Buffer.alloc(32, 1));
    assert.notEqual(same.value, original.value);
    assert.deepEqual(Buffer.from(same.value, 'base64url').subarray(4, 36), Buffer.alloc(32, 1));
    assert.deepEqual(openEnvelope(same.value, customerKey, BUCKET, KEY).dataKey, original.dataKey);
  });

  it('fails with the wrong old key', () => {
    assert.throws(
      () => resealEnvelope(original.value, otherKey, BUCKET, KEY, otherKey, BUCKET, KEY),
      (e) => isFormatError(e, 'EnvelopeUnsealFailed'),
    );
  });
});
