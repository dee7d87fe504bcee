/**
 * Generates the committed test vectors from a fixed, seeded randomness source:
 *   node --import tsx test/vectors/generate.ts          # rewrite format-golden.json and format-tamper.json
 *   node --import tsx test/vectors/generate.ts --check  # exit 1 if the committed files differ
 * test/unit/format-vectors.test.ts checks the committed files against the implementation and against this
 * generator. Never regenerate to make a failing vector pass: a changed vector means a format change.
 */
import { createHash } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CHUNK_HEADER_SIZE, CHUNK_OVERHEAD, HEADER_OFFSET_CHUNK_INDEX, HEADER_OFFSET_STREAM_ID, STREAM_ID_SIZE } from '../../src/format/constants.ts';
import { deriveStreamKeyBytes } from '../../src/format/chunk.ts';
import { chunkSizeLog2Of } from '../../src/format/layout.ts';
import { Decryptor, decryptBuffer, encryptBuffer, objectSegment, type DecryptSegment } from '../../src/format/stream.ts';
import { deriveKek, openEnvelope, sealEnvelope } from '../../src/sse-c/envelope.ts';
import { isFormatError, type FormatErrorCode } from '../../src/format/errors.ts';

// ---- JSON shapes (shared with the test) ----

export interface VectorStream {
  name: string;
  partNumber: number;
  streamId: string;
  /** Derived SK, for implementers checking their HKDF. */
  streamKey: string;
  plaintext: string;
  ciphertext: string;
}

export interface VectorObject {
  name: string;
  description: string;
  customerKey: string;
  bucket: string;
  key: string;
  chunkSizeLog2: number;
  dataKey: string;
  kekSalt: string;
  /** Derived KEK, for implementers checking their HKDF. */
  kek: string;
  envelope: string;
  streams: VectorStream[];
  /** The object's stored body: these streams concatenated, decrypted with `segments` (a whole read). */
  body: { streams: string[]; segments: DecryptSegment[]; sha256: string };
}

export interface GoldenFile {
  description: string;
  objects: VectorObject[];
}

export type Mutation =
  /** Envelope: flip bit `bit` of byte `offset` of the decoded 84-byte blob, then re-encode. */
  | { op: 'flipEnvelopeBit'; offset: number; bit: number }
  /** Envelope: use this string instead. */
  | { op: 'replaceEnvelope'; value: string }
  /** Envelope: open with other parameters (hex key / names). */
  | { op: 'openWith'; customerKey?: string; bucket?: string; key?: string }
  /** Body: flip bit `bit` of byte `offset`. */
  | { op: 'flipBit'; offset: number; bit: number }
  /** Body: set byte `offset` to `value`. */
  | { op: 'setByte'; offset: number; value: number }
  /** Body: keep the first `length` bytes. */
  | { op: 'truncate'; length: number }
  /** Body: keep bytes [start, end). */
  | { op: 'slice'; start: number; end: number }
  /** Body: delete bytes [start, end). */
  | { op: 'remove'; start: number; end: number }
  /** Body: append bytes. */
  | { op: 'append'; hex: string }
  /** Body: append a copy of its own bytes [start, end) (as they are before this step). */
  | { op: 'appendCopy'; start: number; end: number }
  /** Body: exchange the ranges [a0, a1) and [b0, b1), a before b (lengths may differ). */
  | { op: 'swap'; a: [number, number]; b: [number, number] }
  /** Body: replace [start, end) with bytes [from.start, from.end) of another vector stream's ciphertext. */
  | { op: 'splice'; start: number; end: number; from: { object: string; stream: string; start: number; end: number } }
  /** Body: replace the whole body with the concatenated ciphertexts of these streams (of any objects). */
  | { op: 'replaceBody'; streams: Array<{ object: string; stream: string }> };

export interface TamperVector {
  name: string;
  /** Which field or region is attacked. */
  region: string;
  object: string;
  mutations: Mutation[];
  /** Decrypt with these segments instead of the object's body segments (ranged reads). */
  segments?: DecryptSegment[];
  /** SHA-256 of the mutated body (pins the mutation interpreter); absent for envelope-only vectors. */
  mutatedBodySha256?: string;
  expect:
    | { stage: 'envelope'; error: FormatErrorCode }
    /** error null: the change is not detectable by design (see FORMAT.md §9). */
    | { stage: 'body'; error: FormatErrorCode | null; releasedBytes: number; releasedSha256: string };
}

export interface TamperFile {
  description: string;
  vectors: TamperVector[];
}

// ---- seeded randomness ----

/** Deterministic byte source: SHA-256(seed || u32be(counter)) blocks. */
export function seededRandom(seed: string): (n: number) => Buffer {
  let counter = 0;
  return (n: number) => {
    const blocks: Buffer[] = [];
    for (let have = 0; have < n; have += 32) {
      const ctr = Buffer.alloc(4);
      ctr.writeUInt32BE(counter++);
      blocks.push(createHash('sha256').update(seed).update(ctr).digest());
    }
    return Buffer.concat(blocks).subarray(0, n);
  };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const hex = (b: Buffer): string => b.toString('hex');

// ---- golden objects ----

interface StreamSpec {
  name: string;
  partNumber: number;
  plaintext: Buffer;
}

interface ObjectSpec {
  name: string;
  description: string;
  bucket: string;
  key: string;
  chunkSizeLog2: number;
  streams: (random: (n: number) => Buffer) => StreamSpec[];
  body: string[];
  /** Decrypt the body as a self-describing whole read (objectSegment()) instead of declared segments. */
  selfDescribing?: boolean;
}

function text(n: number, label: string): Buffer {
  const out = Buffer.alloc(n);
  const s = Buffer.from(`${label} | `, 'utf8');
  for (let i = 0; i < n; i++) out[i] = s[i % s.length]!;
  return out;
}

const BUCKET = 'vector-bucket';

const OBJECT_SPECS: ObjectSpec[] = [
  {
    name: 'empty',
    description: 'empty single PUT, default 64 KiB chunks: one final chunk with no ciphertext',
    bucket: BUCKET,
    key: 'empty',
    chunkSizeLog2: 16,
    streams: () => [{ name: 'put', partNumber: 0, plaintext: Buffer.alloc(0) }],
    body: ['put'],
  },
  {
    name: 'one-byte',
    description: 'one byte, default 64 KiB chunks',
    bucket: BUCKET,
    key: 'one-byte.bin',
    chunkSizeLog2: 16,
    streams: () => [{ name: 'put', partNumber: 0, plaintext: Buffer.from('a') }],
    body: ['put'],
  },
  {
    name: 'hundred-bytes',
    description: '100 ASCII bytes, 4 KiB chunks, a non-ASCII object key (names are bound as UTF-8)',
    bucket: BUCKET,
    key: 'dir/ünïcødé – 100 bytes.txt',
    chunkSizeLog2: 12,
    streams: () => [{ name: 'put', partNumber: 0, plaintext: text(100, 's3-ssec-proxy FORMAT.md vector') }],
    body: ['put'],
  },
  {
    name: 'two-and-a-half-chunks',
    description: '10240 random bytes, 4 KiB chunks: two full chunks and a 2048-byte final chunk',
    bucket: BUCKET,
    key: 'two-and-a-half-chunks.bin',
    chunkSizeLog2: 12,
    streams: (random) => [{ name: 'put', partNumber: 0, plaintext: random(10240) }],
    body: ['put'],
  },
  {
    name: 'two-full-chunks',
    description: '8192 random bytes, 4 KiB chunks: the final chunk is full (bytes appended to it are detectable as TrailingData)',
    bucket: BUCKET,
    key: 'two-full-chunks.bin',
    chunkSizeLog2: 12,
    streams: (random) => [{ name: 'put', partNumber: 0, plaintext: random(8192) }],
    body: ['put'],
  },
  {
    name: 'multipart',
    description:
      'streams of a multipart upload under one data key, 4 KiB chunks: part 1 (5000 bytes), part 2 (100 bytes), ' +
      'and an earlier, superseded upload attempt of part 1 (5000 other bytes, its own stream id)',
    bucket: BUCKET,
    key: 'multipart.bin',
    chunkSizeLog2: 12,
    streams: (random) => [
      { name: 'part1-attempt1', partNumber: 1, plaintext: random(5000) },
      { name: 'part1', partNumber: 1, plaintext: random(5000) },
      { name: 'part2', partNumber: 2, plaintext: random(100) },
    ],
    body: ['part1', 'part2'],
  },
  {
    name: 'multipart-aligned',
    description:
      'an aligned multipart upload, 4 KiB chunks, part numbers 2, 3, 5 (increasing, not consecutive): part 2 = 8192 bytes ' +
      '(2 full chunks), part 3 = 4096 bytes (1 full chunk), part 5 = 1000 bytes. The body has the size and chunk grid of one ' +
      'stream of 13288 bytes and is read self-describing (objectSegment()).',
    bucket: BUCKET,
    key: 'multipart-aligned.bin',
    chunkSizeLog2: 12,
    streams: (random) => [
      { name: 'part2', partNumber: 2, plaintext: random(8192) },
      { name: 'part3', partNumber: 3, plaintext: random(4096) },
      { name: 'part5', partNumber: 5, plaintext: random(1000) },
    ],
    body: ['part2', 'part3', 'part5'],
    selfDescribing: true,
  },
];

function buildObject(spec: ObjectSpec): VectorObject {
  const random = seededRandom(`s3-ssec-proxy format vectors v1 / ${spec.name}`);
  const customerKey = random(32);
  const dataKey = random(32);
  const kekSalt = random(32);
  const drawn = [dataKey, kekSalt];
  const sealed = sealEnvelope({
    customerKey,
    bucket: spec.bucket,
    key: spec.key,
    chunkSizeLog2: spec.chunkSizeLog2,
    randomBytes: () => drawn.shift()!,
  });
  const chunkSize = 2 ** spec.chunkSizeLog2;
  const streams = spec.streams(random).map((s): VectorStream => {
    const streamId = random(STREAM_ID_SIZE);
    const ciphertext = encryptBuffer(s.plaintext, { dataKey, chunkSize, partNumber: s.partNumber, randomBytes: () => streamId });
    return {
      name: s.name,
      partNumber: s.partNumber,
      streamId: hex(streamId),
      streamKey: hex(deriveStreamKeyBytes(dataKey, streamId, s.partNumber, spec.chunkSizeLog2)),
      plaintext: hex(s.plaintext),
      ciphertext: hex(ciphertext),
    };
  });
  const bodyStreams = spec.body.map((n) => streams.find((s) => s.name === n)!);
  const segments: DecryptSegment[] = spec.selfDescribing
    ? objectSegment()
    : bodyStreams.length === 1
      ? [{ partNumber: bodyStreams[0]!.partNumber, firstChunk: 0, chunkCount: null, endsWithFinal: true }]
      : bodyStreams.map((s) => ({
          partNumber: s.partNumber,
          firstChunk: 0,
          chunkCount: null,
          endsWithFinal: true,
          byteLength: s.ciphertext.length / 2,
        }));
  const body = Buffer.concat(bodyStreams.map((s) => Buffer.from(s.ciphertext, 'hex')));
  return {
    name: spec.name,
    description: spec.description,
    customerKey: hex(customerKey),
    bucket: spec.bucket,
    key: spec.key,
    chunkSizeLog2: spec.chunkSizeLog2,
    dataKey: hex(dataKey),
    kekSalt: hex(kekSalt),
    kek: hex(deriveKek(customerKey, kekSalt, spec.bucket, spec.key)),
    envelope: sealed.value,
    streams,
    body: { streams: spec.body, segments, sha256: sha256(body) },
  };
}

// ---- tamper vectors ----

type TamperSpec = Omit<TamperVector, 'expect' | 'mutatedBodySha256'> & {
  expect: { stage: 'envelope' | 'body'; error: FormatErrorCode | null };
};

const C = 4096;
const FULL = C + CHUNK_OVERHEAD; // 4136
const HDR = CHUNK_HEADER_SIZE; // 24
const IDX = HEADER_OFFSET_CHUNK_INDEX; // 4: u32be chunkIndex, its low byte at IDX + 3
const SID = HEADER_OFFSET_STREAM_ID; // 8
// two-and-a-half-chunks: chunk 0 = [0, 4136), chunk 1 = [4136, 8272), chunk 2 (final) = [8272, 10360)
const H = 'two-and-a-half-chunks';
const H_END = 10240 + 3 * CHUNK_OVERHEAD;
// two-full-chunks: chunk 0 = [0, 4136), chunk 1 (final) = [4136, 8272)
const F = 'two-full-chunks';
// multipart body: part1 = [0, 5080) (chunk 0 = [0, 4136), final chunk 1 = [4136, 5080)), part2 = [5080, 5220)
const M = 'multipart';
const P1 = 5000 + 2 * CHUNK_OVERHEAD;
const P2 = 100 + CHUNK_OVERHEAD;
// multipart-aligned body (object chunks j at j * FULL): part 2 = chunks 0, 1 (final) = [0, 8272);
// part 3 = chunk 0 (final) = [8272, 12408); part 5 = chunk 0 (final, 1000 bytes) = [12408, 13448)
const A = 'multipart-aligned';
const A_P3 = 2 * FULL;
const A_P5 = 3 * FULL;
const A_END = 3 * FULL + 1000 + CHUNK_OVERHEAD;
const SD = objectSegment();
const SALT = 4;
const SEALED = 36;
const TAG = 68;

function tamperSpecs(objects: VectorObject[]): TamperSpec[] {
  const env = (name: string, region: string, mutations: Mutation[], error: FormatErrorCode): TamperSpec => ({
    name,
    region,
    object: H,
    mutations,
    expect: { stage: 'envelope', error },
  });
  const body = (
    name: string,
    region: string,
    object: string,
    mutations: Mutation[],
    error: FormatErrorCode | null,
    segments?: DecryptSegment[],
  ): TamperSpec => ({ name, region, object, mutations, ...(segments ? { segments } : {}), expect: { stage: 'body', error } });
  const other = objects.find((o) => o.name === F)!;
  return [
    env('envelope-version', 'envelope header: version byte', [{ op: 'flipEnvelopeBit', offset: 0, bit: 1 }], 'UnsupportedVersion'),
    env('envelope-algorithm', 'envelope header: algorithm byte', [{ op: 'flipEnvelopeBit', offset: 1, bit: 0 }], 'UnsupportedVersion'),
    env('envelope-chunk-size', 'envelope header: chunkSizeLog2 12 -> 13 (in range, caught by the AAD)', [{ op: 'flipEnvelopeBit', offset: 2, bit: 0 }], 'EnvelopeUnsealFailed'),
    env('envelope-chunk-size-out-of-range', 'envelope header: chunkSizeLog2 12 -> 28', [{ op: 'flipEnvelopeBit', offset: 2, bit: 4 }], 'UnsupportedVersion'),
    env('envelope-flags', 'envelope header: reserved flags byte', [{ op: 'flipEnvelopeBit', offset: 3, bit: 7 }], 'UnsupportedVersion'),
    env('envelope-salt', 'envelope kekSalt', [{ op: 'flipEnvelopeBit', offset: SALT + 17, bit: 3 }], 'EnvelopeUnsealFailed'),
    env('envelope-sealed-key', 'envelope sealed data key', [{ op: 'flipEnvelopeBit', offset: SEALED, bit: 0 }], 'EnvelopeUnsealFailed'),
    env('envelope-tag', 'envelope GCM tag', [{ op: 'flipEnvelopeBit', offset: TAG + 15, bit: 7 }], 'EnvelopeUnsealFailed'),
    env('envelope-wrong-customer-key', 'customer key (last bit differs)', [
      { op: 'openWith', customerKey: flipHex(objects.find((o) => o.name === H)!.customerKey, 31, 0) },
    ], 'EnvelopeUnsealFailed'),
    env('envelope-other-bucket', 'bucket name', [{ op: 'openWith', bucket: `${BUCKET}-2` }], 'EnvelopeUnsealFailed'),
    env('envelope-other-key', 'object key (envelope copied to another name)', [{ op: 'openWith', key: 'two-and-a-half-chunks.bin.copy' }], 'EnvelopeUnsealFailed'),
    env('envelope-name-boundary', 'bucket/key boundary moved (length prefixes)', [
      { op: 'openWith', bucket: 'vector-bucke', key: 'ttwo-and-a-half-chunks.bin' },
    ], 'EnvelopeUnsealFailed'),
    env('envelope-from-other-object', 'envelope of another object (sealed for its own name and key)', [
      { op: 'replaceEnvelope', value: other.envelope },
    ], 'EnvelopeUnsealFailed'),
    env('envelope-truncated-string', 'envelope string: 111 characters', [{ op: 'replaceEnvelope', value: 'A'.repeat(111) }], 'EnvelopeMalformed'),
    env('envelope-padded-string', 'envelope string: base64 padding added', [{ op: 'replaceEnvelope', value: `${'A'.repeat(112)}=` }], 'EnvelopeMalformed'),
    env('envelope-standard-base64', 'envelope string: standard base64 alphabet', [{ op: 'replaceEnvelope', value: `${'A'.repeat(111)}+` }], 'EnvelopeMalformed'),

    body('chunk-version', 'chunk 0 header: version 1 -> 2', H, [{ op: 'setByte', offset: 0, value: 2 }], 'HeaderInvalid'),
    body('chunk-reserved-flag', 'chunk 1 header: reserved flag bit 1', H, [{ op: 'flipBit', offset: FULL + 1, bit: 1 }], 'HeaderInvalid'),
    body('chunk-final-flag-set', 'chunk 0 header: FINAL flag set on a middle chunk', H, [{ op: 'flipBit', offset: 1, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-final-flag-cleared', 'chunk 1 header: FINAL flag cleared on the (full) final chunk', F, [{ op: 'flipBit', offset: FULL + 1, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-final-flag-cleared-short', 'chunk 2 header: FINAL flag cleared on a short final chunk (now reads as a cut-off middle chunk)', H, [
      { op: 'flipBit', offset: 2 * FULL + 1, bit: 0 },
    ], 'Truncated'),
    body('chunk-part-number-first', 'chunk 0 header: partNumber 0 -> 1', H, [{ op: 'flipBit', offset: 3, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-part-number-middle', 'chunk 1 header: partNumber 0 -> 256', H, [{ op: 'flipBit', offset: FULL + 2, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-index-first', 'chunk 0 header: chunkIndex 0 -> 1', H, [{ op: 'flipBit', offset: IDX + 3, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-index-middle', 'chunk 1 header: chunkIndex 1 -> 0x01000001 (high byte)', H, [{ op: 'flipBit', offset: FULL + IDX, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-stream-id-first', 'chunk 0 header: streamId', H, [{ op: 'flipBit', offset: SID, bit: 5 }], 'ChunkAuthFailed'),
    body('chunk-stream-id-final', 'chunk 2 header: streamId, last byte', H, [{ op: 'flipBit', offset: 2 * FULL + HDR - 1, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-ciphertext-middle', 'chunk 1 ciphertext', H, [{ op: 'flipBit', offset: FULL + HDR + 100, bit: 2 }], 'ChunkAuthFailed'),
    body('chunk-ciphertext-final', 'chunk 2 ciphertext, first byte', H, [{ op: 'flipBit', offset: 2 * FULL + HDR, bit: 0 }], 'ChunkAuthFailed'),
    body('chunk-tag-first', 'chunk 0 tag', H, [{ op: 'flipBit', offset: FULL - 1, bit: 7 }], 'ChunkAuthFailed'),
    body('chunk-tag-final', 'chunk 2 tag, last byte of the object', H, [{ op: 'flipBit', offset: H_END - 1, bit: 0 }], 'ChunkAuthFailed'),

    body('truncate-to-empty', 'truncation to 0 bytes', H, [{ op: 'truncate', length: 0 }], 'Truncated'),
    body('truncate-in-first-header', 'truncation inside chunk 0 header', H, [{ op: 'truncate', length: 10 }], 'Truncated'),
    body('truncate-at-chunk-boundary', 'truncation exactly after chunk 0', H, [{ op: 'truncate', length: FULL }], 'Truncated'),
    body('truncate-in-middle-chunk', 'truncation inside chunk 1', H, [{ op: 'truncate', length: FULL + 100 }], 'Truncated'),
    body('truncate-final-chunk-dropped', 'truncation exactly before the final chunk', H, [{ op: 'truncate', length: 2 * FULL }], 'Truncated'),
    body('truncate-final-chunk-too-short', 'truncation leaving 39 bytes of the final chunk', H, [{ op: 'truncate', length: 2 * FULL + CHUNK_OVERHEAD - 1 }], 'Truncated'),
    body('truncate-in-final-chunk', 'one byte cut from the final chunk (its length is not recorded: fails as ChunkAuthFailed)', H, [
      { op: 'truncate', length: H_END - 1 },
    ], 'ChunkAuthFailed'),
    body('empty-truncated', 'empty object cut to its header', 'empty', [{ op: 'truncate', length: HDR }], 'Truncated'),
    body('empty-final-chunk-after-index-0', 'a final chunk with no ciphertext at index 1', F, [
      { op: 'truncate', length: FULL + HDR },
      { op: 'append', hex: '00'.repeat(16) },
    ], 'InvalidCiphertextSize'),

    body('extend-one-byte', 'one byte appended after a full final chunk', F, [{ op: 'append', hex: '00' }], 'TrailingData'),
    body('extend-copied-chunk', 'chunk 0 appended again after the final chunk', F, [{ op: 'appendCopy', start: 0, end: FULL }], 'TrailingData'),
    body('extend-copied-final-chunk', 'final chunk appended again', F, [{ op: 'appendCopy', start: FULL, end: 2 * FULL }], 'TrailingData'),
    body('extend-short-final-chunk', 'one byte appended after a short final chunk (indistinguishable from a longer, corrupt final chunk)', H, [
      { op: 'append', hex: '00' },
    ], 'ChunkAuthFailed'),

    body('reorder-first-two', 'chunks 0 and 1 exchanged (authentic, at the wrong index)', H, [{ op: 'swap', a: [0, FULL], b: [FULL, 2 * FULL] }], 'StreamMismatch'),
    body('reorder-final-first', 'chunks 0 and 1 exchanged (the final chunk comes first)', F, [{ op: 'swap', a: [0, FULL], b: [FULL, 2 * FULL] }], 'StreamMismatch'),
    body('chunk-dropped', 'chunk 1 removed (chunk 2 arrives as chunk 1)', H, [{ op: 'remove', start: FULL, end: 2 * FULL }], 'StreamMismatch'),
    body('splice-other-object', 'chunk 1 replaced by chunk 0 of another object', H, [
      { op: 'splice', start: FULL, end: 2 * FULL, from: { object: F, stream: 'put', start: 0, end: FULL } },
    ], 'ChunkAuthFailed'),
    body('body-of-other-object', 'the whole body of another object', H, [{ op: 'replaceBody', streams: [{ object: F, stream: 'put' }] }], 'ChunkAuthFailed'),
    body('splice-other-stream-same-object', 'part 1 chunk 1 replaced by chunk 1 of a superseded attempt of part 1', M, [
      { op: 'splice', start: FULL, end: P1, from: { object: M, stream: 'part1-attempt1', start: FULL, end: P1 } },
    ], 'StreamMismatch'),
    body('part-swap-declared', 'parts stored in swapped order; declared part numbers', M, [
      { op: 'swap', a: [0, P1], b: [P1, P1 + P2] },
    ], 'StreamMismatch', [
      { partNumber: 1, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: P2 },
      { partNumber: 2, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: P1 },
    ]),
    body('part-swap-undeclared', 'parts stored in swapped order; part numbers taken from headers must increase', M, [
      { op: 'swap', a: [0, P1], b: [P1, P1 + P2] },
    ], 'StreamMismatch', [
      { partNumber: null, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: P2 },
      { partNumber: null, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: P1 },
    ]),
    body('superseded-attempt-replayed', 'part 1 replaced as a whole by a superseded attempt (NOT detectable, see FORMAT.md §9)', M, [
      { op: 'splice', start: 0, end: P1, from: { object: M, stream: 'part1-attempt1', start: 0, end: P1 } },
    ], null),

    body('range-truncated-stream', 'ranged read of chunk 1 expecting it final (the stream was cut after it)', H, [
      { op: 'slice', start: FULL, end: 2 * FULL },
    ], 'Truncated', [{ partNumber: 0, firstChunk: 1, chunkCount: 1, endsWithFinal: true }]),
    body('range-wrong-offset', 'ranged read served chunk 0 where chunk 1 was asked for', H, [
      { op: 'slice', start: 0, end: FULL },
    ], 'StreamMismatch', [{ partNumber: 0, firstChunk: 1, chunkCount: 1, endsWithFinal: false }]),
    body('range-extra-bytes', 'ranged read of chunk 1 with one byte too many', H, [
      { op: 'slice', start: FULL, end: 2 * FULL + 1 },
    ], 'TrailingData', [{ partNumber: 0, firstChunk: 1, chunkCount: 1, endsWithFinal: false }]),
    body('range-short', 'ranged read of chunks 0-1 that returned only chunk 0', H, [
      { op: 'slice', start: 0, end: FULL },
    ], 'Truncated', [{ partNumber: 0, firstChunk: 0, chunkCount: 2, endsWithFinal: false }]),

    // A single PUT cut at a chunk boundary has the size of a shorter valid object: read the way the proxy reads
    // a whole object (self-describing), the cut shows only at the end, so no chunk may be released before it.
    body('sd-single-put-cut-after-chunk-0', 'single PUT cut exactly after chunk 0 (a valid size), whole self-describing read', H, [
      { op: 'truncate', length: FULL },
    ], 'Truncated', SD),
    body('sd-single-put-final-chunk-dropped', 'single PUT cut exactly before its final chunk, whole self-describing read', H, [
      { op: 'truncate', length: 2 * FULL },
    ], 'Truncated', SD),

    // Self-describing reads (objectSegment): the aligned multipart object, whole and ranged.
    body('sd-chunk-index-edited', 'part 2 chunk 1 header: chunkIndex 1 -> 3', A, [{ op: 'flipBit', offset: FULL + IDX + 3, bit: 1 }], 'ChunkAuthFailed'),
    body('sd-part-chunk-moved', "part 3's chunk moved into part 2's chunk 1 position (exchanged)", A, [
      { op: 'swap', a: [FULL, 2 * FULL], b: [A_P3, A_P5] },
    ], 'StreamMismatch'),
    body('sd-final-chunk-removed', "part 2's final chunk removed: part 3 starts before it", A, [{ op: 'remove', start: FULL, end: A_P3 }], 'StreamMismatch'),
    body('sd-first-chunk-removed', 'object chunk 0 removed: a whole read must start at chunk index 0', A, [{ op: 'remove', start: 0, end: FULL }], 'StreamMismatch'),
    body('sd-parts-swapped', 'parts 2 and 3 stored in swapped order (part numbers must increase)', A, [
      { op: 'swap', a: [0, A_P3], b: [A_P3, A_P5] },
    ], 'StreamMismatch'),
    body('sd-part-appended', 'a copy of part 3 appended after part 5 (the final chunk of part 5 is held back)', A, [
      { op: 'appendCopy', start: A_P3, end: A_P5 },
    ], 'StreamMismatch'),
    body('sd-truncated-in-part', 'truncation inside part 2 chunk 0', A, [{ op: 'truncate', length: FULL / 2 }], 'Truncated'),
    body('sd-final-chunk-cut', "one byte cut from part 5's final chunk", A, [{ op: 'truncate', length: A_END - 1 }], 'ChunkAuthFailed'),
    body('sd-whole-part-removed', 'part 3 removed as a whole (NOT detectable by a self-describing read, see FORMAT.md §9.4)', A, [
      { op: 'remove', start: A_P3, end: A_P5 },
    ], null),
    body('sd-truncated-at-part-boundary', 'parts after part 3 cut off (NOT detectable by a self-describing read, see FORMAT.md §9.4)', A, [
      { op: 'truncate', length: A_P5 },
    ], null),
    body('part-table-removed-part', 'part 3 removed, read with declared segments from a part table: detected', A, [
      { op: 'remove', start: A_P3, end: A_P5 },
    ], 'Truncated', [
      { partNumber: 2, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: 2 * FULL },
      { partNumber: 3, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: FULL },
      { partNumber: 5, firstChunk: 0, chunkCount: null, endsWithFinal: true, byteLength: A_END - A_P5 },
    ]),
    body('sd-range-wrong-offset', 'ranged read of object chunk 0 served part 2 chunk 1 (index 1 > object index 0)', A, [
      { op: 'slice', start: FULL, end: 2 * FULL },
    ], 'StreamMismatch', objectSegment({ endsWithFinal: false, firstObjectChunk: 0 })),
    body('sd-range-wrong-chunk-undetected', 'ranged read of object chunk 2 served object chunk 1 (NOT detectable without a part table, see FORMAT.md §9.3)', A, [
      { op: 'slice', start: FULL, end: 2 * FULL },
    ], null, objectSegment({ endsWithFinal: false, firstObjectChunk: 2 })),
    body('sd-range-single-put-wrong-offset', 'self-describing ranged read of a single PUT: chunk 0 served for chunk 1 (part 0 is positional)', H, [
      { op: 'slice', start: 0, end: FULL },
    ], 'StreamMismatch', objectSegment({ endsWithFinal: false, firstObjectChunk: 1 })),
    body('sd-unaligned-final-chunk-removed', "unaligned multipart, whole self-describing read: part 1's short final chunk removed", M, [
      { op: 'remove', start: FULL, end: P1 },
    ], 'StreamMismatch', SD),
    body('sd-unaligned-other-attempt', 'unaligned multipart, whole self-describing read: part 1 chunk 1 from a superseded attempt', M, [
      { op: 'splice', start: FULL, end: P1, from: { object: M, stream: 'part1-attempt1', start: FULL, end: P1 } },
    ], 'StreamMismatch', SD),
  ];
}

function flipHex(h: string, offset: number, bit: number): string {
  const b = Buffer.from(h, 'hex');
  b[offset]! ^= 1 << bit;
  return hex(b);
}

// ---- mutation interpreter (also used by the test) ----

export function streamCiphertext(objects: VectorObject[], object: string, stream: string): Buffer {
  const o = objects.find((x) => x.name === object);
  const s = o?.streams.find((x) => x.name === stream);
  if (!s) throw new Error(`no vector stream ${object}/${stream}`);
  return Buffer.from(s.ciphertext, 'hex');
}

export function objectBody(objects: VectorObject[], o: VectorObject): Buffer {
  return Buffer.concat(o.body.streams.map((s) => streamCiphertext(objects, o.name, s)));
}

export function objectPlaintext(o: VectorObject): Buffer {
  return Buffer.concat(o.body.streams.map((n) => Buffer.from(o.streams.find((s) => s.name === n)!.plaintext, 'hex')));
}

export interface Applied {
  envelope: string;
  customerKey: Buffer;
  bucket: string;
  key: string;
  body: Buffer;
}

export function applyMutations(objects: VectorObject[], o: VectorObject, mutations: readonly Mutation[]): Applied {
  const a: Applied = {
    envelope: o.envelope,
    customerKey: Buffer.from(o.customerKey, 'hex'),
    bucket: o.bucket,
    key: o.key,
    body: objectBody(objects, o),
  };
  for (const m of mutations) {
    switch (m.op) {
      case 'flipEnvelopeBit': {
        const blob = Buffer.from(a.envelope, 'base64url');
        blob[m.offset]! ^= 1 << m.bit;
        a.envelope = blob.toString('base64url');
        break;
      }
      case 'replaceEnvelope':
        a.envelope = m.value;
        break;
      case 'openWith':
        if (m.customerKey !== undefined) a.customerKey = Buffer.from(m.customerKey, 'hex');
        if (m.bucket !== undefined) a.bucket = m.bucket;
        if (m.key !== undefined) a.key = m.key;
        break;
      case 'flipBit':
        a.body = Buffer.from(a.body);
        a.body[m.offset]! ^= 1 << m.bit;
        break;
      case 'setByte':
        a.body = Buffer.from(a.body);
        a.body[m.offset] = m.value;
        break;
      case 'truncate':
        a.body = a.body.subarray(0, m.length);
        break;
      case 'slice':
        a.body = a.body.subarray(m.start, m.end);
        break;
      case 'remove':
        a.body = Buffer.concat([a.body.subarray(0, m.start), a.body.subarray(m.end)]);
        break;
      case 'append':
        a.body = Buffer.concat([a.body, Buffer.from(m.hex, 'hex')]);
        break;
      case 'appendCopy':
        a.body = Buffer.concat([a.body, a.body.subarray(m.start, m.end)]);
        break;
      case 'swap': {
        const [a0, a1] = m.a;
        const [b0, b1] = m.b;
        const x = a.body;
        a.body = Buffer.concat([x.subarray(0, a0), x.subarray(b0, b1), x.subarray(a1, b0), x.subarray(a0, a1), x.subarray(b1)]);
        break;
      }
      case 'splice': {
        const src = streamCiphertext(objects, m.from.object, m.from.stream).subarray(m.from.start, m.from.end);
        a.body = Buffer.concat([a.body.subarray(0, m.start), src, a.body.subarray(m.end)]);
        break;
      }
      case 'replaceBody':
        a.body = Buffer.concat(m.streams.map((s) => streamCiphertext(objects, s.object, s.stream)));
        break;
      default: {
        const never: never = m;
        throw new Error(`unknown mutation ${JSON.stringify(never)}`);
      }
    }
  }
  return a;
}

// ---- generation ----

export function generateVectors(): { golden: GoldenFile; tamper: TamperFile } {
  const objects = OBJECT_SPECS.map(buildObject);
  for (const o of objects) {
    // Self-check: every golden body decrypts to its plaintext.
    const dk = openEnvelope(o.envelope, Buffer.from(o.customerKey, 'hex'), o.bucket, o.key).dataKey;
    const pt = decryptBuffer(objectBody(objects, o), { dataKey: dk, chunkSize: 2 ** o.chunkSizeLog2, segments: o.body.segments });
    if (!pt.equals(objectPlaintext(o))) throw new Error(`golden ${o.name} does not round-trip`);
  }
  const vectors = tamperSpecs(objects).map((spec): TamperVector => {
    const o = objects.find((x) => x.name === spec.object)!;
    const a = applyMutations(objects, o, spec.mutations);
    if (spec.expect.stage === 'envelope') return { ...spec, expect: { stage: 'envelope', error: spec.expect.error! } };
    const segments = spec.segments ?? o.body.segments;
    const dk = openEnvelope(a.envelope, a.customerKey, a.bucket, a.key).dataKey;
    const r = decryptCollect(dk, 2 ** o.chunkSizeLog2, segments, a.body);
    if (r.error !== spec.expect.error) {
      throw new Error(`tamper ${spec.name}: implementation gives ${r.error}, spec expects ${spec.expect.error}`);
    }
    return {
      ...spec,
      mutatedBodySha256: sha256(a.body),
      expect: { stage: 'body', error: r.error, releasedBytes: r.released.length, releasedSha256: sha256(r.released) },
    };
  });
  return {
    golden: {
      description:
        'Golden vectors for docs/FORMAT.md, generated by test/vectors/generate.ts from seeded randomness. All binary values are hex; ' +
        'envelope is the metadata value. To re-encrypt: sealEnvelope draws dataKey then kekSalt; each stream draws its streamId.',
      objects,
    },
    tamper: {
      description:
        'Tamper vectors for docs/FORMAT.md: each applies `mutations` to an object of format-golden.json (its envelope, open parameters or ' +
        'stored body), then opens the envelope and decrypts the body with `segments` (default: the object body segments). ' +
        'expect.error is the FormatError code; releasedBytes/releasedSha256 is exactly the plaintext released before the error.',
      vectors,
    },
  };
}

/** Feeds `body` to a Decryptor in one write; returns what it released and the error code (null if none). */
export function decryptCollect(
  dataKey: Buffer,
  chunkSize: number,
  segments: readonly DecryptSegment[],
  body: Buffer,
): { released: Buffer; error: FormatErrorCode | null } {
  chunkSizeLog2Of(chunkSize);
  const out: Buffer[] = [];
  const d = new Decryptor({ dataKey, chunkSize, segments });
  let error: FormatErrorCode | null = null;
  try {
    d.update(body, out);
    d.final(out);
  } catch (err) {
    if (!isFormatError(err)) throw err;
    error = err.code;
  }
  return { released: Buffer.concat(out), error };
}

export const VECTOR_DIR = fileURLToPath(new URL('.', import.meta.url));

function serialize(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function vectorFiles(): Record<string, string> {
  const { golden, tamper } = generateVectors();
  return { 'format-golden.json': serialize(golden), 'format-tamper.json': serialize(tamper) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let differs = false;
  for (const [file, content] of Object.entries(vectorFiles())) {
    const path = `${VECTOR_DIR}${file}`;
    if (check) {
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // missing counts as different
      }
      if (current !== content) {
        console.error(`${file} differs from the generator output`);
        differs = true;
      }
    } else {
      writeFileSync(path, content);
      console.log(`wrote ${path}`);
    }
  }
  if (differs) process.exit(1);
}
