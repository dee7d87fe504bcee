/**
 * PutObject: with SSE-C the plaintext is verified while it is encrypted on its way upstream; without, a plain
 * body goes through as it is, and an aws-chunked one is decoded and checked here (RGW refuses trailers, other
 * stores would store the framing).
 */
import { ENVELOPE_META } from '../s3/headers.ts';
import { encryptedEtag } from '../s3/etag.ts';
import { upstreamQuery } from '../s3/operation.ts';
import { declaredChecksum } from '../s3/checksums.ts';
import { ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { scoped } from '../sse-c/data-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { CHECKSUM_META, sealChecksum, tailMeta } from '../sse-c/sealed-checksum.ts';
import { answerWrite, relayUpstreamError, type ObjectContext } from '../context.ts';
import { writeKeyOf } from '../objects/keys.ts';
import { encryptedOnly, remember } from '../objects/layout.ts';
import { encryptedWriteHeaders, writeRequestBody } from '../objects/write.ts';

export async function putObject(ctx: ObjectContext): Promise<void> {
  // The client's SSE-C key, or an SSE-S3/KMS key from the KMS (asked for, or the bucket's default).
  const written = await writeKeyOf(ctx, ctx.req.headers, ctx.s3.bucket, ctx.s3.key);
  if (written) return putEncrypted(ctx, written.customerKey, written.meta);
  if (ctx.payloadHash.startsWith('STREAMING-')) {
    const { up, plainSize, checksums } = await writeRequestBody(ctx, { headers: encryptedWriteHeaders(ctx.req.headers), query: upstreamQuery(ctx.s3.query) });
    if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
    learnWritten(ctx, up.headers['etag'], { encrypted: false, size: plainSize });
    return answerWrite(ctx, up, checksums());
  }
  // A plain object written through this replica needs no HEAD when a listing shows it.
  const size = Number(ctx.req.headers['content-length']);
  return ctx.passthrough(ctx, {
    onAnswer: (status, h) => {
      if (status === 200 && Number.isSafeInteger(size)) learnWritten(ctx, h['etag'], { encrypted: false, size });
    },
  });
}

function learnWritten(ctx: ObjectContext, etag: string | string[] | undefined, info: { encrypted: boolean; size: number; chunkSize?: number }) {
  if (typeof etag === 'string') remember(ctx, { bucket: ctx.s3.bucket, key: ctx.s3.key, etag }, info);
}

async function putEncrypted(ctx: ObjectContext, customerKey: CustomerKey, meta: Record<string, string>): Promise<void> {
  const envelope = sealEnvelope({
    customerKey: customerKey.key,
    bucket: ctx.s3.bucket,
    key: ctx.s3.key,
    chunkSizeLog2: ctx.config.chunkSizeLog2,
  });
  using dataKey = scoped(envelope.dataKey);
  // A KMS's external key is the proxy's own copy: wiped once the envelope is sealed.
  using _externalKey = customerKey.managed ? scoped(customerKey.key) : undefined;
  const headers = encryptedWriteHeaders(ctx.req.headers);
  headers[ENVELOPE_META] = envelope.value;
  Object.assign(headers, meta);
  // The client's checksum (verified over the body on its way) is kept sealed for GET/HEAD to return: in the
  // metadata when known before the body, else (a trailer) in a tail record after the last chunk — except in
  // buckets declared encrypted-only, whose listings take sizes from stored sizes: a single PUT there has no
  // record (80 bytes the listed size cannot tell apart), and a trailer checksum is verified but not kept.
  const declared = declaredChecksum(ctx.req.headers, ctx.s3.query);
  let tail = false;
  if (declared?.value !== undefined) headers[CHECKSUM_META] = sealChecksum(dataKey, declared.algorithm, declared.value);
  else if (declared && !encryptedOnly(ctx.config, ctx.s3.bucket)) {
    headers[CHECKSUM_META] = tailMeta(declared.algorithm);
    tail = true;
  }
  const seal = { dataKey, chunkSize: envelope.chunkSize, partNumber: 0, tail };
  const { up, plainSize, checksums } = await writeRequestBody(ctx, { headers, query: upstreamQuery(ctx.s3.query), seal });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  learnWritten(ctx, up.headers['etag'], { encrypted: true, size: plainSize, chunkSize: envelope.chunkSize });
  return answerWrite(ctx, up, { ...ssecEchoHeaders(customerKey), ...checksums() }, encryptedEtag);
}
