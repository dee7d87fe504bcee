import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  chunkNonce,
  decodeChunkHeader,
  deriveStreamKey,
  deriveStreamKeyBytes,
  encodeChunkHeader,
  hkdfSha256,
  openChunk,
  sealChunk,
  sealChunkInto,
  setHeaderChunkIndex,
} from '../../src/format/chunk.ts';
import { CHUNK_HEADER_SIZE, CHUNK_OVERHEAD } from '../../src/format/constants.ts';
import { isFormatError } from '../../src/format/errors.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('chunk: HKDF-SHA256', () => {
  it('matches RFC 5869 test case 1 (first 32 bytes of OKM)', () => {
    const okm = hkdfSha256(Buffer.alloc(22, 0x0b), hex('000102030405060708090a0b0c'), hex('f0f1f2f3f4f5f6f7f8f9'), 32);
    assert.equal(okm.toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf');
  });
  it("matches node's hkdfSync wherever that accepts the input", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 1024 }), (ikm, salt, info) => {
        const ours = hkdfSha256(Buffer.from(ikm), Buffer.from(salt), Buffer.from(info), 32);
        const node = Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
        assert.deepEqual(ours, node);
      }),
      { numRuns: 300 },
    );
  });
  it('accepts info over 1024 bytes (object keys are up to 1024 bytes)', () => {
    const a = hkdfSha256(Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(2000, 3));
    const b = hkdfSha256(Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.concat([Buffer.alloc(1999, 3), Buffer.of(4)]));
    assert.equal(a.length, 32);
    assert.notDeepEqual(a, b);
  });
});

describe('chunk: header', () => {
  const streamId = hex('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
  it('encodes version | flags | u16be partNumber | u32be chunkIndex | streamId (24 bytes)', () => {
    assert.equal(CHUNK_HEADER_SIZE, 24);
    assert.equal(CHUNK_OVERHEAD, 40);
    assert.equal(encodeChunkHeader(false, 0, 0, streamId).toString('hex'), '0100000000000000a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    assert.equal(encodeChunkHeader(true, 258, 0x01020304, streamId).toString('hex'), '0101010201020304a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    assert.equal(encodeChunkHeader(true, 10000, 0xffffffff, streamId).subarray(2, 8).toString('hex'), '2710ffffffff');
  });
  it('decodes what it encodes', () => {
    const h = decodeChunkHeader(encodeChunkHeader(true, 7, 123456, streamId));
    assert.deepEqual(
      { ...h, streamId: h.streamId.toString('hex') },
      { version: 1, final: true, partNumber: 7, chunkIndex: 123456, streamId: streamId.toString('hex') },
    );
  });
  it('setHeaderChunkIndex rewrites only the index field', () => {
    const h = encodeChunkHeader(false, 9, 0, streamId);
    setHeaderChunkIndex(h, 77);
    assert.deepEqual(h, encodeChunkHeader(false, 9, 77, streamId));
    assert.throws(() => setHeaderChunkIndex(h, 2 ** 32), RangeError);
  });
  it('rejects unknown versions and reserved flag bits with HeaderInvalid', () => {
    for (const [byte, value] of [[0, 0], [0, 2], [0, 255], [1, 0x02], [1, 0x80], [1, 0x03]] as const) {
      const h = encodeChunkHeader(false, 0, 3, streamId);
      h[byte] = value;
      assert.throws(() => decodeChunkHeader(h, 3), (e) => isFormatError(e, 'HeaderInvalid') && e.chunkIndex === 3 && /chunk 3/.test(e.message));
    }
  });
  it('rejects bad part numbers, chunk indices and stream ids when encoding', () => {
    assert.throws(() => encodeChunkHeader(false, 10001, 0, streamId), RangeError);
    assert.throws(() => encodeChunkHeader(false, -1, 0, streamId), RangeError);
    assert.throws(() => encodeChunkHeader(false, 0, -1, streamId), RangeError);
    assert.throws(() => encodeChunkHeader(false, 0, 2 ** 32, streamId), RangeError);
    assert.throws(() => encodeChunkHeader(false, 0, 0, Buffer.alloc(12)), RangeError);
  });
});

describe('chunk: nonce', () => {
  it('is u32be(final ? 0x80000000 : 0) || u64be(index)', () => {
    assert.equal(chunkNonce(0, false).toString('hex'), '000000000000000000000000');
    assert.equal(chunkNonce(1, true).toString('hex'), '800000000000000000000001');
    assert.equal(chunkNonce(2 ** 32 + 5, false).toString('hex'), '000000000000000100000005');
    assert.equal(chunkNonce(2 ** 53 - 1, true).toString('hex'), '80000000001fffffffffffff');
    assert.throws(() => chunkNonce(-1, false), RangeError);
    assert.throws(() => chunkNonce(1.5, false), RangeError);
  });
});

describe('chunk: stream key', () => {
  const dk = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const sid = hex('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
  it('is HKDF-SHA256(DK, salt = 16-byte streamId, "s3-ssec-proxy/v1/stream" || u16be(part) || u8(log2))', () => {
    const info = Buffer.concat([Buffer.from('s3-ssec-proxy/v1/stream'), hex('0102'), hex('10')]);
    const expected = Buffer.from(hkdfSync('sha256', dk, sid, info, 32));
    assert.deepEqual(deriveStreamKeyBytes(dk, sid, 258, 16), expected);
    assert.throws(() => deriveStreamKeyBytes(dk, sid.subarray(0, 12), 1, 16), RangeError);
  });
  it('changes with part number, chunk size and stream id', () => {
    const base = deriveStreamKeyBytes(dk, sid, 1, 16).toString('hex');
    assert.notEqual(deriveStreamKeyBytes(dk, sid, 2, 16).toString('hex'), base);
    assert.notEqual(deriveStreamKeyBytes(dk, sid, 1, 17).toString('hex'), base);
    assert.notEqual(deriveStreamKeyBytes(dk, Buffer.from(sid).fill(0, 15), 1, 16).toString('hex'), base);
  });
});

describe('chunk: seal and open', () => {
  const dk = randomBytes(32);
  const sid = randomBytes(16);
  const key = deriveStreamKey(dk, sid, 3, 12);
  const rawKey = deriveStreamKeyBytes(dk, sid, 3, 12);
  const header5 = encodeChunkHeader(false, 3, 5, sid);
  const plaintext = randomBytes(4096);

  it('is AES-256-GCM(SK, nonce from the header index, AAD = 24-byte header) laid out as header | ciphertext | tag', () => {
    const chunk = sealChunk(key, header5, plaintext);
    assert.equal(chunk.length, 4096 + 40);
    assert.deepEqual(chunk.subarray(0, 24), header5);
    // Independent decryption with the raw key and a hand-built nonce.
    const d = createDecipheriv('aes-256-gcm', rawKey, hex('000000000000000000000005'), { authTagLength: 16 });
    d.setAAD(header5);
    d.setAuthTag(chunk.subarray(-16));
    const pt = Buffer.concat([d.update(chunk.subarray(24, -16)), d.final()]);
    assert.deepEqual(pt, plaintext);
    assert.deepEqual(openChunk(key, chunk), plaintext);
  });

  it('a final chunk uses the 0x80000000 nonce prefix', () => {
    const h = encodeChunkHeader(true, 3, 2, sid);
    const chunk = sealChunk(key, h, plaintext.subarray(0, 10));
    const d = createDecipheriv('aes-256-gcm', rawKey, hex('800000000000000000000002'), { authTagLength: 16 });
    d.setAAD(h);
    d.setAuthTag(chunk.subarray(-16));
    assert.deepEqual(Buffer.concat([d.update(chunk.subarray(24, -16)), d.final()]), plaintext.subarray(0, 10));
  });

  it('seals pieces exactly like one buffer', () => {
    const header9 = encodeChunkHeader(false, 3, 9, sid);
    const out = Buffer.alloc(4096 + 40 + 10);
    const n = sealChunkInto(key, header9, [plaintext.subarray(0, 1), plaintext.subarray(1, 1000), Buffer.alloc(0), plaintext.subarray(1000)], out, 10);
    assert.equal(n, 4096 + 40);
    assert.deepEqual(out.subarray(10), sealChunk(key, header9, plaintext));
  });

  it('an empty final chunk is header | tag', () => {
    const finalHeader = encodeChunkHeader(true, 3, 0, sid);
    const chunk = sealChunk(key, finalHeader, Buffer.alloc(0));
    assert.equal(chunk.length, 40);
    assert.equal(openChunk(key, chunk).length, 0);
    assert.throws(() => openChunk(key, Buffer.concat([encodeChunkHeader(false, 3, 0, sid), chunk.subarray(24)])), (e) => isFormatError(e, 'ChunkAuthFailed'));
  });

  it('rejects an edited index, a wrong key and any flipped bit', () => {
    const chunk = sealChunk(key, header5, plaintext.subarray(0, 100));
    const moved = Buffer.from(chunk);
    moved.writeUInt32BE(4, 4);
    assert.throws(() => openChunk(key, moved), (e) => isFormatError(e, 'ChunkAuthFailed') && e.chunkIndex === 4 && /chunk 4/.test(e.message));
    assert.throws(() => openChunk(deriveStreamKey(dk, sid, 4, 12), chunk), (e) => isFormatError(e, 'ChunkAuthFailed'));
    assert.throws(() => openChunk(deriveStreamKey(dk, sid, 3, 13), chunk), (e) => isFormatError(e, 'ChunkAuthFailed'));
    for (let byte = 0; byte < chunk.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(chunk);
        bad[byte]! ^= 1 << bit;
        // Version and reserved flag bits are structural; the FINAL bit and everything else is authenticated.
        const expected = byte === 0 || (byte === 1 && bit > 0) ? 'HeaderInvalid' : 'ChunkAuthFailed';
        assert.throws(() => openChunk(key, bad), (e) => isFormatError(e, expected), `byte ${byte} bit ${bit}`);
      }
    }
  });

  it('rejects a chunk shorter than header and tag as Truncated', () => {
    assert.throws(() => openChunk(key, Buffer.alloc(39)), (e) => isFormatError(e, 'Truncated'));
  });
});
