/**
 * PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy. The store keeps the policy (no state in the proxy): the
 * statements it can evaluate as the client wrote them, and — when some test the SSE-C key, which only the
 * proxy sees — the client's whole document in an inert carrier statement (policy/document.ts), so that
 * GetBucketPolicy answers the client's bytes and every replica can enforce the SSE-C statements.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { S3Error } from '../s3/errors.ts';
import { objectPath } from '../s3/operation.ts';
import { plainBody } from '../sigv4/body.ts';
import { readStoredPolicy, splitPolicy } from '../policy/document.ts';
import { policyCache } from '../policy/stored.ts';
import { readText } from '../upstream.ts';
import { acceptBody, relayUpstreamError, upstreamRequest, type BucketContext } from '../context.ts';

/** A document is at most 20 KB without whitespace; with it, a body this large is still refused as too large. */
const MAX_BODY = 256 * 1024;
const MAX_STORED = 1024 * 1024;
/** Request headers of PutBucketPolicy the store should see. */
const FORWARDED = ['x-amz-confirm-remove-self-bucket-access', 'x-amz-expected-bucket-owner'];

export async function putBucketPolicy(ctx: BucketContext): Promise<void> {
  const { bucket } = ctx.s3;
  const { stored } = splitPolicy(await readVerifiedBody(ctx), bucket);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-amz-content-sha256': createHash('sha256').update(stored).digest('hex'),
  };
  for (const name of FORWARDED) {
    const v = ctx.req.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  await using up = await upstreamRequest(ctx, { method: 'PUT', path: objectPath(bucket), query: [['policy', '']], headers, body: stored });
  if (up.statusCode >= 300) return relayUpstreamError(ctx, up);
  policyCache(ctx.upstream).forget(bucket);
  ctx.res.writeHead(204, { 'x-amz-request-id': ctx.requestId });
  ctx.res.end();
}

export async function getBucketPolicy(ctx: BucketContext): Promise<void> {
  await using up = await upstreamRequest(ctx, { method: 'GET', path: objectPath(ctx.s3.bucket), query: [['policy', '']] });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const text = await readText(up, MAX_STORED);
  let original: string;
  try {
    ({ original } = readStoredPolicy(text));
  } catch (e) {
    throw new S3Error('InternalError', "The bucket policy's SSE-C part was edited in the store and is unreadable; put the policy again.", { cause: e });
  }
  const body = Buffer.from(original, 'utf8');
  ctx.stats.bytesOut += body.length;
  ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length), 'x-amz-request-id': ctx.requestId });
  ctx.res.end(body);
}

export async function deleteBucketPolicy(ctx: BucketContext): Promise<void> {
  const { bucket } = ctx.s3;
  return ctx.passthrough(ctx, { onAnswer: (status) => status < 300 && policyCache(ctx.upstream).forget(bucket) });
}

/** The body, through the signed-body checks (aws-chunked, signed SHA-256, Content-MD5, checksums). */
async function readVerifiedBody(ctx: BucketContext): Promise<string> {
  const body = plainBody(ctx.req, ctx.payloadHash, ctx.auth);
  if (body.length > MAX_BODY) throw new S3Error('MalformedPolicy', 'Policy exceeds the maximum allowed document size.');
  const chunks: Buffer[] = [];
  acceptBody(ctx.req, ctx.res);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  await pipeline([ctx.req, ...body.stages, sink]);
  const text = Buffer.concat(chunks);
  ctx.stats.bytesIn += text.length;
  return text.toString('utf8');
}
