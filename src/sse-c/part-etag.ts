/**
 * Part ETags that carry the part's checksum. S3 compares the checksums a CompleteMultipartUpload lists with the
 * ones it verified at UploadPart, and refuses a mismatch before anything is stored. The proxy cannot read parts
 * before Complete, so for uploads that declared a checksum algorithm the ETag it answers UploadPart with is
 * `"<upstream ETag>.ck<algorithm><digest>"`; Complete checks the listed checksum against it and gives the
 * upstream its own ETag back. The digest describes plaintext the client itself sent. ETags read back from
 * ListParts are the upstream's: Complete accepts them without that check.
 */
import { CHECKSUM_NAMES, type ChecksumName } from '../s3/checksums.ts';

export function partEtag(upstreamEtag: string, algorithm: ChecksumName, base64: string): string {
  const inner = upstreamEtag.replace(/"/g, '');
  const digest = Buffer.from(base64, 'base64').toString('base64url');
  return `"${inner}.ck${CHECKSUM_NAMES.indexOf(algorithm) + 1}${digest}"`;
}

/** The upstream's ETag (quoted) and, when the client's ETag carries one, the part's checksum (base64). */
export function parsePartEtag(clientEtag: string): { upstream: string; algorithm?: ChecksumName; checksum?: string } {
  const inner = clientEtag.trim().replace(/"/g, '');
  const m = /^(.+)\.ck([1-5])([A-Za-z0-9_-]+)$/.exec(inner);
  if (!m) return { upstream: `"${inner}"` };
  return { upstream: `"${m[1]}"`, algorithm: CHECKSUM_NAMES[Number(m[2]) - 1]!, checksum: Buffer.from(m[3]!, 'base64url').toString('base64') };
}

/** The ETag to answer a part with: the upstream's, carrying the part's verified `algorithm` checksum. */
export function withChecksum(algorithm: ChecksumName) {
  return (upstreamEtag: string, checksums: Record<string, string>): string => {
    const value = checksums[`x-amz-checksum-${algorithm}`];
    return value && upstreamEtag.replace(/"/g, '') !== '' ? partEtag(upstreamEtag, algorithm, value) : upstreamEtag;
  };
}
