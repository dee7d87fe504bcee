/**
 * What every handler receives, and the few response helpers they share.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.ts';
import type { ObjectInfoCache } from '../object-info.ts';
import type { VerifiedRequest } from '../sigv4/verify.ts';
import type { S3Request } from '../s3/operation.ts';
import type { Upstream, UpstreamIdentity, UpstreamResponse } from '../upstream.ts';
import { readText, type UpstreamRequest } from '../upstream.ts';
import { clientResponseHeaders } from '../s3/headers.ts';

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly s3: S3Request;
  /** The upstream identity this client's credential maps to. */
  readonly identity: UpstreamIdentity;
  /** The payload mode the client signed (`x-amz-content-sha256` or UNSIGNED-PAYLOAD). */
  readonly payloadHash: string;
  /** The verified signature (signing key and seed signature for aws-chunked bodies). */
  readonly auth: VerifiedRequest;
  readonly upstream: Upstream;
  readonly config: Config;
  readonly requestId: string;
  /** What this replica knows about stored objects (encrypted or not, plaintext size), by ETag. */
  readonly objects: ObjectInfoCache;
  /** Forwards the request as it is (re-signed); `query` replaces the client's. */
  readonly passthrough: (
    ctx: RequestContext,
    opts?: { query?: Array<[string, string]>; dropHeaders?: string[] },
  ) => Promise<void>;
  /** Bytes counted for the access log. */
  stats: { bytesIn: number; bytesOut: number; upstreamRequests: number; upstreamBytesIn: number; upstreamStatus?: number };
}

/** A request to the upstream as this client's upstream identity, counted for the access log. */
export async function upstreamRequest(ctx: RequestContext, r: Omit<UpstreamRequest, 'identity'>): Promise<UpstreamResponse> {
  ctx.stats.upstreamRequests++;
  const up = await ctx.upstream.request({ identity: ctx.identity, ...r });
  ctx.stats.upstreamStatus = up.statusCode;
  return up;
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
  let body = ctx.req.method === 'HEAD' || up.statusCode === 304 ? '' : await readText(up);
  if (UPLOAD_OPS.has(ctx.s3.op) && body.includes('<Code>NoSuchKey</Code>')) {
    // RGW answers an unknown or finished upload id with NoSuchKey; S3 says NoSuchUpload.
    body = body.replace('<Code>NoSuchKey</Code>', '<Code>NoSuchUpload</Code>').replace(/<Message>[^<]*<\/Message>/, `<Message>${NO_SUCH_UPLOAD}</Message>`);
  }
  if (body === '') await up.body.dump().catch(() => {});
  headers['content-length'] = String(Buffer.byteLength(body));
  headers['x-amz-request-id'] = ctx.requestId;
  ctx.res.writeHead(up.statusCode, headers);
  ctx.res.end(body);
}
