import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { FLAG_FINAL } from '../../src/format/constants.ts';
import { createEncryptStream, decryptBuffer, encryptBuffer } from '../../src/format/stream.ts';

const dataKey = randomBytes(32);

async function encryptPieces(pieces: Buffer[], opts: { chunkSize: number; partNumber: number; streamId: Buffer }): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const enc = createEncryptStream({ dataKey, chunkSize: opts.chunkSize, partNumber: opts.partNumber, randomBytes: () => Buffer.from(opts.streamId), pieces: true });
  // 'data' events, one per push (an async iterator would join what is buffered).
  enc.on('data', (c: Buffer) => out.push(c));
  await pipeline(Readable.from(pieces), enc);
  return out;
}

/** `data` cut at `cuts` (sorted offsets), as a socket delivers it. */
function cut(data: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, data.length]) {
    out.push(data.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe('stream: the encryptor without copies (pieces) writes the same bytes', () => {
  it('equals the batched encryptor for any length and any input cuts', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(2 ** 12, 2 ** 16),
        fc.integer({ min: 0, max: 5 * 2 ** 16 + 3 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(0, 1, 10000),
        async (chunkSize, length, cuts, partNumber) => {
          const plain = randomBytes(length);
          const streamId = randomBytes(16);
          const expected = encryptBuffer(plain, { dataKey, chunkSize, partNumber, randomBytes: () => Buffer.from(streamId) });
          const got = Buffer.concat(await encryptPieces(cut(plain, cuts), { chunkSize, partNumber, streamId }));
          assert.ok(got.equals(expected));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('never copies ciphertext: each chunk is its header piece then the cipher output', async () => {
    const C = 4096;
    const out = await encryptPieces([randomBytes(3 * C + 5)], { chunkSize: C, partNumber: 0, streamId: randomBytes(16) });
    // Chunk 0: header; chunks 1..3: previous tag + header; then the final tag.
    assert.deepEqual(
      out.map((b) => b.length),
      [24, C, 40, C, 40, C, 40, 5, 16],
    );
    const whole = Buffer.concat(out);
    assert.deepEqual(decryptBuffer(whole, { dataKey, chunkSize: C }).length, 3 * C + 5);
  });

  it('if the source fails, no final chunk and no last tag is ever emitted', async () => {
    const C = 4096;
    async function* failing() {
      yield randomBytes(3 * C);
      await new Promise((resolve) => setTimeout(resolve, 20));
      throw new Error('Content-MD5 mismatch');
    }
    const chunks: Buffer[] = [];
    await assert.rejects(
      pipeline(Readable.from(failing()), createEncryptStream({ dataKey, chunkSize: C, partNumber: 0, pieces: true }), async (src: AsyncIterable<Buffer>) => {
        for await (const c of src) chunks.push(c);
      }),
      /Content-MD5 mismatch/,
    );
    const out = Buffer.concat(chunks);
    // Two whole chunks were known not to be final; the second one's tag is still held.
    assert.equal(out.length, 2 * (C + 40) - 16);
    for (let off = 0; off < out.length; off += C + 40) assert.equal(out[off + 1]! & FLAG_FINAL, 0);
  });
});
