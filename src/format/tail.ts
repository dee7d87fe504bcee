/**
 * The tail record (docs/FORMAT.md §5.6): 80 bytes right after the last chunk of a stream, for what is known only
 * once the stream has ended: its plaintext size and the client's checksum of it.
 *
 * Every part of a multipart upload ends with one, so the part table of a completed object is read from the end,
 * one small read per part, with no search; a single PUT has one only when its checksum came as a trailer.
 *
 * ```
 *  0  u8     version (1)
 *  1  u8     checksum algorithm (0 none, 1 crc32, 2 crc32c, 3 crc64nvme, 4 sha1, 5 sha256)
 *  2  u16be  part number (0 = single PUT)
 *  4  u64be  plaintext bytes of the stream
 * 12  12     nonce (random)
 * 24  40     GCM ciphertext of the checksum's raw digest, zero-padded to 40 bytes
 * 64  16     GCM tag
 * key = HKDF(DK, salt = empty, info = "s3-ssec-proxy/v1/tail"), additional data = bytes 0..23
 * ```
 * The clear fields let a listing learn sizes without the customer's key; a read with the key opens every
 * record it relies on, so an edited size cannot shift plaintext offsets unnoticed.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { hkdfSha256 } from './chunk.ts';
import { CHUNK_HEADER_SIZE, CHUNK_OVERHEAD, FLAG_FINAL, HEADER_OFFSET_CHUNK_INDEX, HEADER_OFFSET_FLAGS, HEADER_OFFSET_PART_NUMBER } from './constants.ts';
import { FormatError } from './errors.ts';

export const TAIL_SIZE = 80;
export const TAIL_VERSION = 1;
const CLEAR_SIZE = 24;
const SEALED_SIZE = 40;
const TAG_SIZE = 16;
const TAIL_INFO = Buffer.from('s3-ssec-proxy/v1/tail');

/**
 * Checksum algorithms by id; the S3 names in lower case. Changing this breaks stored data (only append);
 * pinned equal to s3/checksums.ts CHECKSUM_NAMES by test/unit/checksum-lists.test.ts.
 */
export const TAIL_ALGORITHMS = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'] as const;
export type TailAlgorithm = (typeof TAIL_ALGORITHMS)[number];
export const DIGEST_SIZES: Record<TailAlgorithm, number> = { crc32: 4, crc32c: 4, crc64nvme: 8, sha1: 20, sha256: 32 };

export interface TailInfo {
  readonly partNumber: number;
  readonly plainSize: number;
  readonly algorithm: TailAlgorithm | undefined;
}

export interface OpenedTail extends TailInfo {
  /** The raw digest, when the stream had a checksum. */
  readonly digest: Buffer | undefined;
}

function tailKey(dataKey: Buffer): Buffer {
  return hkdfSha256(dataKey, Buffer.alloc(0), TAIL_INFO);
}

export function sealTail(
  dataKey: Buffer,
  t: { partNumber: number; plainSize: number; algorithm?: TailAlgorithm | undefined; digest?: Buffer | undefined },
  nonce: Buffer = randomBytes(12),
): Buffer {
  if (!Number.isInteger(t.partNumber) || t.partNumber < 0 || t.partNumber > 10000) throw new RangeError('partNumber must be 0..10000');
  if (!Number.isSafeInteger(t.plainSize) || t.plainSize < 0) throw new RangeError('plainSize must be a safe integer >= 0');
  const digest = t.algorithm ? t.digest : undefined;
  if (t.algorithm && (!digest || digest.length !== DIGEST_SIZES[t.algorithm])) throw new RangeError(`a ${t.algorithm} digest is ${DIGEST_SIZES[t.algorithm!]} bytes`);
  const clear = Buffer.alloc(CLEAR_SIZE);
  clear[0] = TAIL_VERSION;
  clear[1] = t.algorithm ? TAIL_ALGORITHMS.indexOf(t.algorithm) + 1 : 0;
  clear.writeUInt16BE(t.partNumber, 2);
  clear.writeBigUInt64BE(BigInt(t.plainSize), 4);
  nonce.copy(clear, 12, 0, 12);
  const payload = Buffer.alloc(SEALED_SIZE);
  digest?.copy(payload);
  const cipher = createCipheriv('aes-256-gcm', createSecretKey(tailKey(dataKey)), clear.subarray(12, 24));
  cipher.setAAD(clear);
  return Buffer.concat([clear, cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
}

/** The clear fields, without the key (listings). Throws TailInvalid when the bytes are not a record. */
export function readTail(record: Buffer): TailInfo {
  if (record.length !== TAIL_SIZE || record[0] !== TAIL_VERSION) throw new FormatError('TailInvalid', 'no tail record where one was expected');
  const id = record[1]!;
  if (id > TAIL_ALGORITHMS.length) throw new FormatError('TailInvalid', 'unknown checksum algorithm in a tail record');
  const size = record.readBigUInt64BE(4);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError('TailInvalid', 'tail record size out of range');
  return { partNumber: record.readUInt16BE(2), plainSize: Number(size), algorithm: id === 0 ? undefined : TAIL_ALGORITHMS[id - 1] };
}

/** The record, authenticated under the object's data key. Throws TailInvalid / TailAuthFailed. */
export function openTail(dataKey: Buffer, record: Buffer): OpenedTail {
  const info = readTail(record);
  let payload: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', createSecretKey(tailKey(dataKey)), record.subarray(12, CLEAR_SIZE));
    decipher.setAAD(record.subarray(0, CLEAR_SIZE));
    decipher.setAuthTag(record.subarray(TAIL_SIZE - TAG_SIZE));
    payload = Buffer.concat([decipher.update(record.subarray(CLEAR_SIZE, TAIL_SIZE - TAG_SIZE)), decipher.final()]);
  } catch (e) {
    throw new FormatError('TailAuthFailed', 'a tail record did not authenticate', { cause: e });
  }
  return { ...info, digest: info.algorithm ? Buffer.from(payload.subarray(0, DIGEST_SIZES[info.algorithm])) : undefined };
}

/**
 * Removes the tail record after each stream's FINAL chunk from a run of ciphertext that starts at a chunk
 * boundary, so the decryptor sees chunks only. A FINAL chunk's length is not in its header: it is the one
 * length L after which a record of the same part states the plaintext size that L implies (a 64-bit match).
 * Every FINAL chunk must be followed by its record: a ranged read that ends on one fetches the record too.
 */
export function createTailStripper(chunkSize: number): Transform {
  const full = chunkSize + CHUNK_OVERHEAD;
  let passLeft = 0; // bytes of the current non-final chunk still to pass through unexamined
  let held: Buffer = Buffer.alloc(0); // bytes from a chunk boundary on, not yet decided
  let scanned = 0; // FINAL chunk lengths below this were already ruled out

  /** Decides what it can; returns false when it needs more input. */
  function step(out: Buffer[], ending: boolean): boolean {
    if (held.length < CHUNK_HEADER_SIZE) {
      if (ending && held.length > 0) throw new FormatError('Truncated', 'the input ends inside a chunk header');
      return false;
    }
    const final = (held[HEADER_OFFSET_FLAGS]! & FLAG_FINAL) !== 0;
    if (!final) {
      const n = Math.min(full, held.length);
      out.push(held.subarray(0, n));
      passLeft = full - n;
      held = held.subarray(n);
      return passLeft === 0;
    }
    const partNumber = held.readUInt16BE(HEADER_OFFSET_PART_NUMBER);
    const index = held.readUInt32BE(HEADER_OFFSET_CHUNK_INDEX);
    const minL = index === 0 ? CHUNK_OVERHEAD : CHUNK_OVERHEAD + 1;
    for (let L = Math.max(minL, scanned); L <= full && L + TAIL_SIZE <= held.length; L++) {
      if (held[L] !== TAIL_VERSION || held.readUInt16BE(L + 2) !== partNumber) continue;
      if (held.readBigUInt64BE(L + 4) !== BigInt(index) * BigInt(chunkSize) + BigInt(L - CHUNK_OVERHEAD)) continue;
      out.push(held.subarray(0, L));
      held = held.subarray(L + TAIL_SIZE);
      scanned = 0;
      return true;
    }
    scanned = Math.max(scanned, held.length - TAIL_SIZE + 1);
    if (held.length >= full + TAIL_SIZE || ending) throw new FormatError('TailInvalid', 'no tail record after a final chunk');
    return false;
  }

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        const out: Buffer[] = [];
        let off = 0;
        if (passLeft > 0) {
          const n = Math.min(passLeft, chunk.length);
          out.push(chunk.subarray(0, n));
          passLeft -= n;
          off = n;
        }
        if (off < chunk.length) {
          held = held.length ? Buffer.concat([held, chunk.subarray(off)]) : chunk.subarray(off);
          while (passLeft === 0 && step(out, false));
        }
        for (const b of out) if (b.length) this.push(b);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        const out: Buffer[] = [];
        while (step(out, true));
        for (const b of out) if (b.length) this.push(b);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}
