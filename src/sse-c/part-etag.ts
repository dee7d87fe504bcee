/**
 * The ETags the proxy answers for the parts of an encrypted upload.
 *
 * Every one ends in `-0` (s3/etag.ts): the store's part ETag is the MD5 of the sealed part, and clients that
 * compare a part's ETag with the MD5 of what they sent (s3cmd) would refuse the upload at its first part.
 *
 * They also carry the part's checksum. S3 compares the checksums a CompleteMultipartUpload lists with the ones it
 * verified at UploadPart, and refuses a mismatch before anything is stored. The proxy cannot read parts before
 * Complete, so for uploads that declared a checksum algorithm the ETag is `"<upstream ETag>.ck<algorithm><digest>-0"`;
 * Complete checks the listed checksum against it and gives the upstream its own ETag back. The digest describes
 * plaintext the client itself sent. ETags read back from ListParts are the upstream's (with `-0`): Complete
 * accepts them without that check.
 */
import { DIGEST_SIZES } from '../format/tail.ts';
import { CHECKSUM_NAMES, type ChecksumName } from '../s3/checksums.ts';
import { ENCRYPTED_ETAG_SUFFIX, encryptedEtag, storeEtag } from '../s3/etag.ts';

export function partEtag(upstreamEtag: string, algorithm: ChecksumName, base64: string): string {
  const inner = upstreamEtag.replace(/"/g, '');
  const digest = Buffer.from(base64, 'base64').toString('base64url');
  return `"${inner}.ck${CHECKSUM_NAMES.indexOf(algorithm) + 1}${digest}${ENCRYPTED_ETAG_SUFFIX}"`;
}

/** The upstream's ETag (quoted) and, when the client's ETag carries one, the part's checksum (base64). */
export function parsePartEtag(clientEtag: string): { upstream: string; algorithm?: ChecksumName; checksum?: string } {
  const inner = clientEtag.trim().replace(/"/g, '');
  const m = /^(.+)\.ck([1-5])([A-Za-z0-9_-]+)$/.exec(inner);
  if (!m) return { upstream: storeEtag(`"${inner}"`) };
  const algorithm = CHECKSUM_NAMES[Number(m[2]) - 1]!;
  // base64url has `-`: the suffix is told from the digest by the digest's length.
  let digest = m[3]!;
  if (digest.length === Math.ceil((DIGEST_SIZES[algorithm] * 4) / 3) + ENCRYPTED_ETAG_SUFFIX.length && digest.endsWith(ENCRYPTED_ETAG_SUFFIX)) {
    digest = digest.slice(0, -ENCRYPTED_ETAG_SUFFIX.length);
  }
  return { upstream: `"${m[1]}"`, algorithm, checksum: Buffer.from(digest, 'base64url').toString('base64') };
}

/** The ETag to answer an encrypted upload's part with: the upstream's, carrying the part's verified checksum if any. */
export function encryptedPartEtag(algorithm: ChecksumName | undefined, upstreamEtag: string, checksums: Record<string, string>): string {
  const value = algorithm && checksums[`x-amz-checksum-${algorithm}`];
  return value && upstreamEtag.replace(/"/g, '') !== '' ? partEtag(upstreamEtag, algorithm, value) : encryptedEtag(upstreamEtag);
}
