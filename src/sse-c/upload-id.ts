/**
 * Multipart uploads without state in the proxy.
 *
 * Every UploadPart must be encryptable from the request alone, and S3 offers no way to read an upload's
 * metadata before it completes. So the data key of a multipart object is derived from what every UploadPart
 * carries: the customer key, the object's name and (version 3 ids) a random 128-bit value chosen at
 * CreateMultipartUpload and carried in the upload id (HKDF, domain-separated from the envelope's KEK). The
 * envelope stored at CreateMultipartUpload seals that same key, so reads, copies and key rotation treat the
 * completed object exactly like a single PUT. The random value gives every upload its own data key: a part
 * of another upload to the same name under the same key does not open in this one (docs/MULTIPART.md).
 *
 * The upload id handed to the client carries a tag (HMAC of the upstream id under the data key), so an
 * UploadPart with another key, or none, is refused as S3 refuses it, on any replica. Ids that come from
 * ListMultipartUploads are the upstream's own (bare); those are accepted too, without that check.
 */
import { createHmac, createSecretKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { hkdfSha256 } from '../format/chunk.ts';
import { CHECKSUM_NAMES, type ChecksumName } from '../s3/checksums.ts';

const MPU_INFO = 's3-ssec-proxy/v1/multipart-data-key';
/** Version 3: the upload's random value follows the name. */
const MPU_INFO_V3 = 's3-ssec-proxy/v3/multipart-data-key';
/** Bytes of the random value that makes each upload's data key its own. */
export const UPLOAD_NONCE_BYTES = 16;
const TAG_LABEL = 's3-ssec-proxy/v1/upload-tag';
/**
 * `.ssec1.`: parts are bare streams; `.ssec2.`: every part ends with a tail record (docs/FORMAT.md §5.6);
 * `.ssec3.`: and the data key is the upload's own (a random value in the id).
 */
const SEPARATORS = { 1: '.ssec1.', 2: '.ssec2.', 3: '.ssec3.' } as const;
type Version = keyof typeof SEPARATORS;
const TAG_BYTES = 16;

function lengthPrefixed(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/**
 * The data key of the multipart upload to `bucket/key` under this customer key whose random value is `nonce`
 * (version 3 ids); without one, the key every version 1 and 2 upload to that name shared.
 */
export function multipartDataKey(customerKey: Buffer, bucket: string, key: string, nonce?: Buffer): Buffer {
  const name = [lengthPrefixed(bucket), lengthPrefixed(key)];
  const info = nonce ? Buffer.concat([Buffer.from(MPU_INFO_V3), ...name, nonce]) : Buffer.concat([Buffer.from(MPU_INFO), ...name]);
  return hkdfSha256(customerKey, Buffer.alloc(0), info);
}

/** The random value of a new upload (carried in its id). */
export function newUploadNonce(): Buffer {
  return randomBytes(UPLOAD_NONCE_BYTES);
}

/** The upload's checksum, as CreateMultipartUpload declared it (x-amz-checksum-algorithm / -type). */
export interface UploadChecksum {
  readonly algorithm: ChecksumName;
  readonly type: 'COMPOSITE' | 'FULL_OBJECT';
}

/** Version 2 fields after the tag: chunkSizeLog2, checksum algorithm (0 none, 1.. CHECKSUM_NAMES), type (0/1). */
function fieldsOf(chunkSizeLog2: number, checksum: UploadChecksum | undefined): Buffer {
  const alg = checksum ? CHECKSUM_NAMES.indexOf(checksum.algorithm) + 1 : 0;
  return Buffer.of(chunkSizeLog2, alg, checksum?.type === 'FULL_OBJECT' ? 1 : 0);
}

function tagOf(dataKey: Buffer, upstreamId: string, fields: Buffer, version: Version): Buffer {
  const mac = createHmac('sha256', createSecretKey(dataKey)).update(TAG_LABEL).update(lengthPrefixed(upstreamId));
  // Versions 2 and 3 bind their version and every field (the random value included), so an id cannot be
  // edited to switch tail records, the checksum or the data key mid-upload.
  mac.update(version === 1 ? fields.subarray(0, 1) : Buffer.concat([fields, Buffer.of(version)]));
  return mac.digest().subarray(0, TAG_BYTES);
}

/**
 * The id the client sees for an SSE-C upload: the upstream id, then the tag and the chunk size the envelope
 * was sealed with (parts must use it even if the proxy's configuration changes while the upload runs).
 */
export function clientUploadId(upstreamId: string, dataKey: Buffer, chunkSizeLog2: number, checksum: UploadChecksum | undefined, nonce: Buffer): string {
  const fields = Buffer.concat([fieldsOf(chunkSizeLog2, checksum), nonce]);
  return upstreamId + SEPARATORS[3] + Buffer.concat([tagOf(dataKey, upstreamId, fields, 3), fields]).toString('base64url');
}

export interface ParsedUploadId {
  readonly upstreamId: string;
  /** Present for ids this proxy issued for SSE-C uploads. */
  readonly tag?: Buffer;
  readonly chunkSizeLog2?: number;
  /** Every part of this upload ends with a tail record (ids issued by this version). */
  readonly tails?: boolean;
  readonly checksum?: UploadChecksum;
  /** The bytes after the tag, as the tag covers them. */
  readonly fields?: Buffer;
  /** The upload's random value (version 3): its data key is its own. */
  readonly nonce?: Buffer;
  readonly version?: Version;
  /**
   * SSE-S3/KMS uploads: the object's KMS metadata entry (its external key, sealed by the KMS), which UploadPart
   * needs to unwrap the key the client does not send. Not covered by the tag: the KMS authenticates it, and a
   * key other than the upload's gives another data key, which the tag refuses.
   */
  readonly kms?: string;
}

const KMS_SEPARATOR = '.ssek1.';

/** An SSE-S3/KMS upload's id: its SSE-C-style id, then the sealed external key (the KMS metadata entry). */
export function withManagedKey(clientId: string, kmsMeta: string): string {
  return clientId + KMS_SEPARATOR + Buffer.from(kmsMeta, 'utf8').toString('base64url');
}

export function parseUploadId(id: string): ParsedUploadId {
  const j = id.lastIndexOf(KMS_SEPARATOR);
  const tail = j > 0 ? id.slice(j + KMS_SEPARATOR.length) : '';
  if (/^[A-Za-z0-9_-]+$/.test(tail)) {
    const parsed = parseSsecUploadId(id.slice(0, j));
    if (parsed.tag) return { ...parsed, kms: Buffer.from(tail, 'base64url').toString('utf8') };
  }
  return parseSsecUploadId(id);
}

function parseSsecUploadId(id: string): ParsedUploadId {
  for (const version of [3, 2, 1] as const) {
    const separator = SEPARATORS[version];
    const i = id.lastIndexOf(separator);
    if (i <= 0) continue;
    const suffix = Buffer.from(id.slice(i + separator.length), 'base64url');
    const log2 = suffix[TAG_BYTES];
    const fields = suffix.subarray(TAG_BYTES);
    const size = { 1: 1, 2: 3, 3: 3 + UPLOAD_NONCE_BYTES }[version];
    if (suffix.length !== TAG_BYTES + size || log2 === undefined || log2 < 12 || log2 > 24) continue;
    const alg = version >= 2 ? fields[1]! : 0;
    if (alg > CHECKSUM_NAMES.length || (version >= 2 && fields[2]! > 1)) continue;
    const checksum = alg ? { algorithm: CHECKSUM_NAMES[alg - 1]!, type: fields[2] === 1 ? ('FULL_OBJECT' as const) : ('COMPOSITE' as const) } : undefined;
    return {
      upstreamId: id.slice(0, i),
      tag: suffix.subarray(0, TAG_BYTES),
      chunkSizeLog2: log2,
      tails: version >= 2,
      fields,
      version,
      ...(version === 3 ? { nonce: fields.subarray(3) } : {}),
      ...(checksum ? { checksum } : {}),
    };
  }
  return { upstreamId: id };
}

/** True when `dataKey` is the key the upload was created with. */
export function tagMatches(parsed: ParsedUploadId, dataKey: Buffer): boolean {
  return (
    parsed.tag !== undefined &&
    parsed.fields !== undefined &&
    timingSafeEqual(parsed.tag, tagOf(dataKey, parsed.upstreamId, parsed.fields, parsed.version ?? 1))
  );
}
