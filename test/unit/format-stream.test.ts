import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { CHUNK_HEADER_SIZE, FLAG_FINAL } from '../../src/format/constants.ts';
import { FormatError, isFormatError, type FormatErrorCode } from '../../src/format/errors.ts';
import { cipherRangeFor, encryptedSize } from '../../src/format/layout.ts';
import {
  Decryptor,
  Encryptor,
  createDecryptStream,
  createEncryptStream,
  decryptBuffer,
  encryptBuffer,
  wholeStreamSegment,
  type DecryptSegment,
} from '../../src/format/stream.ts';

const KiB = 1024;

/** Fast deterministic bytes (xorshift32) so properties can use large inputs. */
function bytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed | 0 || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Splits buf at the given cut points (any values; clamped, sorted, may produce empty pieces). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => Math.min(buf.length, c)).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    pieces.push(buf.subarray(prev, p));
    prev = p;
  }
  pieces.push(buf.subarray(prev));
  return pieces;
}

/** Pipes pieces through a transform; returns everything it emitted and the error it ended with. */
async function run(t: Transform, pieces: Buffer[]): Promise<{ out: Buffer; writes: number; error: unknown }> {
  const chunks: Buffer[] = [];
  let error: unknown = null;
  try {
    await pipeline(Readable.from(pieces), t, async (source: AsyncIterable<Buffer>) => {
      for await (const c of source) chunks.push(c);
    });
  } catch (err) {
    error = err;
  }
  return { out: Buffer.concat(chunks), writes: chunks.length, error };
}

const errorCode = (err: unknown): FormatErrorCode | null => (err === null ? null : err instanceof FormatError ? err.code : ((): never => { throw err; })());

const dataKey = randomBytes(32);
const fixedId = (id: Buffer) => () => Buffer.from(id);

const chunkSizes = fc.constantFrom(2 ** 12, 2 ** 16);
/** Plaintext lengths 0..300 KiB, biased towards chunk boundaries. */
const plainLength = fc.oneof(
  fc.integer({ min: 0, max: 300 * KiB }),
  fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -2, max: 2 })).map(([k, d]) => Math.max(0, k * 2 ** 12 + d)),
  fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -2, max: 2 })).map(([k, d]) => Math.max(0, k * 2 ** 16 + d)),
);
const cuts = fc.array(fc.integer({ min: 0, max: 310 * KiB }), { maxLength: 12 });

describe('stream: round trips', () => {
  it('any bytes, any write split, encrypt then decrypt gives them back', async () => {
    await fc.assert(
      fc.asyncProperty(plainLength, fc.integer(), chunkSizes, cuts, cuts, async (len, seed, C, encCuts, decCuts) => {
        const plaintext = bytes(len, seed);
        const enc = await run(createEncryptStream({ dataKey, chunkSize: C, partNumber: 0 }), split(plaintext, encCuts));
        assert.equal(enc.error, null);
        assert.equal(enc.out.length, encryptedSize(len, C));
        const dec = await run(createDecryptStream({ dataKey, chunkSize: C, segments: [wholeStreamSegment(0)] }), split(enc.out, decCuts));
        assert.equal(dec.error, null);
        assert.ok(dec.out.equals(plaintext));
      }),
      { numRuns: 80 },
    );
  });

  it('the stream and encryptBuffer produce the same bytes for the same stream id, however the input is split', async () => {
    await fc.assert(
      fc.asyncProperty(plainLength, fc.integer(), chunkSizes, cuts, async (len, seed, C, encCuts) => {
        const plaintext = bytes(len, seed);
        const id = bytes(12, seed + 1);
        const whole = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 5, randomBytes: fixedId(id) });
        const streamed = await run(createEncryptStream({ dataKey, chunkSize: C, partNumber: 5, randomBytes: fixedId(id) }), split(plaintext, encCuts));
        assert.ok(streamed.out.equals(whole));
      }),
      { numRuns: 60 },
    );
  });

  it('every stream gets a fresh stream id by default', () => {
    const a = encryptBuffer(Buffer.from('same'), { dataKey, chunkSize: 4096, partNumber: 1 });
    const b = encryptBuffer(Buffer.from('same'), { dataKey, chunkSize: 4096, partNumber: 1 });
    assert.notDeepEqual(a.subarray(4, 16), b.subarray(4, 16));
    assert.notDeepEqual(a, b);
  });

  it('an empty stream is one 32-byte final chunk, and an empty input to decrypt is Truncated', () => {
    const ct = encryptBuffer(Buffer.alloc(0), { dataKey, chunkSize: 4096, partNumber: 0 });
    assert.equal(ct.length, 32);
    assert.equal(ct[1], FLAG_FINAL);
    assert.equal(decryptBuffer(ct, { dataKey, chunkSize: 4096 }).length, 0);
    assert.throws(() => decryptBuffer(Buffer.alloc(0), { dataKey, chunkSize: 4096 }), (e) => isFormatError(e, 'Truncated'));
  });
});

describe('stream: ranges', () => {
  it('any range -> cipherRangeFor -> ciphertext slice -> decrypt gives plaintext.slice(a, b + 1)', async () => {
    await fc.assert(
      fc.asyncProperty(
        plainLength.filter((n) => n > 0),
        fc.integer(),
        chunkSizes,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        cuts,
        async (len, seed, C, x, y, decCuts) => {
          const plaintext = bytes(len, seed);
          const ciphertext = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
          const a = Math.min(len - 1, Math.floor(Math.min(x, y) * len));
          const b = Math.max(a, Math.min(len - 1, Math.floor(Math.max(x, y) * len)));
          const r = cipherRangeFor(a, b, len, C);
          const slice = ciphertext.subarray(r.cipherStart, r.cipherEndInclusive + 1);
          // The fetched bytes are whole chunks: they start and end at chunk boundaries of the real ciphertext.
          assert.equal(slice[0], 1);
          assert.equal(r.cipherEndInclusive + 1 === ciphertext.length || ciphertext[r.cipherEndInclusive + 1] === 1, true);
          const segment: DecryptSegment = { partNumber: 0, firstChunk: r.firstChunk, chunkCount: r.chunkCount, endsWithFinal: r.endsWithFinal };
          const dec = await run(createDecryptStream({ dataKey, chunkSize: C, segments: [segment], skip: r.skip, length: r.length }), split(slice, decCuts));
          assert.equal(dec.error, null);
          assert.ok(dec.out.equals(plaintext.subarray(a, b + 1)));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('an open-ended range (chunkCount null) runs to the final chunk', () => {
    const plaintext = bytes(10000, 3);
    const ct = encryptBuffer(plaintext, { dataKey, chunkSize: 4096, partNumber: 0 });
    const out = decryptBuffer(ct.subarray(4128), {
      dataKey,
      chunkSize: 4096,
      segments: [{ partNumber: 0, firstChunk: 1, chunkCount: null, endsWithFinal: true }],
      skip: 10,
    });
    assert.deepEqual(out, plaintext.subarray(4096 + 10));
  });

  it('a length beyond the data is Truncated', () => {
    const ct = encryptBuffer(bytes(100, 4), { dataKey, chunkSize: 4096, partNumber: 0 });
    assert.throws(() => decryptBuffer(ct, { dataKey, chunkSize: 4096, skip: 50, length: 51 }), (e) => isFormatError(e, 'Truncated'));
    assert.equal(decryptBuffer(ct, { dataKey, chunkSize: 4096, skip: 50, length: 50 }).length, 50);
  });
});

describe('stream: the encryptor holds back the final chunk', () => {
  const C = 4096;
  it('emits a chunk only once a later byte proves it is not final', () => {
    const e = new Encryptor({ dataKey, chunkSize: C, partNumber: 0 });
    assert.deepEqual(e.update(bytes(C, 1)), []);
    const one = e.update(bytes(C, 2));
    assert.equal(one.length, 1);
    assert.equal(one[0]!.length, C + 32);
    assert.equal(one[0]![1], 0);
    assert.deepEqual(e.update(Buffer.alloc(0)), []);
    const two = e.update(Buffer.alloc(1));
    assert.equal(Buffer.concat(two).length, C + 32);
    const last = e.final();
    assert.equal(last.length, 1 + 32);
    assert.equal(last[1], FLAG_FINAL);
  });

  it('if the source fails, no final chunk is ever emitted', async () => {
    async function* failing() {
      yield bytes(3 * C, 5);
      await new Promise((resolve) => setTimeout(resolve, 20)); // let the emitted chunks reach the sink
      throw new Error('Content-MD5 mismatch');
    }
    const chunks: Buffer[] = [];
    await assert.rejects(
      pipeline(Readable.from(failing()), createEncryptStream({ dataKey, chunkSize: C, partNumber: 0 }), async (src: AsyncIterable<Buffer>) => {
        for await (const c of src) chunks.push(c);
      }),
      /Content-MD5 mismatch/,
    );
    const out = Buffer.concat(chunks);
    assert.equal(out.length, 2 * (C + 32));
    for (let off = 0; off < out.length; off += C + 32) assert.equal(out[off + 1]! & FLAG_FINAL, 0);
  });

  it('emits large batches, not one push per chunk', async () => {
    const e = new Encryptor({ dataKey, chunkSize: C, partNumber: 0 });
    const batches = e.update(bytes(4 * 1024 * KiB, 6));
    assert.ok(batches.length <= 5, `${batches.length} batches`);
    for (const b of batches) assert.ok(b.length <= 1024 * KiB && b.length % (C + 32) === 0);
    assert.equal(batches.reduce((n, b) => n + b.length, 0), (1024 - 1) * (C + 32));
    const r = await run(createEncryptStream({ dataKey, chunkSize: C, partNumber: 0 }), [bytes(4 * 1024 * KiB, 6)]);
    assert.ok(r.writes <= 6, `${r.writes} pushes`);
  });
});

describe('stream: tampering never releases unverified plaintext', () => {
  const C = 4096;
  const full = C + 32;
  const sample = fc.tuple(fc.integer({ min: 0, max: 6 * C }), fc.integer());

  function verifiedPrefixLength(badChunk: number): number {
    return badChunk * C;
  }

  it('a flipped bit anywhere fails, releasing at most the chunks before it', async () => {
    await fc.assert(
      fc.asyncProperty(sample, fc.nat(), fc.integer({ min: 0, max: 7 }), cuts, async ([len, seed], pos, bit, decCuts) => {
        const plaintext = bytes(len, seed);
        const ct = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
        const at = pos % ct.length;
        const bad = Buffer.from(ct);
        bad[at]! ^= 1 << bit;
        const sync = decryptCollect(bad, C);
        assert.notEqual(sync.error, null);
        const limit = verifiedPrefixLength(Math.floor(at / full));
        assert.ok(sync.released.length <= limit, `released ${sync.released.length} > ${limit}`);
        assert.ok(sync.released.equals(plaintext.subarray(0, sync.released.length)));
        const streamed = await run(createDecryptStream({ dataKey, chunkSize: C, segments: [wholeStreamSegment(0)] }), split(bad, decCuts));
        assert.equal(errorCode(streamed.error), sync.error);
        assert.ok(streamed.out.equals(sync.released.subarray(0, streamed.out.length)));
      }),
      { numRuns: 300 },
    );
  });

  it('any truncation fails; a cut ciphertext never decrypts', () => {
    fc.assert(
      fc.property(sample, fc.nat(), ([len, seed], cut) => {
        const plaintext = bytes(len, seed);
        const ct = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
        const r = decryptCollect(ct.subarray(0, cut % ct.length), C);
        assert.ok(r.error === 'Truncated' || r.error === 'ChunkAuthFailed' || r.error === 'InvalidCiphertextSize', String(r.error));
        assert.ok(r.released.equals(plaintext.subarray(0, r.released.length)));
        assert.ok(r.released.length < Math.max(1, len) || len === 0);
      }),
      { numRuns: 300 },
    );
  });

  it('any extension fails', () => {
    fc.assert(
      fc.property(sample, fc.uint8Array({ minLength: 1, maxLength: 5000 }), ([len, seed], extra) => {
        const plaintext = bytes(len, seed);
        const ct = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
        const r = decryptCollect(Buffer.concat([ct, extra]), C);
        assert.ok(r.error === 'TrailingData' || r.error === 'ChunkAuthFailed', String(r.error));
        // The final chunk is never released when something follows it.
        assert.ok(r.released.length <= Math.max(0, (Math.ceil(len / C) - 1) * C));
      }),
      { numRuns: 200 },
    );
  });

  it('after an error the decryptor keeps failing with the same error', () => {
    const ct = encryptBuffer(bytes(5000, 1), { dataKey, chunkSize: C, partNumber: 0 });
    const d = new Decryptor({ dataKey, chunkSize: C, segments: [wholeStreamSegment(0)] });
    const bad = Buffer.from(ct);
    bad[20]! ^= 1;
    let first: unknown;
    assert.throws(() => d.update(bad, []), (e) => ((first = e), isFormatError(e, 'ChunkAuthFailed')));
    assert.throws(() => d.final([]), (e) => e === first);
  });

  it('a single PUT read as a part is StreamMismatch', () => {
    const ct = encryptBuffer(bytes(10, 1), { dataKey, chunkSize: C, partNumber: 0 });
    assert.throws(() => decryptBuffer(ct, { dataKey, chunkSize: C, segments: [wholeStreamSegment(1)] }), (e) => isFormatError(e, 'StreamMismatch'));
  });
});

describe('stream: multiple segments (multipart parts)', () => {
  const C = 4096;
  const parts = fc.array(fc.tuple(fc.integer({ min: 0, max: 3 * C + 5 }), fc.integer({ min: 1, max: 3 })), { minLength: 1, maxLength: 4 });

  it('concatenated part streams decrypt with declared or header part numbers, any split', async () => {
    await fc.assert(
      fc.asyncProperty(parts, fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.integer(), cuts, async (spec, start, declared, seed, decCuts) => {
        let partNumber = start;
        const plain: Buffer[] = [];
        const cipher: Buffer[] = [];
        const segments: DecryptSegment[] = [];
        spec.forEach(([len, gap], i) => {
          const p = bytes(len, seed + i);
          const c = encryptBuffer(p, { dataKey, chunkSize: C, partNumber });
          plain.push(p);
          cipher.push(c);
          segments.push({ partNumber: declared ? partNumber : null, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: c.length });
          partNumber += gap;
        });
        const r = await run(createDecryptStream({ dataKey, chunkSize: C, segments }), split(Buffer.concat(cipher), decCuts));
        assert.equal(r.error, null);
        assert.ok(r.out.equals(Buffer.concat(plain)));
      }),
      { numRuns: 80 },
    );
  });

  it('a missing part is Truncated, an extra one TrailingData, a repeated one StreamMismatch', () => {
    const p1 = encryptBuffer(bytes(5000, 1), { dataKey, chunkSize: C, partNumber: 1 });
    const p2 = encryptBuffer(bytes(100, 2), { dataKey, chunkSize: C, partNumber: 2 });
    const seg = (n: number | null, len: number): DecryptSegment => ({ partNumber: n, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: len });
    assert.throws(() => decryptBuffer(p1, { dataKey, chunkSize: C, segments: [seg(1, p1.length), seg(2, p2.length)] }), (e) => isFormatError(e, 'Truncated'));
    assert.throws(() => decryptBuffer(Buffer.concat([p1, p2]), { dataKey, chunkSize: C, segments: [seg(1, p1.length)] }), (e) => isFormatError(e, 'TrailingData'));
    assert.throws(
      () => decryptBuffer(Buffer.concat([p1, p1]), { dataKey, chunkSize: C, segments: [seg(null, p1.length), seg(null, p1.length)] }),
      (e) => isFormatError(e, 'StreamMismatch'),
    );
  });

  it('rejects inconsistent segment descriptions as programmer errors', () => {
    const bad: Array<readonly DecryptSegment[]> = [
      [],
      [{ partNumber: 0, firstChunk: 0, chunkCount: null, endsWithFinal: false }],
      [{ partNumber: 0, firstChunk: 0, chunkCount: 0, endsWithFinal: true }],
      [{ partNumber: 10001, firstChunk: 0, chunkCount: null, endsWithFinal: true }],
      [{ partNumber: 0, firstChunk: -1, chunkCount: null, endsWithFinal: true }],
      [wholeStreamSegment(1), wholeStreamSegment(2)], // first may end with a final chunk of unknown length
      [{ partNumber: 1, firstChunk: 0, chunkCount: 2, endsWithFinal: false, byteLength: 100 }],
      [{ partNumber: 1, firstChunk: 0, chunkCount: 2, endsWithFinal: true, byteLength: 2 * (C + 32) + 1 }],
    ];
    for (const segments of bad) {
      assert.throws(() => new Decryptor({ dataKey, chunkSize: C, segments }), (e) => e instanceof RangeError || e instanceof TypeError, JSON.stringify(segments));
    }
  });
});

describe('stream: argument checks', () => {
  it('rejects bad keys, chunk sizes, part numbers and randomness', () => {
    assert.throws(() => new Encryptor({ dataKey: Buffer.alloc(16), chunkSize: 4096, partNumber: 0 }), RangeError);
    assert.throws(() => new Encryptor({ dataKey, chunkSize: 5000, partNumber: 0 }), RangeError);
    assert.throws(() => new Encryptor({ dataKey, chunkSize: 4096, partNumber: 10001 }), RangeError);
    assert.throws(() => new Encryptor({ dataKey, chunkSize: 4096, partNumber: 0, randomBytes: () => Buffer.alloc(8) }), RangeError);
    assert.throws(() => new Decryptor({ dataKey, chunkSize: 4096, segments: [wholeStreamSegment(0)], skip: -1 }), RangeError);
  });
  it('the header it writes is version 1, part number, stream id', () => {
    const id = Buffer.from('0123456789ab');
    const ct = encryptBuffer(Buffer.alloc(5000), { dataKey, chunkSize: 4096, partNumber: 513, randomBytes: fixedId(id) });
    assert.equal(ct.subarray(0, CHUNK_HEADER_SIZE).toString('hex'), `01000201${id.toString('hex')}`);
    assert.equal(ct.subarray(4128, 4128 + CHUNK_HEADER_SIZE).toString('hex'), `01010201${id.toString('hex')}`);
  });
});

function decryptCollect(body: Buffer, chunkSize: number): { released: Buffer; error: FormatErrorCode | null } {
  const out: Buffer[] = [];
  const d = new Decryptor({ dataKey, chunkSize, segments: [wholeStreamSegment(0)] });
  let error: FormatErrorCode | null = null;
  try {
    d.update(body, out);
    d.final(out);
  } catch (err) {
    error = errorCode(err);
  }
  return { released: Buffer.concat(out), error };
}
