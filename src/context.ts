/**
 * What every handler receives, the one counted door to the upstream, and the few response helpers handlers
 * share. Handlers and objects/ reach the store only through `upstreamRequest` (lint forbids the rest).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from './config.ts';
import type { ObjectInfoCache } from './objects/info-cache.ts';
import type { VerifiedRequest } from './sigv4/verify.ts';
import type { BucketRequest, ObjectRequest, S3Request } from './s3/operation.ts';
import type { Upstream, UpstreamIdentity, UpstreamResponse } from './upstream.ts';
import { dump, owned, readText, type OwnedResponse, type UpstreamRequest } from './upstream.ts';
import { etagAsGiven } from './s3/etag.ts';
import { clientResponseHeaders } from './s3/headers.ts';
import { parseS3Error, replaceElements } from './s3/xml.ts';

export interface RequestContext<R extends S3Request = S3Request> {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly s3: R;
  /** The upstream identity this client's credential maps to; none for an anonymous client (sent unsigned). */
  readonly identity: UpstreamIdentity | undefined;
  /** The payload mode the client signed (`x-amz-content-sha256` or UNSIGNED-PAYLOAD). */
  readonly payloadHash: string;
  /** The verified signature (signing key and seed signature for aws-chunked bodies); none when anonymous. */
  readonly auth: VerifiedRequest | undefined;
  readonly upstream: Upstream;
  readonly config: Config;
  readonly requestId: string;
  /** What this replica knows about stored objects (encrypted or not, plaintext size), by ETag. */
  readonly objects: ObjectInfoCache;
  /** The buckets this client's credential is limited to (glob patterns), if it is. */
  readonly allowedBuckets?: readonly string[];
  /** Forwards the request as it is (re-signed); `query` replaces the client's. */
  readonly passthrough: (
    ctx: RequestContext,
    opts?: {
      query?: Array<[string, string]>;
      dropHeaders?: string[];
      onAnswer?: (status: number, headers: Record<string, string | string[] | undefined>) => void;
    },
  ) => Promise<void>;
  /** Bytes counted for the access log, and the S3 error code of a store's error answer relayed to the client. */
  stats: { bytesIn: number; bytesOut: number; upstreamRequests: number; upstreamBytesIn: number; upstreamStatus?: number; code?: string };
}

/**
 * The client went away mid-request (its connection closed before the answer): not a failure of the proxy or
 * the store, logged as such. Thrown where the proxy can tell it apart from its own cuts.
 */
export class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

/** Node's error for a request whose client closed the connection before its body ended. */
export function isClientAbort(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException | undefined;
  return err?.code === 'ECONNRESET' && err.message === 'aborted';
}

/** A request on an object (bucket and key known). */
export type ObjectContext = RequestContext<ObjectRequest>;
/** A request on a bucket. */
export type BucketContext = RequestContext<BucketRequest>;

/**
 * A request to the upstream as this client's upstream identity, counted for the access log. The answer is
 * released (its unread body dumped) when the caller's `await using` scope ends.
 */
export async function upstreamRequest(ctx: RequestContext, r: Omit<UpstreamRequest, 'identity'>): Promise<OwnedResponse> {
  ctx.stats.upstreamRequests++;
  const origin = ctx.req.headers.origin;
  // A browser's Origin goes with every request made for it, so the store's CORS rules answer it; their
  // Access-Control-* headers are the client's answer's, whatever the handler writes.
  const headers = typeof origin === 'string' ? { origin, ...r.headers } : r.headers;
  const up = await ctx.upstream.request({ identity: ctx.identity, ...r, ...(headers ? { headers } : {}) });
  ctx.stats.upstreamStatus = up.statusCode;
  // Only the answers about the request's own bucket speak for it (a copy's source bucket has its own rules).
  if (typeof origin === 'string' && !ctx.res.headersSent && r.path.split('/')[1] === ctx.s3.bucket) {
    for (const [name, value] of Object.entries(up.headers)) {
      if ((name.startsWith('access-control-') || name === 'vary') && value !== undefined) ctx.res.setHeader(name, value);
    }
  }
  return owned(up);
}

const UPLOAD_OPS = new Set(['UploadPart', 'UploadPartCopy', 'CompleteMultipartUpload', 'ListParts']);
const NO_SUCH_UPLOAD =
  'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.';

/**
 * Relays an upstream error answer (status and S3 XML body) unchanged, minus hop-by-hop and proxy metadata.
 * HEAD answers carry no body.
 */
export async function relayUpstreamError(ctx: RequestContext, up: UpstreamResponse): Promise<void> {
  const headers = clientResponseHeaders(up.headers, { encrypted: true });
  if (up.statusCode === 304 && typeof headers['etag'] === 'string') headers['etag'] = etagAsGiven(ctx.req.headers, headers['etag']);
  let body = ctx.req.method === 'HEAD' || up.statusCode === 304 ? '' : await readText(up);
  const code = parseS3Error(body).code;
  if (code !== undefined) ctx.stats.code = code;
  if (UPLOAD_OPS.has(ctx.s3.op) && code === 'NoSuchKey') {
    ctx.stats.code = 'NoSuchUpload';
    // RGW answers an unknown or finished upload id with NoSuchKey; S3 says NoSuchUpload.
    body = replaceElements(replaceElements(body, 'Code', () => 'NoSuchUpload'), 'Message', () => NO_SUCH_UPLOAD);
  }
  if (body === '') await dump(up);
  // One request id per answer: the header's (the proxy's, as in its log) also in the body.
  body = replaceElements(body, 'RequestId', () => ctx.requestId);
  headers['content-length'] = String(Buffer.byteLength(body));
  headers['x-amz-request-id'] = ctx.requestId;
  ctx.res.writeHead(up.statusCode, headers);
  ctx.res.end(body);
}

/** An S3 XML answer of the proxy's own. */
export function sendXml(ctx: RequestContext, status: number, xml: string | Buffer, extra: Record<string, string> = {}): void {
  const length = Buffer.byteLength(xml);
  ctx.stats.bytesOut += length;
  ctx.res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': String(length),
    'x-amz-request-id': ctx.requestId,
    ...extra,
  });
  ctx.res.end(xml);
}

/**
 * S3's answer to a write: 200 with the ETag (`etag` replaces the upstream's), the version id, the checksums
 * verified and `extra` (SSE-C echo).
 */
export function answerWrite(ctx: RequestContext, up: UpstreamResponse, extra: Record<string, string>, etag?: (upstream: string) => string): void {
  const out: Record<string, string> = { ...extra, 'x-amz-request-id': ctx.requestId };
  const upstreamEtag = up.headers['etag'];
  if (typeof upstreamEtag === 'string') out['etag'] = etag ? etag(upstreamEtag) : upstreamEtag;
  const version = up.headers['x-amz-version-id'];
  if (typeof version === 'string') out['x-amz-version-id'] = version;
  out['content-length'] = '0';
  ctx.res.writeHead(200, out);
  ctx.res.end();
}

/** Answers `Expect: 100-continue` once we are ready to read the body (after every header-level check). */
export function acceptBody(req: IncomingMessage, res: ServerResponse): void {
  const expect = req.headers.expect;
  if (typeof expect === 'string' && expect.toLowerCase() === '100-continue' && !res.headersSent) {
    res.writeContinue();
  }
}
