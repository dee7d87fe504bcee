import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CHUNK_OVERHEAD,
  chunkCount,
  chunkSizeLog2Of,
  cipherRangeFor,
  encryptedSize,
  fullChunkSize,
  isAlignedLayout,
  isNaturalStreamSize,
  isValidEncryptedSize,
  objectCipherSize,
  plaintextSize,
} from '../../src/format/layout.ts';
import { encryptBuffer } from '../../src/format/stream.ts';
import { isFormatError } from '../../src/format/errors.ts';

const TIB = 2 ** 40;
const MAX_OBJECT = 5 * TIB;
const dataKey = Buffer.alloc(32, 7);
const streamId = Buffer.alloc(16, 9);

describe('layout: boundary sizes', () => {
  for (const C of [4096, 65536]) {
    // [plaintext size, expected chunks, expected encrypted size], computed by hand.
    const table: Array<[string, number, number, number]> = [
      ['0', 0, 1, 40],
      ['1', 1, 1, 41],
      ['C-1', C - 1, 1, C + 39],
      ['C', C, 1, C + 40],
      ['C+1', C + 1, 2, C + 1 + 80],
      ['2C-1', 2 * C - 1, 2, 2 * C - 1 + 80],
      ['2C', 2 * C, 2, 2 * C + 80],
      ['2C+1', 2 * C + 1, 3, 2 * C + 1 + 120],
      ['3C+17', 3 * C + 17, 4, 3 * C + 17 + 160],
    ];
    for (const [label, plain, chunks, enc] of table) {
      it(`C=${C}, plaintext ${label}: ${chunks} chunk(s), ${enc} bytes, inverse, real output length`, () => {
        assert.equal(chunkCount(plain, C), chunks);
        assert.equal(encryptedSize(plain, C), enc);
        assert.equal(plaintextSize(enc, C), plain);
        assert.equal(isValidEncryptedSize(enc, C), true);
        const out = encryptBuffer(Buffer.alloc(plain, 0x5a), { dataKey, chunkSize: C, partNumber: 0, randomBytes: () => streamId });
        assert.equal(out.length, enc);
      });
    }
  }

  it('5 TiB is exact with the smallest and the default chunk size', () => {
    assert.equal(CHUNK_OVERHEAD, 40);
    assert.equal(encryptedSize(MAX_OBJECT, 4096), MAX_OBJECT + 40 * (MAX_OBJECT / 4096));
    assert.equal(encryptedSize(MAX_OBJECT, 65536), 5_497_558_138_880 + 3_355_443_200);
    assert.equal(plaintextSize(encryptedSize(MAX_OBJECT + 1, 65536), 65536), MAX_OBJECT + 1);
  });
});

describe('layout: impossible ciphertext sizes', () => {
  const C = 4096;
  const full = C + 40;
  const impossible = [0, 1, 31, 39, full + 1, full + 16, full + 39, full + 40, 2 * full + 40, 7 * full + 5];
  for (const size of impossible) {
    it(`${size} bytes is InvalidCiphertextSize`, () => {
      assert.equal(isValidEncryptedSize(size, C), false);
      assert.throws(() => plaintextSize(size, C), (e) => isFormatError(e, 'InvalidCiphertextSize'));
    });
  }
  it('the smallest sizes after each full chunk are valid', () => {
    assert.equal(plaintextSize(40, C), 0);
    assert.equal(plaintextSize(41, C), 1);
    assert.equal(plaintextSize(full, C), C);
    assert.equal(plaintextSize(full + 41, C), C + 1);
    assert.equal(fullChunkSize(C), full);
  });

  for (const C2 of [4096, 8192]) {
    it(`C=${C2}: the natural sizes are exactly encryptedSize's image (exhaustive over 6 chunks), residues 1..39 never occur`, () => {
      const F = C2 + 40;
      const image = new Set<number>();
      for (let p = 0; p <= 6 * C2; p++) image.add(encryptedSize(p, C2));
      const residues = new Set<number>();
      for (let e = 0; e <= 6 * F; e++) {
        const natural = isNaturalStreamSize(e, C2);
        assert.equal(natural, image.has(e), `size ${e}`);
        assert.equal(isValidEncryptedSize(e, C2), natural);
        if (natural) residues.add(e % F);
        // The documented rule (FORMAT.md §6.2).
        const r = e % F;
        assert.equal(natural, e === 40 || (e > 40 && !(r >= 1 && r <= 40)), `rule at ${e}`);
      }
      for (let r = 1; r <= 39; r++) assert.ok(!residues.has(r), `residue ${r}`);
      assert.ok(residues.has(40)); // only the empty stream, size 40
      assert.ok(!isNaturalStreamSize(F + 40, C2) && !isNaturalStreamSize(5 * F + 40, C2));
    });
  }
});

describe('layout: properties', () => {
  const chunkSizes = fc.constantFrom(2 ** 12, 2 ** 13, 2 ** 16, 2 ** 20, 2 ** 24);

  it('plaintextSize(encryptedSize(n)) == n for n up to 5 TiB', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_OBJECT }), chunkSizes, (n, C) => {
        const e = encryptedSize(n, C);
        assert.equal(plaintextSize(e, C), n);
        assert.equal(e, n + 40 * Math.max(1, Math.ceil(n / C)));
      }),
      { numRuns: 2000 },
    );
  });

  it('a size is accepted iff some plaintext maps to it (checked against neighbours)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_OBJECT }), chunkSizes, fc.integer({ min: -50, max: 50 }), (n, C, delta) => {
        const e = encryptedSize(n, C) + delta;
        if (e < 0) return;
        // Brute force: the plaintext sizes whose encryption lands within 50 bytes of e.
        let valid = false;
        for (let p = Math.max(0, n - 51); p <= n + 51; p++) if (encryptedSize(p, C) === e) valid = true;
        assert.equal(isValidEncryptedSize(e, C), valid, `size ${e}`);
        if (valid) assert.equal(encryptedSize(plaintextSize(e, C), C), e);
        else assert.throws(() => plaintextSize(e, C), (err) => isFormatError(err, 'InvalidCiphertextSize'));
      }),
      { numRuns: 2000 },
    );
  });

  it('cipherRangeFor fetches exactly the chunks that intersect the range', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: MAX_OBJECT }),
        chunkSizes,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (size, C, x, y) => {
          const a = Math.min(size - 1, Math.floor(Math.min(x, y) * size));
          const b = Math.max(a, Math.min(size - 1, Math.floor(Math.max(x, y) * size)));
          const r = cipherRangeFor(a, b, size, C);
          const lastIndex = Math.ceil(size / C) - 1;
          // Chunk k holds plaintext [k*C, min((k+1)*C, size) - 1].
          const intersects = (k: number) => k >= 0 && k <= lastIndex && k * C <= b && Math.min((k + 1) * C, size) - 1 >= a;
          assert.ok(intersects(r.firstChunk) && intersects(r.lastChunk));
          assert.ok(!intersects(r.firstChunk - 1) && !intersects(r.lastChunk + 1));
          assert.equal(r.chunkCount, r.lastChunk - r.firstChunk + 1);
          assert.equal(r.endsWithFinal, r.lastChunk === lastIndex);
          assert.equal(r.cipherStart, r.firstChunk * (C + 40));
          // Fetched = the plaintext bytes of those chunks plus 40 per chunk.
          const fetched = Math.min((r.lastChunk + 1) * C, size) - r.firstChunk * C + 40 * r.chunkCount;
          assert.equal(r.cipherEndInclusive - r.cipherStart + 1, fetched);
          assert.ok(r.cipherEndInclusive < encryptedSize(size, C));
          assert.equal(r.skip, a - r.firstChunk * C);
          assert.ok(r.skip < C);
          assert.equal(r.length, b - a + 1);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('layout: multipart layouts', () => {
  const chunkSizes = fc.constantFrom(2 ** 12, 2 ** 16, 2 ** 24);
  /** Aligned layouts: 0..30 parts of 1..3000 chunks (5 TiB-scale totals at 16 MiB chunks), then any non-empty last part. */
  const aligned = (C: number) =>
    fc
      .tuple(fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 30 }), fc.integer({ min: 1, max: 3 * C }))
      .map(([ks, last]) => [...ks.map((k) => k * C), last]);

  it('objectCipherSize sums encryptedSize over the parts', () => {
    assert.equal(objectCipherSize([5000, 100], 4096), 5080 + 140);
    assert.equal(objectCipherSize([0], 4096), 40);
    assert.throws(() => objectCipherSize([], 4096), RangeError);
    assert.throws(() => objectCipherSize([1, -1], 4096), RangeError);
  });

  it('isAlignedLayout: non-last parts are positive multiples of C; the last part is non-empty unless alone', () => {
    const C = 4096;
    assert.equal(isAlignedLayout([0], C), true);
    assert.equal(isAlignedLayout([7], C), true);
    assert.equal(isAlignedLayout([C, 2 * C, 1], C), true);
    assert.equal(isAlignedLayout([5 * 2 ** 20, 5 * 2 ** 20, 3], 65536), true);
    assert.equal(isAlignedLayout([C, C + 1, 1], C), false);
    assert.equal(isAlignedLayout([0, C], C), false);
    assert.equal(isAlignedLayout([C, 0], C), false); // an empty last part adds a 40-byte stream
    assert.equal(isAlignedLayout([5000, 100], C), false);
    assert.throws(() => isAlignedLayout([], C), RangeError);
  });

  it('an aligned layout has the size of ONE stream of the total plaintext (and a natural size)', () => {
    fc.assert(
      fc.property(
        chunkSizes.chain((C) => fc.tuple(fc.constant(C), aligned(C))),
        ([C, parts]) => {
          assert.ok(isAlignedLayout(parts, C));
          const total = parts.reduce((a, b) => a + b, 0);
          assert.equal(objectCipherSize(parts, C), encryptedSize(total, C));
          assert.ok(isNaturalStreamSize(objectCipherSize(parts, C), C));
          assert.equal(plaintextSize(objectCipherSize(parts, C), C), total);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('the empty-last-part exception: size ends in residue 40, not natural', () => {
    const C = 4096;
    const size = objectCipherSize([2 * C, 0], C);
    assert.equal(size % (C + 40), 40);
    assert.equal(isNaturalStreamSize(size, C), false);
  });

  it('an unaligned layout differs from one stream by 40 bytes per extra (partial) chunk', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5 * 4096 }), { minLength: 2, maxLength: 6 }), (parts) => {
        const C = 4096;
        const total = parts.reduce((a, b) => a + b, 0);
        const chunks = parts.reduce((n, p) => n + chunkCount(p, C), 0);
        assert.equal(objectCipherSize(parts, C), total + 40 * chunks);
        assert.equal(objectCipherSize(parts, C) === encryptedSize(total, C), chunks === chunkCount(total, C));
        if (isAlignedLayout(parts, C)) assert.equal(chunks, chunkCount(total, C));
      }),
      { numRuns: 500 },
    );
  });
});

describe('layout: argument checks', () => {
  it('rejects chunk sizes that are not 2^12..2^24', () => {
    for (const bad of [0, 1, 2048, 4095, 4097, 3 * 4096, 2 ** 25, 1.5, NaN, -4096]) {
      assert.throws(() => chunkSizeLog2Of(bad), RangeError, String(bad));
      assert.throws(() => encryptedSize(1, bad), RangeError);
    }
    assert.equal(chunkSizeLog2Of(4096), 12);
    assert.equal(chunkSizeLog2Of(2 ** 24), 24);
  });
  it('rejects negative, fractional and unsafe sizes', () => {
    for (const bad of [-1, 0.5, 2 ** 53, NaN]) {
      assert.throws(() => encryptedSize(bad, 4096), RangeError);
      assert.throws(() => plaintextSize(bad, 4096), RangeError);
    }
  });
  it('rejects ranges outside the object (HTTP 416 is decided by the caller)', () => {
    assert.throws(() => cipherRangeFor(0, 0, 0, 4096), RangeError);
    assert.throws(() => cipherRangeFor(5, 4, 10, 4096), RangeError);
    assert.throws(() => cipherRangeFor(0, 10, 10, 4096), RangeError);
  });
  it('a one-byte range in the middle fetches one chunk', () => {
    assert.deepEqual(cipherRangeFor(5000, 5000, 10240, 4096), {
      firstChunk: 1,
      lastChunk: 1,
      chunkCount: 1,
      endsWithFinal: false,
      cipherStart: 4136,
      cipherEndInclusive: 8271,
      skip: 904,
      length: 1,
    });
    assert.deepEqual(cipherRangeFor(8192, 10239, 10240, 4096), {
      firstChunk: 2,
      lastChunk: 2,
      chunkCount: 1,
      endsWithFinal: true,
      cipherStart: 8272,
      cipherEndInclusive: 10359,
      skip: 0,
      length: 2048,
    });
  });
});
