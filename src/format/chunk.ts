/**
 * One chunk: header, key derivation, nonce, seal and open (docs/FORMAT.md §5). No buffering or
 * stream logic here; see stream.ts.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { Buffer } from 'node:buffer';
import {
  CHUNK_HEADER_SIZE,
  CHUNK_OVERHEAD,
  CHUNK_VERSION,
  DATA_KEY_SIZE,
  FLAG_FINAL,
  HEADER_OFFSET_CHUNK_INDEX,
  HEADER_OFFSET_FLAGS,
  HEADER_OFFSET_PART_NUMBER,
  HEADER_OFFSET_STREAM_ID,
  MAX_CHUNK_INDEX,
  MAX_CHUNK_SIZE_LOG2,
  MAX_PART_NUMBER,
  MIN_CHUNK_SIZE_LOG2,
  NONCE_PREFIX_FINAL,
  NONCE_PREFIX_NOT_FINAL,
  NONCE_SIZE,
  STREAM_ID_SIZE,
  STREAM_INFO_LABEL,
  TAG_SIZE,
} from './constants.ts';
import { FormatError } from './errors.ts';

const CIPHER = 'aes-256-gcm';
const GCM_OPTIONS = { authTagLength: TAG_SIZE } as const;
const TWO_POW_32 = 0x1_0000_0000;

/**
 * HKDF-SHA256 (RFC 5869) for up to 32 bytes of output. Implemented on HMAC because node's hkdfSync
 * rejects `info` over 1024 bytes, and the KEK info carries an object key of up to 1024 bytes.
 */
export function hkdfSha256(ikm: Buffer, salt: Buffer, info: Buffer, length = 32): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > 32) {
    throw new RangeError('hkdfSha256: length must be 1..32');
  }
  // KeyObjects, not Buffers: node 24 pays ~14 µs per Buffer key (a failed KeyObject brand check) on every call.
  const prk = createHmac('sha256', createSecretKey(salt)).update(ikm).digest();
  const t1 = createHmac('sha256', createSecretKey(prk)).update(info).update(Buffer.of(1)).digest();
  return length === 32 ? t1 : t1.subarray(0, length);
}

export interface ChunkHeader {
  version: number;
  final: boolean;
  partNumber: number;
  /** Index of the chunk within its stream (0, 1, 2, ...). */
  chunkIndex: number;
  streamId: Buffer;
}

export function assertPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 0 || partNumber > MAX_PART_NUMBER) {
    throw new RangeError(`partNumber must be an integer 0..${MAX_PART_NUMBER}, got ${partNumber}`);
  }
}

export function assertChunkIndex(chunkIndex: number): void {
  if (!Number.isInteger(chunkIndex) || chunkIndex < 0 || chunkIndex > MAX_CHUNK_INDEX) {
    throw new RangeError(`chunk index must be an integer 0..${MAX_CHUNK_INDEX} (u32), got ${chunkIndex}`);
  }
}

export function assertChunkSizeLog2(chunkSizeLog2: number): void {
  if (!Number.isInteger(chunkSizeLog2) || chunkSizeLog2 < MIN_CHUNK_SIZE_LOG2 || chunkSizeLog2 > MAX_CHUNK_SIZE_LOG2) {
    throw new RangeError(`chunkSizeLog2 must be an integer ${MIN_CHUNK_SIZE_LOG2}..${MAX_CHUNK_SIZE_LOG2}, got ${chunkSizeLog2}`);
  }
}

/** Encodes a 24-byte chunk header: version | flags | u16be partNumber | u32be chunkIndex | streamId. */
export function encodeChunkHeader(final: boolean, partNumber: number, chunkIndex: number, streamId: Buffer): Buffer {
  assertPartNumber(partNumber);
  assertChunkIndex(chunkIndex);
  if (streamId.length !== STREAM_ID_SIZE) throw new RangeError(`streamId must be ${STREAM_ID_SIZE} bytes`);
  const header = Buffer.alloc(CHUNK_HEADER_SIZE);
  header[0] = CHUNK_VERSION;
  header[HEADER_OFFSET_FLAGS] = final ? FLAG_FINAL : 0;
  header.writeUInt16BE(partNumber, HEADER_OFFSET_PART_NUMBER);
  header.writeUInt32BE(chunkIndex, HEADER_OFFSET_CHUNK_INDEX);
  streamId.copy(header, HEADER_OFFSET_STREAM_ID);
  return header;
}

/** Rewrites the chunkIndex field of an encoded header in place (the encryptor reuses one header buffer). */
export function setHeaderChunkIndex(header: Buffer, chunkIndex: number): void {
  assertChunkIndex(chunkIndex);
  header.writeUInt32BE(chunkIndex, HEADER_OFFSET_CHUNK_INDEX);
}

/**
 * Decodes and checks a chunk header (first 24 bytes of `buf`); throws HeaderInvalid. `streamId` is a view.
 * `position` (the caller's idea of the chunk's index, if any) only labels errors.
 */
export function decodeChunkHeader(buf: Buffer, position?: number): ChunkHeader {
  if (buf.length < CHUNK_HEADER_SIZE) throw new RangeError(`chunk header needs ${CHUNK_HEADER_SIZE} bytes`);
  const version = buf[0]!;
  const flags = buf[HEADER_OFFSET_FLAGS]!;
  if (version !== CHUNK_VERSION) {
    throw new FormatError('HeaderInvalid', `unknown chunk version ${version}${at(position)}`, { chunkIndex: position });
  }
  if ((flags & ~FLAG_FINAL) !== 0) {
    throw new FormatError('HeaderInvalid', `reserved chunk flag bits set (0x${flags.toString(16)})${at(position)}`, {
      chunkIndex: position,
    });
  }
  return {
    version,
    final: (flags & FLAG_FINAL) !== 0,
    partNumber: buf.readUInt16BE(HEADER_OFFSET_PART_NUMBER),
    chunkIndex: buf.readUInt32BE(HEADER_OFFSET_CHUNK_INDEX),
    streamId: buf.subarray(HEADER_OFFSET_STREAM_ID, CHUNK_HEADER_SIZE),
  };
}

function at(chunkIndex: number | undefined): string {
  return chunkIndex === undefined ? '' : ` at chunk ${chunkIndex}`;
}

/** SK = HKDF-SHA256(DK, salt = streamId, info = label || u16be(partNumber) || u8(chunkSizeLog2)). */
export function deriveStreamKeyBytes(dataKey: Buffer, streamId: Buffer, partNumber: number, chunkSizeLog2: number): Buffer {
  if (dataKey.length !== DATA_KEY_SIZE) throw new RangeError(`dataKey must be ${DATA_KEY_SIZE} bytes`);
  if (streamId.length !== STREAM_ID_SIZE) throw new RangeError(`streamId must be ${STREAM_ID_SIZE} bytes`);
  if (!Number.isInteger(partNumber) || partNumber < 0 || partNumber > 0xffff) {
    throw new RangeError(`partNumber must fit u16, got ${partNumber}`);
  }
  assertChunkSizeLog2(chunkSizeLog2);
  const label = Buffer.from(STREAM_INFO_LABEL, 'ascii');
  const info = Buffer.alloc(label.length + 3);
  label.copy(info, 0);
  info.writeUInt16BE(partNumber, label.length);
  info[label.length + 2] = chunkSizeLog2;
  return hkdfSha256(dataKey, streamId, info, 32);
}

/** The stream key as a KeyObject: create once per stream (a KeyObject per chunk setup is ~3x faster than raw keys). */
export function deriveStreamKey(dataKey: Buffer, streamId: Buffer, partNumber: number, chunkSizeLog2: number): KeyObject {
  return createSecretKey(deriveStreamKeyBytes(dataKey, streamId, partNumber, chunkSizeLog2));
}

/** Writes the 12-byte nonce u32be(final ? 0x80000000 : 0) || u64be(index) into `out` (allocated if absent). */
export function chunkNonce(index: number, final: boolean, out: Buffer = Buffer.alloc(NONCE_SIZE)): Buffer {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`chunk index must be a safe integer >= 0, got ${index}`);
  out.writeUInt32BE(final ? NONCE_PREFIX_FINAL : NONCE_PREFIX_NOT_FINAL, 0);
  out.writeUInt32BE(Math.floor(index / TWO_POW_32), 4);
  out.writeUInt32BE(index % TWO_POW_32, 8);
  return out;
}

/** The nonce of the chunk whose encoded header is `header`: from its FINAL flag and chunkIndex field. */
function headerNonce(header: Buffer, nonceScratch?: Buffer): Buffer {
  const final = (header[HEADER_OFFSET_FLAGS]! & FLAG_FINAL) !== 0;
  return chunkNonce(header.readUInt32BE(HEADER_OFFSET_CHUNK_INDEX), final, nonceScratch);
}

/**
 * Seals one chunk into `out` at `offset`: header (copied from `header`, which carries the final flag and the
 * chunk index that select the nonce) | ciphertext | tag. Plaintext may come in pieces (no concatenation
 * needed). Returns bytes written. `nonceScratch` lets a stream reuse one buffer: createCipheriv copies the IV.
 */
export function sealChunkInto(
  key: KeyObject,
  header: Buffer,
  plaintext: readonly Buffer[],
  out: Buffer,
  offset: number,
  nonceScratch?: Buffer,
): number {
  const cipher = createCipheriv(CIPHER, key, headerNonce(header, nonceScratch), GCM_OPTIONS);
  header.copy(out, offset, 0, CHUNK_HEADER_SIZE);
  cipher.setAAD(header.subarray(0, CHUNK_HEADER_SIZE));
  let pos = offset + CHUNK_HEADER_SIZE;
  for (const piece of plaintext) {
    if (piece.length === 0) continue;
    const ct = cipher.update(piece);
    ct.copy(out, pos);
    pos += ct.length;
  }
  cipher.final(); // GCM emits nothing here
  cipher.getAuthTag().copy(out, pos);
  return pos + TAG_SIZE - offset;
}

/**
 * Seals one chunk without copying its ciphertext: pushes onto `out` the header (joined after `before`, the
 * previous chunk's tag, when given: one small piece instead of two) and the ciphertext pieces as the cipher
 * returns them, and returns the tag for the caller to place. For sockets, where copying every chunk into a
 * larger buffer costs more than the extra writes.
 */
export function sealChunkPieces(
  key: KeyObject,
  header: Buffer,
  plaintext: readonly Buffer[],
  out: Buffer[],
  before?: Buffer,
  nonceScratch?: Buffer,
): Buffer {
  const cipher = createCipheriv(CIPHER, key, headerNonce(header, nonceScratch), GCM_OPTIONS);
  const lead = Buffer.allocUnsafe((before?.length ?? 0) + CHUNK_HEADER_SIZE); // small: from the shared pool
  if (before) before.copy(lead, 0);
  header.copy(lead, lead.length - CHUNK_HEADER_SIZE, 0, CHUNK_HEADER_SIZE);
  out.push(lead);
  cipher.setAAD(header.subarray(0, CHUNK_HEADER_SIZE));
  for (const piece of plaintext) {
    if (piece.length > 0) out.push(cipher.update(piece));
  }
  cipher.final(); // GCM emits nothing here
  return cipher.getAuthTag();
}

/** Seals one chunk and returns header | ciphertext | tag. */
export function sealChunk(key: KeyObject, header: Buffer, plaintext: Buffer): Buffer {
  const out = Buffer.allocUnsafe(plaintext.length + CHUNK_OVERHEAD);
  sealChunkInto(key, header, [plaintext], out, 0);
  return out;
}

/**
 * Opens one chunk given its parts; returns the plaintext (one piece per non-empty ciphertext piece, no
 * concatenation) only after the tag verified, else throws ChunkAuthFailed. The caller has already checked
 * the header (decodeChunkHeader); its final flag and chunk index select the nonce, and it is the AAD.
 * Whether the chunk is at the expected position is the caller's check.
 */
export function openChunkParts(
  key: KeyObject,
  header: Buffer,
  ciphertext: readonly Buffer[],
  tag: Buffer,
  nonceScratch?: Buffer,
): Buffer[] {
  const decipher = createDecipheriv(CIPHER, key, headerNonce(header, nonceScratch), GCM_OPTIONS);
  decipher.setAAD(header.subarray(0, CHUNK_HEADER_SIZE));
  decipher.setAuthTag(tag);
  const parts: Buffer[] = [];
  for (const piece of ciphertext) {
    if (piece.length > 0) parts.push(decipher.update(piece));
  }
  try {
    decipher.final();
  } catch (cause) {
    const index = header.readUInt32BE(HEADER_OFFSET_CHUNK_INDEX);
    throw new FormatError('ChunkAuthFailed', `chunk ${index} failed authentication`, { cause, chunkIndex: index });
  }
  return parts;
}

/** Opens one contiguous chunk (header | ciphertext | tag): checks the header, then the tag. */
export function openChunk(key: KeyObject, chunk: Buffer): Buffer {
  if (chunk.length < CHUNK_OVERHEAD) {
    throw new FormatError('Truncated', `chunk is ${chunk.length} bytes, shorter than header and tag`);
  }
  decodeChunkHeader(chunk);
  const header = chunk.subarray(0, CHUNK_HEADER_SIZE);
  const body = chunk.subarray(CHUNK_HEADER_SIZE, chunk.length - TAG_SIZE);
  const tag = chunk.subarray(chunk.length - TAG_SIZE);
  return openChunkParts(key, header, [body], tag)[0] ?? Buffer.alloc(0);
}
