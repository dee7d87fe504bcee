/**
 * Constants of the encrypted-object format (docs/FORMAT.md). Everything marked
 * "changing this breaks stored data" is part of the on-disk format: change it only together with a
 * new version number and a reader for the old one.
 */

/** Envelope blob version. Changing this breaks stored data. */
export const ENVELOPE_VERSION = 1;
/** Envelope algorithm id: AES-256-GCM in chunks (this spec). Changing this breaks stored data. */
export const ALGORITHM_AES256GCM_CHUNKED = 1;
/** Envelope flags byte; no flag is defined in version 1. Changing this breaks stored data. */
export const ENVELOPE_FLAGS_NONE = 0;
/** Envelope layout. Changing these breaks stored data. */
export const ENVELOPE_HEADER_SIZE = 4;
export const KEK_SALT_SIZE = 32;
export const DATA_KEY_SIZE = 32;
export const ENVELOPE_TAG_SIZE = 16;
export const ENVELOPE_SIZE = ENVELOPE_HEADER_SIZE + KEK_SALT_SIZE + DATA_KEY_SIZE + ENVELOPE_TAG_SIZE; // 84
/** base64url without padding of ENVELOPE_SIZE bytes (84 is a multiple of 3: no padding bits). */
export const ENVELOPE_CHARS = (ENVELOPE_SIZE / 3) * 4; // 112
/** SSE-C customer keys are AES-256 keys. */
export const CUSTOMER_KEY_SIZE = 32;

/** HKDF info labels. Changing these breaks stored data. */
export const KEK_INFO_LABEL = 's3-ssec-proxy/v1/kek';
export const STREAM_INFO_LABEL = 's3-ssec-proxy/v1/stream';

/** Chunk sizes are 2^log2 plaintext bytes. Changing the bounds breaks stored data. */
export const MIN_CHUNK_SIZE_LOG2 = 12;
export const MAX_CHUNK_SIZE_LOG2 = 24;
/** Written into new envelopes (64 KiB); readers take the value from each envelope. */
export const DEFAULT_CHUNK_SIZE_LOG2 = 16;

/** Chunk header version. Changing this breaks stored data. */
export const CHUNK_VERSION = 1;
/** Chunk header flag bit 0: last chunk of its stream. Other bits are reserved (must be 0). */
export const FLAG_FINAL = 0x01;
/**
 * Chunk layout. Changing these breaks stored data. Header (24 bytes):
 *   version u8 | flags u8 | partNumber u16be | chunkIndex u32be | streamId (16 bytes)
 * Every size formula uses CHUNK_OVERHEAD; nothing else may hardcode 40.
 */
export const CHUNK_HEADER_SIZE = 24;
export const STREAM_ID_SIZE = 16;
export const TAG_SIZE = 16;
/** Ciphertext bytes a chunk adds to its plaintext: header + tag. */
export const CHUNK_OVERHEAD = CHUNK_HEADER_SIZE + TAG_SIZE; // 40
/** Header field offsets. */
export const HEADER_OFFSET_FLAGS = 1;
export const HEADER_OFFSET_PART_NUMBER = 2;
export const HEADER_OFFSET_CHUNK_INDEX = 4;
export const HEADER_OFFSET_STREAM_ID = 8;
/** chunkIndex is a u32: a stream has at most 2^32 chunks (16 TiB with 4 KiB chunks, beyond S3's 5 TiB). */
export const MAX_CHUNK_INDEX = 0xffff_ffff;
/** GCM nonce = u32be(prefix) || u64be(chunk index); prefix marks the final chunk. Changing this breaks stored data. */
export const NONCE_SIZE = 12;
export const NONCE_PREFIX_FINAL = 0x80000000;
export const NONCE_PREFIX_NOT_FINAL = 0x00000000;

/** Part numbers: 0 for a single PUT, 1..10000 for multipart parts (S3's limit). */
export const SINGLE_PUT_PART_NUMBER = 0;
export const MAX_PART_NUMBER = 10000;
