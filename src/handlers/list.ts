/**
 * ListObjects, ListObjectsV2 and ListObjectVersions with plaintext sizes. The upstream's answer is kept byte
 * for byte except for `<Size>` and `<ETag>` (s3/etag.ts) of encrypted objects (s3/listing.ts). A listing does
 * not say which objects are encrypted: objects smaller than any encrypted object are plain for sure; the rest
 * are looked up in the object-info cache (filled by every write and read through this proxy), derived from the
 * stored size in buckets declared encrypted-only, and otherwise with one HEAD each (a few at a time),
 * remembered by ETag.
 */
import { CHUNK_OVERHEAD } from '../format/constants.ts';
import { chunkCount, isNaturalStreamSize, plaintextSize } from '../format/layout.ts';
import { TAIL_SIZE } from '../format/tail.ts';
import { encryptedEtag } from '../s3/etag.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { mapBlocks, parseBucketNames, xmlEscape } from '../s3/xml.ts';
import { forEachListingEntry, ListingEdits, type ListingEntry } from '../s3/listing.ts';
import { isAllowed } from '../s3/allow-list.ts';
import { S3Error } from '../s3/errors.ts';
import { parseEnvelopeHeader } from '../sse-c/envelope.ts';
import { readBytes, readText } from '../upstream.ts';
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
  const page = await readBytes(up, MAX_LISTING_BYTES);
  // Passed on cut, the page would reach the client as a whole 200.
  if (!page) throw new S3Error('InternalError', 'The upstream listing page is larger than the proxy reads.');
  ctx.stats.upstreamBytesIn += page.length;
  const urlEncoded = queryGet(s3.query, 'encoding-type') === 'url';
  const derive = encryptedOnly(ctx.config, s3.bucket);
  // A replica that has learned nothing of the bucket's objects (just started, say) has nothing to look up.
  const known = ctx.objects.knowsBucket(s3.bucket);
  const edits = new ListingEdits();
  const unknown: Array<{ entry: ListingEntry; object: Listed }> = [];
  forEachListingEntry(page, s3.op === 'ListObjectVersions' ? 'Version' : 'Contents', (entry) => {
    const object = entry && listedOf(entry, urlEncoded);
    if (!object) return;
    const info = knownInfoOf(ctx, object, known, derive?.chunkSize);
    if (info) markEncrypted(edits, entry, info);
    else unknown.push({ entry, object });
  });
  let next = 0;
  const worker = async () => {
    while (next < unknown.length) {
      const { entry, object } = unknown[next++]!;
      const info = await headInfo(ctx, object);
      if (info) markEncrypted(edits, entry, info);
    }
  };
  await Promise.all(Array.from({ length: Math.min(HEAD_CONCURRENCY, unknown.length) }, worker));
  sendXml(ctx, 200, edits.apply(page));
}

/** An encrypted object's entry shows its plaintext size, and its ETag as the proxy gives it (s3/etag.ts). */
function markEncrypted(edits: ListingEdits, entry: ListingEntry, info: ObjectInfo): void {
  if (!info.encrypted) return;
  const size = String(info.size);
  const etag = markedEtag(entry);
  // In page order (stores write the ETag first), so the edits need no sorting.
  const etagFirst = etag !== undefined && entry.etagAt[0] < entry.sizeAt[0];
  if (etagFirst) edits.set(entry.etagAt, etag);
  edits.set(entry.sizeAt, size);
  if (etag !== undefined && !etagFirst) edits.set(entry.etagAt, etag);
}

/**
 * The ETag's XML with the suffix, written as the page writes it where the store quotes with `"`, `&quot;` or
 * `&#34;` (kept), escaped anew for other spellings of the quote; undefined for one that is not MD5-shaped (left
 * as the store wrote it).
 */
function markedEtag(entry: ListingEntry): string | undefined {
  const asWritten = encryptedEtag(entry.etagXml);
  if (asWritten !== entry.etagXml) return asWritten;
  const marked = encryptedEtag(entry.etag);
  return marked !== entry.etag ? xmlEscape(marked) : undefined;
}

function listedOf(e: ListingEntry, urlEncoded: boolean): Listed | undefined {
  const size = Number(e.size);
  if (!Number.isSafeInteger(size)) return undefined;
  let key = e.key;
  try {
    if (urlEncoded) key = decodeURIComponent(key.replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
  // A key with a lone surrogate (a character reference no store should write) cannot be named in a request.
  if (!key.isWellFormed()) return undefined;
  return { key, etag: e.etag, size, versionId: e.versionId };
}

/**
 * Encrypted or not, and the plaintext size, without a request: plain for sure by size, from the object-info
 * cache (`known`: it has entries for the bucket), or derived from the stored size in a bucket declared
 * encrypted-only (`chunkSize`); else undefined (a HEAD decides).
 */
function knownInfoOf(ctx: BucketContext, o: Listed, known: boolean, chunkSize: number | undefined): ObjectInfo | undefined {
  if (!couldBeEncrypted(o.size)) return { encrypted: false, size: o.size };
  return (known ? knownInfo(ctx, ctx.s3.bucket, o.key, o.etag) : undefined) ?? (chunkSize !== undefined ? derivedInfo(o, chunkSize) : undefined);
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
  const m = o.etag.includes('-') ? /-(\d+)"?$/.exec(o.etag) : null;
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
