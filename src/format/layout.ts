/**
 * Size and range arithmetic for one stream and for multipart layouts (docs/FORMAT.md §6-§7). Pure functions
 * on plain numbers: every size up to 2^53 is exact, far above S3's 5 TiB object limit.
 */
import { CHUNK_HEADER_SIZE, CHUNK_OVERHEAD, MAX_CHUNK_SIZE_LOG2, MIN_CHUNK_SIZE_LOG2 } from './constants.ts';
import { FormatError } from './errors.ts';

/** Re-exported so size arithmetic elsewhere needs only this module. */
export { CHUNK_HEADER_SIZE, CHUNK_OVERHEAD };

/** Returns log2(chunkSize); throws RangeError unless chunkSize is 2^12..2^24. */
export function chunkSizeLog2Of(chunkSize: number): number {
  if (Number.isInteger(chunkSize) && chunkSize > 0) {
    const log2 = Math.log2(chunkSize);
    if (Number.isInteger(log2) && log2 >= MIN_CHUNK_SIZE_LOG2 && log2 <= MAX_CHUNK_SIZE_LOG2) return log2;
  }
  throw new RangeError(`chunkSize must be a power of two 2^${MIN_CHUNK_SIZE_LOG2}..2^${MAX_CHUNK_SIZE_LOG2}, got ${chunkSize}`);
}

function assertSize(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a safe integer >= 0, got ${n}`);
}

/** Ciphertext bytes of a full chunk, C + CHUNK_OVERHEAD: the stride of the chunk grid. */
export function fullChunkSize(chunkSize: number): number {
  chunkSizeLog2Of(chunkSize);
  return chunkSize + CHUNK_OVERHEAD;
}

/** Number of chunks of a stream holding `plainSize` bytes: max(1, ceil(plainSize / C)). */
export function chunkCount(plainSize: number, chunkSize: number): number {
  chunkSizeLog2Of(chunkSize);
  assertSize('plainSize', plainSize);
  return plainSize === 0 ? 1 : Math.ceil(plainSize / chunkSize);
}

/** Ciphertext size of a stream: plainSize + CHUNK_OVERHEAD * max(1, ceil(plainSize / C)). */
export function encryptedSize(plainSize: number, chunkSize: number): number {
  const size = plainSize + CHUNK_OVERHEAD * chunkCount(plainSize, chunkSize);
  if (!Number.isSafeInteger(size)) throw new RangeError(`encrypted size of ${plainSize} bytes is not a safe integer`);
  return size;
}

/**
 * Inverse of encryptedSize. Impossible sizes (FormatError InvalidCiphertextSize), with F = C + CHUNK_OVERHEAD:
 * below CHUNK_OVERHEAD, and above it with `size mod F` in 1..CHUNK_OVERHEAD (a last chunk with no room for
 * a plaintext byte). See isNaturalStreamSize.
 */
export function plaintextSize(cipherSize: number, chunkSize: number): number {
  chunkSizeLog2Of(chunkSize);
  assertSize('cipherSize', cipherSize);
  if (!isNaturalStreamSize(cipherSize, chunkSize)) {
    throw new FormatError('InvalidCiphertextSize', `no plaintext encrypts to ${cipherSize} bytes with ${chunkSize}-byte chunks`);
  }
  if (cipherSize === CHUNK_OVERHEAD) return 0;
  const full = chunkSize + CHUNK_OVERHEAD;
  const rem = cipherSize % full;
  const fullChunks = Math.floor(cipherSize / full);
  return fullChunks * chunkSize + (rem === 0 ? 0 : rem - CHUNK_OVERHEAD);
}

/**
 * True iff `cipherSize` is the ciphertext size of some single stream (`encryptedSize(p)` for some p >= 0).
 * With F = C + CHUNK_OVERHEAD and r = size mod F, the natural sizes are exactly:
 *   size = CHUNK_OVERHEAD (the empty stream), and size > CHUNK_OVERHEAD with r = 0 or r >= CHUNK_OVERHEAD + 1.
 * So residues 1..CHUNK_OVERHEAD-1 (1..39) never occur, and residue CHUNK_OVERHEAD (40) occurs only for the
 * size 40 itself (docs/FORMAT.md §6.2).
 */
export function isNaturalStreamSize(cipherSize: number, chunkSize: number): boolean {
  chunkSizeLog2Of(chunkSize);
  if (!Number.isSafeInteger(cipherSize) || cipherSize < CHUNK_OVERHEAD) return false;
  if (cipherSize === CHUNK_OVERHEAD) return true;
  const rem = cipherSize % (chunkSize + CHUNK_OVERHEAD);
  return !(rem >= 1 && rem <= CHUNK_OVERHEAD);
}

/** True iff some plaintext size encrypts to `cipherSize` as one stream (same as isNaturalStreamSize). */
export function isValidEncryptedSize(cipherSize: number, chunkSize: number): boolean {
  return isNaturalStreamSize(cipherSize, chunkSize);
}

function assertParts(partPlainSizes: readonly number[]): void {
  if (!Array.isArray(partPlainSizes) || partPlainSizes.length === 0) {
    throw new RangeError('partPlainSizes must be a non-empty array (an object has at least one stream)');
  }
  partPlainSizes.forEach((p, i) => assertSize(`partPlainSizes[${i}]`, p));
}

/** Stored size of a multipart object: the sum of encryptedSize over its parts (one stream each), in part order. */
export function objectCipherSize(partPlainSizes: readonly number[], chunkSize: number): number {
  chunkSizeLog2Of(chunkSize);
  assertParts(partPlainSizes);
  let total = 0;
  for (const p of partPlainSizes) total += encryptedSize(p, chunkSize);
  if (!Number.isSafeInteger(total)) throw new RangeError('object ciphertext size is not a safe integer');
  return total;
}

/**
 * True iff the parts form an aligned layout: every part except the last is a positive multiple of C, and the
 * last part is non-empty unless it is the only one. Then the object has exactly the size and chunk grid of ONE
 * stream of the total plaintext (docs/FORMAT.md §6.3): objectCipherSize == encryptedSize(sum), and
 * cipherRangeFor(…, sum, C) addresses it. (An empty last part after others would add a 40-byte stream: the
 * size would end in residue 40, which no single stream of that length has.)
 */
export function isAlignedLayout(partPlainSizes: readonly number[], chunkSize: number): boolean {
  chunkSizeLog2Of(chunkSize);
  assertParts(partPlainSizes);
  const last = partPlainSizes.length - 1;
  for (let i = 0; i < last; i++) {
    const p = partPlainSizes[i]!;
    if (p === 0 || p % chunkSize !== 0) return false;
  }
  return last === 0 || partPlainSizes[last]! > 0;
}

export interface CipherRange {
  /**
   * Index of the first chunk to fetch: within the stream, or, for an aligned multipart object addressed as one
   * stream of its total plaintext, within the object (pass it as `firstObjectChunk` in self-describing mode).
   */
  firstChunk: number;
  /** Index of the last chunk to fetch. */
  lastChunk: number;
  /** lastChunk - firstChunk + 1. */
  chunkCount: number;
  /** True iff lastChunk is the stream's final chunk (pass to the decrypt segment). */
  endsWithFinal: boolean;
  /** Ciphertext byte offsets to fetch, inclusive (an HTTP Range `bytes=cipherStart-cipherEndInclusive`). */
  cipherStart: number;
  cipherEndInclusive: number;
  /** Plaintext bytes to drop from the start of the first decrypted chunk. */
  skip: number;
  /** Plaintext bytes to return: plainEndInclusive - plainStart + 1. */
  length: number;
}

/**
 * Maps plaintext bytes [plainStart, plainEndInclusive] of a stream of `plainSize` bytes to the whole chunks
 * containing them: one contiguous ciphertext range and no chunk that misses the requested bytes. Also valid
 * for an aligned multipart object with plainSize = its total plaintext (same chunk grid, §6.3).
 * Offsets must already be satisfiable (0 <= start <= end < plainSize); HTTP Range parsing is the caller's.
 */
export function cipherRangeFor(plainStart: number, plainEndInclusive: number, plainSize: number, chunkSize: number): CipherRange {
  chunkSizeLog2Of(chunkSize);
  assertSize('plainStart', plainStart);
  assertSize('plainEndInclusive', plainEndInclusive);
  assertSize('plainSize', plainSize);
  if (plainStart > plainEndInclusive || plainEndInclusive >= plainSize) {
    throw new RangeError(`range ${plainStart}-${plainEndInclusive} is not within 0..${plainSize - 1}`);
  }
  const full = chunkSize + CHUNK_OVERHEAD;
  const firstChunk = Math.floor(plainStart / chunkSize);
  const lastChunk = Math.floor(plainEndInclusive / chunkSize);
  const finalChunk = chunkCount(plainSize, chunkSize) - 1;
  const endsWithFinal = lastChunk === finalChunk;
  const cipherEnd = endsWithFinal ? encryptedSize(plainSize, chunkSize) : (lastChunk + 1) * full;
  return {
    firstChunk,
    lastChunk,
    chunkCount: lastChunk - firstChunk + 1,
    endsWithFinal,
    cipherStart: firstChunk * full,
    cipherEndInclusive: cipherEnd - 1,
    skip: plainStart - firstChunk * chunkSize,
    length: plainEndInclusive - plainStart + 1,
  };
}
