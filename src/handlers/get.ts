/**
 * GetObject and HeadObject. Encrypted objects are read through objects/read.ts (one upstream request in the
 * common case) and answered with plaintext Content-Length/Content-Range; unencrypted objects stream through
 * untouched. What is S3's here: which part or range, checksum mode, and the answer's headers.
 */
import { finished } from 'node:stream/promises';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { clientResponseHeaders, ENVELOPE_META } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { partNumberOf } from '../s3/parts.ts';
import { contentRange, parseRange, resolveRange, type ResolvedRange } from '../s3/range.ts';
import { multipartChecksumOf } from '../sse-c/sealed-checksum.ts';
import { parseCustomerKey, ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { ClientGone, relayUpstreamError, upstreamRequest, type ObjectContext } from '../context.ts';
import { chain, readWhole } from '../objects/chain.ts';
import { storedChecksum } from '../objects/checksum.ts';
import { isManaged } from '../objects/keys.ts';
import { openRead } from '../objects/read.ts';
import type { StoredHeaders } from '../objects/stored.ts';

/** Request headers a read forwards: conditionals and a few S3 request options. */
const READ_HEADERS = [
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'x-amz-expected-bucket-owner',
  'x-amz-request-payer',
];

function readHeaders(ctx: ObjectContext, extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of READ_HEADERS) {
    const v = ctx.req.headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return { ...out, ...extra };
}

function checksumMode(ctx: ObjectContext): boolean {
  return String(ctx.req.headers['x-amz-checksum-mode'] ?? '').toUpperCase() === 'ENABLED';
}

function invalidPartNumber(): S3Error {
  return new S3Error('InvalidPartNumber', 'The requested partnumber is not satisfiable', { status: 416 });
}

export async function getObject(ctx: ObjectContext): Promise<void> {
  const isHead = ctx.req.method === 'HEAD';
  const customerKey = parseCustomerKey(ctx.req.headers, 'read');
  // No key: a plain object streams through; an SSE-S3/KMS one is read below with the KMS's key.
  if (!customerKey && (await readUnencrypted(ctx, isHead)) !== 'managed') return;
  const partNumber = partNumberOf(ctx.s3.query, 'optional');
  // S3 ignores Range when partNumber is given... and refuses both together; the part decides here.
  const range = partNumber === undefined ? parseRange(ctx.req.headers.range) : undefined;
  const opened = await openRead(ctx, {
    name: { bucket: ctx.s3.bucket, key: ctx.s3.key, versionId: queryGet(ctx.s3.query, 'versionId') },
    // `partNumber` is the proxy's to answer (the upstream would count ciphertext parts, or ignore it as RGW 16 does).
    query: upstreamQuery(ctx.s3.query, ['partNumber']),
    headers: readHeaders(ctx),
    customerKey,
    method: isHead ? 'HEAD' : 'GET',
    range,
    parts: partNumber !== undefined,
  });
  if ('relay' in opened) return relayUpstreamError(ctx, opened.relay);
  await using read = opened;
  const { stored, layout, plainSize, key } = read;
  const headers: Record<string, string> = {};
  if (range === undefined && partNumber === undefined && checksumMode(ctx)) {
    // Whole-object reads only, as S3: a checksum of the whole object on a part would fail the client's check.
    const checksum = await storedChecksum(ctx, stored, read.opened.dataKey, layout);
    if (checksum) {
      headers[`x-amz-checksum-${checksum.algorithm}`] = checksum.value;
      headers['x-amz-checksum-type'] = checksum.type;
    }
  }
  let selected: ResolvedRange | undefined = range ? resolveRange(range, plainSize) : undefined;
  if (partNumber !== undefined) {
    // S3 numbers the parts of the completed object 1..PartsCount; a single PUT is one part.
    const parts = layout.parts ?? [{ plainStart: 0, plainSize }];
    const part = parts[partNumber - 1];
    if (!part || part.plainSize === 0) throw invalidPartNumber();
    if (layout.parts) headers['x-amz-mp-parts-count'] = String(parts.length);
    const sum = 'checksum' in part ? part.checksum : undefined;
    if (sum && checksumMode(ctx) && multipartChecksumOf(stored.headers)?.type === 'COMPOSITE') {
      // A part read returns that part's checksum, as S3 does for composite uploads.
      headers[`x-amz-checksum-${sum.algorithm}`] = sum.digest.toString('base64');
      headers['x-amz-checksum-type'] = 'COMPOSITE';
    }
    selected = { start: part.plainStart, end: part.plainStart + part.plainSize - 1 };
  }
  if (selected) {
    headers['content-range'] = contentRange(selected, plainSize);
    headers['content-length'] = String(selected.end - selected.start + 1);
  } else headers['content-length'] = String(plainSize);
  const status = selected ? 206 : 200;

  if (isHead) {
    ctx.res.writeHead(status, answerHeaders(ctx, key, stored.headers, headers));
    ctx.res.end();
    return;
  }
  const body = await read.body(selected);
  if ('relay' in body) return relayUpstreamError(ctx, body.relay);
  const length = Number(headers['content-length']);
  if (length <= WHOLE_ANSWER) {
    // A small answer is verified whole, then sent with its status line in one write: any failure is S3's
    // error answer, and no stream chain is set up for a few kilobytes.
    return sendWhole(ctx, body.stream, length, status, answerHeaders(ctx, key, body.headers, headers));
  }
  // The status line waits for the first verified plaintext: an object that fails its check at once (a
  // tampered first chunk) is S3's error answer, not a connection cut before any status.
  const first = await firstPiece(body.stream);
  ctx.res.writeHead(status, answerHeaders(ctx, key, body.headers, headers));
  if (first) {
    ctx.stats.bytesOut += first.length;
    ctx.res.write(first);
  }
  await send(ctx, body.stream);
}

/** Answers up to this size (one chunk at the default chunk size) are sent in one piece. */
const WHOLE_ANSWER = 64 * 1024;

/** A body of `length` bytes read whole, then sent with its status line; settles when written (or the client left). */
async function sendWhole(ctx: ObjectContext, stream: Readable, length: number, status: number, headers: OutgoingHttpHeaders): Promise<void> {
  const whole = await readWhole(stream, length);
  ctx.res.writeHead(status, headers);
  ctx.stats.bytesOut += whole.length;
  ctx.res.end(whole);
  try {
    await finished(ctx.res);
  } catch (e) {
    throw new ClientGone('the client closed the connection during the answer', { cause: e });
  }
}

/** The stream's first piece (null if it ends empty); rejects with its error. Leaves the rest unread. */
function firstPiece(stream: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const done = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onReadable = () => {
      const piece = stream.read() as Buffer | null;
      if (piece === null) return;
      done();
      resolve(piece);
    };
    const onEnd = () => {
      done();
      resolve(null);
    };
    const onError = (e: unknown) => {
      done();
      reject(e);
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

/** The client's answer headers: the upstream's (plaintext-describing ones dropped), SSE-C echo, ours. */
function answerHeaders(ctx: ObjectContext, key: CustomerKey, upstream: StoredHeaders, ours: Record<string, string>) {
  return {
    ...clientResponseHeaders(upstream, { encrypted: true }),
    ...ssecEchoHeaders(key, false),
    'accept-ranges': 'bytes',
    'x-amz-request-id': ctx.requestId,
    ...ours,
  };
}

/** A body to the client, counted. After headers are sent an error can only cut the connection. */
async function send(ctx: ObjectContext, body: Readable): Promise<void> {
  body.on('data', (c: Buffer) => (ctx.stats.bytesOut += c.length));
  try {
    await new Promise<void>((resolve, reject) => chain(body, [ctx.res], (e) => (e ? reject(e) : resolve())));
  } catch (e) {
    // The response closed under the chain (and no stage failed first): the client left.
    const left = (e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' && ctx.res.destroyed && !body.errored;
    ctx.res.destroy();
    throw left ? new ClientGone('the client closed the connection during the answer', { cause: e }) : e;
  }
}

/**
 * No SSE-C headers: an unencrypted object streams through; an SSE-C one is S3's 400; an SSE-S3/KMS one is left
 * to the encrypted read ('managed': nothing was sent, the upstream answer released).
 */
async function readUnencrypted(ctx: ObjectContext, isHead: boolean): Promise<void | 'managed'> {
  // The parts of an unencrypted object are the store's, and stores get them wrong (RGW 16 sends the whole
  // object for every N, Swift answers 405): it is answered as one part, so no N > 1 gets another part's bytes.
  const partNumber = partNumberOf(ctx.s3.query, 'optional');
  const range = partNumber === undefined ? ctx.req.headers.range : undefined;
  const extra: Record<string, string> = typeof range === 'string' ? { range } : {};
  const mode = ctx.req.headers['x-amz-checksum-mode'];
  if (typeof mode === 'string' && partNumber === undefined) extra['x-amz-checksum-mode'] = mode;
  await using up = await upstreamRequest(ctx, {
    method: isHead ? 'HEAD' : 'GET',
    path: objectPath(ctx.s3.bucket, ctx.s3.key),
    query: upstreamQuery(ctx.s3.query, ['partNumber']),
    headers: readHeaders(ctx, extra),
  });
  if ((up.statusCode === 200 || up.statusCode === 206) && isManaged(up)) return 'managed';
  if (up.headers[ENVELOPE_META] !== undefined) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
  if (up.statusCode !== 200 && up.statusCode !== 206) return relayUpstreamError(ctx, up);
  const headers = clientResponseHeaders(up.headers, { encrypted: false });
  headers['x-amz-request-id'] = ctx.requestId;
  let status = up.statusCode;
  if (partNumber !== undefined) {
    const size = Number(up.headers['content-length']);
    if (partNumber !== 1 || !(size > 0)) throw invalidPartNumber();
    headers['content-range'] = contentRange({ start: 0, end: size - 1 }, size);
    status = 206;
  }
  up.body.on('data', (c: Buffer) => (ctx.stats.upstreamBytesIn += c.length));
  const length = Number(up.headers['content-length']);
  if (!isHead && length <= WHOLE_ANSWER) return sendWhole(ctx, up.body, length, status, headers);
  ctx.res.writeHead(status, headers);
  if (isHead) {
    ctx.res.end();
    return;
  }
  await send(ctx, up.body);
}
