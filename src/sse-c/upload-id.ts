/**
 * Multipart uploads without state in the proxy.
 *
 * Every UploadPart must be encryptable from the request alone, and S3 offers no way to read an upload's
 * metadata before it completes. So the data key of a multipart object is derived from what every UploadPart
 * carries: the customer key and the object's name (HKDF, domain-separated from the envelope's KEK). The
 * envelope stored at CreateMultipartUpload seals that same key, so reads, copies and key rotation treat the
 * completed object exactly like a single PUT. Fresh 128-bit stream ids per part attempt keep (key, nonce)
 * pairs unique even though uploads to one name with one key share the data key (docs/FORMAT.md).
 *
 * The upload id handed to the client carries a tag (HMAC of the upstream id under the data key), so an
 * UploadPart with another key, or none, is refused as S3 refuses it, on any replica. Ids that come from
 * ListMultipartUploads are the upstream's own (bare); those are accepted too, without that check.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { hkdfSha256 } from '../format/chunk.ts';
import { CHECKSUM_NAMES, type ChecksumName } from '../s3/checksums.ts';

const MPU_INFO = 's3-ssec-proxy/v1/multipart-data-key';
const TAG_LABEL = 's3-ssec-proxy/v1/upload-tag';
/** `.ssec1.`: parts are bare streams; `.ssec2.`: every part ends with a tail record (docs/FORMAT.md §5.6). */
const SEPARATORS = { 1: '.ssec1.', 2: '.ssec2.' } as const;
const TAG_BYTES = 16;

function lengthPrefixed(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** The data key of every multipart upload to `bucket/key` under this customer key. */
export function multipartDataKey(customerKey: Buffer, bucket: string, key: string): Buffer {
  const info = Buffer.concat([Buffer.from(MPU_INFO), lengthPrefixed(bucket), lengthPrefixed(key)]);
  return hkdfSha256(customerKey, Buffer.alloc(0), info);
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

function tagOf(dataKey: Buffer, upstreamId: string, fields: Buffer, version: 1 | 2): Buffer {
  const mac = createHmac('sha256', dataKey).update(TAG_LABEL).update(lengthPrefixed(upstreamId));
  // Version 2 binds its version and every field, so an id cannot be edited to switch tail records or the
  // checksum mid-upload.
  mac.update(version === 1 ? fields.subarray(0, 1) : Buffer.concat([fields, Buffer.of(2)]));
  return mac.digest().subarray(0, TAG_BYTES);
}

/**
 * The id the client sees for an SSE-C upload: the upstream id, then the tag and the chunk size the envelope
 * was sealed with (parts must use it even if the proxy's configuration changes while the upload runs).
 */
export function clientUploadId(upstreamId: string, dataKey: Buffer, chunkSizeLog2: number, checksum?: UploadChecksum): string {
  const fields = fieldsOf(chunkSizeLog2, checksum);
  return upstreamId + SEPARATORS[2] + Buffer.concat([tagOf(dataKey, upstreamId, fields, 2), fields]).toString('base64url');
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
}

export function parseUploadId(id: string): ParsedUploadId {
  for (const version of [2, 1] as const) {
    const separator = SEPARATORS[version];
    const i = id.lastIndexOf(separator);
    if (i <= 0) continue;
    const suffix = Buffer.from(id.slice(i + separator.length), 'base64url');
    const log2 = suffix[TAG_BYTES];
    const fields = suffix.subarray(TAG_BYTES);
    if (suffix.length !== TAG_BYTES + (version === 2 ? 3 : 1) || log2 === undefined || log2 < 12 || log2 > 24) continue;
    const alg = version === 2 ? fields[1]! : 0;
    if (alg > CHECKSUM_NAMES.length || (version === 2 && fields[2]! > 1)) continue;
    const checksum = alg ? { algorithm: CHECKSUM_NAMES[alg - 1]!, type: fields[2] === 1 ? ('FULL_OBJECT' as const) : ('COMPOSITE' as const) } : undefined;
    return {
      upstreamId: id.slice(0, i),
      tag: suffix.subarray(0, TAG_BYTES),
      chunkSizeLog2: log2,
      tails: version === 2,
      fields,
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
    timingSafeEqual(parsed.tag, tagOf(dataKey, parsed.upstreamId, parsed.fields, parsed.tails ? 2 : 1))
  );
}
