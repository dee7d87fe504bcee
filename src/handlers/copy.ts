/**
 * CopyObject and UploadPartCopy with SSE-C on either side.
 *
 * SSE-C → SSE-C (same key, another key, copy-to-self rotation): the plaintext does not change, so the
 * upstream copies the ciphertext itself and only the envelope is re-sealed for the new key and name — no body
 * byte passes through the proxy. Plain → SSE-C, SSE-C → plain and UploadPartCopy stream the source through the
 * proxy (decrypt, re-encrypt). A plain → plain copy goes to the upstream as it is, unless its source turns out
 * to be encrypted (an upstream copy would carry an envelope to a name it is not bound to).
 */
import { pipeline, Readable, Transform } from 'node:stream';
import { encryptedSize } from '../format/layout.ts';
import { createEncryptStream } from '../format/stream.ts';
import { S3Error, SSEC_MESSAGES, type S3ErrorCode } from '../s3/errors.ts';
import { ENVELOPE_META, LAYOUT_META, RESERVED_META_PREFIX } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { parseRange, resolveRange } from '../s3/range.ts';
import { elementText, mapBlocks, removeElements, xmlEscape } from '../s3/xml.ts';
import {
  COPY_SSEC_PREFIX,
  hasSsecHeaders,
  parseCustomerKey,
  ssecEchoHeaders,
  type CustomerKey,
} from '../sse-c/customer-key.ts';
import { openEnvelope, resealEnvelope, sealEnvelope } from '../sse-c/envelope.ts';
import { CHECKSUM_META, tailSizeOf } from '../sse-c/sealed-checksum.ts';
import { multipartDataKey, parseUploadId, tagMatches } from '../sse-c/upload-id.ts';
import { dump, readText, type UpstreamResponse } from '../upstream.ts';
import { relayUpstreamError, upstreamRequest, type RequestContext } from './context.ts';
import { sealingStages } from './put.ts';
import { layoutOfInfo } from '../object-info.ts';
import { withChecksum } from './multipart.ts';
import { multipartEtag } from './multipart.ts';
import { decryptStages, planRange, planWhole, probeLayout, type ObjectLayout } from './object-layout.ts';

/** `x-amz-copy-source`: `[/]bucket/key[?versionId=v]`, percent-encoded. */
export function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
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

/** The smallest part an upstream multipart copy may use (S3's minimum part size is 5 MiB). */
const PART_COPY_MIN = 8 * 1024 * 1024;

/** Object headers S3 copies with COPY and takes from the request with REPLACE. */
const OBJECT_HEADERS = ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'];

interface Source {
  bucket: string;
  key: string;
  versionId?: string;
  head: UpstreamResponse['headers'];
  etag: string;
  /** Stored bytes. */
  size: number;
  /** Stored bytes that are chunks (size minus a checksum tail record). */
  chunksSize: number;
  envelope?: string;
}

async function headSource(ctx: RequestContext, conditional: boolean): Promise<Source> {
  const header = ctx.req.headers['x-amz-copy-source'];
  if (typeof header !== 'string') throw new S3Error('InvalidArgument', 'x-amz-copy-source is required.');
  const src = parseCopySource(header);
  const up = await upstreamRequest(ctx, {
    method: 'HEAD',
    path: objectPath(src.bucket, src.key),
    query: src.versionId ? [['versionId', src.versionId]] : [],
    headers: conditional ? copySourceConditions(ctx) : {},
  });
  await dump(up);
  if (up.statusCode !== 200) throw sourceError(up.statusCode, src.key);
  const env = up.headers[ENVELOPE_META];
  return {
    ...src,
    head: up.headers,
    etag: String(up.headers['etag'] ?? ''),
    size: Number(up.headers['content-length'] ?? 0),
    // The chunks only: without the sealed checksum record a trailer checksum left after them.
    chunksSize: Number(up.headers['content-length'] ?? 0) - tailSizeOf(up.headers),
    ...(typeof env === 'string' ? { envelope: env } : {}),
  };
}

/** A failed HEAD or GET of the copy source, as S3 answers it (HEAD answers carry no error body). */
function sourceError(status: number, key: string): S3Error {
  if (status === 304 || status === 412) {
    return new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
  if (status === 404) return new S3Error('NoSuchKey', 'The specified key does not exist.', { extra: { Key: key } });
  if (status === 403) return new S3Error('AccessDenied', 'Access Denied');
  if (status === 405) return new S3Error('InvalidRequest', 'The source of a copy request may not specifically refer to a delete marker by version id.');
  return new S3Error('ServiceUnavailable', 'The upstream store could not read the copy source. Please retry.', { status: 503 });
}

/** An upstream refusal (S3 XML), passed on with its own code and status; server errors become retryable 503s. */
async function upstreamRefusal(up: UpstreamResponse): Promise<S3Error> {
  const text = await readText(up).catch(() => '');
  if (up.statusCode >= 500) return new S3Error('ServiceUnavailable', 'The upstream store failed. Please retry.', { status: 503 });
  const code = (elementText(text, 'Code') ?? 'InvalidRequest') as S3ErrorCode;
  return new S3Error(code, elementText(text, 'Message') ?? 'The upstream store refused the request.', { status: up.statusCode });
}

/** The largest copy source S3 copies in one request. */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;

function refuseTooLarge(bytes: number): void {
  if (bytes > MAX_SINGLE_COPY) {
    throw new S3Error(
      'InvalidRequest',
      `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_SINGLE_COPY}`,
    );
  }
}

/** x-amz-copy-source-if-* as the plain conditionals of a read of the source. */
function copySourceConditions(ctx: RequestContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of ['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since']) {
    const v = ctx.req.headers[`x-amz-copy-source-${c}`];
    if (typeof v === 'string') out[c] = v;
  }
  return out;
}

/** Both key trios, checked as S3 checks them, and the source's encryption matched against them. */
function keysFor(ctx: RequestContext, src: Source): { srcKey?: CustomerKey; dstKey?: CustomerKey } {
  const srcKey = parseCustomerKey(ctx.req.headers, 'write', COPY_SSEC_PREFIX);
  const dstKey = parseCustomerKey(ctx.req.headers, 'write');
  if (src.envelope !== undefined && !srcKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
  if (src.envelope === undefined && srcKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.notApplicable);
  return { ...(srcKey ? { srcKey } : {}), ...(dstKey ? { dstKey } : {}) };
}

function openSource(src: Source, key: CustomerKey) {
  try {
    return openEnvelope(src.envelope!, key.key, src.bucket, src.key);
  } catch (e) {
    throw new S3Error('AccessDenied', SSEC_MESSAGES.wrongKey, { cause: e });
  }
}

/** The destination's object headers and user metadata, per x-amz-metadata-directive. */
function destinationHeaders(ctx: RequestContext, src: Source): Record<string, string> {
  const directive = String(ctx.req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw new S3Error('InvalidArgument', 'Unknown metadata directive.', { extra: { ArgumentName: 'x-amz-metadata-directive' } });
  }
  const from = directive === 'REPLACE' ? ctx.req.headers : src.head;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    const n = name.toLowerCase();
    if (typeof value !== 'string' || n.startsWith(RESERVED_META_PREFIX)) continue;
    if (n.startsWith('x-amz-meta-') || OBJECT_HEADERS.includes(n)) out[n] = value;
  }
  // Request options that are not metadata apply either way.
  for (const n of ['x-amz-storage-class', 'x-amz-tagging', 'x-amz-tagging-directive', 'x-amz-acl', 'x-amz-website-redirect-location']) {
    const v = ctx.req.headers[n];
    if (typeof v === 'string') out[n] = v;
  }
  return out;
}

/**
 * x-amz-tagging-directive COPY (the default) keeps the source's tags. Where the proxy writes the destination
 * itself (a PUT, or a multipart upload of copied parts) it carries them over as x-amz-tagging.
 */
async function copyTags(ctx: RequestContext, src: Source, headers: Record<string, string>): Promise<void> {
  const directive = String(ctx.req.headers['x-amz-tagging-directive'] ?? 'COPY').toUpperCase();
  delete headers['x-amz-tagging-directive'];
  if (directive === 'REPLACE') return; // x-amz-tagging from the request, already in headers
  delete headers['x-amz-tagging'];
  if (Number(src.head['x-amz-tagging-count'] ?? 0) === 0) return;
  const up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(src.bucket, src.key),
    query: [['tagging', ''], ...(src.versionId ? ([['versionId', src.versionId]] as Array<[string, string]>) : [])],
  });
  if (up.statusCode !== 200) throw await upstreamRefusal(up);
  const tags: string[] = [];
  mapBlocks(await readText(up), 'Tag', (block) => {
    tags.push(`${encodeURIComponent(elementText(block, 'Key') ?? '')}=${encodeURIComponent(elementText(block, 'Value') ?? '')}`);
    return block;
  });
  if (tags.length) headers['x-amz-tagging'] = tags.join('&');
}

/** S3 refuses a copy onto itself that changes nothing (a key change is a change). */
function refuseNoopSelfCopy(ctx: RequestContext, src: Source, keys: { srcKey?: CustomerKey; dstKey?: CustomerKey }) {
  const same = src.bucket === ctx.s3.bucket && src.key === ctx.s3.key && src.versionId === undefined;
  if (!same) return;
  const directive = String(ctx.req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
  const changes =
    directive === 'REPLACE' ||
    ctx.req.headers['x-amz-storage-class'] !== undefined ||
    ctx.req.headers['x-amz-website-redirect-location'] !== undefined ||
    (keys.srcKey?.keyMd5 ?? '') !== (keys.dstKey?.keyMd5 ?? '');
  if (!changes) {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
}

function copyResult(etag: string, lastModified: string, part = false, checksums: Record<string, string> = {}): string {
  const el = part ? 'CopyPartResult' : 'CopyObjectResult';
  let sums = '';
  for (const [header, value] of Object.entries(checksums)) {
    const name = `Checksum${header.slice('x-amz-checksum-'.length).toUpperCase()}`;
    sums += `<${name}>${xmlEscape(value)}</${name}>`;
  }
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<${el} xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>${xmlEscape(lastModified)}</LastModified>` +
    `<ETag>${xmlEscape(etag)}</ETag>${sums}</${el}>`
  );
}

/** The source version actually copied, as S3 reports it. */
function sourceVersion(src: Source): Record<string, string> {
  const v = src.head['x-amz-version-id'];
  return typeof v === 'string' ? { 'x-amz-copy-source-version-id': v } : {};
}

function sendXml(ctx: RequestContext, xml: string, headers: Record<string, string>) {
  ctx.res.writeHead(200, {
    'content-type': 'application/xml',
    'content-length': String(Buffer.byteLength(xml)),
    'x-amz-request-id': ctx.requestId,
    ...headers,
  });
  ctx.res.end(xml);
}

function isoDate(header: string | string[] | undefined): string {
  const d = typeof header === 'string' ? new Date(header) : new Date();
  return (Number.isNaN(d.getTime()) ? new Date() : d).toISOString();
}

export async function copyObject(ctx: RequestContext): Promise<void> {
  const sseAny = hasSsecHeaders(ctx.req.headers) || hasSsecHeaders(ctx.req.headers, COPY_SSEC_PREFIX);
  const src = await headSource(ctx, sseAny);
  if (src.envelope === undefined && !sseAny) {
    // plain → plain: the upstream copies it (conditionals, directives and all).
    return ctx.passthrough(ctx);
  }
  const keys = keysFor(ctx, src);
  refuseNoopSelfCopy(ctx, src, keys);
  const bucket = ctx.s3.bucket!;
  const key = ctx.s3.key!;
  const headers = destinationHeaders(ctx, src);
  headers['x-amz-metadata-directive'] = 'REPLACE';
  const echo = keys.dstKey ? ssecEchoHeaders(keys.dstKey) : {};
  const keyChanges = keys.srcKey?.keyMd5 !== keys.dstKey?.keyMd5;
  if (keys.srcKey && keys.dstKey && !(ctx.config.reencryptOnKeyChange && keyChanges)) {
    // SSE-C → SSE-C: only the envelope changes; the upstream copies the ciphertext.
    const sealed = resealEnvelope(src.envelope!, keys.srcKey.key, src.bucket, src.key, keys.dstKey.key, bucket, key);
    sealed.dataKey.fill(0);
    headers[ENVELOPE_META] = sealed.value;
    const layoutMeta = src.head[LAYOUT_META];
    if (typeof layoutMeta === 'string') headers[LAYOUT_META] = layoutMeta;
    // Same data key, same plaintext: the sealed checksum stays valid.
    const checksum = src.head[CHECKSUM_META];
    if (typeof checksum === 'string') headers[CHECKSUM_META] = checksum;
    if (src.size > ctx.config.copyMultipartThreshold) return multipartServerCopy(ctx, src, headers, echo);
    headers['x-amz-copy-source'] = String(ctx.req.headers['x-amz-copy-source']);
    // The envelope re-sealed above belongs to exactly the source version checked by the HEAD (which also
    // evaluated the client's conditions): the upstream copies that version or nothing.
    headers['x-amz-copy-source-if-match'] = src.etag;
    const up = await upstreamRequest(ctx, {
      method: 'PUT',
      path: objectPath(bucket, key),
      query: upstreamQuery(ctx.s3.query),
      headers,
    });
    if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
    // Checksums of the ciphertext mean nothing to the client.
    const xml = removeElements(await readText(up), /^Checksum/);
    const extra: Record<string, string> = { ...echo };
    for (const h of ['x-amz-version-id', 'x-amz-copy-source-version-id']) {
      const v = up.headers[h];
      if (typeof v === 'string') extra[h] = v;
    }
    return sendXml(ctx, xml, extra);
  }
  // Plain ↔ SSE-C: the bytes change, so they pass through the proxy.
  delete headers['x-amz-metadata-directive'];
  await copyTags(ctx, src, headers);
  const layout = keys.srcKey ? await sourceLayout(ctx, src, keys.srcKey) : undefined;
  let body: Readable;
  try {
    const plainSize = layout ? layout.plainSize : src.size;
    refuseTooLarge(keys.dstKey ? encryptedSize(plainSize, 2 ** ctx.config.chunkSizeLog2) : plainSize);
    body = await readSource(ctx, src, keys.srcKey, layout, undefined);
  } finally {
    layout?.dataKey.fill(0); // the decryptor keeps its own copy
  }
  const plainSize = layout ? layout.plainSize : src.size;
  let encrypt: Transform | undefined;
  let length = plainSize;
  if (keys.dstKey) {
    const envelope = sealEnvelope({ customerKey: keys.dstKey.key, bucket, key, chunkSizeLog2: ctx.config.chunkSizeLog2 });
    headers[ENVELOPE_META] = envelope.value;
    encrypt = createEncryptStream({ dataKey: envelope.dataKey, chunkSize: envelope.chunkSize, partNumber: 0 });
    envelope.dataKey.fill(0);
    length = encryptedSize(plainSize, envelope.chunkSize);
  }
  const up = await writeStream(ctx, { path: objectPath(bucket, key), query: upstreamQuery(ctx.s3.query), headers, length }, body, encrypt);
  const extra: Record<string, string> = { ...echo, ...sourceVersion(src) };
  const version = up.headers['x-amz-version-id'];
  if (typeof version === 'string') extra['x-amz-version-id'] = version;
  return sendXml(ctx, copyResult(String(up.headers['etag'] ?? ''), isoDate(up.headers['date'])), extra);
}

/**
 * A copy above the upstream's single-copy limit: an upstream multipart upload whose parts are server-side
 * copies of byte ranges of the source's ciphertext. The bytes, and so the chunk layout, stay exactly as they
 * were; the object is marked as made of parts so readers map its layout from the chunk headers.
 */
async function multipartServerCopy(
  ctx: RequestContext,
  src: Source,
  headers: Record<string, string>,
  echo: Record<string, string>,
): Promise<void> {
  const path = objectPath(ctx.s3.bucket!, ctx.s3.key!);
  // The copy is byte for byte: tail records stay where they are; otherwise the parts are found by walking.
  const createHeaders: Record<string, string> = { ...headers, [LAYOUT_META]: src.head[LAYOUT_META] === 'tails' ? 'tails' : 'parts' };
  delete createHeaders['x-amz-metadata-directive'];
  await copyTags(ctx, src, createHeaders);
  const created = await upstreamRequest(ctx, { method: 'POST', path, query: [['uploads', '']], headers: createHeaders });
  if (created.statusCode !== 200) return relayUpstreamError(ctx, created);
  const uploadId = elementText(await readText(created), 'UploadId');
  if (!uploadId) throw new S3Error('InternalError', 'The upstream store did not return an upload id.');
  const partSize = Math.min(5 * 1024 ** 3, Math.max(PART_COPY_MIN, Math.ceil(src.size / 10_000)));
  const count = Math.max(1, Math.ceil(src.size / partSize));
  const etags: string[] = new Array(count);
  const copySource = String(ctx.req.headers['x-amz-copy-source']);
  let stopped = false;
  try {
    let next = 0;
    const worker = async () => {
      while (next < count && !stopped) {
        const i = next++;
        const first = i * partSize;
        const last = Math.min(src.size, first + partSize) - 1;
        const up = await upstreamRequest(ctx, {
          method: 'PUT',
          path,
          query: [
            ['partNumber', String(i + 1)],
            ['uploadId', uploadId],
          ],
          headers: {
            'x-amz-copy-source': copySource,
            'x-amz-copy-source-range': `bytes=${first}-${last}`,
            'x-amz-copy-source-if-match': src.etag,
          },
        });
        if (up.statusCode !== 200) throw await upstreamRefusal(up);
        const etag = elementText(await readText(up), 'ETag');
        if (!etag) throw new S3Error('ServiceUnavailable', 'The upstream part copy gave no ETag. Please retry.', { status: 503 });
        etags[i] = etag;
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(4, count) }, () =>
        worker().catch((e: unknown) => {
          stopped = true; // no new part copies after the first failure
          throw e;
        }),
      ),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const body =
      '<CompleteMultipartUpload>' +
      etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEscape(e)}</ETag></Part>`).join('') +
      '</CompleteMultipartUpload>';
    const done = await upstreamRequest(ctx, {
      method: 'POST',
      path,
      query: [['uploadId', uploadId]],
      headers: { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    const xml = await readText(done);
    if (done.statusCode !== 200 || xml.includes('<Error>')) throw new S3Error('InternalError', 'The upstream multipart copy did not complete.');
    const etag = elementText(xml, 'ETag')?.replace(/"/g, '') ? elementText(xml, 'ETag')! : (multipartEtag(body) ?? '');
    const extra: Record<string, string> = { ...echo, ...sourceVersion(src) };
    const version = done.headers['x-amz-version-id'];
    if (typeof version === 'string') extra['x-amz-version-id'] = version;
    return sendXml(ctx, copyResult(etag, isoDate(done.headers['date'])), extra);
  } catch (e) {
    // Nothing half-copied is left behind.
    ctx.stats.upstreamRequests++;
    await ctx.upstream
      .request({ identity: ctx.identity, method: 'DELETE', path, query: [['uploadId', uploadId]] })
      .then(dump, () => {});
    throw e;
  }
}

async function sourceLayout(ctx: RequestContext, src: Source, key: CustomerKey): Promise<ObjectLayout & { dataKey: Buffer; chunkSize: number }> {
  const opened = openSource(src, key);
  const meta = src.head[LAYOUT_META];
  const tails = meta === 'tails';
  const ref = { bucket: src.bucket, key: src.key, versionId: src.versionId, etag: src.etag, fromParts: meta !== undefined, tails };
  const cached = ctx.objects.get(src.bucket, src.key, src.etag);
  const layout: ObjectLayout =
    cached?.encrypted && (!tails || cached.verified)
      ? layoutOfInfo(cached)
      : await probeLayout(ctx, ref, src.chunksSize, opened.chunkSize, { dataKey: opened.dataKey });
  return { ...layout, dataKey: opened.dataKey, chunkSize: opened.chunkSize };
}

/** The source's plaintext (whole, or the inclusive range), streamed from one upstream GET of the same version. */
async function readSource(
  ctx: RequestContext,
  src: Source,
  key: CustomerKey | undefined,
  layout: (ObjectLayout & { dataKey: Buffer; chunkSize: number }) | undefined,
  range: { start: number; end: number } | undefined,
): Promise<Readable> {
  const headers: Record<string, string> = { 'if-match': src.etag };
  let decrypt: Transform[] | undefined;
  if (layout && key) {
    if (range) {
      const plan = planRange(layout, range.start, range.end, layout.chunkSize);
      headers.range = `bytes=${plan.cipherStart}-${plan.cipherEndInclusive}`;
      decrypt = decryptStages(plan, layout.dataKey, layout.chunkSize);
    } else {
      if (src.chunksSize !== src.size) headers.range = `bytes=0-${src.chunksSize - 1}`;
      decrypt = decryptStages(planWhole(layout), layout.dataKey, layout.chunkSize);
    }
  } else if (range) {
    headers.range = `bytes=${range.start}-${range.end}`;
  }
  const up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(src.bucket, src.key),
    query: src.versionId ? [['versionId', src.versionId]] : [],
    headers,
  });
  if (up.statusCode !== 200 && up.statusCode !== 206) {
    await dump(up);
    throw sourceError(up.statusCode, src.key);
  }
  const count = new Transform({
    transform(c: Buffer, _e, cb) {
      ctx.stats.upstreamBytesIn += c.length;
      cb(null, c);
    },
  });
  const stages = [count, ...(decrypt ?? [])];
  return (pipeline as (...s: unknown[]) => Readable)(up.body, ...stages, () => {});
}

/** PUT (object or part) of a stream of known length; any failure aborts it before the end. */
async function writeStream(
  ctx: RequestContext,
  target: { path: string; query: Array<[string, string]>; headers: Record<string, string>; length: number },
  body: Readable,
  encrypt: Transform | Transform[] | undefined,
): Promise<UpstreamResponse> {
  let failure: unknown;
  const stages = encrypt === undefined ? [] : Array.isArray(encrypt) ? encrypt : [encrypt];
  const source = stages.length
    ? (pipeline as (...s: unknown[]) => Readable)(body, ...stages, (e: unknown) => {
        if (e) failure = e;
      })
    : body;
  body.on('error', (e) => (failure ??= e));
  ctx.stats.upstreamRequests++;
  let up: UpstreamResponse;
  try {
    up = await ctx.upstream.request({
      identity: ctx.identity,
      method: 'PUT',
      path: target.path,
      query: target.query,
      headers: { ...target.headers, 'content-length': String(target.length) },
      body: source,
    });
  } catch (e) {
    throw failure ?? e;
  }
  ctx.stats.upstreamStatus = up.statusCode;
  if (failure) {
    await dump(up);
    throw failure;
  }
  if (up.statusCode !== 200) {
    source.destroy();
    throw await upstreamRefusal(up);
  }
  await dump(up);
  return up;
}

/** UploadPartCopy: a range of a plain or SSE-C source, decrypted, re-encrypted as a part of the upload. */
export async function uploadPartCopy(ctx: RequestContext): Promise<void> {
  const src = await headSource(ctx, true);
  const keys = keysFor(ctx, src);
  const parsed = parseUploadId(queryGet(ctx.s3.query, 'uploadId') ?? '');
  const partNumber = Number(queryGet(ctx.s3.query, 'partNumber'));
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', { extra: { ArgumentName: 'partNumber' } });
  }
  if (parsed.tag && !keys.dstKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.partialHeaders);
  if (!parsed.tag && keys.dstKey) {
    throw new S3Error('InvalidRequest', `${SSEC_MESSAGES.mismatch} Use the upload id returned by CreateMultipartUpload.`);
  }
  const layout = keys.srcKey ? await sourceLayout(ctx, src, keys.srcKey) : undefined;
  const plainSize = layout ? layout.plainSize : src.size;
  const rangeHeader = ctx.req.headers['x-amz-copy-source-range'];
  let range = { start: 0, end: plainSize - 1 };
  if (typeof rangeHeader === 'string') {
    const spec = parseRange(rangeHeader);
    if (!spec || spec.kind !== 'from' || spec.end === undefined) {
      throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy', {
        extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: rangeHeader.slice(0, 64) },
      });
    }
    if (spec.end >= plainSize) {
      throw new S3Error('InvalidArgument', `Range specified is not valid for source object of size: ${plainSize}`, {
        extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: rangeHeader.slice(0, 64) },
      });
    }
    range = resolveRange(spec, plainSize);
  }
  const length = range.end - range.start + 1;
  const query: Array<[string, string]> = [
    ['partNumber', String(partNumber)],
    ['uploadId', parsed.upstreamId],
  ];
  let encrypt: Transform[] | undefined;
  let cipherLength = length;
  let echo: Record<string, string> = {};
  // The upload's checksum of the copied plaintext, for the answer and the Complete that lists it.
  let checksums = (): Record<string, string> => ({});
  if (keys.dstKey) {
    const dataKey = multipartDataKey(keys.dstKey.key, ctx.s3.bucket!, ctx.s3.key!);
    if (!tagMatches(parsed, dataKey)) {
      dataKey.fill(0);
      throw new S3Error('InvalidRequest', SSEC_MESSAGES.mismatch);
    }
    const chunkSize = 2 ** parsed.chunkSizeLog2!;
    // A part of an upload with tail records ends with one, with the upload's checksum computed over the copied
    // plaintext (nothing comes from the client here).
    const sealed = sealingStages({
      dataKey,
      chunkSize,
      partNumber,
      plainSize: length,
      tail: parsed.tails,
      compute: parsed.checksum?.algorithm,
      given: () => ({}),
    });
    encrypt = sealed.stages;
    cipherLength = sealed.cipherSize;
    checksums = sealed.checksums;
    dataKey.fill(0);
    echo = ssecEchoHeaders(keys.dstKey);
  }
  let body: Readable;
  try {
    body = length > 0 ? await readSource(ctx, src, keys.srcKey, layout, range) : emptySource();
  } finally {
    layout?.dataKey.fill(0); // the decryptor keeps its own copy
  }
  const up = await writeStream(ctx, { path: objectPath(ctx.s3.bucket!, ctx.s3.key!), query, headers: {}, length: cipherLength }, body, encrypt);
  const upstreamEtag = String(up.headers['etag'] ?? '');
  const etag = parsed.checksum ? withChecksum(parsed.checksum.algorithm)(upstreamEtag, checksums()) : upstreamEtag;
  const xml = copyResult(etag, isoDate(up.headers['date']), true, checksums());
  return sendXml(ctx, xml, { ...echo, ...sourceVersion(src) });
}

/** A zero-byte part: no read of the source at all. */
function emptySource(): Readable {
  return Readable.from([]);
}

/** Plain → plain copies whose source turns out to be encrypted are refused (see the module comment). */
export async function refuseEncryptedCopySource(ctx: RequestContext): Promise<void> {
  const src = await headSource(ctx, false);
  if (src.envelope !== undefined) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
}
