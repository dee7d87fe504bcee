/**
 * The envelope (docs/FORMAT.md §4): the object's random data key, sealed under a key derived from the SSE-C
 * customer key and the object's name, stored as one ASCII metadata value. No key hash is stored: a wrong
 * key, another name and an edited envelope all fail the same GCM check.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes as cryptoRandomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import {
  ALGORITHM_AES256GCM_CHUNKED,
  CUSTOMER_KEY_SIZE,
  DATA_KEY_SIZE,
  DEFAULT_CHUNK_SIZE_LOG2,
  ENVELOPE_CHARS,
  ENVELOPE_FLAGS_NONE,
  ENVELOPE_HEADER_SIZE,
  ENVELOPE_SIZE,
  ENVELOPE_TAG_SIZE,
  ENVELOPE_VERSION,
  KEK_INFO_LABEL,
  KEK_SALT_SIZE,
  MAX_CHUNK_SIZE_LOG2,
  MIN_CHUNK_SIZE_LOG2,
  NONCE_SIZE,
} from '../format/constants.ts';
import { assertChunkSizeLog2, hkdfSha256 } from '../format/chunk.ts';
import { FormatError } from '../format/errors.ts';

const CIPHER = 'aes-256-gcm';
/** Each KEK seals exactly one data key (fresh random salt per seal), so a fixed nonce is safe. */
const ZERO_NONCE = Buffer.alloc(NONCE_SIZE);
const BASE64URL_ENVELOPE = new RegExp(`^[A-Za-z0-9_-]{${ENVELOPE_CHARS}}$`);

const SALT_OFFSET = ENVELOPE_HEADER_SIZE;
const SEALED_KEY_OFFSET = SALT_OFFSET + KEK_SALT_SIZE;
const TAG_OFFSET = SEALED_KEY_OFFSET + DATA_KEY_SIZE;

export interface SealEnvelopeOptions {
  /** The SSE-C customer key (32 bytes, already validated against its MD5 by the caller). */
  customerKey: Buffer;
  bucket: string;
  /** The object key as S3 stores it (URL-decoded). */
  key: string;
  /** Seal this data key instead of a fresh random one (copies, vectors). */
  dataKey?: Buffer;
  /** @default 16 (64 KiB chunks) */
  chunkSizeLog2?: number;
  /** Randomness: called for the data key (if not given) then the 32-byte KEK salt. @default crypto.randomBytes */
  randomBytes?: (n: number) => Buffer;
}

export interface SealedEnvelope {
  /** The metadata value: 112 base64url characters. */
  value: string;
  dataKey: Buffer;
  chunkSize: number;
}

export interface OpenedEnvelope {
  dataKey: Buffer;
  chunkSize: number;
  version: number;
}

export interface EnvelopeHeader {
  version: number;
  algorithm: number;
  chunkSizeLog2: number;
  chunkSize: number;
}

function assertKey(name: string, key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== CUSTOMER_KEY_SIZE) throw new RangeError(`${name} must be a ${CUSTOMER_KEY_SIZE}-byte Buffer`);
}

function nameBytes(what: string, name: string): Buffer {
  if (typeof name !== 'string' || !name.isWellFormed()) {
    throw new TypeError(`${what} must be a well-formed string (lone surrogates would encode ambiguously)`);
  }
  return Buffer.from(name, 'utf8');
}

/** KEK = HKDF-SHA256(customerKey, kekSalt, label || u32be(len) || bucket || u32be(len) || key). */
export function deriveKek(customerKey: Buffer, kekSalt: Buffer, bucket: string, key: string): Buffer {
  assertKey('customerKey', customerKey);
  if (!Buffer.isBuffer(kekSalt) || kekSalt.length !== KEK_SALT_SIZE) throw new RangeError(`kekSalt must be ${KEK_SALT_SIZE} bytes`);
  const label = Buffer.from(KEK_INFO_LABEL, 'ascii');
  const b = nameBytes('bucket', bucket);
  const k = nameBytes('key', key);
  const info = Buffer.alloc(label.length + 4 + b.length + 4 + k.length);
  let pos = label.copy(info, 0);
  pos = info.writeUInt32BE(b.length, pos);
  pos += b.copy(info, pos);
  pos = info.writeUInt32BE(k.length, pos);
  k.copy(info, pos);
  return hkdfSha256(customerKey, kekSalt, info, 32);
}

function decode(value: string): Buffer {
  if (typeof value !== 'string' || !BASE64URL_ENVELOPE.test(value)) {
    throw new FormatError('EnvelopeMalformed', `envelope must be ${ENVELOPE_CHARS} base64url characters`);
  }
  return Buffer.from(value, 'base64url');
}

function checkHeader(blob: Buffer): EnvelopeHeader {
  const version = blob[0]!;
  const algorithm = blob[1]!;
  const chunkSizeLog2 = blob[2]!;
  const flags = blob[3]!;
  if (version !== ENVELOPE_VERSION) throw new FormatError('UnsupportedVersion', `envelope version ${version} is not supported`);
  if (algorithm !== ALGORITHM_AES256GCM_CHUNKED) throw new FormatError('UnsupportedVersion', `envelope algorithm ${algorithm} is not supported`);
  if (flags !== ENVELOPE_FLAGS_NONE) throw new FormatError('UnsupportedVersion', `envelope flags 0x${flags.toString(16)} are not supported`);
  if (chunkSizeLog2 < MIN_CHUNK_SIZE_LOG2 || chunkSizeLog2 > MAX_CHUNK_SIZE_LOG2) {
    throw new FormatError('UnsupportedVersion', `envelope chunk size 2^${chunkSizeLog2} is not supported`);
  }
  return { version, algorithm, chunkSizeLog2, chunkSize: 2 ** chunkSizeLog2 };
}

/** Reads the envelope's clear header (no key needed, nothing authenticated yet). */
export function parseEnvelopeHeader(value: string): EnvelopeHeader {
  return checkHeader(decode(value));
}

/** Seals a (new or given) data key for bucket/key under the customer key. */
export function sealEnvelope(options: SealEnvelopeOptions): SealedEnvelope {
  assertKey('customerKey', options.customerKey);
  const chunkSizeLog2 = options.chunkSizeLog2 ?? DEFAULT_CHUNK_SIZE_LOG2;
  assertChunkSizeLog2(chunkSizeLog2);
  const random = options.randomBytes ?? cryptoRandomBytes;
  const dataKey = Buffer.from(options.dataKey ?? draw(random, DATA_KEY_SIZE));
  if (dataKey.length !== DATA_KEY_SIZE) throw new RangeError(`dataKey must be ${DATA_KEY_SIZE} bytes`);
  const kekSalt = draw(random, KEK_SALT_SIZE);

  const blob = Buffer.alloc(ENVELOPE_SIZE);
  blob[0] = ENVELOPE_VERSION;
  blob[1] = ALGORITHM_AES256GCM_CHUNKED;
  blob[2] = chunkSizeLog2;
  blob[3] = ENVELOPE_FLAGS_NONE;
  kekSalt.copy(blob, SALT_OFFSET);
  const kek = deriveKek(options.customerKey, kekSalt, options.bucket, options.key);
  const cipher = createCipheriv(CIPHER, createSecretKey(kek), ZERO_NONCE, { authTagLength: ENVELOPE_TAG_SIZE });
  cipher.setAAD(blob.subarray(0, ENVELOPE_HEADER_SIZE));
  const sealed = Buffer.concat([cipher.update(dataKey), cipher.final()]);
  sealed.copy(blob, SEALED_KEY_OFFSET);
  cipher.getAuthTag().copy(blob, TAG_OFFSET);
  return { value: blob.toString('base64url'), dataKey, chunkSize: 2 ** chunkSizeLog2 };
}

/** Unseals the data key; throws EnvelopeMalformed, UnsupportedVersion or EnvelopeUnsealFailed. */
export function openEnvelope(value: string, customerKey: Buffer, bucket: string, key: string): OpenedEnvelope {
  assertKey('customerKey', customerKey);
  const blob = decode(value);
  const header = checkHeader(blob);
  const kek = deriveKek(customerKey, blob.subarray(SALT_OFFSET, SEALED_KEY_OFFSET), bucket, key);
  const decipher = createDecipheriv(CIPHER, createSecretKey(kek), ZERO_NONCE, { authTagLength: ENVELOPE_TAG_SIZE });
  decipher.setAAD(blob.subarray(0, ENVELOPE_HEADER_SIZE));
  decipher.setAuthTag(blob.subarray(TAG_OFFSET));
  const dataKey = decipher.update(blob.subarray(SEALED_KEY_OFFSET, TAG_OFFSET));
  try {
    decipher.final();
  } catch (cause) {
    throw new FormatError('EnvelopeUnsealFailed', 'envelope does not open with this key for this bucket and key', { cause });
  }
  return { dataKey, chunkSize: header.chunkSize, version: header.version };
}

/** Re-seals an envelope's data key under a new key and/or name, with a fresh salt (copies, key rotation). */
export function resealEnvelope(
  value: string,
  oldCustomerKey: Buffer,
  oldBucket: string,
  oldKey: string,
  newCustomerKey: Buffer,
  newBucket: string,
  newKey: string,
  randomBytes?: (n: number) => Buffer,
): SealedEnvelope {
  const opened = openEnvelope(value, oldCustomerKey, oldBucket, oldKey);
  return sealEnvelope({
    customerKey: newCustomerKey,
    bucket: newBucket,
    key: newKey,
    dataKey: opened.dataKey,
    chunkSizeLog2: Math.log2(opened.chunkSize),
    ...(randomBytes === undefined ? {} : { randomBytes }),
  });
}

function draw(random: (n: number) => Buffer, n: number): Buffer {
  const bytes = random(n);
  if (!Buffer.isBuffer(bytes) || bytes.length !== n) throw new RangeError(`randomBytes(${n}) returned the wrong length`);
  return bytes;
}
