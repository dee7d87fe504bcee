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

const MPU_INFO = 's3-ssec-proxy/v1/multipart-data-key';
const TAG_LABEL = 's3-ssec-proxy/v1/upload-tag';
const SEPARATOR = '.ssec1.';
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

function tagOf(dataKey: Buffer, upstreamId: string, chunkSizeLog2: number): Buffer {
  return createHmac('sha256', dataKey)
    .update(TAG_LABEL)
    .update(lengthPrefixed(upstreamId))
    .update(Buffer.of(chunkSizeLog2))
    .digest()
    .subarray(0, TAG_BYTES);
}

/**
 * The id the client sees for an SSE-C upload: the upstream id, then the tag and the chunk size the envelope
 * was sealed with (parts must use it even if the proxy's configuration changes while the upload runs).
 */
export function clientUploadId(upstreamId: string, dataKey: Buffer, chunkSizeLog2: number): string {
  const suffix = Buffer.concat([tagOf(dataKey, upstreamId, chunkSizeLog2), Buffer.of(chunkSizeLog2)]);
  return upstreamId + SEPARATOR + suffix.toString('base64url');
}

export interface ParsedUploadId {
  readonly upstreamId: string;
  /** Present for ids this proxy issued for SSE-C uploads. */
  readonly tag?: Buffer;
  readonly chunkSizeLog2?: number;
}

export function parseUploadId(id: string): ParsedUploadId {
  const i = id.lastIndexOf(SEPARATOR);
  if (i > 0) {
    const suffix = Buffer.from(id.slice(i + SEPARATOR.length), 'base64url');
    const log2 = suffix[TAG_BYTES];
    if (suffix.length === TAG_BYTES + 1 && log2 !== undefined && log2 >= 12 && log2 <= 24) {
      return { upstreamId: id.slice(0, i), tag: suffix.subarray(0, TAG_BYTES), chunkSizeLog2: suffix[TAG_BYTES]! };
    }
  }
  return { upstreamId: id };
}

/** True when `dataKey` is the key the upload was created with. */
export function tagMatches(parsed: ParsedUploadId, dataKey: Buffer): boolean {
  return (
    parsed.tag !== undefined &&
    parsed.chunkSizeLog2 !== undefined &&
    timingSafeEqual(parsed.tag, tagOf(dataKey, parsed.upstreamId, parsed.chunkSizeLog2))
  );
}
