/**
 * The layout of a stored encrypted object (plaintext size, part table): from this replica's cache by ETag, or
 * read from the object's own bytes in the store (tail records, chunk headers) and remembered. One cache, one
 * trust rule, one "is it multipart?".
 */
import { layoutFromReads, storedSizeOf, tailLayoutFromReads, type ObjectLayout, type ReadBytes } from '../format/parts.ts';
import type { Config } from '../config.ts';
import { S3Error } from '../s3/errors.ts';
import { bucketMatches } from '../sse-kms/bucket-encryption.ts';
import type { RequestContext } from '../context.ts';
import { infoOf, layoutOfInfo, type ObjectInfo } from './info-cache.ts';
import { isMultipart, requestObject, type StoredObject } from './stored.ts';

/** Upper bound on the reads one layout probe may make (10 000 parts, walked, stay below it). */
const MAX_PROBE_READS = 20_000;

/** Ranged reads of one exact version of the object (If-Match on its ETag). */
function upstreamReader(ctx: RequestContext, stored: StoredObject): ReadBytes {
  let reads = 0;
  return async (offset, length) => {
    if (++reads > MAX_PROBE_READS) throw new S3Error('InternalError', 'The stored object layout is too costly to map.');
    await using up = await requestObject(ctx, stored, 'GET', { range: `bytes=${offset}-${offset + length - 1}`, 'if-match': stored.etag || '*' });
    // Only an answer for exactly the range asked: a store that ignored Range would send the whole object.
    const cr = up.headers['content-range'];
    if (up.statusCode !== 206 || typeof cr !== 'string' || !cr.startsWith(`bytes ${offset}-`)) {
      throw new S3Error('InternalError', 'The stored object changed or could not be read while mapping its layout.');
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of up.body) {
      chunks.push(c as Buffer);
      n += (c as Buffer).length;
      if (n >= length) break; // leaving the loop destroys the rest
    }
    const b = Buffer.concat(chunks).subarray(0, length);
    ctx.stats.upstreamBytesIn += b.length;
    return b;
  };
}

export interface LayoutNeeds {
  /** The object's chunk size (from its envelope). */
  readonly chunkSize: number;
  /** With the data key, tail records are opened: sizes authenticated, part checksums read. */
  readonly dataKey?: Buffer | undefined;
  /** A part table even where the grid is uniform (`?partNumber=N`, GetObjectAttributes' parts). */
  readonly parts?: boolean;
}

/**
 * The one trust rule for what this replica remembers. A part table read from tail records without the key
 * (a listing) gives sizes only: a read with the key does not rely on it and reads the records again, opened.
 */
function trusted(info: ObjectInfo, stored: StoredObject, needs: LayoutNeeds, multipart: boolean): boolean {
  if (!info.encrypted) return false;
  // What is stored now must be the size the remembered layout stores (a store that rewrote the bytes under
  // the same ETag is caught here, before any answer, rather than by the decryptor after the headers).
  if (storedSizeOf(layoutOfInfo(info), needs.chunkSize) !== stored.chunksSize) return false;
  if (stored.tails) return info.parts !== undefined && (needs.dataKey === undefined || info.verified === true);
  return info.parts !== undefined || !needs.parts || !multipart;
}

/**
 * The layout of `stored`: remembered by ETag, else mapped from its bytes (single PUTs cost nothing; multipart
 * objects one small read per part) and remembered. A `versionId` read is remembered but not taken for the
 * object's newest version.
 */
export async function layoutOf(ctx: RequestContext, stored: StoredObject, needs: LayoutNeeds): Promise<ObjectLayout> {
  const multipart = isMultipart(stored, ctx.config);
  const cached = stored.etag ? ctx.objects.get(stored.bucket, stored.key, stored.etag) : undefined;
  if (cached && trusted(cached, stored, needs, multipart)) return layoutOfInfo(cached);
  const read = upstreamReader(ctx, stored);
  const layout = stored.tails
    ? await tailLayoutFromReads(read, stored.chunksSize, needs.chunkSize, needs.dataKey)
    : await layoutFromReads(read, stored.chunksSize, needs.chunkSize, multipart, { parts: needs.parts === true });
  remember(ctx, stored, infoOf(layout, needs.chunkSize));
  return layout;
}

/** Records what this replica learned of `stored` (for listings and warm reads). */
export function remember(ctx: RequestContext, stored: Pick<StoredObject, 'bucket' | 'key' | 'versionId' | 'etag'>, info: ObjectInfo): void {
  ctx.objects.set(stored.bucket, stored.key, stored.etag || undefined, info, stored.versionId === undefined);
}

/**
 * What this replica knows of a listed object, if anything. A listing shows sizes only, so any remembered entry
 * serves it (reads apply the trust rule above).
 */
export function knownInfo(ctx: RequestContext, bucket: string, key: string, etag: string): ObjectInfo | undefined {
  return ctx.objects.get(bucket, key, etag);
}

/**
 * The bucket's objects are all written through this proxy with its chunk size (the operator's declaration,
 * SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS), so a listing takes plaintext sizes from stored ones (docs/MULTIPART.md). Not
 * with upstreams whose ETags do not show multipart objects.
 */
export function encryptedOnly(config: Pick<Config, 'encryptedOnlyBuckets' | 'probeAllLayouts' | 'chunkSizeLog2'>, bucket: string): { chunkSize: number } | undefined {
  const { encryptedOnlyBuckets, probeAllLayouts, chunkSizeLog2 } = config;
  if (probeAllLayouts || !encryptedOnlyBuckets?.some((p) => bucketMatches(p, bucket))) return undefined;
  return { chunkSize: 2 ** chunkSizeLog2 };
}
