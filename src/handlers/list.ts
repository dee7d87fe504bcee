/**
 * ListObjects, ListObjectsV2 and ListObjectVersions with plaintext sizes. The upstream's answer is kept as it
 * is except for `<Size>` and `<ETag>` (s3/etag.ts) of encrypted objects. A listing does not say which objects are encrypted: objects
 * smaller than any encrypted object are plain for sure; the rest are looked up in the
 * object-info cache (filled by every write and read through this proxy), derived from the stored size in buckets
 * declared encrypted-only, and otherwise with one HEAD each (a few at a time), remembered by ETag.
 */
import { CHUNK_OVERHEAD } from '../format/constants.ts';
import { chunkCount, isNaturalStreamSize, plaintextSize } from '../format/layout.ts';
import { TAIL_SIZE } from '../format/tail.ts';
import { encryptedEtag } from '../s3/etag.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { mapBlocks, parseBucketNames, parseListingEntries, replaceElements } from '../s3/xml.ts';
import { isAllowed } from '../s3/allow-list.ts';
import { S3Error } from '../s3/errors.ts';
import { parseEnvelopeHeader } from '../sse-c/envelope.ts';
import { readText } from '../upstream.ts';
import { relayUpstreamError, sendXml, upstreamRequest, type BucketContext, type RequestContext } from '../context.ts';
import type { ObjectInfo } from '../objects/info-cache.ts';
import { encryptedOnly, knownInfo, layoutOf, remember } from '../objects/layout.ts';
import { requestObject, storedObject } from '../objects/stored.ts';

const HEAD_CONCURRENCY = 8;
const MAX_LISTING_BYTES = 64 * 1024 * 1024;

interface Listed {
  key: string;
  etag: string;
  size: number;
  versionId: string | undefined;
}

/**
 * ListBuckets: the store's answer, less the buckets a limited credential may not touch (S3 shows a principal
 * only what its policy lets it list). Unlimited credentials get the store's answer as it is.
 */
export async function listBuckets(ctx: RequestContext): Promise<void> {
  if (!ctx.allowedBuckets) return ctx.passthrough(ctx);
  await using up = await upstreamRequest(ctx, { method: 'GET', path: '/', query: upstreamQuery(ctx.s3.query) });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const xml = await readText(up, MAX_LISTING_BYTES);
  const names = parseBucketNames(xml);
  let i = 0;
  // Edited in place (the answer is the store's otherwise); a bucket whose name cannot be read is left out.
  const out = mapBlocks(xml, 'Bucket', (block) => {
    const name = names[i++];
    return name !== undefined && isAllowed(ctx.allowedBuckets, name) ? block : '';
  });
  if (i !== names.length) throw new S3Error('InternalError', 'The upstream bucket list could not be read.');
  sendXml(ctx, 200, out);
}

export async function listObjects(ctx: BucketContext): Promise<void> {
  const { s3 } = ctx;
  await using up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(s3.bucket),
    query: upstreamQuery(s3.query),
  });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const xml = await readText(up, MAX_LISTING_BYTES);
  const urlEncoded = queryGet(s3.query, 'encoding-type') === 'url';
  const block = s3.op === 'ListObjectVersions' ? 'Version' : 'Contents';

  // Read with the XML parser; written back by editing `<Size>` in place, so that everything else reaches the
  // client byte for byte as the store sent it (a parse and rebuild would reorder, re-escape and drop).
  const entries = parseListingEntries(xml, block).map((e) => e && listedOf(e, urlEncoded));
  const listed = entries.filter((e): e is Listed => e !== undefined);
  const infos = await resolve(ctx, listed);
  const sizes = new Map(listed.map((o, i) => [o, infos[i]]));
  let i = 0;
  const out = mapBlocks(xml, block, (b) => {
    const item = entries[i++];
    const info = item && sizes.get(item);
    return info && info.encrypted ? replaceElements(replaceElements(b, 'Size', () => String(info.size)), 'ETag', encryptedEtag) : b;
  });
  // The parser and the block edit must see the same entries; if not, the store's sizes are left alone.
  sendXml(ctx, 200, i === entries.length ? out : xml);
}

function listedOf(e: { key: string; etag: string; size: string; versionId?: string }, urlEncoded: boolean): Listed | undefined {
  const size = Number(e.size);
  if (!Number.isSafeInteger(size)) return undefined;
  let key = e.key;
  try {
    if (urlEncoded) key = decodeURIComponent(key.replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
  return { key, etag: e.etag, size, versionId: e.versionId };
}

/** Encrypted or not, and the plaintext size, for each listed object (in order). */
async function resolve(ctx: BucketContext, listed: Listed[]): Promise<Array<ObjectInfo | undefined>> {
  const bucket = ctx.s3.bucket;
  const derive = encryptedOnly(ctx.config, bucket);
  const result: Array<ObjectInfo | undefined> = listed.map((o) => {
    if (!couldBeEncrypted(o.size)) {
      return { encrypted: false, size: o.size };
    }
    return knownInfo(ctx, bucket, o.key, o.etag) ?? (derive ? derivedInfo(o, derive.chunkSize) : undefined);
  });
  const todo = listed.map((o, i) => ({ o, i })).filter(({ i }) => result[i] === undefined);
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const { o, i } = todo[next++]!;
      result[i] = await headInfo(ctx, o);
    }
  };
  await Promise.all(Array.from({ length: Math.min(HEAD_CONCURRENCY, todo.length) }, worker));
  return result;
}

/**
 * False for sizes no encrypted object has: below one empty chunk. (Larger sizes cannot be ruled out: parts with
 * tail records, and single PUTs with one, make any total possible.)
 */
function couldBeEncrypted(size: number): boolean {
  return size >= CHUNK_OVERHEAD;
}

/**
 * The plaintext size from the listing alone, where the stored size determines it (docs/MULTIPART.md,
 * "Listings"); undefined sends the object to a HEAD. Informational, as the listing is: never remembered, so no
 * read relies on it.
 * - Single PUT (ETag without `-N`): one stream, plaintextSize(stored size). A size no stream has (FORMAT.md
 *   §6.2) means the object is not one: HEAD.
 * - Multipart, N parts with tail records, non-last parts whole multiples of the chunk size: the parts are one
 *   stream's chunk grid plus N records (FORMAT.md §6.3), so plaintextSize(stored size − 80·N). Where that is
 *   not a stream size, or has fewer chunks than parts, the layout is not aligned: HEAD.
 */
function derivedInfo(o: Listed, chunkSize: number): ObjectInfo | undefined {
  const m = /-(\d+)"?$/.exec(o.etag);
  const parts = m ? Number(m[1]) : 0;
  if (m && !(parts >= 1 && parts <= MAX_PARTS)) return undefined;
  const streamSize = o.size - parts * TAIL_SIZE;
  if (!isNaturalStreamSize(streamSize, chunkSize)) return undefined;
  const size = plaintextSize(streamSize, chunkSize);
  // Aligned non-last parts hold at least one whole chunk each and the last one at least a byte.
  if (parts > 1 && chunkCount(size, chunkSize) < parts) return undefined;
  return { encrypted: true, size };
}

const MAX_PARTS = 10_000;

async function headInfo(ctx: BucketContext, o: Listed): Promise<ObjectInfo | undefined> {
  const name = { bucket: ctx.s3.bucket, key: o.key, versionId: o.versionId };
  // The object as listed, not a newer one written since.
  await using up = await requestObject(ctx, name, 'HEAD', { 'if-match': o.etag });
  if (up.statusCode !== 200) return undefined; // replaced or deleted meanwhile: leave the listed size alone
  const stored = storedObject(name, up.headers);
  if (stored.envelope === undefined) {
    const info = { encrypted: false, size: o.size };
    remember(ctx, stored, info);
    return info;
  }
  try {
    // Without the key, tail records give their clear sizes only: fine for a listing, not trusted for reads.
    const layout = await layoutOf(ctx, stored, { chunkSize: parseEnvelopeHeader(stored.envelope).chunkSize });
    return { encrypted: true, size: layout.plainSize };
  } catch {
    return undefined;
  }
}
