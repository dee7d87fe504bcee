/** S3's ETags of multipart objects: `"<md5 of the concatenated part MD5s>-N"`. */
import { createHash } from 'node:crypto';

/** Number of parts from a multipart ETag (`"…-N"`), or 1. */
export function partsCountOf(etag: string | undefined): number {
  const m = /-(\d+)"?$/.exec(etag ?? '');
  return m ? Number(m[1]) : 1;
}

/** The multipart ETag of an object completed from parts with these ETags, if every one is an MD5. */
export function multipartEtag(partEtags: readonly string[]): string | undefined {
  const digests = partEtags.map((e) => Buffer.from(e.replace(/"/g, '').trim(), 'hex'));
  if (digests.length === 0 || digests.some((d) => d.length !== 16)) return undefined;
  return `"${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}"`;
}
