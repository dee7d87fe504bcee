/**
 * The client's flexible checksum of the plaintext, kept with the object so that GET/HEAD with
 * `x-amz-checksum-mode: ENABLED` can return it as S3 does. It describes the plaintext, so it is stored sealed:
 * AES-256-GCM under a key derived from the object's data key (which is random per single PUT, so each key
 * seals one value; a re-sealing copy keeps the data key and this value as they are).
 *
 * Metadata value: `<algorithm>.<base64url(ciphertext ‖ tag)>`, e.g. `crc32.…`.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hkdfSha256 } from '../format/chunk.ts';
import { CHECKSUM_NAMES, type ChecksumName } from '../sigv4/checksums.ts';

export const CHECKSUM_META = 'x-amz-meta-s3-ssec-proxy-checksum';
const INFO = Buffer.from('s3-ssec-proxy/v1/checksum');
const NONCE = Buffer.alloc(12);

function keyFor(dataKey: Buffer): Buffer {
  return hkdfSha256(dataKey, Buffer.alloc(0), INFO);
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
