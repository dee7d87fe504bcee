/** Tail records (docs/FORMAT.md §5.6): seal/open, the published vector, tampering, and the stripper. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isFormatError } from '../../src/format/errors.ts';
import { cipherRangeFor, encryptedSize } from '../../src/format/layout.ts';
import { decryptBuffer, encryptBuffer, wholeObjectRead } from '../../src/format/stream.ts';
import { createTailStripper, openTail, readTail, sealTail, TAIL_SIZE } from '../../src/format/tail.ts';
import { split } from '../support/bytes.ts';

const DK = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const NONCE = Buffer.from('000102030405060708090a0b', 'hex');
const TAIL_VECTOR =
  '01010003000000000001e240000102030405060708090a0bc88ef1406cc9f2d7f5ef41e259cd87035916ff4b7deff6f5bbe15bd4441534d1198979859fbf235a66bce0b48e4665e1caa129bb189df235';

describe('tail record', () => {
  test('seals and opens: part number, plaintext size and the raw digest; the clear fields read without a key', () => {
    const digest = Buffer.from('adb9d76f', 'hex');
    const rec = sealTail(DK, { partNumber: 3, plainSize: 123456, algorithm: 'crc32', digest });
    assert.equal(rec.length, TAIL_SIZE);
    assert.deepEqual(readTail(rec), { partNumber: 3, plainSize: 123456, algorithm: 'crc32' });
    const opened = openTail(DK, rec);
    assert.ok(opened.digest?.equals(digest));
    const none = openTail(DK, sealTail(DK, { partNumber: 0, plainSize: 0 }));
    assert.equal(none.algorithm, undefined);
    assert.equal(none.digest, undefined);
    const sha = randomBytes(32);
    assert.ok(openTail(DK, sealTail(DK, { partNumber: 10000, plainSize: 5 * 2 ** 40, algorithm: 'sha256', digest: sha })).digest?.equals(sha));
  });

  test('the published vector (fixed nonce) is stable', () => {
    const rec = sealTail(DK, { partNumber: 3, plainSize: 123456, algorithm: 'crc32', digest: Buffer.from('adb9d76f', 'hex') }, NONCE);
    assert.equal(rec.toString('hex'), TAIL_VECTOR);
    assert.equal(openTail(DK, Buffer.from(TAIL_VECTOR, 'hex')).digest?.toString('hex'), 'adb9d76f');
  });

  test('every edited byte, another key or a cut record is refused', () => {
    const rec = sealTail(DK, { partNumber: 2, plainSize: 999, algorithm: 'crc32c', digest: Buffer.alloc(4, 9) });
    for (let i = 0; i < TAIL_SIZE; i++) {
      const bad = Buffer.from(rec);
      bad[i]! ^= 0x01;
      assert.throws(() => openTail(DK, bad), (e) => isFormatError(e, 'TailAuthFailed') || isFormatError(e, 'TailInvalid'), `byte ${i}`);
    }
    const other = Buffer.from(DK);
    other[31]! ^= 1;
    assert.throws(() => openTail(other, rec), (e) => isFormatError(e, 'TailAuthFailed'));
    assert.throws(() => readTail(rec.subarray(1)), (e) => isFormatError(e, 'TailInvalid'));
  });
});

/** A multipart object as stored: each part's stream followed by its tail. */
function tailedObject(sizes: number[], C: number) {
  const plain: Buffer[] = [];
  const stored: Buffer[] = [];
  const chunksOnly: Buffer[] = [];
  sizes.forEach((n, i) => {
    const p = randomBytes(n);
    const ct = encryptBuffer(p, { dataKey: DK, chunkSize: C, partNumber: i + 1 });
    plain.push(p);
    chunksOnly.push(ct);
    stored.push(ct, sealTail(DK, { partNumber: i + 1, plainSize: n }));
  });
  return { plain: Buffer.concat(plain), stored: Buffer.concat(stored), chunks: Buffer.concat(chunksOnly) };
}


async function strip(pieces: Buffer[], C: number): Promise<Buffer> {
  return buffer(Readable.from(pieces).pipe(createTailStripper(C)));
}

describe('tail stripper', () => {
  const C = 4096;
  test('removes exactly the records, for any part sizes and any input split; the result decrypts as a whole read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 3 * C + 7 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (sizes, cuts) => {
          const o = tailedObject(sizes, C);
          const out = await strip(split(o.stored, cuts.map((c) => c % (o.stored.length + 1))), C);
          assert.ok(out.equals(o.chunks));
          assert.ok(decryptBuffer(out, { dataKey: DK, chunkSize: C, selfDescribing: wholeObjectRead() }).equals(o.plain));
        },
      ),
      { numRuns: 150 },
    );
  });

  test('a ranged read from a chunk boundary: through a final chunk and its record, or stopping before it', async () => {
    const o = tailedObject([2 * C + 5], C);
    const r = cipherRangeFor(C, 2 * C + 4, 2 * C + 5, C);
    const out = await strip([o.stored.subarray(r.cipherStart, r.cipherEndInclusive + 1 + TAIL_SIZE)], C);
    assert.ok(out.equals(o.chunks.subarray(r.cipherStart, r.cipherEndInclusive + 1)));
    assert.equal(encryptedSize(2 * C + 5, C) + TAIL_SIZE, o.stored.length);
    const mid = cipherRangeFor(0, 2 * C - 1, 2 * C + 5, C);
    assert.ok((await strip([o.stored.subarray(0, mid.cipherEndInclusive + 1)], C)).equals(o.chunks.subarray(0, mid.cipherEndInclusive + 1)));
    await assert.rejects(strip([o.stored.subarray(r.cipherStart, r.cipherEndInclusive + 1)], C), (e) => isFormatError(e, 'TailInvalid'));
  });

  test('garbage where a record belongs fails with TailInvalid', async () => {
    const o = tailedObject([100, 200], C);
    const bad = Buffer.from(o.stored);
    bad.fill(0xee, encryptedSize(100, C), encryptedSize(100, C) + TAIL_SIZE);
    await assert.rejects(strip([bad], C), (e) => isFormatError(e, 'TailInvalid'));
  });
});
