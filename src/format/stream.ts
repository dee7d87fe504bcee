/**
 * Stream adapters (docs/FORMAT.md §5.4-§5.5): an Encryptor/Decryptor core that works on buffers and
 * thin Transform wrappers around them. The cores are synchronous so tests can see exactly which plaintext
 * was released before an error.
 */
import { randomBytes as cryptoRandomBytes, type KeyObject } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { Transform } from 'node:stream';
import {
  CHUNK_HEADER_SIZE,
  CHUNK_OVERHEAD,
  DATA_KEY_SIZE,
  MAX_PART_NUMBER,
  NONCE_SIZE,
  STREAM_ID_SIZE,
  TAG_SIZE,
} from './constants.ts';
import { assertPartNumber, decodeChunkHeader, deriveStreamKey, encodeChunkHeader, openChunkParts, sealChunkInto } from './chunk.ts';
import { FormatError } from './errors.ts';
import { chunkSizeLog2Of } from './layout.ts';

/** Target size of one encrypted output buffer: few large pushes, bounded memory. */
const OUTPUT_BATCH_BYTES = 1 << 20;

/** FIFO of input buffers; hands out views and copies only when a request spans buffers. */
class ByteQueue {
  private bufs: Buffer[] = [];
  private offset = 0; // into bufs[0]
  length = 0;

  push(buf: Buffer): void {
    if (buf.length === 0) return;
    this.bufs.push(buf);
    this.length += buf.length;
  }

  /** The next n bytes as one buffer, not consumed (a view unless they span input buffers). */
  peek(n: number): Buffer {
    const first = this.bufs[0]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    return Buffer.concat(this.viewsOf(n, false), n);
  }

  /** Consumes the next n bytes and returns them as views, in order. */
  take(n: number): Buffer[] {
    return this.viewsOf(n, true);
  }

  private viewsOf(n: number, consume: boolean): Buffer[] {
    if (n > this.length) throw new RangeError('ByteQueue underflow');
    const views: Buffer[] = [];
    let i = 0;
    let offset = this.offset;
    let left = n;
    while (left > 0) {
      const buf = this.bufs[i]!;
      const count = Math.min(left, buf.length - offset);
      views.push(buf.subarray(offset, offset + count));
      left -= count;
      offset += count;
      if (offset === buf.length) {
        i++;
        offset = 0;
      }
    }
    if (consume) {
      this.bufs.splice(0, i);
      this.offset = offset;
      this.length -= n;
    }
    return views;
  }
}

/** Views of bytes [start, end) of a list of pieces. */
function sliceViews(pieces: readonly Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  for (const piece of pieces) {
    const pieceEnd = pos + piece.length;
    if (pieceEnd > start && pos < end) {
      out.push(piece.subarray(Math.max(0, start - pos), Math.min(piece.length, end - pos)));
    }
    pos = pieceEnd;
    if (pos >= end) break;
  }
  return out;
}

function contiguous(pieces: readonly Buffer[], start: number, end: number): Buffer {
  const views = sliceViews(pieces, start, end);
  return views.length === 1 ? views[0]! : Buffer.concat(views, end - start);
}

function assertDataKey(dataKey: Buffer): void {
  if (!Buffer.isBuffer(dataKey) || dataKey.length !== DATA_KEY_SIZE) {
    throw new RangeError(`dataKey must be a ${DATA_KEY_SIZE}-byte Buffer`);
  }
}

export interface EncryptOptions {
  /** The object's 32-byte data key (from sealEnvelope/openEnvelope). */
  dataKey: Buffer;
  /** Plaintext bytes per chunk, from the envelope (2^12..2^24). */
  chunkSize: number;
  /** 0 for a single PUT, 1..10000 for a multipart part. */
  partNumber: number;
  /** Source of the 12-byte stream id. @default crypto.randomBytes */
  randomBytes?: (n: number) => Buffer;
}

/**
 * Encrypts one stream. Holds back the last 1..C plaintext bytes until final(), because only then is it known
 * whether they form the final chunk; so a verifier placed before this one can fail the upload before the
 * final chunk is produced.
 */
export class Encryptor {
  readonly streamId: Buffer;
  readonly chunkSize: number;
  readonly partNumber: number;
  private readonly key: KeyObject;
  private readonly header: Buffer;
  private readonly finalHeader: Buffer;
  private readonly nonce = Buffer.alloc(NONCE_SIZE);
  private readonly queue = new ByteQueue();
  private readonly chunksPerBatch: number;
  private index = 0;
  private finished = false;

  constructor(options: EncryptOptions) {
    assertDataKey(options.dataKey);
    const log2 = chunkSizeLog2Of(options.chunkSize);
    assertPartNumber(options.partNumber);
    const streamId = (options.randomBytes ?? cryptoRandomBytes)(STREAM_ID_SIZE);
    if (!Buffer.isBuffer(streamId) || streamId.length !== STREAM_ID_SIZE) {
      throw new RangeError(`randomBytes(${STREAM_ID_SIZE}) returned the wrong length`);
    }
    this.streamId = Buffer.from(streamId);
    this.chunkSize = options.chunkSize;
    this.partNumber = options.partNumber;
    this.key = deriveStreamKey(options.dataKey, this.streamId, options.partNumber, log2);
    this.header = encodeChunkHeader(false, options.partNumber, this.streamId);
    this.finalHeader = encodeChunkHeader(true, options.partNumber, this.streamId);
    this.chunksPerBatch = Math.max(1, Math.floor(OUTPUT_BATCH_BYTES / (options.chunkSize + CHUNK_OVERHEAD)));
  }

  /** Adds plaintext; returns the ciphertext of every chunk now known not to be final (possibly none). */
  update(data: Buffer): Buffer[] {
    if (this.finished) throw new Error('Encryptor.update after final');
    this.queue.push(data);
    const C = this.chunkSize;
    const out: Buffer[] = [];
    // Keep at least one byte back: the chunk holding the stream's last byte is the final one.
    let ready = Math.floor((this.queue.length - 1) / C);
    while (ready > 0) {
      const n = Math.min(ready, this.chunksPerBatch);
      const batch = Buffer.allocUnsafe(n * (C + CHUNK_OVERHEAD));
      let pos = 0;
      for (let i = 0; i < n; i++) {
        pos += sealChunkInto(this.key, this.index++, this.header, this.queue.take(C), batch, pos, this.nonce);
      }
      out.push(batch);
      ready -= n;
    }
    return out;
  }

  /** Ends the stream: returns the final chunk (0..C plaintext bytes; 0 only for an empty stream). */
  final(): Buffer {
    if (this.finished) throw new Error('Encryptor.final called twice');
    this.finished = true;
    const n = this.queue.length;
    const out = Buffer.allocUnsafe(n + CHUNK_OVERHEAD);
    sealChunkInto(this.key, this.index++, this.finalHeader, this.queue.take(n), out, 0, this.nonce);
    return out;
  }
}

/** A run of consecutive chunks of one stream, as fetched from the store. */
export interface DecryptSegment {
  /** Expected part number; null accepts the header's, but then part numbers must increase across segments. */
  partNumber: number | null;
  /** Index within its stream of the segment's first chunk. */
  firstChunk: number;
  /** Number of chunks, or null for "up to and including the stream's final chunk". */
  chunkCount: number | null;
  /** Whether the segment's last chunk must (true) / must not (false) be final; null accepts either. */
  endsWithFinal: boolean | null;
  /**
   * Ciphertext bytes of the segment. Required for a segment that is followed by another and may end with a
   * final chunk (a final chunk's length is not recorded in its header); otherwise optional and checked.
   */
  byteLength?: number | null;
}

/** The segment for a whole stream: a full GET of a single PUT is `wholeStreamSegment(0)`. */
export function wholeStreamSegment(partNumber: number | null = 0): DecryptSegment {
  return { partNumber, firstChunk: 0, chunkCount: null, endsWithFinal: true };
}

export interface DecryptOptions {
  dataKey: Buffer;
  chunkSize: number;
  /** What the input holds, in order. */
  segments: readonly DecryptSegment[];
  /** Plaintext bytes to drop from the start of the output (a range's `skip`). @default 0 */
  skip?: number;
  /** Plaintext bytes to output after `skip`; fewer is an error (Truncated). @default all */
  length?: number;
}

interface Segment {
  partNumber: number | null;
  firstChunk: number;
  chunkCount: number | null;
  endsWithFinal: boolean | null;
  byteLength: number | null;
}

function normalizeSegments(segments: readonly DecryptSegment[], chunkSize: number): Segment[] {
  if (!Array.isArray(segments) || segments.length === 0) throw new TypeError('segments must be a non-empty array');
  const full = chunkSize + CHUNK_OVERHEAD;
  return segments.map((s, i) => {
    const where = `segments[${i}]`;
    if (s.partNumber !== null && (!Number.isInteger(s.partNumber) || s.partNumber < 0 || s.partNumber > MAX_PART_NUMBER)) {
      throw new RangeError(`${where}.partNumber must be null or 0..${MAX_PART_NUMBER}`);
    }
    if (!Number.isSafeInteger(s.firstChunk) || s.firstChunk < 0) throw new RangeError(`${where}.firstChunk must be >= 0`);
    if (s.chunkCount !== null && (!Number.isSafeInteger(s.chunkCount) || s.chunkCount < 1)) {
      throw new RangeError(`${where}.chunkCount must be null or >= 1`);
    }
    if (s.chunkCount === null && s.endsWithFinal === false) {
      throw new RangeError(`${where}: a segment without chunkCount runs to the final chunk; endsWithFinal cannot be false`);
    }
    let byteLength = s.byteLength ?? null;
    if (byteLength !== null && (!Number.isSafeInteger(byteLength) || byteLength < CHUNK_OVERHEAD)) {
      throw new RangeError(`${where}.byteLength must be an integer >= ${CHUNK_OVERHEAD}`);
    }
    if (s.endsWithFinal === false) {
      const exact = s.chunkCount! * full;
      if (byteLength !== null && byteLength !== exact) throw new RangeError(`${where}.byteLength must be ${exact}`);
      byteLength = exact;
    } else if (byteLength !== null && s.chunkCount !== null) {
      const min = (s.chunkCount - 1) * full + CHUNK_OVERHEAD;
      const max = s.chunkCount * full;
      if (byteLength < min || byteLength > max) throw new RangeError(`${where}.byteLength must be ${min}..${max}`);
    } else if (byteLength === null && i < segments.length - 1) {
      throw new RangeError(`${where}.byteLength is required: the segment may end with a final chunk and is not the last`);
    }
    return { partNumber: s.partNumber, firstChunk: s.firstChunk, chunkCount: s.chunkCount, endsWithFinal: s.endsWithFinal, byteLength };
  });
}

/**
 * Decrypts the concatenated ciphertext of `segments`. Each chunk's plaintext is released (appended to `out`)
 * only after its tag verified and its position checks passed. After an error every call rethrows it.
 */
export class Decryptor {
  private readonly dataKey: Buffer;
  private readonly chunkSize: number;
  private readonly log2: number;
  private readonly segments: Segment[];
  private readonly skip: number;
  private readonly limit: number; // skip + length, or Infinity
  private readonly queue = new ByteQueue();
  private readonly nonce = Buffer.alloc(NONCE_SIZE);
  private segIndex = 0;
  private chunkInSeg = 0;
  private segConsumed = 0;
  private segStreamId: Buffer | null = null;
  private segPart = -1;
  private segKey: KeyObject | null = null;
  private prevPart = -1;
  private plainPos = 0; // plaintext bytes decrypted so far (before trimming)
  private failure: unknown = null;
  private ended = false;

  constructor(options: DecryptOptions) {
    assertDataKey(options.dataKey);
    this.log2 = chunkSizeLog2Of(options.chunkSize);
    this.dataKey = Buffer.from(options.dataKey);
    this.chunkSize = options.chunkSize;
    this.segments = normalizeSegments(options.segments, options.chunkSize);
    const skip = options.skip ?? 0;
    if (!Number.isSafeInteger(skip) || skip < 0) throw new RangeError('skip must be an integer >= 0');
    const length = options.length;
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new RangeError('length must be an integer >= 0');
    this.skip = skip;
    this.limit = length === undefined ? Infinity : skip + length;
  }

  /** Plaintext bytes released so far (after skip/length trimming). */
  get released(): number {
    return Math.max(0, Math.min(this.plainPos, this.limit) - this.skip);
  }

  update(data: Buffer, out: Buffer[]): void {
    if (this.ended) throw new Error('Decryptor.update after final');
    this.guard(() => {
      this.queue.push(data);
      this.process(false, out);
    });
  }

  final(out: Buffer[]): void {
    if (this.ended) throw new Error('Decryptor.final called twice');
    this.guard(() => {
      this.ended = true;
      this.process(true, out);
      if (this.limit !== Infinity && this.plainPos < this.limit) {
        throw new FormatError('Truncated', `stream holds ${this.plainPos} plaintext bytes, range needs ${this.limit}`);
      }
    });
  }

  private guard(fn: () => void): void {
    if (this.failure !== null) throw this.failure;
    try {
      fn();
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  private process(atEnd: boolean, out: Buffer[]): void {
    const full = this.chunkSize + CHUNK_OVERHEAD;
    for (;;) {
      const seg = this.segments[this.segIndex];
      if (seg === undefined) {
        if (this.queue.length > 0) {
          throw new FormatError('TrailingData', `${this.queue.length}${atEnd ? '' : '+'} bytes after the last expected chunk`);
        }
        return;
      }
      const index = seg.firstChunk + this.chunkInSeg;
      // Bytes of this segment not yet consumed, when known (null only for the last segment before end of input).
      const segLeft = seg.byteLength !== null ? seg.byteLength - this.segConsumed : atEnd ? this.queue.length : null;
      if (segLeft !== null && segLeft < CHUNK_HEADER_SIZE) {
        throw new FormatError('Truncated', `input ends before chunk ${index}${seg.chunkCount === null ? ' (no final chunk)' : ''}`, {
          chunkIndex: index,
        });
      }
      if (this.queue.length < CHUNK_HEADER_SIZE) {
        if (atEnd) throw new FormatError('Truncated', `input ends before chunk ${index}`, { chunkIndex: index });
        return;
      }
      const headerBytes = this.queue.peek(CHUNK_HEADER_SIZE);
      const header = decodeChunkHeader(headerBytes, index);
      let len: number;
      if (!header.final) {
        len = full;
        if (segLeft !== null && segLeft < full) {
          throw new FormatError('Truncated', `input ends inside chunk ${index}`, { chunkIndex: index });
        }
      } else if (segLeft !== null) {
        len = Math.min(segLeft, full);
      } else {
        // A final chunk's length is known only at the end of its segment, or once more than a full chunk is here.
        if (this.queue.length <= full) return;
        len = full;
      }
      if (len < CHUNK_OVERHEAD) {
        throw new FormatError('Truncated', `input ends inside chunk ${index}`, { chunkIndex: index });
      }
      if (len === CHUNK_OVERHEAD && index !== 0) {
        throw new FormatError('InvalidCiphertextSize', `empty final chunk at index ${index} (only an empty stream has one)`, {
          chunkIndex: index,
        });
      }
      if (this.queue.length < len) {
        if (atEnd) throw new FormatError('Truncated', `input ends inside chunk ${index}`, { chunkIndex: index });
        return;
      }

      const sameStream =
        this.segKey !== null && header.partNumber === this.segPart && header.streamId.equals(this.segStreamId!);
      // Authenticate under the key the chunk claims, so a genuine chunk of another stream of this object is
      // told apart (StreamMismatch) from a forged or foreign one (ChunkAuthFailed).
      const key = sameStream ? this.segKey! : deriveStreamKey(this.dataKey, header.streamId, header.partNumber, this.log2);
      const pieces = this.queue.take(len);
      const plaintext = openChunkParts(
        key,
        index,
        headerBytes,
        sliceViews(pieces, CHUNK_HEADER_SIZE, len - TAG_SIZE),
        contiguous(pieces, len - TAG_SIZE, len),
        this.nonce,
      );

      if (this.chunkInSeg === 0) {
        if (seg.partNumber !== null && header.partNumber !== seg.partNumber) {
          throw new FormatError('StreamMismatch', `chunk ${index} belongs to part ${header.partNumber}, expected part ${seg.partNumber}`, {
            chunkIndex: index,
          });
        }
        if (seg.partNumber === null && header.partNumber <= this.prevPart) {
          throw new FormatError('StreamMismatch', `part ${header.partNumber} follows part ${this.prevPart}: part numbers must increase`, {
            chunkIndex: index,
          });
        }
        this.segStreamId = Buffer.from(header.streamId);
        this.segPart = header.partNumber;
        this.segKey = key;
      } else if (!sameStream) {
        throw new FormatError('StreamMismatch', `chunk ${index} belongs to another stream (part ${header.partNumber})`, {
          chunkIndex: index,
        });
      }

      this.chunkInSeg++;
      this.segConsumed += len;
      const moreInSegment = segLeft === null ? this.queue.length > 0 : segLeft > len;
      const countReached = seg.chunkCount !== null && this.chunkInSeg === seg.chunkCount;
      if (header.final) {
        if (moreInSegment) {
          throw new FormatError('TrailingData', `bytes after the final chunk ${index}`, { chunkIndex: index });
        }
        if ((seg.chunkCount !== null && !countReached) || seg.endsWithFinal === false) {
          throw new FormatError('Truncated', `stream ends at chunk ${index}, before the expected chunks`, { chunkIndex: index });
        }
      } else if (countReached) {
        if (seg.endsWithFinal === true) {
          throw new FormatError('Truncated', `chunk ${index} should be the stream's final chunk but is not`, { chunkIndex: index });
        }
        if (moreInSegment) {
          throw new FormatError('TrailingData', `bytes after the segment's last chunk ${index}`, { chunkIndex: index });
        }
      }
      this.release(plaintext, out);
      if (header.final || countReached) {
        this.prevPart = this.segPart;
        this.segIndex++;
        this.chunkInSeg = 0;
        this.segConsumed = 0;
        this.segStreamId = null;
        this.segKey = null;
        this.segPart = -1;
      }
    }
  }

  private release(plaintext: readonly Buffer[], out: Buffer[]): void {
    for (const piece of plaintext) {
      const start = Math.max(0, this.skip - this.plainPos);
      const end = Math.min(piece.length, this.limit - this.plainPos);
      if (end > start) out.push(start === 0 && end === piece.length ? piece : piece.subarray(start, end));
      this.plainPos += piece.length;
    }
  }
}

/** Decrypted pieces are pushed as they are (chunk-sized, freshly allocated): no copy. */
function pushAll(stream: Transform, out: Buffer[]): void {
  for (const buf of out) stream.push(buf);
}

/** Transform: plaintext in, ciphertext of one stream out (see Encryptor). */
export function createEncryptStream(options: EncryptOptions): Transform {
  const encryptor = new Encryptor(options);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        for (const buf of encryptor.update(chunk)) this.push(buf);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback) {
      try {
        callback(null, encryptor.final());
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}

/** Transform: ciphertext of `segments` in, verified plaintext out (see Decryptor). */
export function createDecryptStream(options: DecryptOptions): Transform {
  const decryptor = new Decryptor(options);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const out: Buffer[] = [];
      try {
        decryptor.update(chunk, out);
      } catch (err) {
        pushAll(this, out); // verified chunks before the failing one
        callback(err as Error);
        return;
      }
      pushAll(this, out);
      callback();
    },
    flush(callback) {
      const out: Buffer[] = [];
      try {
        decryptor.final(out);
      } catch (err) {
        pushAll(this, out);
        callback(err as Error);
        return;
      }
      pushAll(this, out);
      callback();
    },
  });
}

/** Encrypts a whole buffer as one stream. */
export function encryptBuffer(plaintext: Buffer, options: EncryptOptions): Buffer {
  const encryptor = new Encryptor(options);
  const parts = encryptor.update(plaintext);
  parts.push(encryptor.final());
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Decrypts a whole buffer; throws FormatError and returns nothing on any failure. */
export function decryptBuffer(
  ciphertext: Buffer,
  options: Omit<DecryptOptions, 'segments'> & { segments?: readonly DecryptSegment[] },
): Buffer {
  const decryptor = new Decryptor({ ...options, segments: options.segments ?? [wholeStreamSegment(0)] });
  const out: Buffer[] = [];
  decryptor.update(ciphertext, out);
  decryptor.final(out);
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}
