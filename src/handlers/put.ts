/**
 * PutObject with SSE-C: verify the plaintext while encrypting it on its way upstream. Any failure (bad digest,
 * short body, client gone) destroys the upstream request before the final chunk is sent, so the store never
 * completes a partial object and the previous version stays.
 */
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { encryptedSize } from '../format/layout.ts';
import { createEncryptStream } from '../format/stream.ts';
import { ENVELOPE_META, forwardableRequestHeaders, PLAINTEXT_DESCRIBING } from '../s3/headers.ts';
import { objectPath, upstreamQuery } from '../s3/operation.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { dump } from '../upstream.ts';
import { acceptBody, plainBody } from './body.ts';
import { relayUpstreamError, type RequestContext } from './context.ts';

/** Headers for an upstream write of ciphertext: the client's, minus what describes the plaintext. */
export function encryptedWriteHeaders(ctx: RequestContext): Record<string, string> {
  const headers = forwardableRequestHeaders(ctx.req.headers);
  for (const h of PLAINTEXT_DESCRIBING) delete headers[h];
  for (const h of Object.keys(headers)) if (h.startsWith('x-amz-checksum-')) delete headers[h];
  const ce = headers['content-encoding'];
  if (ce !== undefined) {
    // aws-chunked is transfer framing, never the object's encoding.
    const rest = ce
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s && s.toLowerCase() !== 'aws-chunked');
    if (rest.length) headers['content-encoding'] = rest.join(', ');
    else delete headers['content-encoding'];
  }
  return headers;
}

export async function putObject(ctx: RequestContext, customerKey: CustomerKey): Promise<void> {
  const { req, res, s3 } = ctx;
  const body = plainBody(req, ctx.payloadHash);
  const bucket = s3.bucket!;
  const key = s3.key!;
  const envelope = sealEnvelope({
    customerKey: customerKey.key,
    bucket,
    key,
    chunkSizeLog2: ctx.config.chunkSizeLog2,
  });
  const headers = encryptedWriteHeaders(ctx);
  headers[ENVELOPE_META] = envelope.value;
  headers['content-length'] = String(encryptedSize(body.length, envelope.chunkSize));

  acceptBody(req, res);
  let bodyError: unknown;
  const encrypt = createEncryptStream({ dataKey: envelope.dataKey, chunkSize: envelope.chunkSize, partNumber: 0 });
  const source = (pipeline as (...s: unknown[]) => Readable)(req, ...body.stages, encrypt, (err: unknown) => {
    if (err) bodyError = err;
  });
  req.on('data', (c: Buffer) => (ctx.stats.bytesIn += c.length));

  let up;
  ctx.stats.upstreamRequests++;
  try {
    up = await ctx.upstream.request({
      identity: ctx.identity,
      method: 'PUT',
      path: objectPath(bucket, key),
      query: upstreamQuery(s3.query),
      headers,
      body: source,
    });
  } catch (e) {
    // The body's own failure (BadDigest, IncompleteBody...) is the real cause of the aborted request.
    throw bodyError ?? e;
  } finally {
    envelope.dataKey.fill(0);
  }
  ctx.stats.upstreamStatus = up.statusCode;
  if (bodyError) {
    await dump(up);
    throw bodyError;
  }
  if (up.statusCode !== 200) {
    // The upstream refused before reading everything (e.g. NoSuchBucket): stop reading the client too.
    source.destroy();
    if (!req.complete) res.shouldKeepAlive = false;
    return relayUpstreamError(ctx, up);
  }
  await dump(up);
  const out: Record<string, string> = { ...ssecEchoHeaders(customerKey), 'x-amz-request-id': ctx.requestId };
  const etag = up.headers['etag'];
  if (typeof etag === 'string') out['etag'] = etag;
  const version = up.headers['x-amz-version-id'];
  if (typeof version === 'string') out['x-amz-version-id'] = version;
  out['content-length'] = '0';
  res.writeHead(200, out);
  res.end();
}
