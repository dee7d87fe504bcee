/**
 * A stored single-PUT object cut at a chunk boundary has the size of a shorter, valid object: the proxy then
 * announces the shorter plaintext length (Content-Length) and the chunks that remain are genuine. The cut is
 * known only at the end, where the last chunk turns out not to be FINAL. The decryptor must not have released
 * that chunk's plaintext by then, so the client always gets fewer bytes than announced (a short body it cannot
 * take for a whole one), for whole reads and for ranges that touch the end.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { CHUNK_OVERHEAD } from '../../src/format/constants.ts';
import { FormatError } from '../../src/format/errors.ts';
import { cipherRangeFor, plaintextSize } from '../../src/format/layout.ts';
import { Decryptor, encryptBuffer, objectRangeRead, wholeObjectRead, type DecryptOptions } from '../../src/format/stream.ts';

const C = 4096;
const F = C + CHUNK_OVERHEAD;
const dataKey = randomBytes(32);

/** Feeds `input` in pieces of `piece` bytes; what was released before the end or the error. */
function decrypt(input: Buffer, options: Omit<DecryptOptions, 'dataKey' | 'chunkSize'>, piece: number): { released: number; error: unknown } {
  const d = new Decryptor({ dataKey, chunkSize: C, ...options });
  const out: Buffer[] = [];
  try {
    for (let i = 0; i < input.length; i += piece) d.update(input.subarray(i, i + piece), out);
    d.final(out);
    return { released: out.reduce((n, b) => n + b.length, 0), error: null };
  } catch (error) {
    return { released: out.reduce((n, b) => n + b.length, 0), error };
  }
}

const cases = fc.record({
  chunks: fc.integer({ min: 2, max: 9 }),
  tail: fc.integer({ min: 0, max: C }),
  seed: fc.integer({ min: 1, max: 1000 }),
  piece: fc.constantFrom(1, 40, 1000, F, 3 * F, 1 << 20),
});

test('whole read of a single PUT cut at any chunk boundary: Truncated, and less than the announced length released', () => {
  fc.assert(
    fc.property(cases, ({ chunks, tail, seed, piece }) => {
      const plaintext = Buffer.alloc((chunks - 1) * C + tail, seed);
      const ct = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
      for (let k = 1; k * F < ct.length; k++) {
        const cut = ct.subarray(0, k * F);
        const announced = plaintextSize(cut.length, C);
        const r = decrypt(cut, { selfDescribing: wholeObjectRead() }, piece);
        assert.ok(r.error instanceof FormatError && r.error.code === 'Truncated', String(r.error));
        assert.ok(r.released < announced, `cut after ${k} chunks: ${r.released} of ${announced} released`);
      }
    }),
    { numRuns: 60 },
  );
});

test('a range touching the end of a cut single PUT: Truncated, and less than the range released', () => {
  fc.assert(
    fc.property(cases, fc.integer({ min: 1, max: 3 * C }), ({ chunks, tail, seed, piece }, width) => {
      const plaintext = Buffer.alloc((chunks - 1) * C + tail, seed);
      const ct = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
      for (let k = 1; k * F < ct.length; k++) {
        const cut = ct.subarray(0, k * F);
        const size = plaintextSize(cut.length, C);
        const a = Math.max(0, size - width);
        const r = cipherRangeFor(a, size - 1, size, C);
        const body = cut.subarray(r.cipherStart, r.cipherEndInclusive + 1);
        const got = decrypt(body, { selfDescribing: objectRangeRead(r), skip: r.skip, length: size - a }, piece);
        assert.ok(got.error instanceof FormatError && got.error.code === 'Truncated', String(got.error));
        assert.ok(got.released < size - a, `cut after ${k} chunks, range ${a}-${size - 1}: ${got.released} released`);
      }
    }),
    { numRuns: 60 },
  );
});

test('an intact object still releases every byte, in pieces of any size', () => {
  for (const piece of [1, 1000, F, 1 << 20]) {
    const plaintext = randomBytes(5 * C + 17);
    const ct = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
    assert.deepEqual(decrypt(ct, { selfDescribing: wholeObjectRead() }, piece), { released: plaintext.length, error: null });
  }
});
