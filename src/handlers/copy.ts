/**
 * CopyObject and UploadPartCopy. SSE-C copies come with the "copies and key rotation" work; until then the
 * proxy makes sure an unencrypted copy never duplicates an encrypted object behind its back (its envelope is
 * bound to the source's name, so the copy would be unreadable): S3 itself refuses to copy an SSE-C source
 * without the source's key.
 */
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { ENVELOPE_META } from '../s3/headers.ts';
import { objectPath } from '../s3/operation.ts';
import { dump } from '../upstream.ts';
import type { RequestContext } from './context.ts';

/** `x-amz-copy-source`: `[/]bucket/key[?versionId=v]`, percent-encoded. */
export function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
  const [path = '', query = ''] = value.split('?', 2);
  const p = path.startsWith('/') ? path.slice(1) : path;
  const slash = p.indexOf('/');
  if (slash <= 0) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey', { extra: { ArgumentName: 'x-amz-copy-source' } });
  let bucket: string;
  let key: string;
  try {
    bucket = decodeURIComponent(p.slice(0, slash));
    key = decodeURIComponent(p.slice(slash + 1));
  } catch {
    throw new S3Error('InvalidArgument', 'Invalid copy source encoding.', { extra: { ArgumentName: 'x-amz-copy-source' } });
  }
  const versionId = new URLSearchParams(query).get('versionId') ?? undefined;
  return versionId ? { bucket, key, versionId } : { bucket, key };
}

export async function refuseEncryptedCopySource(ctx: RequestContext): Promise<void> {
  const header = ctx.req.headers['x-amz-copy-source'];
  if (typeof header !== 'string') return;
  const src = parseCopySource(header);
  ctx.stats.upstreamRequests++;
  const up = await ctx.upstream.request({
    identity: ctx.identity,
    method: 'HEAD',
    path: objectPath(src.bucket, src.key),
    query: src.versionId ? [['versionId', src.versionId]] : [],
  });
  await dump(up);
  // Missing sources and the like: the upstream's own copy answers them.
  if (up.statusCode === 200 && up.headers[ENVELOPE_META] !== undefined) {
    throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
  }
}
