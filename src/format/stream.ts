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
  CHUNK_VERSION,
  DATA_KEY_SIZE,
  FLAG_FINAL,
  HEADER_OFFSET_CHUNK_INDEX,
  HEADER_OFFSET_FLAGS,
  MAX_CHUNK_INDEX,
  MAX_PART_NUMBER,
  NONCE_SIZE,
  SINGLE_PUT_PART_NUMBER,
  STREAM_ID_SIZE,
  TAG_SIZE,
} from './constants.ts';
import {
  assertPartNumber,
  decodeChunkHeader,
  deriveStreamKey,
  encodeChunkHeader,
  openChunkParts,
  sealChunkInto,
  sealChunkPieces,
  setHeaderChunkIndex,
  type ChunkHeader,
} from './chunk.ts';
import { FormatError, isFormatError } from './errors.ts';
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

  /** The next n bytes as views, in order, not consumed. */
  peekViews(n: number): Buffer[] {
    return this.viewsOf(n, false);
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
  /** Source of the 16-byte stream id. @default crypto.randomBytes */
  randomBytes?: (n: number) => Buffer;
  /**
   * Stream only: emit each chunk as the cipher produces it (header, ciphertext pieces, tag joined to the next
   * header) instead of copying chunks into ~1 MiB batches. For a socket: a fresh batch buffer per MiB costs
   * more (allocation, page faults, GC) than the extra writes. Same bytes either way. @default false
   */
  pieces?: boolean;
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
  /** updatePieces: the tag of the last chunk emitted, not yet written. */
  private tag: Buffer | undefined;

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
    this.header = encodeChunkHeader(false, options.partNumber, 0, this.streamId);
    this.finalHeader = encodeChunkHeader(true, options.partNumber, 0, this.streamId);
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
        setHeaderChunkIndex(this.header, this.index++); // RangeError beyond 2^32 chunks
        pos += sealChunkInto(this.key, this.header, this.queue.take(C), batch, pos, this.nonce);
      }
      out.push(batch);
      ready -= n;
    }
    return out;
  }

  /**
   * update() without copies: appends to `out` the pieces of every chunk now known not to be final. The last
   * chunk's tag stays here until the next chunk (or finalPieces) joins it to that chunk's header.
   */
  updatePieces(data: Buffer, out: Buffer[]): void {
    if (this.finished) throw new Error('Encryptor.update after final');
    this.queue.push(data);
    const C = this.chunkSize;
    for (let ready = Math.floor((this.queue.length - 1) / C); ready > 0; ready--) {
      setHeaderChunkIndex(this.header, this.index++); // RangeError beyond 2^32 chunks
      this.tag = sealChunkPieces(this.key, this.header, this.queue.take(C), out, this.tag, this.nonce);
    }
  }

  /** final() without copies: appends the held tag, the final chunk's pieces and its tag to `out`. */
  finalPieces(out: Buffer[]): void {
    if (this.finished) throw new Error('Encryptor.final called twice');
    this.finished = true;
    setHeaderChunkIndex(this.finalHeader, this.index++);
    out.push(sealChunkPieces(this.key, this.finalHeader, this.queue.take(this.queue.length), out, this.tag, this.nonce));
    this.tag = undefined;
  }

  /** Ends the stream: returns the final chunk (0..C plaintext bytes; 0 only for an empty stream). */
  final(): Buffer {
    if (this.finished) throw new Error('Encryptor.final called twice');
    this.finished = true;
    const n = this.queue.length;
    const out = Buffer.allocUnsafe(n + CHUNK_OVERHEAD);
    setHeaderChunkIndex(this.finalHeader, this.index++);
    sealChunkInto(this.key, this.finalHeader, this.queue.take(n), out, 0, this.nonce);
    return out;
  }
}

/**
 * A run of consecutive chunks, as fetched from the store (docs/FORMAT.md §5.5).
 *
 * - `firstChunk` a number (positional segment): chunks of ONE stream, the first at that index; every chunk's
 *   header index must be the expected one. The segment ends at its stream's final chunk or after `chunkCount`.
 * - `firstChunk` null (self-describing segment): consecutive chunks of an object, whatever streams (parts)
 *   they belong to. Each chunk's index is taken from its header; within a stream indices must increase by 1;
 *   a new stream may start only after a FINAL chunk, at index 0, with a greater part number. The segment ends
 *   after `chunkCount` chunks, at `byteLength`, or (last segment) at the end of the input.
 */
export interface DecryptSegment {
  /**
   * Expected part number (of the segment's first chunk); null accepts the header's, but then part numbers
   * must increase across segments.
   */
  partNumber: number | null;
  /** Index within its stream of the segment's first chunk; null = take it from the header (self-describing). */
  firstChunk: number | null;
  /**
   * Number of chunks, or null: positional = "up to and including the stream's final chunk"; self-describing =
   * "up to the end of the segment's bytes".
   */
  chunkCount: number | null;
  /** Whether the segment's last chunk must (true) / must not (false) be final; null accepts either. */
  endsWithFinal: boolean | null;
  /**
   * Ciphertext bytes of the segment. Required for a segment that is followed by another and whose end is not
   * fixed by a non-final last chunk (a final chunk's length is not recorded in its header); otherwise
   * optional and checked.
   */
  byteLength?: number | null;
  /**
   * Self-describing segments only: how many chunks of the object precede the segment's first chunk, when
   * known (0 for a whole read; `cipherRangeFor(...).firstChunk` for a range of a single PUT or of an aligned
   * multipart object). Every chunk's in-stream index must then be <= its object index, and equal to it in a
   * single-PUT stream (part 0), which restores the full positional check for single PUTs. null = unknown.
   */
  firstObjectChunk?: number | null;
}

/** The segment for a whole stream: a full GET of a single PUT is `wholeStreamSegment(0)`. */
export function wholeStreamSegment(partNumber: number | null = 0): DecryptSegment {
  return { partNumber, firstChunk: 0, chunkCount: null, endsWithFinal: true };
}

/** "Decrypt these consecutive chunks of a (possibly multipart) object, whatever parts they belong to." */
export interface SelfDescribingRead {
  /**
   * true: the input reaches the end of the object, so its last chunk must be FINAL. false: the input ends at a
   * chunk boundary inside the object (the last chunk may or may not be final, e.g. the end of a part).
   */
  endsWithFinal: boolean;
  /**
   * Chunks of the object before the first input chunk (see DecryptSegment.firstObjectChunk): 0 for a whole
   * read (the first chunk must have index 0), `range.firstChunk` for a ranged read; null only if unknown.
   */
  firstObjectChunk: number | null;
}

/** A whole-object read in self-describing mode (single PUT or any multipart layout). */
export function wholeObjectRead(): SelfDescribingRead {
  return { endsWithFinal: true, firstObjectChunk: 0 };
}

/** A ranged read in self-describing mode from cipherRangeFor over the object's total plaintext (aligned layouts). */
export function objectRangeRead(range: { firstChunk: number; endsWithFinal: boolean }): SelfDescribingRead {
  return { endsWithFinal: range.endsWithFinal, firstObjectChunk: range.firstChunk };
}

/** The one self-describing segment for `read` (default: a whole-object read). */
export function objectSegment(read: SelfDescribingRead = wholeObjectRead()): DecryptSegment[] {
  return [
    {
      partNumber: null,
      firstChunk: null,
      chunkCount: null,
      endsWithFinal: read.endsWithFinal ? true : null,
      firstObjectChunk: read.firstObjectChunk,
    },
  ];
}

export interface DecryptOptions {
  dataKey: Buffer;
  chunkSize: number;
  /** What the input holds, in order. Exactly one of `segments` and `selfDescribing`. */
  segments?: readonly DecryptSegment[];
  /** Shorthand for `segments: objectSegment(selfDescribing)`. */
  selfDescribing?: SelfDescribingRead;
  /** Plaintext bytes to drop from the start of the output (a range's `skip`). @default 0 */
  skip?: number;
  /** Plaintext bytes to output after `skip`; fewer is an error (Truncated). @default all */
  length?: number;
}

interface Segment {
  partNumber: number | null;
  firstChunk: number | null;
  chunkCount: number | null;
  endsWithFinal: boolean | null;
  byteLength: number | null;
  firstObjectChunk: number | null;
  /** Self-describing (firstChunk null): may cross stream boundaries. */
  spanning: boolean;
}

function normalizeSegments(segments: readonly DecryptSegment[], chunkSize: number): Segment[] {
  if (!Array.isArray(segments) || segments.length === 0) throw new TypeError('segments must be a non-empty array');
  const full = chunkSize + CHUNK_OVERHEAD;
  return segments.map((s, i) => {
    const where = `segments[${i}]`;
    const last = i === segments.length - 1;
    if (s.partNumber !== null && (!Number.isInteger(s.partNumber) || s.partNumber < 0 || s.partNumber > MAX_PART_NUMBER)) {
      throw new RangeError(`${where}.partNumber must be null or 0..${MAX_PART_NUMBER}`);
    }
    if (s.firstChunk !== null && (!Number.isInteger(s.firstChunk) || s.firstChunk < 0 || s.firstChunk > MAX_CHUNK_INDEX)) {
      throw new RangeError(`${where}.firstChunk must be null or 0..${MAX_CHUNK_INDEX}`);
    }
    if (s.chunkCount !== null && (!Number.isSafeInteger(s.chunkCount) || s.chunkCount < 1)) {
      throw new RangeError(`${where}.chunkCount must be null or >= 1`);
    }
    const firstObjectChunk = s.firstObjectChunk ?? null;
    if (firstObjectChunk !== null) {
      if (s.firstChunk !== null) throw new RangeError(`${where}.firstObjectChunk applies to self-describing segments (firstChunk null) only`);
      if (!Number.isSafeInteger(firstObjectChunk) || firstObjectChunk < 0) throw new RangeError(`${where}.firstObjectChunk must be null or >= 0`);
    }
    let byteLength = s.byteLength ?? null;
    if (byteLength !== null && (!Number.isSafeInteger(byteLength) || byteLength < CHUNK_OVERHEAD)) {
      throw new RangeError(`${where}.byteLength must be an integer >= ${CHUNK_OVERHEAD}`);
    }
    const spanning = s.firstChunk === null;
    if (spanning) {
      if (byteLength !== null && s.chunkCount !== null) {
        const min = s.chunkCount * CHUNK_OVERHEAD;
        const max = s.chunkCount * full;
        if (byteLength < min || byteLength > max) throw new RangeError(`${where}.byteLength must be ${min}..${max}`);
      }
      if (byteLength === null && !last && (s.chunkCount === null || s.endsWithFinal !== false)) {
        throw new RangeError(`${where}.byteLength is required: the segment's end is not fixed and it is not the last`);
      }
    } else if (s.chunkCount === null && s.endsWithFinal === false) {
      throw new RangeError(`${where}: a segment without chunkCount runs to the final chunk; endsWithFinal cannot be false`);
    } else if (s.endsWithFinal === false) {
      const exact = s.chunkCount! * full;
      if (byteLength !== null && byteLength !== exact) throw new RangeError(`${where}.byteLength must be ${exact}`);
      byteLength = exact;
    } else if (byteLength !== null && s.chunkCount !== null) {
      const min = (s.chunkCount - 1) * full + CHUNK_OVERHEAD;
      const max = s.chunkCount * full;
      if (byteLength < min || byteLength > max) throw new RangeError(`${where}.byteLength must be ${min}..${max}`);
    } else if (byteLength === null && !last) {
      throw new RangeError(`${where}.byteLength is required: the segment may end with a final chunk and is not the last`);
    }
    return {
      partNumber: s.partNumber,
      firstChunk: s.firstChunk,
      chunkCount: s.chunkCount,
      endsWithFinal: s.endsWithFinal,
      byteLength,
      firstObjectChunk,
      spanning,
    };
  });
}

/** Bytes of a header that identify the first chunk of a stream: version, flags, part number, chunkIndex = 0. */
const STREAM_START_PROBE = HEADER_OFFSET_CHUNK_INDEX + 4;
const ZERO_INDEX = Buffer.alloc(4);

/** Whether the bytes at `p` (as many of the 8 probe bytes as `buf` holds) can begin a stream's chunk 0. */
function mayStartStream(buf: Buffer, p: number): boolean {
  const end = Math.min(buf.length, p + STREAM_START_PROBE);
  for (let i = p; i < end; i++) {
    const k = i - p;
    const b = buf[i]!;
    if (k === 0 ? b !== CHUNK_VERSION : k === HEADER_OFFSET_FLAGS ? (b & ~FLAG_FINAL) !== 0 : k >= HEADER_OFFSET_CHUNK_INDEX && b !== 0) {
      return false;
    }
  }
  return true;
}

/**
 * Candidate lengths, ascending, of a FINAL chunk at the start of `buf` inside a self-describing segment
 * (its length is not recorded): the end of the segment, a full chunk, and every offset where the next
 * stream's chunk 0 could start. The caller keeps the one whose tag verifies (at most one can, except with
 * probability ~2^-128 per wrong candidate). Wrong candidates are rare: a random offset passes the probe with
 * probability 2^-47.
 */
function finalChunkLengths(buf: Buffer, chunkIndex: number, segLeft: number | null, full: number): number[] {
  const minL = chunkIndex === 0 ? CHUNK_OVERHEAD : CHUNK_OVERHEAD + 1;
  const maxL = Math.min(full, buf.length);
  const found = new Set<number>();
  if (segLeft !== null && segLeft >= minL && segLeft <= maxL) found.add(segLeft);
  if (full <= buf.length) found.add(full);
  for (let z = buf.indexOf(ZERO_INDEX, minL + HEADER_OFFSET_CHUNK_INDEX); z !== -1; z = buf.indexOf(ZERO_INDEX, z + 1)) {
    const p = z - HEADER_OFFSET_CHUNK_INDEX;
    if (p >= maxL) break;
    if (mayStartStream(buf, p)) found.add(p);
  }
  // Offsets whose probe is cut by the end of the buffer (the next chunk would be incomplete: reported later).
  for (let p = Math.max(minL, buf.length - STREAM_START_PROBE + 1); p < maxL; p++) {
    if (mayStartStream(buf, p)) found.add(p);
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * Decrypts the concatenated ciphertext of `segments`. Each chunk's plaintext is released (appended to `out`)
 * only after its tag verified and its position checks passed; in a self-describing segment each chunk is
 * released only once what follows it is known to be valid (the next chunk, or the segment's end: so a FINAL
 * chunk followed by bytes, or an input cut where a FINAL chunk is due, never has its plaintext released).
 * After an error every call rethrows it.
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
  // The stream of the last accepted chunk (within the current segment).
  private streamId: Buffer | null = null;
  private part = -1;
  private key: KeyObject | null = null;
  private nextIndex = 0;
  private lastFinal = false;
  private prevPart = -1; // part number at the end of the previous segment
  private pending: Buffer[] | null = null; // plaintext of the newest chunk, not yet released (self-describing)
  private plainPos = 0; // plaintext bytes decrypted so far (before trimming)
  private failure: unknown = null;
  private ended = false;

  constructor(options: DecryptOptions) {
    assertDataKey(options.dataKey);
    this.log2 = chunkSizeLog2Of(options.chunkSize);
    this.dataKey = Buffer.from(options.dataKey);
    this.chunkSize = options.chunkSize;
    if ((options.segments === undefined) === (options.selfDescribing === undefined)) {
      throw new TypeError('give exactly one of segments and selfDescribing');
    }
    if (options.selfDescribing !== undefined) {
      const sd = options.selfDescribing;
      if (typeof sd.endsWithFinal !== 'boolean') throw new TypeError('selfDescribing.endsWithFinal must be a boolean');
      if (sd.firstObjectChunk === undefined) throw new TypeError('selfDescribing.firstObjectChunk must be a number or null');
    }
    this.segments = normalizeSegments(options.segments ?? objectSegment(options.selfDescribing), options.chunkSize);
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

  /** The index the next chunk should have, when known (labels errors before its header is read). */
  private expectedIndex(seg: Segment): number | undefined {
    if (seg.firstChunk !== null) return seg.firstChunk + this.chunkInSeg;
    return this.chunkInSeg > 0 && !this.lastFinal ? this.nextIndex : undefined;
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
      // Bytes of this segment not yet consumed, when known (null only for the last segment before end of input).
      const segLeft = seg.byteLength !== null ? seg.byteLength - this.segConsumed : atEnd ? this.queue.length : null;
      if (seg.spanning && this.chunkInSeg > 0 && segLeft === 0) {
        this.endSpanningSegment(seg, out);
        continue;
      }
      const expected = this.expectedIndex(seg);
      if (segLeft !== null && segLeft < CHUNK_HEADER_SIZE) {
        throw new FormatError('Truncated', `input ends before ${describe(expected)}${seg.chunkCount === null && !seg.spanning ? ' (no final chunk)' : ''}`, {
          chunkIndex: expected,
        });
      }
      if (this.queue.length < CHUNK_HEADER_SIZE) {
        if (atEnd) throw new FormatError('Truncated', `input ends before ${describe(expected)}`, { chunkIndex: expected });
        return;
      }
      const headerBytes = this.queue.peek(CHUNK_HEADER_SIZE);
      const header = decodeChunkHeader(headerBytes, expected);
      const index = header.chunkIndex;
      const sameStream = this.key !== null && header.partNumber === this.part && header.streamId.equals(this.streamId!);
      // Authenticate under the key the chunk claims, so a genuine chunk of another stream of this object is
      // told apart (StreamMismatch) from a forged or foreign one (ChunkAuthFailed).
      const key = sameStream ? this.key! : deriveStreamKey(this.dataKey, header.streamId, header.partNumber, this.log2);

      let len: number;
      let plaintext: Buffer[];
      if (header.final && seg.spanning) {
        // A FINAL chunk's length is not recorded: it ends where the segment ends or where the next stream starts.
        if (segLeft === CHUNK_OVERHEAD && index !== 0) throw emptyFinal(index);
        const wanted = Math.min(segLeft ?? Infinity, full + STREAM_START_PROBE);
        if (this.queue.length < wanted && !atEnd) return;
        const window = Math.min(wanted, this.queue.length);
        const minL = index === 0 ? CHUNK_OVERHEAD : CHUNK_OVERHEAD + 1;
        if (window < minL) throw new FormatError('Truncated', `input ends inside chunk ${index}`, { chunkIndex: index });
        const pieces = this.queue.peekViews(window);
        const candidates = finalChunkLengths(contiguous(pieces, 0, window), index, segLeft, full);
        let opened: Buffer[] | null = null;
        len = 0;
        for (const L of candidates) {
          try {
            opened = this.open(key, headerBytes, pieces, L);
            len = L;
            break;
          } catch (err) {
            if (!isFormatError(err, 'ChunkAuthFailed')) throw err;
          }
        }
        if (opened === null) throw new FormatError('ChunkAuthFailed', `chunk ${index} failed authentication`, { chunkIndex: index });
        plaintext = opened;
        this.queue.take(len);
      } else {
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
        if (len === CHUNK_OVERHEAD && index !== 0) throw emptyFinal(index);
        if (this.queue.length < len) {
          if (atEnd) throw new FormatError('Truncated', `input ends inside chunk ${index}`, { chunkIndex: index });
          return;
        }
        plaintext = this.open(key, headerBytes, this.queue.take(len), len);
      }

      this.checkIdentity(seg, header, sameStream, key);
      this.chunkInSeg++;
      this.segConsumed += len;
      const segRest = segLeft === null ? null : segLeft - len;
      const moreInSegment = segRest === null ? this.queue.length > 0 : segRest > 0;
      const countReached = seg.chunkCount !== null && this.chunkInSeg === seg.chunkCount;

      if (!seg.spanning) {
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
        if (header.final || countReached) this.finishSegment();
        continue;
      }

      // Self-describing segment.
      if (countReached) {
        this.checkSegmentEnd(seg, header.final, index);
        if (moreInSegment) {
          throw new FormatError('TrailingData', `bytes after the segment's last chunk ${index}`, { chunkIndex: index });
        }
      }
      this.flushPending(out); // the previous chunk is followed by a valid chunk
      // The newest chunk is held until what follows it is known to be valid (the next chunk, or the segment's
      // end): a FINAL chunk must not be followed by anything but the next stream, and the input must not end
      // on a non-final chunk where the segment needs a FINAL one (a store that cut the object at a chunk
      // boundary). Either way the plaintext the reader was promised is then never all released.
      if (!countReached) this.pending = plaintext;
      else this.release(plaintext, out);
      if (countReached) this.finishSegment();
    }
  }

  private open(key: KeyObject, headerBytes: Buffer, pieces: readonly Buffer[], len: number): Buffer[] {
    return openChunkParts(
      key,
      headerBytes,
      sliceViews(pieces, CHUNK_HEADER_SIZE, len - TAG_SIZE),
      contiguous(pieces, len - TAG_SIZE, len),
      this.nonce,
    );
  }

  /** Step 4 of FORMAT.md §5.5: the (authentic) chunk's stream, part and index against the expectation. */
  private checkIdentity(seg: Segment, header: ChunkHeader, sameStream: boolean, key: KeyObject): void {
    const index = header.chunkIndex;
    const part = header.partNumber;
    const mismatch = (why: string) => new FormatError('StreamMismatch', `chunk ${index} of part ${part}: ${why}`, { chunkIndex: index });
    if (this.chunkInSeg === 0) {
      if (seg.partNumber !== null && part !== seg.partNumber) throw mismatch(`expected part ${seg.partNumber}`);
      if (seg.partNumber === null && part <= this.prevPart) throw mismatch(`follows part ${this.prevPart}: part numbers must increase`);
      if (seg.firstChunk !== null && index !== seg.firstChunk) throw mismatch(`expected chunk ${seg.firstChunk}`);
    } else if (sameStream) {
      if (this.lastFinal) throw mismatch("follows its stream's final chunk");
      if (index !== this.nextIndex) throw mismatch(`expected chunk ${this.nextIndex} of this stream`);
    } else if (!seg.spanning) {
      throw mismatch('belongs to another stream');
    } else {
      if (!this.lastFinal) throw mismatch(`a new stream starts before the final chunk of part ${this.part}`);
      if (index !== 0) throw mismatch('a new stream must start at chunk 0');
      if (this.part === SINGLE_PUT_PART_NUMBER) throw mismatch('a single-PUT stream (part 0) is the only stream of its object');
      if (part <= this.part) throw mismatch(`follows part ${this.part}: part numbers must increase`);
    }
    if (seg.firstObjectChunk !== null) {
      const objectIndex = seg.firstObjectChunk + this.chunkInSeg;
      if (part === SINGLE_PUT_PART_NUMBER ? index !== objectIndex : index > objectIndex) {
        throw mismatch(`cannot be chunk ${objectIndex} of the object`);
      }
    }
    if (this.chunkInSeg === 0 || !sameStream) {
      this.streamId = Buffer.from(header.streamId);
      this.part = part;
      this.key = key;
    }
    this.nextIndex = index + 1;
    this.lastFinal = header.final;
  }

  private checkSegmentEnd(seg: Segment, final: boolean, index: number): void {
    if (seg.endsWithFinal === true && !final) {
      throw new FormatError('Truncated', `input ends at chunk ${index} of part ${this.part}, which is not a final chunk`, { chunkIndex: index });
    }
    if (seg.endsWithFinal === false && final) {
      throw new FormatError('Truncated', `stream ends at chunk ${index}, before the expected chunks`, { chunkIndex: index });
    }
  }

  /** A self-describing segment whose bytes are all consumed. */
  private endSpanningSegment(seg: Segment, out: Buffer[]): void {
    const last = this.nextIndex - 1;
    if (seg.chunkCount !== null && this.chunkInSeg < seg.chunkCount) {
      throw new FormatError('Truncated', `segment ends after ${this.chunkInSeg} of ${seg.chunkCount} chunks`, { chunkIndex: last });
    }
    this.checkSegmentEnd(seg, this.lastFinal, last);
    this.flushPending(out);
    this.finishSegment();
  }

  private finishSegment(): void {
    this.prevPart = this.part;
    this.segIndex++;
    this.chunkInSeg = 0;
    this.segConsumed = 0;
    this.streamId = null;
    this.key = null;
    this.part = -1;
    this.nextIndex = 0;
    this.lastFinal = false;
  }

  private flushPending(out: Buffer[]): void {
    if (this.pending !== null) {
      const p = this.pending;
      this.pending = null;
      this.release(p, out);
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

function describe(index: number | undefined): string {
  return index === undefined ? 'the next chunk' : `chunk ${index}`;
}

function emptyFinal(index: number): FormatError {
  return new FormatError('InvalidCiphertextSize', `empty final chunk at index ${index} (only an empty stream has one)`, {
    chunkIndex: index,
  });
}

/** Decrypted pieces are pushed as they are (chunk-sized, freshly allocated): no copy. */
function pushAll(stream: Transform, out: Buffer[]): void {
  for (const buf of out) stream.push(buf);
}

/**
 * A Transform over a step that appends its output pieces to a list (and a last step at the end). On failure the
 * pieces made before it are released only when `releaseOnFailure` (a decryptor's verified chunks).
 */
function piecesTransform(step: (chunk: Buffer, out: Buffer[]) => void, last: (out: Buffer[]) => void, releaseOnFailure: boolean): Transform {
  const run = (stream: Transform, work: (out: Buffer[]) => void, callback: (err?: Error | null) => void) => {
    const out: Buffer[] = [];
    try {
      work(out);
    } catch (err) {
      if (releaseOnFailure) pushAll(stream, out);
      callback(err as Error);
      return;
    }
    pushAll(stream, out);
    callback();
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      run(this, (out) => step(chunk, out), callback);
    },
    flush(callback) {
      run(this, last, callback);
    },
  });
}

/** Transform: plaintext in, ciphertext of one stream out (see Encryptor). */
export function createEncryptStream(options: EncryptOptions): Transform {
  const encryptor = new Encryptor(options);
  if (options.pieces) {
    return piecesTransform((chunk, out) => encryptor.updatePieces(chunk, out), (out) => encryptor.finalPieces(out), false);
  }
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

/** Transform: ciphertext of `segments` (or a `selfDescribing` read) in, verified plaintext out (see Decryptor). */
export function createDecryptStream(options: DecryptOptions): Transform {
  const decryptor = new Decryptor(options);
  // Verified chunks before a failing one are released: each was checked on its own.
  return piecesTransform((chunk, out) => decryptor.update(chunk, out), (out) => decryptor.final(out), true);
}

/** Encrypts a whole buffer as one stream. */
export function encryptBuffer(plaintext: Buffer, options: EncryptOptions): Buffer {
  const encryptor = new Encryptor(options);
  const parts = encryptor.update(plaintext);
  parts.push(encryptor.final());
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Decrypts a whole buffer; throws FormatError and returns nothing on any failure. Without `segments` or
 * `selfDescribing` the buffer is a whole single PUT (`[wholeStreamSegment(0)]`).
 */
export function decryptBuffer(ciphertext: Buffer, options: DecryptOptions): Buffer {
  const decryptor = new Decryptor(
    options.segments === undefined && options.selfDescribing === undefined ? { ...options, segments: [wholeStreamSegment(0)] } : options,
  );
  const out: Buffer[] = [];
  decryptor.update(ciphertext, out);
  decryptor.final(out);
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}
