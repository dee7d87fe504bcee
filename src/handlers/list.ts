/**
 * ListObjects, ListObjectsV2 and ListObjectVersions with plaintext sizes. The upstream's answer is kept as it
 * is except for `<Size>` of encrypted objects. A listing does not say which objects are encrypted: objects
 * smaller than any encrypted object are plain for sure; the rest are looked up in the
 * object-info cache (filled by every write and read through this proxy) and, when this replica has not seen
 * them, with one HEAD each (a few at a time), remembered by ETag.
 */
import { CHUNK_OVERHEAD } from '../format/constants.ts';
import { ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { elementText, mapBlocks, replaceElements } from '../s3/xml.ts';
import { parseEnvelopeHeader } from '../sse-c/envelope.ts';
import { dump, readText } from '../upstream.ts';
import { infoOf, type ObjectInfo } from '../object-info.ts';
import { relayUpstreamError, upstreamRequest, type RequestContext } from './context.ts';
import { probeLayout } from './object-layout.ts';
import { tailSizeOf } from '../sse-c/sealed-checksum.ts';

const HEAD_CONCURRENCY = 8;
const MAX_LISTING_BYTES = 64 * 1024 * 1024;

interface Listed {
  key: string;
  etag: string;
  size: number;
  versionId: string | undefined;
}

export async function listObjects(ctx: RequestContext): Promise<void> {
  const { s3 } = ctx;
  const up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(s3.bucket!),
    query: upstreamQuery(s3.query),
  });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const xml = await readText(up, MAX_LISTING_BYTES);
  const urlEncoded = queryGet(s3.query, 'encoding-type') === 'url';
  const block = s3.op === 'ListObjectVersions' ? 'Version' : 'Contents';

  const listed: Listed[] = [];
  mapBlocks(xml, block, (b) => {
    const item = parseBlock(b, urlEncoded);
    if (item) listed.push(item);
    return b;
  });
  const infos = await resolve(ctx, listed);
  let i = 0;
  const out = mapBlocks(xml, block, (b) => {
    const item = parseBlock(b, urlEncoded);
    if (!item) return b;
    const info = infos[i++];
    return info && info.encrypted ? replaceElements(b, 'Size', () => String(info.size)) : b;
  });
  ctx.res.writeHead(200, {
    'content-type': 'application/xml',
    'content-length': String(Buffer.byteLength(out)),
    'x-amz-request-id': ctx.requestId,
  });
  ctx.res.end(out);
}

function parseBlock(b: string, urlEncoded: boolean): Listed | undefined {
  const rawKey = elementText(b, 'Key');
  const size = elementText(b, 'Size');
  const etag = elementText(b, 'ETag');
  if (rawKey === undefined || size === undefined || etag === undefined) return undefined;
  const key = urlEncoded ? decodeURIComponent(rawKey.replace(/\+/g, '%20')) : rawKey;
  const versionId = elementText(b, 'VersionId');
  return { key, etag, size: Number(size), versionId };
}

/** Encrypted or not, and the plaintext size, for each listed object (in order). */
async function resolve(ctx: RequestContext, listed: Listed[]): Promise<Array<ObjectInfo | undefined>> {
  const bucket = ctx.s3.bucket!;
  const result: Array<ObjectInfo | undefined> = listed.map((o) => {
    if (!couldBeEncrypted(o.size)) {
      return { encrypted: false, size: o.size };
    }
    return ctx.objects.get(bucket, o.key, o.etag);
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

async function headInfo(ctx: RequestContext, o: Listed): Promise<ObjectInfo | undefined> {
  const up = await upstreamRequest(ctx, {
    method: 'HEAD',
    path: objectPath(ctx.s3.bucket!, o.key),
    query: o.versionId ? [['versionId', o.versionId]] : [],
    // The object as listed, not a newer one written since.
    headers: { 'if-match': o.etag },
  });
  await dump(up);
  if (up.statusCode !== 200) return undefined; // replaced or deleted meanwhile: leave the listed size alone
  const envelope = up.headers[ENVELOPE_META];
  let info: ObjectInfo;
  if (typeof envelope === 'string') {
    try {
      const meta = up.headers[LAYOUT_META];
      const fromParts = meta !== undefined;
      // Without the key, tail records give their clear sizes only: fine for a listing, not trusted for reads.
      const ref = { bucket: ctx.s3.bucket!, key: o.key, versionId: o.versionId, etag: o.etag, fromParts, tails: meta === 'tails' };
      const chunkSize = parseEnvelopeHeader(envelope).chunkSize;
      const layout = await probeLayout(ctx, ref, o.size - tailSizeOf(up.headers), chunkSize);
      info = infoOf(layout, chunkSize);
    } catch {
      return undefined;
    }
  } else info = { encrypted: false, size: o.size };
  ctx.objects.set(ctx.s3.bucket!, o.key, o.etag, info, ctx.s3.op !== 'ListObjectVersions');
  return info;
}
