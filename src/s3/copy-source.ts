/** `x-amz-copy-source`: the one parser (CopyObject, UploadPartCopy, and the allow-list check). */
import { S3Error } from './errors.ts';

export interface CopySource {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
}

/** `[/]bucket/key[?versionId=v]`, percent-encoded; S3's InvalidArgument otherwise. */
export function parseCopySource(value: string): CopySource {
  const [path = '', query = ''] = value.split('?', 2);
  const p = path.startsWith('/') ? path.slice(1) : path;
  const slash = p.indexOf('/');
  const bad = () =>
    new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey', {
      extra: { ArgumentName: 'x-amz-copy-source' },
    });
  if (slash <= 0 || slash === p.length - 1) throw bad();
  try {
    const bucket = decodeURIComponent(p.slice(0, slash));
    const key = decodeURIComponent(p.slice(slash + 1));
    const versionId = new URLSearchParams(query).get('versionId') ?? undefined;
    return versionId ? { bucket, key, versionId } : { bucket, key };
  } catch {
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
    const first = header.replace(/^\//, '').split(/[/?]/)[0] ?? '';
    try {
      return decodeURIComponent(first);
    } catch {
      return first;
    }
  }
}
