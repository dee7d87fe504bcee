import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { CHUNK_HEADER_SIZE, FLAG_FINAL } from '../../src/format/constants.ts';
import { FormatError, isFormatError, type FormatErrorCode } from '../../src/format/errors.ts';
import { cipherRangeFor, encryptedSize, isAlignedLayout, objectCipherSize } from '../../src/format/layout.ts';
import {
  Decryptor,
  Encryptor,
  createDecryptStream,
  createEncryptStream,
  decryptBuffer,
  encryptBuffer,
  objectRangeRead,
  objectSegment,
  wholeObjectRead,
  wholeStreamSegment,
  type DecryptSegment,
  type SelfDescribingRead,
} from '../../src/format/stream.ts';
import { split } from '../support/bytes.ts';

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
        const id = bytes(16, seed + 1);
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
    assert.notDeepEqual(a.subarray(8, 24), b.subarray(8, 24));
    assert.notDeepEqual(a, b);
  });

  it('an empty stream is one 40-byte final chunk, and an empty input to decrypt is Truncated', () => {
    const ct = encryptBuffer(Buffer.alloc(0), { dataKey, chunkSize: 4096, partNumber: 0 });
    assert.equal(ct.length, 40);
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
    const out = decryptBuffer(ct.subarray(4136), {
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
    assert.equal(one[0]!.length, C + 40);
    assert.equal(one[0]![1], 0);
    assert.deepEqual(e.update(Buffer.alloc(0)), []);
    const two = e.update(Buffer.alloc(1));
    assert.equal(Buffer.concat(two).length, C + 40);
    const last = e.final();
    assert.equal(last.length, 1 + 40);
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
    assert.equal(out.length, 2 * (C + 40));
    for (let off = 0; off < out.length; off += C + 40) assert.equal(out[off + 1]! & FLAG_FINAL, 0);
  });

  it('emits large batches, not one push per chunk', async () => {
    const e = new Encryptor({ dataKey, chunkSize: C, partNumber: 0 });
    const batches = e.update(bytes(4 * 1024 * KiB, 6));
    assert.ok(batches.length <= 5, `${batches.length} batches`);
    for (const b of batches) assert.ok(b.length <= 1024 * KiB && b.length % (C + 40) === 0);
    assert.equal(batches.reduce((n, b) => n + b.length, 0), (1024 - 1) * (C + 40));
    const r = await run(createEncryptStream({ dataKey, chunkSize: C, partNumber: 0 }), [bytes(4 * 1024 * KiB, 6)]);
    assert.ok(r.writes <= 6, `${r.writes} pushes`);
  });
});

describe('stream: tampering never releases unverified plaintext', () => {
  const C = 4096;
  const full = C + 40;
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
      [{ partNumber: 1, firstChunk: 0, chunkCount: 2, endsWithFinal: true, byteLength: 2 * (C + 40) + 1 }],
    ];
    for (const segments of bad) {
      assert.throws(() => new Decryptor({ dataKey, chunkSize: C, segments }), (e) => e instanceof RangeError || e instanceof TypeError, JSON.stringify(segments));
    }
  });
});

/** A multipart object: each part its own stream with its own part number; the body is the parts concatenated. */
interface Multipart {
  plaintext: Buffer;
  body: Buffer;
  parts: Array<{ partNumber: number; plain: Buffer; cipher: Buffer; offset: number }>;
}

function buildMultipart(sizes: readonly number[], partNumbers: readonly number[], seed: number, C: number): Multipart {
  const parts: Multipart['parts'] = [];
  let offset = 0;
  sizes.forEach((n, i) => {
    const plain = bytes(n, seed + i);
    const cipher = encryptBuffer(plain, { dataKey, chunkSize: C, partNumber: partNumbers[i]! });
    parts.push({ partNumber: partNumbers[i]!, plain, cipher, offset });
    offset += cipher.length;
  });
  return { plaintext: Buffer.concat(parts.map((p) => p.plain)), body: Buffer.concat(parts.map((p) => p.cipher)), parts };
}

/** Increasing part numbers from `start` with the given gaps (>= 1), e.g. 2, 3, 5. */
function partNumbersOf(count: number, start: number, gaps: readonly number[]): number[] {
  const out: number[] = [];
  let n = start;
  for (let i = 0; i < count; i++) {
    out.push(n);
    n += gaps[i % Math.max(1, gaps.length)] ?? 1;
  }
  return out;
}

function sdCollect(body: Buffer, C: number, read: SelfDescribingRead, skip?: number, length?: number) {
  return collect(body, { dataKey, chunkSize: C, selfDescribing: read, skip, length });
}

describe('stream: self-describing reads of multipart objects', () => {
  const C = 4096;
  const gapsArb = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 });
  /** Aligned: 0..4 parts of 1..3 whole chunks, then a last part of 1..3C+5 bytes. */
  const alignedSizes = fc
    .tuple(fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 4 }), fc.integer({ min: 1, max: 3 * C + 5 }))
    .map(([ks, last]) => [...ks.map((k) => k * C), last]);
  /** Any layout, including short and empty middle parts and an empty last part. */
  const anySizes = fc.array(
    fc.oneof(fc.integer({ min: 0, max: 3 * C + 5 }), fc.integer({ min: 1, max: 3 }).map((k) => k * C), fc.constantFrom(0, 1, C - 1, C + 1)),
    { minLength: 1, maxLength: 5 },
  );

  it('aligned layouts: the object is one stream of the total plaintext in size and chunk grid; whole reads decrypt, any split', async () => {
    await fc.assert(
      fc.asyncProperty(alignedSizes, fc.integer({ min: 1, max: 4 }), gapsArb, fc.integer(), cuts, async (sizes, start, gaps, seed, decCuts) => {
        const m = buildMultipart(sizes, partNumbersOf(sizes.length, start, gaps), seed, C);
        assert.ok(isAlignedLayout(sizes, C));
        assert.equal(m.body.length, objectCipherSize(sizes, C));
        assert.equal(m.body.length, encryptedSize(m.plaintext.length, C));
        // Every chunk of the object sits at j * (C + 40): headers exactly there, all full except the last.
        const F = C + 40;
        for (let j = 0; j * F < m.body.length; j++) assert.equal(m.body[j * F], 1, `chunk ${j}`);
        const r = await run(createDecryptStream({ dataKey, chunkSize: C, selfDescribing: wholeObjectRead() }), split(m.body, decCuts));
        assert.equal(r.error, null);
        assert.ok(r.out.equals(m.plaintext));
      }),
      { numRuns: 120 },
    );
  });

  it('aligned layouts: any range -> cipherRangeFor(total) -> ONE slice of the body -> self-describing decrypt', async () => {
    await fc.assert(
      fc.asyncProperty(
        alignedSizes,
        fc.integer({ min: 1, max: 4 }),
        gapsArb,
        fc.integer(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        cuts,
        async (sizes, start, gaps, seed, x, y, decCuts) => {
          const m = buildMultipart(sizes, partNumbersOf(sizes.length, start, gaps), seed, C);
          const total = m.plaintext.length;
          const a = Math.min(total - 1, Math.floor(Math.min(x, y) * total));
          const b = Math.max(a, Math.min(total - 1, Math.floor(Math.max(x, y) * total)));
          const r = cipherRangeFor(a, b, total, C);
          const slice = m.body.subarray(r.cipherStart, r.cipherEndInclusive + 1);
          const t = await run(
            createDecryptStream({ dataKey, chunkSize: C, selfDescribing: objectRangeRead(r), skip: r.skip, length: r.length }),
            split(slice, decCuts),
          );
          assert.equal(t.error, null);
          assert.ok(t.out.equals(m.plaintext.subarray(a, b + 1)));
          // The same with the synchronous core and with the segment form.
          const sync = sdCollect(slice, C, objectRangeRead(r), r.skip, r.length);
          assert.equal(sync.error, null);
          assert.ok(sync.released.equals(m.plaintext.subarray(a, b + 1)));
          const viaSegments = decryptBuffer(slice, { dataKey, chunkSize: C, segments: objectSegment(objectRangeRead(r)), skip: r.skip, length: r.length });
          assert.ok(viaSegments.equals(m.plaintext.subarray(a, b + 1)));
        },
      ),
      { numRuns: 250 },
    );
  });

  it('any layout (unaligned, empty parts): a whole read finds the part boundaries from the FINAL flags, any split', async () => {
    await fc.assert(
      fc.asyncProperty(anySizes, fc.integer({ min: 1, max: 4 }), gapsArb, fc.integer(), cuts, async (sizes, start, gaps, seed, decCuts) => {
        const m = buildMultipart(sizes, partNumbersOf(sizes.length, start, gaps), seed, C);
        const r = await run(createDecryptStream({ dataKey, chunkSize: C, selfDescribing: wholeObjectRead() }), split(m.body, decCuts));
        assert.equal(r.error, null);
        assert.ok(r.out.equals(m.plaintext));
      }),
      { numRuns: 150 },
    );
  });

  it('a single PUT read in self-describing mode: whole and ranged, with full positional checks', () => {
    fc.assert(
      fc.property(plainLength.filter((n) => n > 0), fc.integer(), fc.nat(), fc.nat(), (len, seed, x, y) => {
        const plaintext = bytes(len, seed);
        const ct = encryptBuffer(plaintext, { dataKey, chunkSize: C, partNumber: 0 });
        assert.ok(decryptBuffer(ct, { dataKey, chunkSize: C, selfDescribing: wholeObjectRead() }).equals(plaintext));
        const a = Math.min(x, y) % len;
        const b = Math.max(a, Math.max(x, y) % len);
        const r = cipherRangeFor(a, b, len, C);
        const slice = ct.subarray(r.cipherStart, r.cipherEndInclusive + 1);
        const ok = sdCollect(slice, C, objectRangeRead(r), r.skip, r.length);
        assert.equal(ok.error, null);
        assert.ok(ok.released.equals(plaintext.subarray(a, b + 1)));
        // The store serves the chunks of another offset: part 0 chunks must sit at their object index.
        if (r.firstChunk > 0) {
          const F = C + 40;
          const wrong = ct.subarray(r.cipherStart - F, r.cipherStart); // chunk firstChunk - 1, a full chunk
          assert.equal(sdCollect(wrong, C, { endsWithFinal: false, firstObjectChunk: r.firstChunk }).error, 'StreamMismatch');
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a flipped bit anywhere in a multipart body fails a whole read, releasing only a verified prefix', () => {
    fc.assert(
      fc.property(anySizes, fc.integer(), fc.nat(), fc.integer({ min: 0, max: 7 }), (sizes, seed, pos, bit) => {
        const m = buildMultipart(sizes, partNumbersOf(sizes.length, 1, [1]), seed, C);
        const at = pos % m.body.length;
        const bad = Buffer.from(m.body);
        bad[at]! ^= 1 << bit;
        const r = sdCollect(bad, C, wholeObjectRead());
        assert.notEqual(r.error, null);
        assert.ok(r.released.equals(m.plaintext.subarray(0, r.released.length)));
        // Nothing of the part holding the flipped byte, nor of its predecessor's final chunk, is released
        // beyond the chunks before the flipped one.
        const part = m.parts.findLast((p) => p.offset <= at)!;
        const before = m.parts.filter((p) => p.offset < part.offset).reduce((n, p) => n + p.plain.length, 0);
        const chunkInPart = Math.floor((at - part.offset) / (C + 40));
        assert.ok(r.released.length <= before + chunkInPart * C, `released ${r.released.length}`);
      }),
      { numRuns: 300 },
    );
  });

  it('any cut of a multipart body fails a whole read, except exactly at a part boundary (FORMAT.md §9.4)', () => {
    fc.assert(
      fc.property(anySizes, fc.integer(), fc.nat(), (sizes, seed, cut) => {
        const m = buildMultipart(sizes, partNumbersOf(sizes.length, 1, [1]), seed, C);
        const at = cut % m.body.length;
        const r = sdCollect(m.body.subarray(0, at), C, wholeObjectRead());
        const boundary = m.parts.findIndex((p) => p.offset === at);
        if (boundary > 0) {
          assert.equal(r.error, null); // the last parts dropped: undetectable without a part table
          assert.ok(r.released.equals(Buffer.concat(m.parts.slice(0, boundary).map((p) => p.plain))));
        } else {
          assert.ok(r.error === 'Truncated' || r.error === 'ChunkAuthFailed', String(r.error));
          assert.ok(r.released.equals(m.plaintext.subarray(0, r.released.length)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a part boundary is accepted only after FINAL, at index 0, with a greater part number', () => {
    const p2 = encryptBuffer(bytes(2 * C, 1), { dataKey, chunkSize: C, partNumber: 2 }); // chunks 0, 1 (final, full)
    const p3 = encryptBuffer(bytes(C + 10, 2), { dataKey, chunkSize: C, partNumber: 3 }); // chunks 0, 1 (final, short)
    const p1 = encryptBuffer(bytes(C, 3), { dataKey, chunkSize: C, partNumber: 1 });
    const put = encryptBuffer(bytes(C, 4), { dataKey, chunkSize: C, partNumber: 0 });
    const F = C + 40;
    const whole = (body: Buffer) => sdCollect(body, C, wholeObjectRead());
    assert.equal(whole(Buffer.concat([p2, p3])).error, null);
    // next part starts before the previous one's final chunk
    assert.equal(whole(Buffer.concat([p2.subarray(0, F), p3])).error, 'StreamMismatch');
    // ... and nothing is released: each chunk waits until what follows it is valid (here it is not).
    assert.equal(whole(Buffer.concat([p2.subarray(0, F), p3])).released.length, 0);
    // next part does not start at chunk 0
    assert.equal(whole(Buffer.concat([p2, p3.subarray(F)])).error, 'StreamMismatch');
    // part numbers not increasing; the same part twice
    assert.equal(whole(Buffer.concat([p3, p2])).error, 'StreamMismatch');
    assert.equal(whole(Buffer.concat([p2, p2])).error, 'StreamMismatch');
    assert.equal(whole(Buffer.concat([p2, p1])).error, 'StreamMismatch');
    // a chunk of the same stream after its final chunk
    assert.equal(whole(Buffer.concat([p2, p2.subarray(F)])).error, 'StreamMismatch');
    // a single PUT stream is the only stream of its object
    assert.equal(whole(Buffer.concat([put, p1])).error, 'StreamMismatch');
    // a whole read must start at chunk 0
    assert.equal(whole(p2.subarray(F)).error, 'StreamMismatch');
    // the final chunk of part 2 is not released until part 3's first chunk verified
    const bad = Buffer.concat([p2, p3]);
    bad[2 * F + 30]! ^= 1;
    assert.deepEqual(whole(bad), { released: bytes(2 * C, 1).subarray(0, C), error: 'ChunkAuthFailed' });
    // endsWithFinal: true needs a final chunk at the end; false accepts either
    assert.equal(whole(Buffer.concat([p2, p3.subarray(0, F)])).error, 'Truncated');
    assert.equal(sdCollect(Buffer.concat([p2, p3.subarray(0, F)]), C, { endsWithFinal: false, firstObjectChunk: 0 }).error, null);
    assert.equal(sdCollect(p2, C, { endsWithFinal: false, firstObjectChunk: 0 }).error, null);
    // firstObjectChunk null skips the start check
    assert.equal(sdCollect(p2.subarray(F), C, { endsWithFinal: true, firstObjectChunk: null }).error, null);
  });

  it('positional segments check the header index: a moved chunk is StreamMismatch', () => {
    const ct = encryptBuffer(bytes(3 * C, 5), { dataKey, chunkSize: C, partNumber: 0 });
    const F = C + 40;
    const swapped = Buffer.concat([ct.subarray(F, 2 * F), ct.subarray(0, F), ct.subarray(2 * F)]);
    assert.throws(() => decryptBuffer(swapped, { dataKey, chunkSize: C }), (e) => isFormatError(e, 'StreamMismatch') && e.chunkIndex === 1);
    const seg: DecryptSegment = { partNumber: 0, firstChunk: 2, chunkCount: 1, endsWithFinal: true };
    assert.throws(() => decryptBuffer(ct.subarray(F, 2 * F), { dataKey, chunkSize: C, segments: [seg] }), (e) => isFormatError(e, 'StreamMismatch'));
  });

  it('self-describing segments mix with positional ones', () => {
    const m = buildMultipart([C, C, 100, 7000], [1, 2, 3, 4], 9, C);
    const first2 = m.parts[2]!.offset;
    const segments: DecryptSegment[] = [
      { partNumber: null, firstChunk: null, chunkCount: null, endsWithFinal: true, byteLength: first2, firstObjectChunk: 0 },
      { partNumber: 3, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: m.parts[2]!.cipher.length },
      { partNumber: null, firstChunk: null, chunkCount: 2, endsWithFinal: true },
    ];
    assert.ok(decryptBuffer(m.body, { dataKey, chunkSize: C, segments }).equals(m.plaintext));
  });

  it('rejects inconsistent self-describing options as programmer errors', () => {
    const seg = objectSegment()[0]!;
    const bad: Array<() => unknown> = [
      () => new Decryptor({ dataKey, chunkSize: C }),
      () => new Decryptor({ dataKey, chunkSize: C, segments: [seg], selfDescribing: wholeObjectRead() }),
      () => new Decryptor({ dataKey, chunkSize: C, selfDescribing: { endsWithFinal: true } as SelfDescribingRead }),
      () => new Decryptor({ dataKey, chunkSize: C, segments: [{ ...wholeStreamSegment(0), firstObjectChunk: 0 }] }),
      () => new Decryptor({ dataKey, chunkSize: C, segments: [seg, seg] }), // first has no known end
      () => new Decryptor({ dataKey, chunkSize: C, segments: [{ ...seg, firstObjectChunk: -1 }] }),
      () => new Decryptor({ dataKey, chunkSize: C, segments: [{ ...seg, chunkCount: 2, byteLength: 79 }] }),
    ];
    for (const f of bad) assert.throws(f, (e) => e instanceof RangeError || e instanceof TypeError);
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
  it('the header it writes is version 1, flags, part number, chunk index, stream id', () => {
    const id = Buffer.from('0123456789abcdef');
    const ct = encryptBuffer(Buffer.alloc(5000), { dataKey, chunkSize: 4096, partNumber: 513, randomBytes: fixedId(id) });
    assert.equal(ct.subarray(0, CHUNK_HEADER_SIZE).toString('hex'), `0100020100000000${id.toString('hex')}`);
    assert.equal(ct.subarray(4136, 4136 + CHUNK_HEADER_SIZE).toString('hex'), `0101020100000001${id.toString('hex')}`);
  });
});

/** What a synchronous decryptor releases from `body` before it stops, and the error it stops with. */
function collect(body: Buffer, options: ConstructorParameters<typeof Decryptor>[0]): { released: Buffer; error: FormatErrorCode | null } {
  const out: Buffer[] = [];
  const d = new Decryptor(options);
  let error: FormatErrorCode | null = null;
  try {
    d.update(body, out);
    d.final(out);
  } catch (err) {
    error = errorCode(err);
  }
  return { released: Buffer.concat(out), error };
}

function decryptCollect(body: Buffer, chunkSize: number): { released: Buffer; error: FormatErrorCode | null } {
  return collect(body, { dataKey, chunkSize, segments: [wholeStreamSegment(0)] });
}
