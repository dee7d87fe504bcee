/**
 * PutObject with SSE-C: verify the plaintext while encrypting it on its way upstream. Any failure (bad digest,
 * short body, client gone) destroys the upstream request before the final chunk is sent, so the store never
 * completes a partial object and the previous version stays.
 */
import { pipeline } from 'node:stream';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { encryptedSize } from '../format/layout.ts';
import { createEncryptStream } from '../format/stream.ts';
import { ENVELOPE_META, forwardableRequestHeaders, PLAINTEXT_DESCRIBING } from '../s3/headers.ts';
import { objectPath, upstreamQuery } from '../s3/operation.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { sealTail, TAIL_SIZE } from '../format/tail.ts';
import { CHECKSUM_META, sealChecksum, tailMeta } from '../sse-c/sealed-checksum.ts';
import { checksumOfHeader, createChecksumCompute, declaredChecksum, type ChecksumName } from '../sigv4/checksums.ts';
import { ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { dump } from '../upstream.ts';
import { acceptBody, holdBack, plainBody } from './body.ts';
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

/** Passes bytes through and adds `last()` when the stream ends (after every earlier stage ended cleanly). */
function appendAtEnd(last: () => Buffer): Transform {
  return new Transform({
    transform: (chunk: Buffer, _enc, cb: TransformCallback) => cb(null, chunk),
    flush(cb: TransformCallback) {
      try {
        cb(null, last());
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}

export async function putObject(ctx: RequestContext, customerKey: CustomerKey): Promise<void> {
  const envelope = sealEnvelope({
    customerKey: customerKey.key,
    bucket: ctx.s3.bucket!,
    key: ctx.s3.key!,
    chunkSizeLog2: ctx.config.chunkSizeLog2,
  });
  const headers = encryptedWriteHeaders(ctx);
  headers[ENVELOPE_META] = envelope.value;
  // The client's checksum (verified over the body on its way) is kept sealed for GET/HEAD to return: in the
  // metadata when known before the body, else (a trailer) in a tail record after the last chunk.
  const declared = declaredChecksum(ctx.req.headers, ctx.s3.query);
  let tail = false;
  if (declared?.value !== undefined) headers[CHECKSUM_META] = sealChecksum(envelope.dataKey, declared.algorithm, declared.value);
  else if (declared) {
    headers[CHECKSUM_META] = tailMeta(declared.algorithm);
    tail = true;
  }
  try {
    await uploadEncrypted(ctx, customerKey, {
      dataKey: envelope.dataKey,
      chunkSize: envelope.chunkSize,
      partNumber: 0,
      headers,
      query: upstreamQuery(ctx.s3.query),
      tail,
    });
  } finally {
    envelope.dataKey.fill(0);
  }
}

export interface EncryptedUpload {
  dataKey: Buffer;
  chunkSize: number;
  /** 0 for a single PUT, the S3 part number for UploadPart. */
  partNumber: number;
  /** Upstream headers (content-length is added here). */
  headers: Record<string, string>;
  query: Array<[string, string]>;
  /** End the stream with a tail record (FORMAT.md §5.6). */
  tail?: boolean;
  /** The upload's declared checksum algorithm: computed when the client does not send it. */
  compute?: ChecksumName | undefined;
  /** The ETag to answer with, from the upstream's and the verified checksums (see sse-c/part-etag.ts). */
  etag?: (upstreamEtag: string, checksums: Record<string, string>) => string;
}

/**
 * The stages that turn verified plaintext into what is stored for one stream: the upload's checksum computed
 * (when it declared one), the encryptor, and the tail record with the stream's size and checksum (the one the
 * client gave, verified, or the computed one). The record is made at the end, once every earlier check passed;
 * it keeps its own copy of the data key, wiped once used.
 */
export function sealingStages(o: {
  dataKey: Buffer;
  chunkSize: number;
  partNumber: number;
  plainSize: number;
  tail?: boolean | undefined;
  compute?: ChecksumName | undefined;
  /** The client's verified checksums (complete once the body has ended). */
  given: () => Record<string, string>;
}): { stages: Transform[]; checksums: () => Record<string, string>; cipherSize: number } {
  const computed: Record<string, string> = {};
  const checksums = () => ({ ...computed, ...o.given() });
  const stages: Transform[] = [];
  const alg = o.compute;
  if (alg) stages.push(createChecksumCompute(alg, o.given, (v) => (computed[`x-amz-checksum-${alg}`] = v)));
  stages.push(createEncryptStream({ dataKey: o.dataKey, chunkSize: o.chunkSize, partNumber: o.partNumber }));
  if (o.tail) {
    const key = Buffer.from(o.dataKey);
    stages.push(
      appendAtEnd(() => {
        try {
          const [name, value] = Object.entries(checksums())[0] ?? [];
          const algorithm = name ? checksumOfHeader(name) : undefined;
          const digest = algorithm && value ? Buffer.from(value, 'base64') : undefined;
          return sealTail(key, { partNumber: o.partNumber, plainSize: o.plainSize, algorithm, digest });
        } finally {
          key.fill(0);
        }
      }),
    );
  }
  return { stages, checksums, cipherSize: encryptedSize(o.plainSize, o.chunkSize) + (o.tail ? TAIL_SIZE : 0) };
}

/** Streams the verified plaintext body through the encryptor to an upstream PUT, and answers as S3. */
export async function uploadEncrypted(ctx: RequestContext, customerKey: CustomerKey, u: EncryptedUpload): Promise<void> {
  return upload(ctx, {
    headers: u.headers,
    query: u.query,
    seal: { dataKey: u.dataKey, chunkSize: u.chunkSize, partNumber: u.partNumber, tail: u.tail, compute: u.compute },
    ...(u.etag ? { etag: u.etag } : {}),
    echo: ssecEchoHeaders(customerKey),
    object: u.partNumber === 0 ? 'encrypted' : undefined,
    chunkSize: u.chunkSize,
  });
}

/**
 * An unencrypted upload whose body the upstream cannot take as it is (aws-chunked: RGW refuses trailers,
 * other stores store the framing): decoded and checked here, forwarded as a plain body.
 */
export async function uploadDecoded(ctx: RequestContext, query: Array<[string, string]>): Promise<void> {
  const isPart = query.some(([k]) => k === 'uploadId');
  return upload(ctx, {
    headers: encryptedWriteHeaders(ctx),
    query,
    echo: {},
    object: isPart ? undefined : 'plain',
  });
}

async function upload(
  ctx: RequestContext,
  u: {
    headers: Record<string, string>;
    query: Array<[string, string]>;
    /** Encrypt (see sealingStages); without it the body is forwarded as it is, its last bytes held back. */
    seal?: Omit<Parameters<typeof sealingStages>[0], 'plainSize' | 'given'>;
    etag?: (upstreamEtag: string, checksums: Record<string, string>) => string;
    echo: Record<string, string>;
    /** Whole objects (not parts) are remembered for listings. */
    object?: 'encrypted' | 'plain';
    chunkSize?: number;
  },
): Promise<void> {
  const { req, res, s3 } = ctx;
  const body = plainBody(req, ctx.auth);
  // Either way the last stage keeps the final bytes until every check of the body has passed.
  const sealed = u.seal && sealingStages({ ...u.seal, plainSize: body.length, given: body.checksums });
  const checksums = sealed ? sealed.checksums : body.checksums;
  const headers = { ...u.headers, 'content-length': String(sealed ? sealed.cipherSize : body.length) };

  acceptBody(req, res);
  let bodyError: unknown;
  const stages = [...body.stages, ...(sealed ? sealed.stages : [holdBack()])];
  const source = (pipeline as (...s: unknown[]) => Readable)(req, ...stages, (err: unknown) => {
    if (err) bodyError = err;
  });
  req.on('data', (c: Buffer) => (ctx.stats.bytesIn += c.length));

  let up;
  ctx.stats.upstreamRequests++;
  try {
    up = await ctx.upstream.request({
      identity: ctx.identity,
      method: 'PUT',
      path: objectPath(s3.bucket!, s3.key!),
      query: u.query,
      headers,
      body: source,
    });
  } catch (e) {
    // The body's own failure (BadDigest, IncompleteBody...) is the real cause of the aborted request.
    throw bodyError ?? e;
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
  // S3 answers an upload with the checksums it verified.
  const out: Record<string, string> = { ...u.echo, ...checksums(), 'x-amz-request-id': ctx.requestId };
  const etag = up.headers['etag'];
  if (typeof etag === 'string') out['etag'] = u.etag ? u.etag(etag, checksums()) : etag;
  if (u.object && typeof etag === 'string') {
    ctx.objects.set(s3.bucket!, s3.key!, etag, { encrypted: u.object === 'encrypted', size: body.length, ...(u.chunkSize ? { chunkSize: u.chunkSize } : {}) });
  }
  const version = up.headers['x-amz-version-id'];
  if (typeof version === 'string') out['x-amz-version-id'] = version;
  out['content-length'] = '0';
  res.writeHead(200, out);
  res.end();
}
