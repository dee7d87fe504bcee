/**
 * GetObject and HeadObject. Encrypted objects: one upstream request in the common case (a ranged GET is mapped
 * to whole chunks with the default chunk size and checked against the object's envelope), decrypted on the way
 * out with plaintext Content-Length/Content-Range. Unencrypted objects stream through untouched.
 */
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CHUNK_OVERHEAD } from '../format/constants.ts';
import { FormatError } from '../format/errors.ts';
import { createDecryptStream } from '../format/stream.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { clientResponseHeaders, ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { contentRange, parseRange, resolveRange, type RangeSpec } from '../s3/range.ts';
import { openEnvelope } from '../sse-c/envelope.ts';
import { openTail, TAIL_SIZE } from '../format/tail.ts';
import { CHECKSUM_META, checksumTailOf, openChecksum } from '../sse-c/sealed-checksum.ts';
import { parseCustomerKey, ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import type { ChecksumName } from '../sigv4/checksums.ts';
import { dump, type UpstreamResponse } from '../upstream.ts';
import { dropPrefix, takeFirst } from './body.ts';
import { partsCountOf, planRange, planWhole, probeLayout, type ObjectLayout } from './object-layout.ts';
import { relayUpstreamError, upstreamRequest, type RequestContext } from './context.ts';

/** Request headers a read forwards: conditionals and a few S3 request options. */
const READ_HEADERS = [
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'x-amz-expected-bucket-owner',
  'x-amz-request-payer',
];

function readHeaders(ctx: RequestContext, extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of READ_HEADERS) {
    const v = ctx.req.headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return { ...out, ...extra };
}

/**
 * One upstream read of the object. For encrypted reads `partNumber` is the proxy's to answer (the upstream
 * would count ciphertext parts, or ignore it as RGW 16 does).
 */
function fetchObject(ctx: RequestContext, method: 'GET' | 'HEAD', headers: Record<string, string>, encrypted = true) {
  return upstreamRequest(ctx, {
    method,
    path: objectPath(ctx.s3.bucket!, ctx.s3.key!),
    query: upstreamQuery(ctx.s3.query, encrypted ? ['partNumber'] : []),
    headers,
  });
}

/** `?partNumber=N` as S3 validates it. */
function partNumberOf(ctx: RequestContext): number | undefined {
  const v = queryGet(ctx.s3.query, 'partNumber');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 10000) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
      extra: { ArgumentName: 'partNumber', ArgumentValue: v.slice(0, 16) },
    });
  }
  return n;
}

function invalidPartNumber(): S3Error {
  return new S3Error('InvalidPartNumber', 'The requested partnumber is not satisfiable', { status: 416 });
}

function envelopeOf(up: UpstreamResponse): string | undefined {
  const v = up.headers[ENVELOPE_META];
  return Array.isArray(v) ? v[0] : v;
}

function isOk(up: UpstreamResponse): boolean {
  return up.statusCode === 200 || up.statusCode === 206;
}

/** Opens the envelope; a wrong key (or a tampered envelope) is S3's 403. */
function unseal(ctx: RequestContext, value: string, key: CustomerKey) {
  try {
    return openEnvelope(value, key.key, ctx.s3.bucket!, ctx.s3.key!);
  } catch (e) {
    if (e instanceof FormatError && e.code === 'EnvelopeUnsealFailed') {
      throw new S3Error('AccessDenied', SSEC_MESSAGES.wrongKey, { cause: e });
    }
    throw e;
  }
}

/** Total object size from a 200 (Content-Length) or 206 (Content-Range `bytes a-b/total`). */
function sizes(up: UpstreamResponse): { total: number; start: number; end: number } {
  const cr = up.headers['content-range'];
  if (typeof cr === 'string') {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(cr.trim());
    if (m) return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
  }
  const total = Number(up.headers['content-length'] ?? 0);
  return { start: 0, end: total - 1, total };
}

/** The ciphertext Range to ask for before the object's envelope is known (chunk size guessed). */
function guessCipherRange(spec: RangeSpec, chunkSize: number): string {
  const stride = chunkSize + CHUNK_OVERHEAD;
  if (spec.kind === 'suffix') {
    // The last chunk may be partial, so one extra chunk covers any alignment.
    return `bytes=-${(Math.ceil(spec.length / chunkSize) + 1) * stride}`;
  }
  const first = Math.floor(spec.start / chunkSize) * stride;
  if (spec.end === undefined) return `bytes=${first}-`;
  return `bytes=${first}-${(Math.floor(spec.end / chunkSize) + 1) * stride - 1}`;
}

export async function getObject(ctx: RequestContext): Promise<void> {
  const isHead = ctx.req.method === 'HEAD';
  const customerKey = parseCustomerKey(ctx.req.headers, 'read');
  if (!customerKey) return readUnencrypted(ctx, isHead);
  const partNumber = partNumberOf(ctx);
  // S3 ignores Range when partNumber is given... and refuses both together; the part decides here.
  const range = partNumber === undefined ? parseRange(ctx.req.headers.range) : undefined;

  const guessed = range && !isHead ? guessCipherRange(range, 2 ** ctx.config.chunkSizeLog2) : undefined;
  // A part read needs the part table first, so it starts with a HEAD.
  const firstMethod = isHead || partNumber !== undefined ? 'HEAD' : 'GET';
  let up = await fetchObject(ctx, firstMethod, readHeaders(ctx, guessed ? { range: guessed } : {}));
  ctx.stats.upstreamStatus = up.statusCode;
  /** True while `up` is a HEAD answer (no body to decrypt). */
  let fromHead = firstMethod === 'HEAD';
  if (up.statusCode === 416 && guessed) {
    // The guessed ciphertext start lies past the end: learn the size from a HEAD to answer S3's 416.
    await dump(up);
    up = await fetchObject(ctx, 'HEAD', readHeaders(ctx));
    fromHead = true;
  }
  if (!isOk(up)) return relayUpstreamError(ctx, up);
  const envelopeValue = envelopeOf(up);
  if (envelopeValue === undefined) {
    await dump(up);
    throw new S3Error('InvalidRequest', SSEC_MESSAGES.notApplicable);
  }
  let opened;
  try {
    opened = unseal(ctx, envelopeValue, customerKey);
  } catch (e) {
    await dump(up);
    throw e;
  }
  const { chunkSize, dataKey } = opened;
  const fetched = sizes(up);
  // A checksum that came as a trailer sits sealed after the last chunk: not part of the chunk layout.
  const tailAlgorithm = checksumTailOf(up.headers);
  const cipherTotal = fetched.total - (tailAlgorithm ? TAIL_SIZE : 0);
  const etag = typeof up.headers['etag'] === 'string' ? up.headers['etag'] : undefined;
  let layout: ObjectLayout;
  try {
    layout = await layoutOf(ctx, etag, cipherTotal, chunkSize, partNumber !== undefined, up.headers[LAYOUT_META] !== undefined);
  } catch (e) {
    await dump(up);
    throw e;
  }
  const plainSize = layout.plainSize;
  const headers = clientResponseHeaders(up.headers, { encrypted: true });
  Object.assign(headers, ssecEchoHeaders(customerKey), {
    'accept-ranges': 'bytes',
    'x-amz-request-id': ctx.requestId,
  });

  if (range === undefined && partNumber === undefined && String(ctx.req.headers['x-amz-checksum-mode'] ?? '').toUpperCase() === 'ENABLED') {
    // Whole-object reads only, as S3: a checksum of the whole object on a part would fail the client's check.
    const checksum = await storedChecksum(ctx, up.headers, dataKey, etag, cipherTotal).catch(async (e: unknown) => {
      await dump(up);
      throw e;
    });
    if (checksum) {
      headers[`x-amz-checksum-${checksum.algorithm}`] = checksum.value;
      headers['x-amz-checksum-type'] = 'FULL_OBJECT';
    }
  }
  let resolved;
  try {
    resolved = range ? resolveRange(range, plainSize) : undefined;
    if (partNumber !== undefined) {
      // S3 numbers the parts of the completed object 1..PartsCount; a single PUT is one part.
      const parts = layout.parts ?? [{ plainStart: 0, plainSize }];
      const part = parts[partNumber - 1];
      if (!part) throw invalidPartNumber();
      if (layout.parts) headers['x-amz-mp-parts-count'] = String(parts.length);
      resolved = { start: part.plainStart, end: part.plainStart + part.plainSize - 1 };
      if (part.plainSize === 0) throw invalidPartNumber();
    }
  } catch (e) {
    await dump(up);
    throw e;
  }

  if (isHead) {
    await dump(up);
    if (resolved) {
      headers['content-range'] = contentRange(resolved, plainSize);
      headers['content-length'] = String(resolved.end - resolved.start + 1);
    } else headers['content-length'] = String(plainSize);
    ctx.res.writeHead(resolved ? 206 : 200, headers);
    ctx.res.end();
    return;
  }

  if (!resolved) {
    if (up.statusCode !== 200 || fromHead) {
      await dump(up);
      up = await fetchObject(ctx, 'GET', readHeaders(ctx, etag ? { 'if-match': etag } : {}));
      if (!isOk(up)) return relayUpstreamError(ctx, up);
    }
    headers['content-length'] = String(plainSize);
    ctx.res.writeHead(200, headers);
    // Self-describing chunks: one read path for single PUTs and multipart objects of any layout.
    await stream(ctx, up, 0, createDecryptStream({ dataKey, chunkSize, ...planWhole() }), cipherTotal);
    return;
  }

  const plan = planRange(layout, resolved.start, resolved.end, chunkSize);
  const usable =
    !fromHead && up.statusCode === 206 && plan.cipherStart >= fetched.start && plan.cipherEndInclusive === fetched.end;
  if (!usable) {
    await dump(up);
    const exact = { range: `bytes=${plan.cipherStart}-${plan.cipherEndInclusive}`, ...(etag ? { 'if-match': etag } : {}) };
    up = await fetchObject(ctx, 'GET', readHeaders(ctx, exact));
    if (!isOk(up)) return relayUpstreamError(ctx, up);
  }
  const skipCipher = usable ? plan.cipherStart - fetched.start : 0;
  headers['content-range'] = contentRange(resolved, plainSize);
  headers['content-length'] = String(resolved.end - resolved.start + 1);
  ctx.res.writeHead(206, headers);
  await stream(ctx, up, skipCipher, createDecryptStream({ dataKey, chunkSize, ...plan.decrypt }));
}

/** The object's layout: from this replica's cache by ETag, else probed from its chunk headers. */
async function layoutOf(
  ctx: RequestContext,
  etag: string | undefined,
  cipherTotal: number,
  chunkSize: number,
  needParts: boolean,
  fromParts: boolean,
): Promise<ObjectLayout> {
  const { bucket, key } = { bucket: ctx.s3.bucket!, key: ctx.s3.key! };
  const multipart = partsCountOf(etag) > 1 || fromParts || ctx.config.probeAllLayouts;
  const cached = etag ? ctx.objects.get(bucket, key, etag) : undefined;
  if (cached?.encrypted && (cached.parts || !needParts || !multipart)) {
    return { plainSize: cached.size, ...(cached.parts ? { parts: cached.parts } : {}) };
  }
  const ref = { bucket, key, versionId: queryGet(ctx.s3.query, 'versionId'), etag: etag ?? '*', fromParts };
  const layout = await probeLayout(ctx, ref, cipherTotal, chunkSize, { parts: needParts });
  ctx.objects.set(bucket, key, etag, { encrypted: true, size: layout.plainSize, ...(layout.parts ? { parts: layout.parts } : {}) });
  return layout;
}

/**
 * The client's checksum of the whole plaintext, if one was stored: sealed in the metadata (given as a header),
 * or in the record after the last chunk (given as a trailer; one small read of the same version).
 */
export async function storedChecksum(
  ctx: RequestContext,
  headers: UpstreamResponse['headers'],
  dataKey: Buffer,
  etag: string | undefined,
  cipherSize: number,
): Promise<{ algorithm: ChecksumName; value: string } | undefined> {
  const algorithm = checksumTailOf(headers);
  if (!algorithm) {
    const sealed = headers[CHECKSUM_META];
    return openChecksum(dataKey, typeof sealed === 'string' ? sealed : undefined);
  }
  const range = `bytes=${cipherSize}-${cipherSize + TAIL_SIZE - 1}`;
  const up = await fetchObject(ctx, 'GET', readHeaders(ctx, { range, ...(etag ? { 'if-match': etag } : {}) }));
  if (!isOk(up)) {
    await dump(up);
    throw new S3Error('ServiceUnavailable', 'The object changed while it was read. Please retry.', { status: 503 });
  }
  const record = Buffer.concat(await up.body.toArray());
  let opened;
  try {
    opened = openTail(dataKey, record);
  } catch (e) {
    throw new S3Error('InternalError', 'The stored object failed its integrity check.', { cause: e });
  }
  if (opened.algorithm !== algorithm || !opened.digest) return undefined;
  return { algorithm, value: opened.digest.toString('base64') };
}

/** Ciphertext → plaintext to the client. After headers are sent an error can only cut the connection. */
async function stream(
  ctx: RequestContext,
  up: UpstreamResponse,
  skipCipher: number,
  decrypt: NodeJS.ReadWriteStream,
  /** Ciphertext bytes that belong to the chunks (the rest, a checksum tail, is not decrypted). */
  cipherLength?: number,
): Promise<void> {
  const stages: NodeJS.ReadWriteStream[] = skipCipher > 0 ? [dropPrefix(skipCipher), decrypt] : [decrypt];
  if (cipherLength !== undefined) stages.unshift(takeFirst(cipherLength));
  up.body.on('data', (c: Buffer) => (ctx.stats.upstreamBytesIn += c.length));
  try {
    await pipeline(up.body, ...(stages as [NodeJS.ReadWriteStream]), countOut(ctx), ctx.res);
  } catch (e) {
    ctx.res.destroy();
    throw e;
  }
}

function countOut(ctx: RequestContext): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      ctx.stats.bytesOut += chunk.length;
      cb(null, chunk);
    },
  });
}

/** No SSE-C headers: an unencrypted object streams through; an encrypted one is S3's 400. */
async function readUnencrypted(ctx: RequestContext, isHead: boolean): Promise<void> {
  const range = ctx.req.headers.range;
  const extra: Record<string, string> = typeof range === 'string' ? { range } : {};
  const mode = ctx.req.headers['x-amz-checksum-mode'];
  if (typeof mode === 'string') extra['x-amz-checksum-mode'] = mode;
  const up = await fetchObject(ctx, isHead ? 'HEAD' : 'GET', readHeaders(ctx, extra), false);
  ctx.stats.upstreamStatus = up.statusCode;
  if (envelopeOf(up) !== undefined) {
    await dump(up);
    throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
  }
  if (!isOk(up)) return relayUpstreamError(ctx, up);
  const headers = clientResponseHeaders(up.headers, { encrypted: false });
  headers['x-amz-request-id'] = ctx.requestId;
  ctx.res.writeHead(up.statusCode, headers);
  if (isHead) {
    await dump(up);
    ctx.res.end();
    return;
  }
  await stream(ctx, up, 0, new PassThrough());
}
