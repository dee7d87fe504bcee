/**
 * Part tables and read plans of a stored encrypted object: pure arithmetic over bytes that a caller reads
 * (`ReadBytes`), so the same code maps objects in memory (tests) and in a store (objects/layout.ts).
 *
 * A single PUT, and a multipart object whose non-last parts are whole multiples of the chunk size ("aligned"),
 * has the size and chunk grid of one stream: plaintextSize(cipherSize) is exact and any range maps to one
 * ciphertext range. Parts with tail records (§5.6) are read from the end, one record per part. Older objects
 * with parts of other sizes (5 MiB + 1 byte...) shift the grid; then the part table comes from a walk over the
 * chunk headers: a binary search along the grid per part for its final chunk, and one read of the gap after a
 * short final chunk to find where the next part starts. Failures are FormatErrors; the edge maps them.
 */
import type { Transform } from 'node:stream';
import { decodeChunkHeader, type ChunkHeader } from './chunk.ts';
import {
  CHUNK_HEADER_SIZE,
  CHUNK_OVERHEAD,
  CHUNK_VERSION,
  FLAG_FINAL,
  HEADER_OFFSET_CHUNK_INDEX,
  HEADER_OFFSET_FLAGS,
  HEADER_OFFSET_PART_NUMBER,
  MAX_PART_NUMBER,
} from './constants.ts';
import { FormatError } from './errors.ts';
import { cipherRangeFor, encryptedSize, isValidEncryptedSize, plaintextSize } from './layout.ts';
import { createDecryptStream, objectRangeRead, wholeObjectRead, type DecryptOptions, type DecryptSegment } from './stream.ts';
import { createTailStripper, openTail, readTail, TAIL_SIZE, type TailAlgorithm } from './tail.ts';

export interface PartExtent {
  readonly partNumber: number;
  readonly plainStart: number;
  readonly plainSize: number;
  readonly cipherStart: number;
  /** The part's chunks (its tail record, if any, follows them). */
  readonly cipherSize: number;
  /** From the part's tail record, when it was opened with the key and the client sent a checksum. */
  readonly checksum?: { readonly algorithm: TailAlgorithm; readonly digest: Buffer };
}

export interface ObjectLayout {
  readonly plainSize: number;
  /** Present when the grid is not uniform (unaligned parts, or tail records): one entry per part, in order. */
  readonly parts?: readonly PartExtent[];
  /** Every part ends with a tail record (docs/FORMAT.md §5.6). */
  readonly tails?: boolean;
  /** Tail records were opened with the data key (a listing reads their clear fields only). */
  readonly verified?: boolean;
}

/** Reads `length` bytes at `offset` of the stored object (fewer only at its end). */
export type ReadBytes = (offset: number, length: number) => Promise<Buffer>;

class Reader {
  constructor(readonly bytes: ReadBytes) {}

  async header(offset: number): Promise<ChunkHeader | undefined> {
    const b = await this.bytes(offset, CHUNK_HEADER_SIZE);
    if (b.length < CHUNK_HEADER_SIZE) return undefined;
    try {
      const h = decodeChunkHeader(b);
      return { ...h, streamId: Buffer.from(h.streamId) };
    } catch {
      return undefined;
    }
  }
}

/** The part table does not hold together: a tampered or truncated object (no wrong key gets this far). */
function corrupt(code: 'StreamMismatch' | 'TailInvalid', what: string, cause?: unknown): FormatError {
  return new FormatError(code, `the stored object failed its integrity check: ${what}`, cause === undefined ? {} : { cause });
}

/**
 * The part table of an object whose parts end with tail records, read from the end: one 80-byte read per part.
 * With `dataKey` every record is opened (authenticated sizes, and the parts' checksums); without it (listings)
 * only the clear fields are read.
 */
export async function tailLayoutFromReads(read: ReadBytes, cipherSize: number, chunkSize: number, dataKey?: Buffer): Promise<ObjectLayout> {
  const found: Array<Omit<PartExtent, 'plainStart'>> = [];
  /** The part whose record ends at `end`, or undefined when the bytes there are not one (any reason). */
  const partAt = (record: Buffer, end: number) => {
    let t;
    try {
      t = dataKey ? openTail(dataKey, record) : { ...readTail(record), digest: undefined };
    } catch {
      return undefined;
    }
    const size = encryptedSize(t.plainSize, chunkSize);
    const start = end - TAIL_SIZE - size;
    const later = found[0];
    if (start < 0 || t.partNumber < 1 || (later && t.partNumber >= later.partNumber)) return undefined;
    return {
      partNumber: t.partNumber,
      plainSize: t.plainSize,
      cipherStart: start,
      cipherSize: size,
      ...(t.algorithm && t.digest ? { checksum: { algorithm: t.algorithm, digest: t.digest } } : {}),
    };
  };
  let end = cipherSize;
  while (end > 0) {
    // Clients upload equal parts: once two non-last parts have the same size, the records of the parts
    // before them are where that size puts them. Those are read in parallel and each is checked (opened,
    // size and part order); the first that does not fit ends the guess, and the walk goes on one by one.
    const [a, b] = found;
    if (a && b && found.length >= 3 && a.plainSize === b.plainSize) {
      const stride = a.cipherSize + TAIL_SIZE;
      const n = Math.min(SPECULATIVE_READS, Math.floor(end / stride));
      const records = await Promise.all(Array.from({ length: n }, (_, k) => read(end - k * stride - TAIL_SIZE, TAIL_SIZE)));
      let taken = 0;
      for (const record of records) {
        const part = partAt(record, end);
        if (!part || part.plainSize !== a.plainSize) break;
        found.unshift(part);
        end = part.cipherStart;
        taken++;
      }
      if (taken > 0) continue;
    }
    if (end < TAIL_SIZE + CHUNK_OVERHEAD) throw corrupt('TailInvalid', 'no room for a part before its tail record');
    const part = partAt(await read(end - TAIL_SIZE, TAIL_SIZE), end);
    if (!part) throw corrupt('TailInvalid', 'no valid tail record where a part ends');
    found.unshift(part);
    end = part.cipherStart;
  }
  if (found.length === 0) throw corrupt('TailInvalid', 'no part');
  let plain = 0;
  const parts = found.map((p) => {
    const e = { ...p, plainStart: plain };
    plain += p.plainSize;
    return e;
  });
  return { plainSize: plain, parts, tails: true, verified: dataKey !== undefined };
}

/** The stored size of the chunks (and tail records) a layout describes: the inverse of the walks above. */
export function storedSizeOf(layout: ObjectLayout, chunkSize: number): number {
  const last = layout.parts?.at(-1);
  if (!last) return encryptedSize(layout.plainSize, chunkSize);
  return last.cipherStart + last.cipherSize + (layout.tails ? TAIL_SIZE : 0);
}

/** Records read at once when parts look equal (a bounded waste if they are not). */
export const SPECULATIVE_READS = 16;

/** The layout from reads of the object's bytes (independent of transport; tested on in-memory objects). */
export async function layoutFromReads(
  read: ReadBytes,
  cipherSize: number,
  chunkSize: number,
  multipart: boolean,
  /** `parts: true` walks aligned multipart objects too, for a part table (GET ?partNumber=N). */
  opts: { parts?: boolean } = {},
): Promise<ObjectLayout> {
  // Even an empty stream is one chunk: fewer bytes are no encrypted object at all (e.g. emptied in the store).
  if (cipherSize < CHUNK_OVERHEAD) throw new FormatError('InvalidCiphertextSize', `${cipherSize} bytes hold no encrypted stream`);
  if (!multipart && isValidEncryptedSize(cipherSize, chunkSize)) return { plainSize: plaintextSize(cipherSize, chunkSize) };
  const reader = new Reader(read);
  if (!opts.parts && (await looksAligned(reader, cipherSize, chunkSize))) {
    return { plainSize: plaintextSize(cipherSize, chunkSize) };
  }
  const parts = await walk(reader, cipherSize, chunkSize);
  const last = parts[parts.length - 1]!;
  return { plainSize: last.plainStart + last.plainSize, parts };
}

/**
 * The uniform-grid hypothesis, proven part by part from the end: the last grid chunk is FINAL with no later
 * part starting inside it, and every part's first chunk (index 0, the same stream as its final chunk) sits on
 * the grid right after the previous part's FINAL chunk, down to offset 0. One read per part, plus one.
 */
async function looksAligned(reader: Reader, cipherSize: number, chunkSize: number): Promise<boolean> {
  if (!isValidEncryptedSize(cipherSize, chunkSize)) return false;
  const stride = chunkSize + CHUNK_OVERHEAD;
  const chunks = Math.max(1, Math.ceil(plaintextSize(cipherSize, chunkSize) / chunkSize));
  const lastPos = (chunks - 1) * stride;
  const tail = await reader.bytes(lastPos, cipherSize - lastPos);
  let final: ChunkHeader;
  try {
    final = decodeChunkHeader(tail);
  } catch {
    return false;
  }
  if (!final.final || findPartStart(tail, CHUNK_OVERHEAD, final.partNumber) >= 0) return false;
  let finalChunk = chunks - 1; // grid index of the current part's final chunk
  for (;;) {
    const start = finalChunk - final.chunkIndex; // grid index of the current part's first chunk
    if (start < 0) return false;
    // One read: the previous part's final chunk (if any) and this part's first header.
    const from = Math.max(0, (start - 1) * stride);
    const b = await reader.bytes(from, (start > 0 ? stride : 0) + CHUNK_HEADER_SIZE);
    try {
      const first = decodeChunkHeader(b.subarray(b.length - CHUNK_HEADER_SIZE));
      if (first.chunkIndex !== 0 || first.partNumber !== final.partNumber || !first.streamId.equals(final.streamId)) return false;
      if (start === 0) return true;
      const before = decodeChunkHeader(b.subarray(0, CHUNK_HEADER_SIZE));
      if (!before.final || before.partNumber >= first.partNumber) return false;
      // The previous part's final chunk must fill its whole grid slot: no other part may start inside it.
      const inside = findPartStart(b.subarray(0, stride), CHUNK_OVERHEAD, before.partNumber);
      if (inside >= 0) return false;
      final = { ...before, streamId: Buffer.from(before.streamId) };
      finalChunk = start - 1;
    } catch {
      return false;
    }
  }
}

/**
 * Offset in `buf` (from `from`) of a chunk header that starts a part numbered above `after`, or -1. Random
 * ciphertext passes these checks (version, flags, index 0, part number) with odds near 2^-47 per offset.
 */
function findPartStart(buf: Buffer, from: number, after: number): number {
  for (let i = from; i + CHUNK_HEADER_SIZE <= buf.length; i++) {
    if (buf[i] !== CHUNK_VERSION || buf[i + HEADER_OFFSET_FLAGS]! > FLAG_FINAL || buf.readUInt32BE(i + HEADER_OFFSET_CHUNK_INDEX) !== 0) continue;
    const partNumber = buf.readUInt16BE(i + HEADER_OFFSET_PART_NUMBER);
    if (partNumber > after && partNumber <= MAX_PART_NUMBER) return i;
  }
  return -1;
}

/** Walks the parts from the start of the object. */
async function walk(reader: Reader, cipherSize: number, chunkSize: number): Promise<PartExtent[]> {
  const stride = chunkSize + CHUNK_OVERHEAD;
  const parts: PartExtent[] = [];
  let pos = 0;
  let plain = 0;
  let prevPart = -1;
  while (pos < cipherSize) {
    const first = await reader.header(pos);
    if (!first || first.chunkIndex !== 0 || first.partNumber <= prevPart) throw corrupt('StreamMismatch', 'no part starts where one must');
    const sameStream = (h: ChunkHeader | undefined, index: number) =>
      h !== undefined && h.chunkIndex === index && h.partNumber === first.partNumber && h.streamId.equals(first.streamId);
    // Largest grid index m (chunk m of this part) whose header belongs to this stream.
    let lo = 0;
    let hi = Math.floor((cipherSize - pos - CHUNK_OVERHEAD) / stride);
    let loHeader: ChunkHeader = first;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      const h = await reader.header(pos + mid * stride);
      if (sameStream(h, mid)) {
        lo = mid;
        loHeader = h!;
      } else hi = mid - 1;
    }
    if (!loHeader.final) throw corrupt('StreamMismatch', 'a part has no final chunk');
    const finalPos = pos + lo * stride;
    // This part ends where the next part's first header is (40..stride bytes after its final chunk's start),
    // or at the end of the object.
    const window = await reader.bytes(finalPos, Math.min(stride + CHUNK_HEADER_SIZE, cipherSize - finalPos));
    const next = findPartStart(window, CHUNK_OVERHEAD, first.partNumber);
    let end: number;
    if (next >= 0) end = finalPos + next;
    else if (cipherSize - finalPos <= stride) end = cipherSize;
    else throw corrupt('StreamMismatch', 'bytes after a final chunk belong to no part');
    const cipherPart = end - pos;
    if (!isValidEncryptedSize(cipherPart, chunkSize)) throw corrupt('StreamMismatch', 'a part of impossible size');
    const plainPart = plaintextSize(cipherPart, chunkSize);
    if (encryptedSize(plainPart, chunkSize) !== cipherPart) throw corrupt('StreamMismatch', 'a part of impossible size');
    parts.push({ partNumber: first.partNumber, plainStart: plain, plainSize: plainPart, cipherStart: pos, cipherSize: cipherPart });
    plain += plainPart;
    prevPart = first.partNumber;
    pos = end;
  }
  return parts;
}

export interface RangePlan {
  readonly cipherStart: number;
  readonly cipherEndInclusive: number;
  /** What createDecryptStream needs besides the key and chunk size. */
  readonly decrypt: Pick<DecryptOptions, 'segments' | 'selfDescribing' | 'skip' | 'length'>;
  /** The ciphertext holds tail records to strip before decrypting. */
  readonly stripTails?: boolean;
}

/** The stages that turn the planned ciphertext into plaintext. */
export function decryptStages(plan: Pick<RangePlan, 'decrypt' | 'stripTails'>, dataKey: Buffer, chunkSize: number): Transform[] {
  const decrypt = createDecryptStream({ dataKey, chunkSize, ...plan.decrypt });
  return plan.stripTails ? [createTailStripper(chunkSize), decrypt] : [decrypt];
}

/** The one ciphertext range holding plaintext [a, b], and how to decrypt it. */
export function planRange(layout: ObjectLayout, a: number, b: number, chunkSize: number): RangePlan {
  const length = b - a + 1;
  if (!layout.parts) {
    const r = cipherRangeFor(a, b, layout.plainSize, chunkSize);
    return {
      cipherStart: r.cipherStart,
      cipherEndInclusive: r.cipherEndInclusive,
      decrypt: { selfDescribing: objectRangeRead(r), skip: r.skip, length },
    };
  }
  const touched = layout.parts.filter((p) => p.plainSize > 0 && p.plainStart <= b && p.plainStart + p.plainSize - 1 >= a);
  const segments: DecryptSegment[] = [];
  let cipherStart = -1;
  let cipherEnd = -1;
  let skip = 0;
  touched.forEach((p, i) => {
    const r = cipherRangeFor(Math.max(a, p.plainStart) - p.plainStart, Math.min(b, p.plainStart + p.plainSize - 1) - p.plainStart, p.plainSize, chunkSize);
    if (i === 0) {
      cipherStart = p.cipherStart + r.cipherStart;
      skip = r.skip;
    }
    // A read that ends on a part's final chunk takes its tail record too (the stripper expects one there).
    cipherEnd = p.cipherStart + r.cipherEndInclusive + (layout.tails && r.endsWithFinal ? TAIL_SIZE : 0);
    segments.push({
      partNumber: p.partNumber,
      firstChunk: r.firstChunk,
      chunkCount: r.chunkCount,
      endsWithFinal: r.endsWithFinal,
      byteLength: r.cipherEndInclusive - r.cipherStart + 1,
    });
  });
  return { cipherStart, cipherEndInclusive: cipherEnd, decrypt: { segments, skip, length }, ...(layout.tails ? { stripTails: true } : {}) };
}

/** A whole-object read: self-describing for any layout (part boundaries are the FINAL chunks). */
export function planWhole(layout?: ObjectLayout): Pick<RangePlan, 'decrypt' | 'stripTails'> {
  return { decrypt: { selfDescribing: wholeObjectRead() }, ...(layout?.tails ? { stripTails: true } : {}) };
}
