/** `x-amz-copy-source`: the one parser (CopyObject, UploadPartCopy, and the allow-list check). */
import { S3Error } from './errors.ts';
import { isBucketName } from './operation.ts';

export interface CopySource {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
}

/** `[/]bucket/key[?versionId=v]`, percent-encoded; S3's InvalidArgument otherwise. */
export function parseCopySource(value: string): CopySource {
  const [path = '', query = ''] = value.split('?', 2);
  const bad = () =>
    new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey', {
      extra: { ArgumentName: 'x-amz-copy-source' },
    });
  try {
    // Decoded first, then split, as S3 and the stores read it: `a%2Fb/k` is bucket `a`, key `b/k`.
    const decoded = decodeURIComponent(path);
    const p = decoded.startsWith('/') ? decoded.slice(1) : decoded;
    const slash = p.indexOf('/');
    if (slash <= 0 || slash === p.length - 1) throw bad();
    const bucket = p.slice(0, slash);
    if (!isBucketName(bucket)) throw bad();
    const key = p.slice(slash + 1);
    const versionId = new URLSearchParams(query).get('versionId') ?? undefined;
    return versionId ? { bucket, key, versionId } : { bucket, key };
  } catch (e) {
    if (e instanceof S3Error) throw e;
    throw bad();
  }
}

/**
 * The bucket an `x-amz-copy-source` names, for the allow-list. A malformed header still names its first
 * segment (raw if it does not decode): the check fails closed; its handler refuses the header anyway.
 */
export function copySourceBucket(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  try {
    return parseCopySource(header).bucket;
  } catch {
    const path = header.split('?', 1)[0] ?? '';
    let decoded = path;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      /* the raw text, then */
    }
    return decoded.replace(/^\//, '').split('/')[0] ?? '';
  }
}
