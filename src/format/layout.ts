/**
 * Size and range arithmetic for one stream (docs/FORMAT.md §6-§7). Pure functions on plain numbers:
 * every size up to 2^53 is exact, far above S3's 5 TiB object limit.
 */
import { CHUNK_OVERHEAD, MAX_CHUNK_SIZE_LOG2, MIN_CHUNK_SIZE_LOG2 } from './constants.ts';
import { FormatError } from './errors.ts';

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

/** Number of chunks of a stream holding `plainSize` bytes: max(1, ceil(plainSize / C)). */
export function chunkCount(plainSize: number, chunkSize: number): number {
  chunkSizeLog2Of(chunkSize);
  assertSize('plainSize', plainSize);
  return plainSize === 0 ? 1 : Math.ceil(plainSize / chunkSize);
}

/** Ciphertext size of a stream: plainSize + 32 * max(1, ceil(plainSize / C)). */
export function encryptedSize(plainSize: number, chunkSize: number): number {
  const size = plainSize + CHUNK_OVERHEAD * chunkCount(plainSize, chunkSize);
  if (!Number.isSafeInteger(size)) throw new RangeError(`encrypted size of ${plainSize} bytes is not a safe integer`);
  return size;
}

/**
 * Inverse of encryptedSize. Impossible sizes (FormatError InvalidCiphertextSize): below 32, and above 32 with
 * `size mod (C + 32)` in 1..32 (a last chunk with no room for at least one plaintext byte).
 */
export function plaintextSize(cipherSize: number, chunkSize: number): number {
  chunkSizeLog2Of(chunkSize);
  assertSize('cipherSize', cipherSize);
  if (cipherSize === CHUNK_OVERHEAD) return 0;
  const full = chunkSize + CHUNK_OVERHEAD;
  const rem = cipherSize % full;
  if (cipherSize < CHUNK_OVERHEAD || (rem >= 1 && rem <= CHUNK_OVERHEAD)) {
    throw new FormatError('InvalidCiphertextSize', `no plaintext encrypts to ${cipherSize} bytes with ${chunkSize}-byte chunks`);
  }
  const fullChunks = Math.floor(cipherSize / full);
  return fullChunks * chunkSize + (rem === 0 ? 0 : rem - CHUNK_OVERHEAD);
}

/** True iff some plaintext size encrypts to `cipherSize` (see plaintextSize). */
export function isValidEncryptedSize(cipherSize: number, chunkSize: number): boolean {
  chunkSizeLog2Of(chunkSize);
  if (!Number.isSafeInteger(cipherSize) || cipherSize < CHUNK_OVERHEAD) return false;
  if (cipherSize === CHUNK_OVERHEAD) return true;
  const rem = cipherSize % (chunkSize + CHUNK_OVERHEAD);
  return !(rem >= 1 && rem <= CHUNK_OVERHEAD);
}

export interface CipherRange {
  /** Index of the first chunk to fetch (within the stream). */
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
 * containing them: one contiguous ciphertext range and no chunk that misses the requested bytes.
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
