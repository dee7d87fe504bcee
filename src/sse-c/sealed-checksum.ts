/**
 * The client's flexible checksum of the plaintext, kept with the object so that GET/HEAD with
 * `x-amz-checksum-mode: ENABLED` can return it as S3 does. It describes the plaintext, so it is stored sealed:
 * AES-256-GCM under a key derived from the object's data key (which is random per single PUT, so each key
 * seals one value; a re-sealing copy keeps the data key and this value as they are).
 *
 * Metadata value: `<algorithm>.<base64url(ciphertext ‖ tag)>`, e.g. `crc32.…`.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { hkdfSha256 } from '../format/chunk.ts';
import { TAIL_SIZE } from '../format/tail.ts';
import { CHECKSUM_NAMES, type ChecksumName } from '../s3/checksums.ts';

export const CHECKSUM_META = 'x-amz-meta-s3-ssec-proxy-checksum';
const INFO = Buffer.from('s3-ssec-proxy/v1/checksum');
const NONCE = Buffer.alloc(12);

function keyFor(dataKey: Buffer): KeyObject {
  return createSecretKey(hkdfSha256(dataKey, Buffer.alloc(0), INFO));
}

export function sealChecksum(dataKey: Buffer, algorithm: ChecksumName, valueBase64: string): string {
  const cipher = createCipheriv('aes-256-gcm', keyFor(dataKey), NONCE);
  cipher.setAAD(Buffer.from(algorithm));
  const ct = Buffer.concat([cipher.update(valueBase64, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `${algorithm}.${ct.toString('base64url')}`;
}

/** The algorithm and base64 value, or undefined when the entry is missing or does not open. */
export function openChecksum(dataKey: Buffer, sealed: string | undefined): { algorithm: ChecksumName; value: string } | undefined {
  if (!sealed) return undefined;
  const dot = sealed.indexOf('.');
  const algorithm = sealed.slice(0, dot) as ChecksumName;
  if (!CHECKSUM_NAMES.includes(algorithm)) return undefined;
  const raw = Buffer.from(sealed.slice(dot + 1), 'base64url');
  if (raw.length < 17) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFor(dataKey), NONCE);
    decipher.setAAD(Buffer.from(algorithm));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    const value = Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString('utf8');
    return { algorithm, value };
  } catch {
    return undefined;
  }
}

/**
 * A checksum that arrives as an aws-chunked trailer is known only after the body, when the metadata has long
 * been sent: it goes into the tail record after the last chunk (src/format/tail.ts), and the metadata entry
 * says so: `<algorithm>.tail`. Readers subtract TAIL_SIZE from the stored size (docs/FORMAT.md §5.6).
 */
export function tailMeta(algorithm: ChecksumName): string {
  return `${algorithm}.tail`;
}

/** The algorithm whose value sits in the body's tail record, or undefined when the object has no tail. */
export function checksumTailOf(headers: Record<string, string | string[] | undefined>): ChecksumName | undefined {
  const v = headers[CHECKSUM_META];
  if (typeof v !== 'string' || !v.endsWith('.tail')) return undefined;
  const algorithm = v.slice(0, -'.tail'.length) as ChecksumName;
  return CHECKSUM_NAMES.includes(algorithm) ? algorithm : undefined;
}

/** Bytes after the last chunk of a single PUT: TAIL_SIZE when the metadata announces a tail record, else 0. */
export function tailSizeOf(headers: Record<string, string | string[] | undefined>): number {
  return checksumTailOf(headers) ? TAIL_SIZE : 0;
}

/** A multipart object's checksum: algorithm and type in the metadata, each part's digest in its tail record. */
export function multipartChecksumMeta(c: { algorithm: ChecksumName; type: 'COMPOSITE' | 'FULL_OBJECT' }): string {
  return `${c.algorithm}.${c.type === 'FULL_OBJECT' ? 'full' : 'composite'}`;
}

export function multipartChecksumOf(
  headers: Record<string, string | string[] | undefined>,
): { algorithm: ChecksumName; type: 'COMPOSITE' | 'FULL_OBJECT' } | undefined {
  const m = /^([a-z0-9]+)\.(composite|full)$/.exec(String(headers[CHECKSUM_META] ?? ''));
  if (!m || !CHECKSUM_NAMES.includes(m[1] as ChecksumName)) return undefined;
  return { algorithm: m[1] as ChecksumName, type: m[2] === 'full' ? 'FULL_OBJECT' : 'COMPOSITE' };
}
