/**
 * Verifying a signed request body: the plaintext body of an upload, as a stream that fails (and so aborts the upstream request) when it is
 * short, too long, or does not match the client's signed hash or Content-MD5.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from '../s3/errors.ts';
import { createAwsChunkedDecoder, type StreamingMode } from './aws-chunked.ts';
import { checksumOfHeader, createChecksumCheck } from '../s3/checksums.ts';
import { createMd5Check, createSha256Check, parseContentMd5 } from './payload.ts';
import type { VerifiedRequest } from './verify.ts';

export interface PlainBody {
  /** The verified plaintext stages; pipe `req` through them. */
  readonly stages: Transform[];
  /** Plaintext length, known before the first byte. */
  readonly length: number;
  /** The x-amz-checksum-* values the client gave (headers, query, trailers once the body ended), all verified. */
  readonly checksums: () => Record<string, string>;
}

/** S3's single-PUT limit. */
export const MAX_SINGLE_PUT = 5 * 1024 ** 3;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * The stages that turn the request body into verified plaintext: aws-chunked decoding (with chunk and
 * trailer signatures), exact length, Content-MD5, the signed SHA-256 and any x-amz-checksum-* (header or
 * trailer). Each check fails at the latest at the end of the body, before a later stage can finish.
 */
export function plainBody(req: IncomingMessage, payloadHash: string, auth: VerifiedRequest | undefined): PlainBody {
  const stages: Transform[] = [];
  let length: number;
  const trailerValues = new Map<string, string>();
  if (payloadHash.startsWith('STREAMING-')) {
    const decoded = header(req, 'x-amz-decoded-content-length');
    if (decoded === undefined) {
      throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
    }
    if (!/^\d+$/.test(decoded)) throw new S3Error('InvalidArgument', 'x-amz-decoded-content-length must be a non-negative integer.');
    length = Number(decoded);
    // Chunk signatures chain from the request's own signature: an anonymous request has none to check.
    if (!auth && !payloadHash.startsWith('STREAMING-UNSIGNED')) throw new S3Error('AccessDenied', 'Access Denied');
    const declared = (header(req, 'x-amz-trailer') ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean);
    stages.push(
      createAwsChunkedDecoder({
        mode: payloadHash as StreamingMode,
        declaredTrailers: declared,
        signing: auth && { key: auth.signingKey, seedSignature: auth.signature, amzDate: auth.amzDate, scope: auth.scope },
        onTrailers: (t) => t.forEach((v, k) => trailerValues.set(k, v)),
      }),
    );
    for (const name of declared) {
      const alg = checksumOfHeader(name);
      if (!alg) throw new S3Error('InvalidArgument', 'The trailer header is not supported.', { extra: { ArgumentName: 'x-amz-trailer' } });
      stages.push(createChecksumCheck(alg, () => trailerValues.get(name)));
    }
  } else {
    const cl = header(req, 'content-length');
    if (cl === undefined) throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
    if (!/^\d+$/.test(cl)) throw new S3Error('InvalidArgument', 'Content-Length must be a non-negative integer.');
    length = Number(cl);
  }
  if (length > MAX_SINGLE_PUT) {
    throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
      extra: { ProposedSize: String(length), MaxSizeAllowed: String(MAX_SINGLE_PUT) },
    });
  }
  stages.push(exactLength(length));
  const md5 = header(req, 'content-md5');
  if (md5 !== undefined) stages.push(createMd5Check(parseContentMd5(md5)));
  if (/^[0-9a-f]{64}$/.test(payloadHash)) stages.push(createSha256Check(payloadHash));
  for (const [name, value] of Object.entries(req.headers)) {
    const alg = checksumOfHeader(name);
    if (alg && typeof value === 'string') stages.push(createChecksumCheck(alg, () => value));
  }
  // Presigned URLs carry the checksum in the query (the JS SDK presigns one by default); S3 checks it too.
  const qi = (req.url ?? '').indexOf('?');
  if (qi >= 0) {
    for (const [name, value] of new URLSearchParams((req.url ?? '').slice(qi + 1))) {
      const alg = checksumOfHeader(name);
      if (alg && req.headers[name.toLowerCase()] === undefined) stages.push(createChecksumCheck(alg, () => value));
    }
  }
  const checksums = () => {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) if (checksumOfHeader(name) && typeof value === 'string') out[name] = value;
    trailerValues.forEach((v, k) => {
      if (checksumOfHeader(k)) out[k] = v;
    });
    return out;
  };
  return { stages, length, checksums };
}

/** Fails with IncompleteBody when the body ends before `length` bytes (a client that went away). */
export function exactLength(length: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > length) return cb(new S3Error('IncompleteBody', 'The request body is longer than Content-Length.'));
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (seen !== length) {
        return cb(
          new S3Error('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.'),
        );
      }
      cb();
    },
  });
}
