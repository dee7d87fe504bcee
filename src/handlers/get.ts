/**
 * GetObject and HeadObject. Encrypted objects: one upstream request in the common case (a ranged GET is mapped
 * to whole chunks with the default chunk size and checked against the object's envelope), decrypted on the way
 * out with plaintext Content-Length/Content-Range. Unencrypted objects stream through untouched.
 */
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CHUNK_OVERHEAD } from '../format/constants.ts';
import { FormatError } from '../format/errors.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { clientResponseHeaders, ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { contentRange, parseRange, resolveRange, type RangeSpec } from '../s3/range.ts';
import { openEnvelope } from '../sse-c/envelope.ts';
import { openTail, TAIL_SIZE } from '../format/tail.ts';
import { CHECKSUM_META, checksumTailOf, multipartChecksumOf, openChecksum } from '../sse-c/sealed-checksum.ts';
import { parseCustomerKey, ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { combineCrcs, compositeChecksum, type ChecksumName } from '../sigv4/checksums.ts';
import { dump, type UpstreamResponse } from '../upstream.ts';
import { dropPrefix, takeFirst } from './body.ts';
import { decryptStages, partsCountOf, planRange, planWhole, probeLayout, type ObjectLayout } from './object-layout.ts';
import { relayUpstreamError, upstreamRequest, type RequestContext } from './context.ts';
import { infoOf, layoutOfInfo } from '../object-info.ts';

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

function checksumMode(ctx: RequestContext): boolean {
  return String(ctx.req.headers['x-amz-checksum-mode'] ?? '').toUpperCase() === 'ENABLED';
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

  // A range of an object this replica knows is asked for exactly, pinned to the version it knows; otherwise
  // the chunk range is guessed from the default chunk size and the uniform grid.
  const warm = range && !isHead ? warmRange(ctx, range) : undefined;
  const guessed = warm?.range ?? (range && !isHead ? guessCipherRange(range, 2 ** ctx.config.chunkSizeLog2) : undefined);
  // A part read needs the part table first, so it starts with a HEAD.
  const firstMethod = isHead || partNumber !== undefined ? 'HEAD' : 'GET';
  const pin: Record<string, string> = warm && ctx.req.headers['if-match'] === undefined ? { 'if-match': warm.etag } : {};
  let up = await fetchObject(ctx, firstMethod, readHeaders(ctx, guessed ? { range: guessed, ...pin } : {}));
  if (up.statusCode === 412 && 'if-match' in pin) {
    // The object changed since this replica saw it: start over without the pin.
    await dump(up);
    up = await fetchObject(ctx, firstMethod, readHeaders(ctx, { range: guessCipherRange(range!, 2 ** ctx.config.chunkSizeLog2) }));
  }
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
    const meta = up.headers[LAYOUT_META];
    layout = await layoutOf(ctx, etag, cipherTotal, chunkSize, dataKey, { needParts: partNumber !== undefined, fromParts: meta !== undefined, tails: meta === 'tails' });
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

  if (range === undefined && partNumber === undefined && checksumMode(ctx)) {
    // Whole-object reads only, as S3: a checksum of the whole object on a part would fail the client's check.
    const checksum = await storedChecksum(ctx, up.headers, dataKey, etag, cipherTotal, layout).catch(async (e: unknown) => {
      await dump(up);
      throw e;
    });
    if (checksum) {
      headers[`x-amz-checksum-${checksum.algorithm}`] = checksum.value;
      headers['x-amz-checksum-type'] = checksum.type;
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
      const sum = 'checksum' in part ? part.checksum : undefined;
      if (sum && checksumMode(ctx) && multipartChecksumOf(up.headers)?.type === 'COMPOSITE') {
        // A part read returns that part's checksum, as S3 does for composite uploads.
        headers[`x-amz-checksum-${sum.algorithm}`] = sum.digest.toString('base64');
        headers['x-amz-checksum-type'] = 'COMPOSITE';
      }
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
    await stream(ctx, up, 0, decryptStages(planWhole(layout), dataKey, chunkSize), tailAlgorithm ? cipherTotal : undefined);
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
  await stream(ctx, up, skipCipher, decryptStages(plan, dataKey, chunkSize));
}

/**
 * The exact ciphertext range for `spec` of the latest version of this object that this replica knows (and
 * its ETag, to pin the read to it), when no conditional of the client's could disagree.
 */
function warmRange(ctx: RequestContext, spec: RangeSpec): { range: string; etag: string } | undefined {
  const h = ctx.req.headers;
  if (queryGet(ctx.s3.query, 'versionId') !== undefined) return undefined;
  if (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-unmodified-since'] !== undefined) return undefined;
  const known = ctx.objects.latest(ctx.s3.bucket!, ctx.s3.key!);
  if (!known?.info.encrypted || (h['if-match'] !== undefined && String(h['if-match']).replace(/"/g, '') !== known.etag.replace(/"/g, ''))) return undefined;
  const { info } = known;
  if (info.chunkSize === undefined || (info.tails && !info.verified)) return undefined;
  let resolved;
  try {
    resolved = resolveRange(spec, info.size);
  } catch {
    return undefined; // unsatisfiable: the usual path answers S3's 416
  }
  const layout = layoutOfInfo(info);
  const plan = planRange(layout, resolved.start, resolved.end, info.chunkSize);
  return { range: `bytes=${plan.cipherStart}-${plan.cipherEndInclusive}`, etag: known.etag };
}

/** The object's layout: from this replica's cache by ETag, else probed from its chunk headers or tail records. */
async function layoutOf(
  ctx: RequestContext,
  etag: string | undefined,
  cipherTotal: number,
  chunkSize: number,
  dataKey: Buffer,
  how: { needParts: boolean; fromParts: boolean; tails: boolean },
): Promise<ObjectLayout> {
  const { bucket, key } = { bucket: ctx.s3.bucket!, key: ctx.s3.key! };
  const multipart = partsCountOf(etag) > 1 || how.fromParts || ctx.config.probeAllLayouts;
  const cached = etag ? ctx.objects.get(bucket, key, etag) : undefined;
  // A part table a listing read without the key is not trusted for reads: it is read again, authenticated.
  const usable = cached?.encrypted && (how.tails ? cached.parts && cached.verified : cached.parts || !how.needParts || !multipart);
  if (cached && usable) {
    return layoutOfInfo(cached);
  }
  const ref = { bucket, key, versionId: queryGet(ctx.s3.query, 'versionId'), etag: etag ?? '*', fromParts: how.fromParts, tails: how.tails };
  const layout = await probeLayout(ctx, ref, cipherTotal, chunkSize, { parts: how.needParts, dataKey });
  ctx.objects.set(bucket, key, etag, infoOf(layout, chunkSize), ref.versionId === undefined);
  return layout;
}

/**
 * The client's checksum of the whole plaintext, if one was stored: a single PUT's sealed in the metadata (given
 * as a header) or in its tail record (given as a trailer; one small read of the same version); a multipart
 * object's from its parts' tail records (in `layout`), COMPOSITE or FULL_OBJECT as the upload declared.
 */
export async function storedChecksum(
  ctx: RequestContext,
  headers: UpstreamResponse['headers'],
  dataKey: Buffer,
  etag: string | undefined,
  cipherSize: number,
  layout?: ObjectLayout,
): Promise<{ algorithm: ChecksumName; value: string; type: 'COMPOSITE' | 'FULL_OBJECT' } | undefined> {
  const declared = multipartChecksumOf(headers);
  if (declared) {
    const parts = layout?.parts;
    if (!parts?.length || parts.some((p) => p.checksum?.algorithm !== declared.algorithm)) return undefined;
    const value =
      declared.type === 'COMPOSITE'
        ? await compositeChecksum(declared.algorithm, parts.map((p) => p.checksum!.digest))
        : combineCrcs(declared.algorithm, parts.map((p) => ({ digest: p.checksum!.digest, length: p.plainSize })));
    return { ...declared, value };
  }
  const algorithm = checksumTailOf(headers);
  if (!algorithm) {
    const sealed = headers[CHECKSUM_META];
    const opened = openChecksum(dataKey, typeof sealed === 'string' ? sealed : undefined);
    return opened && { ...opened, type: 'FULL_OBJECT' };
  }
  const range = `bytes=${cipherSize}-${cipherSize + TAIL_SIZE - 1}`;
  // Only the version: the client's query may name another operation (GetObjectAttributes' `attributes`).
  const versionId = queryGet(ctx.s3.query, 'versionId');
  const up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(ctx.s3.bucket!, ctx.s3.key!),
    query: versionId ? [['versionId', versionId]] : [],
    headers: { range, ...(etag ? { 'if-match': etag } : {}) },
  });
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
  return { algorithm, value: opened.digest.toString('base64'), type: 'FULL_OBJECT' };
}

/** Ciphertext → plaintext to the client. After headers are sent an error can only cut the connection. */
async function stream(
  ctx: RequestContext,
  up: UpstreamResponse,
  skipCipher: number,
  decrypt: NodeJS.ReadWriteStream[],
  /** Ciphertext bytes to decrypt (the rest, a single PUT's tail record, is not). */
  cipherLength?: number,
): Promise<void> {
  const stages: NodeJS.ReadWriteStream[] = skipCipher > 0 ? [dropPrefix(skipCipher), ...decrypt] : [...decrypt];
  if (cipherLength !== undefined) stages.unshift(takeFirst(cipherLength));
  up.body.on('data', (c: Buffer) => (ctx.stats.upstreamBytesIn += c.length));
  stages[stages.length - 1]!.on('data', (c: Buffer) => (ctx.stats.bytesOut += c.length));
  try {
    await pipeline(up.body, ...(stages as [NodeJS.ReadWriteStream]), ctx.res);
  } catch (e) {
    ctx.res.destroy();
    throw e;
  }
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
  await stream(ctx, up, 0, [new PassThrough()]);
}
