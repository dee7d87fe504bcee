/**
 * The listing walker: every current object under a prefix, page by page (ListObjectsV2), as the store lists
 * them. Only one page is held at a time, so a bucket of any size is walked in constant memory.
 */
import type { RequestContext } from '../context.ts';
import { S3Error, type S3ErrorCode } from '../s3/errors.ts';
import { objectPath } from '../s3/operation.ts';
import { isWholeListing, parseListingEntries } from '../s3/listing.ts';
import { listingContinuation, parseS3Error } from '../s3/xml.ts';
import { readBytes } from '../upstream.ts';
import { upstreamRequest } from '../context.ts';

export interface Listed {
  readonly key: string;
  /** As listed (quoted). */
  readonly etag: string;
  /** Stored bytes. */
  readonly size: number;
}

const MAX_PAGE_BYTES = 64 * 1024 * 1024;

export async function* walk(ctx: RequestContext, bucket: string, prefix: string, pageSize = 1000): AsyncGenerator<Listed> {
  let token: string | undefined;
  do {
    const query: Array<[string, string]> = [
      ['list-type', '2'],
      ['max-keys', String(pageSize)],
      ...(prefix ? ([['prefix', prefix]] as Array<[string, string]>) : []),
      ...(token ? ([['continuation-token', token]] as Array<[string, string]>) : []),
    ];
    let xml: Buffer;
    {
      await using up = await upstreamRequest(ctx, { method: 'GET', path: objectPath(bucket), query });
      const body = await readBytes(up, MAX_PAGE_BYTES);
      if (up.statusCode !== 200) {
        const { code, message } = parseS3Error(body?.toString() ?? '');
        throw new S3Error((code ?? 'InternalError') as S3ErrorCode, message ?? `listing ${bucket} failed with HTTP ${up.statusCode}`, { status: up.statusCode });
      }
      if (!body) throw new S3Error('InternalError', `a listing page of ${bucket} is larger than ${MAX_PAGE_BYTES} bytes`);
      xml = body;
    }
    const page = listingPage(xml, bucket);
    yield* page.entries;
    token = page.token;
  } while (token);
}

/**
 * One page of a ListObjectsV2 answer. Anything but a whole ListBucketResult (another document in a 200, a page
 * cut short or at the read limit) fails the walk: taken as an empty last page it would end the run early and
 * report it complete.
 */
export function listingPage(xml: Buffer, bucket: string): { entries: Listed[]; token: string | undefined } {
  const page = isWholeListing(xml, 'Contents') ? listingContinuation(xml.toString()) : undefined;
  if (!page) throw new S3Error('InternalError', `the listing of ${bucket} is not a whole ListBucketResult (cut short, or another answer)`);
  const entries = parseListingEntries(xml, 'Contents').map((e) => {
    if (!e) throw new S3Error('InternalError', `the listing of ${bucket} has an entry without Key, ETag or Size`);
    return { key: e.key, etag: e.etag, size: Number(e.size) };
  });
  const truncated = page.truncated;
  const token = truncated ? page.token : undefined;
  if (truncated && !token) throw new S3Error('InternalError', `the listing of ${bucket} is truncated without a continuation token`);
  return { entries, token };
}
