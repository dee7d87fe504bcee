/**
 * CopyObject and UploadPartCopy with SSE-C on either side.
 *
 * SSE-C → SSE-C (same key, another key, copy-to-self rotation): the plaintext does not change, so the
 * upstream copies the ciphertext itself and only the envelope is re-sealed for the new key and name — no body
 * byte passes through the proxy. Plain → SSE-C, SSE-C → plain and UploadPartCopy stream the source through the
 * proxy (decrypt, re-encrypt). A plain → plain copy goes to the upstream as it is, unless its source turns out
 * to be encrypted (an upstream copy would carry an envelope to a name it is not bound to).
 */
import { Readable } from 'node:stream';
import type { ObjectLayout } from '../format/parts.ts';
import { encryptedSize } from '../format/layout.ts';
import { parseCopySource } from '../s3/copy-source.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { ENVELOPE_META, RESERVED_META_PREFIX } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { partNumberOf } from '../s3/parts.ts';
import { parseRange, resolveRange, type ResolvedRange } from '../s3/range.ts';
import { parseTagging, removeElements, replaceElements, xmlEscape } from '../s3/xml.ts';
import { COPY_SSEC_PREFIX, hasSsecHeaders, parseCustomerKey, ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { scoped, wipe } from '../sse-c/data-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { encryptedPartEtag } from '../sse-c/part-etag.ts';
import { encryptedEtag } from '../s3/etag.ts';
import { multipartDataKey, parseUploadId, tagMatches } from '../sse-c/upload-id.ts';
import { bucketEncryptionOf } from '../sse-kms/bucket-encryption.ts';
import { readText, type UpstreamResponse } from '../upstream.ts';
import { relayUpstreamError, sendXml, upstreamRequest, type ObjectContext } from '../context.ts';
import { isManaged, readKeyOf, uploadKeyOf, writeKeyOf } from '../objects/keys.ts';
import { layoutOf } from '../objects/layout.ts';
import { openObject, requireKeyFor, type OpenedObject } from '../objects/open.ts';
import { readPlaintext } from '../objects/read.ts';
import { requestObject, storedObject, type StoredObject } from '../objects/stored.ts';
import { copyInParts, upstreamRefusal } from '../objects/copy-parts.ts';
import { resealedMeta } from '../objects/reseal.ts';
import { sealingStages, streamUpload } from '../objects/write.ts';

/** Object headers S3 copies with COPY and takes from the request with REPLACE. */
const OBJECT_HEADERS = ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'];

/** The copy source: the stored object the HEAD saw (the copy is pinned to its ETag). */
type Source = StoredObject;

async function headSource(ctx: ObjectContext, conditional: boolean): Promise<Source> {
  const header = ctx.req.headers['x-amz-copy-source'];
  if (typeof header !== 'string') throw new S3Error('InvalidArgument', 'x-amz-copy-source is required.');
  const src = parseCopySource(header);
  await using up = await requestObject(ctx, src, 'HEAD', conditional ? copySourceConditions(ctx) : {});
  if (up.statusCode !== 200) throw sourceError(up.statusCode, src.key);
  return storedObject(src, up.headers);
}

/** A failed HEAD or GET of the copy source, as S3 answers it (HEAD answers carry no error body). */
function sourceError(status: number, key: string): S3Error {
  if (status === 304 || status === 412) {
    return new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
  if (status === 404) return new S3Error('NoSuchKey', 'The specified key does not exist.', { extra: { Key: key } });
  if (status === 403) return new S3Error('AccessDenied', 'Access Denied');
  if (status === 405) return new S3Error('InvalidRequest', 'The source of a copy request may not specifically refer to a delete marker by version id.');
  return new S3Error('ServiceUnavailable', 'The upstream store could not read the copy source. Please retry.', { status: 503 });
}

/** The largest copy source S3 copies in one request. */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;

function refuseTooLarge(bytes: number): void {
  if (bytes > MAX_SINGLE_COPY) {
    throw new S3Error(
      'InvalidRequest',
      `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_SINGLE_COPY}`,
    );
  }
}

/** x-amz-copy-source-if-* as the plain conditionals of a read of the source. */
function copySourceConditions(ctx: ObjectContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of ['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since']) {
    const v = ctx.req.headers[`x-amz-copy-source-${c}`];
    if (typeof v === 'string') out[c] = v;
  }
  return out;
}

interface CopyKeys {
  readonly srcKey?: CustomerKey;
  readonly dstKey?: CustomerKey;
  /** The destination's KMS metadata entry (SSE-S3/KMS), else empty. */
  readonly meta: Record<string, string>;
}

/**
 * Both keys, checked as S3 checks them: the source's (the client's SSE-C key, or the KMS's for an SSE-S3/KMS
 * source) and the destination's (SSE-C, the SSE-S3/KMS asked for or the bucket's default: never inherited
 * from the source, as in S3). A KMS's keys are wiped when the returned scope ends.
 */
async function keysOf(ctx: ObjectContext, src: Source): Promise<CopyKeys & Disposable> {
  const srcKey = await readKeyOf(ctx, src, parseCustomerKey(ctx.req.headers, 'write', COPY_SSEC_PREFIX));
  const written = await writeKeyOf(ctx, ctx.req.headers, ctx.s3.bucket, ctx.s3.key);
  const dstKey = written?.customerKey;
  return {
    ...(srcKey ? { srcKey } : {}),
    ...(dstKey ? { dstKey } : {}),
    meta: written?.meta ?? {},
    [Symbol.dispose]: () => {
      if (srcKey?.managed) wipe(srcKey.key);
      if (dstKey?.managed) wipe(dstKey.key);
    },
  };
}

/** The copy names an encryption of its own (or its bucket gives one): the proxy writes the destination. */
function encryptsDestination(ctx: ObjectContext): boolean {
  return ctx.req.headers['x-amz-server-side-encryption'] !== undefined || bucketEncryptionOf(ctx.config.bucketEncryption, ctx.s3.bucket).kind !== 'none';
}

/** The destination's object headers and user metadata, per x-amz-metadata-directive. */
function destinationHeaders(ctx: ObjectContext, src: Source): Record<string, string> {
  const directive = String(ctx.req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw new S3Error('InvalidArgument', 'Unknown metadata directive.', { extra: { ArgumentName: 'x-amz-metadata-directive' } });
  }
  const from = directive === 'REPLACE' ? ctx.req.headers : src.headers;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    const n = name.toLowerCase();
    if (typeof value !== 'string' || n.startsWith(RESERVED_META_PREFIX)) continue;
    if (n.startsWith('x-amz-meta-') || OBJECT_HEADERS.includes(n)) out[n] = value;
  }
  // Request options that are not metadata apply either way.
  for (const n of ['x-amz-storage-class', 'x-amz-tagging', 'x-amz-tagging-directive', 'x-amz-acl', 'x-amz-website-redirect-location']) {
    const v = ctx.req.headers[n];
    if (typeof v === 'string') out[n] = v;
  }
  return out;
}

/**
 * x-amz-tagging-directive COPY (the default) keeps the source's tags. Where the proxy writes the destination
 * itself (a PUT, or a multipart upload of copied parts) it carries them over as x-amz-tagging.
 */
async function copyTags(ctx: ObjectContext, src: Source, headers: Record<string, string>): Promise<void> {
  const directive = String(ctx.req.headers['x-amz-tagging-directive'] ?? 'COPY').toUpperCase();
  delete headers['x-amz-tagging-directive'];
  if (directive === 'REPLACE') return; // x-amz-tagging from the request, already in headers
  delete headers['x-amz-tagging'];
  if (Number(src.headers['x-amz-tagging-count'] ?? 0) === 0) return;
  await using up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(src.bucket, src.key),
    query: [['tagging', ''], ...(src.versionId ? ([['versionId', src.versionId]] as Array<[string, string]>) : [])],
  });
  if (up.statusCode !== 200) throw await upstreamRefusal(up);
  const tags = parseTagging(await readText(up)).map((t) => `${encodeURIComponent(t.key)}=${encodeURIComponent(t.value)}`);
  if (tags.length) headers['x-amz-tagging'] = tags.join('&');
}

/** S3 refuses a copy onto itself that changes nothing (a key change is a change). */
function refuseNoopSelfCopy(ctx: ObjectContext, src: Source, keys: CopyKeys) {
  const same = src.bucket === ctx.s3.bucket && src.key === ctx.s3.key && src.versionId === undefined;
  if (!same) return;
  const directive = String(ctx.req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
  const changes =
    directive === 'REPLACE' ||
    ctx.req.headers['x-amz-storage-class'] !== undefined ||
    ctx.req.headers['x-amz-website-redirect-location'] !== undefined ||
    // Naming SSE-S3/KMS is a change (S3 re-encrypts; here: the key is re-wrapped under the current master key).
    ctx.req.headers['x-amz-server-side-encryption'] !== undefined ||
    (keys.srcKey?.keyMd5 ?? '') !== (keys.dstKey?.keyMd5 ?? '');
  if (!changes) {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
}

function copyResult(etag: string, lastModified: string, part = false, checksums: Record<string, string> = {}): string {
  const el = part ? 'CopyPartResult' : 'CopyObjectResult';
  let sums = '';
  for (const [header, value] of Object.entries(checksums)) {
    const name = `Checksum${header.slice('x-amz-checksum-'.length).toUpperCase()}`;
    sums += `<${name}>${xmlEscape(value)}</${name}>`;
  }
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<${el} xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>${xmlEscape(lastModified)}</LastModified>` +
    `<ETag>${xmlEscape(etag)}</ETag>${sums}</${el}>`
  );
}

/** The source version actually copied, as S3 reports it. */
function sourceVersion(src: Source): Record<string, string> {
  const v = src.headers['x-amz-version-id'];
  return typeof v === 'string' ? { 'x-amz-copy-source-version-id': v } : {};
}

/** The version the upstream wrote, as S3 reports it. */
function writtenVersion(up: Pick<UpstreamResponse, 'headers'>): Record<string, string> {
  const v = up.headers['x-amz-version-id'];
  return typeof v === 'string' ? { 'x-amz-version-id': v } : {};
}

function isoDate(header: string | string[] | undefined): string {
  const d = typeof header === 'string' ? new Date(header) : new Date();
  return (Number.isNaN(d.getTime()) ? new Date() : d).toISOString();
}

export async function copyObject(ctx: ObjectContext): Promise<void> {
  const sseAny = hasSsecHeaders(ctx.req.headers) || hasSsecHeaders(ctx.req.headers, COPY_SSEC_PREFIX) || encryptsDestination(ctx);
  // The source's conditions are checked here for every copy: one that is passed through is checked again by the
  // store, and one the proxy does (an encrypted source) has no other check.
  const src = await headSource(ctx, true);
  if (src.envelope === undefined && !sseAny) {
    // plain → plain: the upstream copies it (conditionals, directives and all).
    return ctx.passthrough(ctx);
  }
  using keys = await keysOf(ctx, src);
  requireKeyFor(src, keys.srcKey);
  refuseNoopSelfCopy(ctx, src, keys);
  using opened = openObject(src, keys.srcKey);
  const { bucket, key } = ctx.s3;
  const headers = destinationHeaders(ctx, src);
  headers['x-amz-metadata-directive'] = 'REPLACE';
  const echo = keys.dstKey ? ssecEchoHeaders(keys.dstKey) : {};
  const keyChanges = keys.srcKey?.keyMd5 !== keys.dstKey?.keyMd5;
  if (opened && keys.dstKey && !(ctx.config.reencryptOnKeyChange && keyChanges)) {
    // SSE-C → SSE-C: only the envelope changes; the upstream copies the ciphertext.
    Object.assign(headers, resealedMeta(src, opened, { customerKey: keys.dstKey, meta: keys.meta, bucket, key }));
    if (src.size > ctx.config.copyMultipartThreshold) return multipartServerCopy(ctx, src, headers, echo);
    headers['x-amz-copy-source'] = String(ctx.req.headers['x-amz-copy-source']);
    // The envelope re-sealed above belongs to exactly the source version checked by the HEAD (which also
    // evaluated the client's conditions): the upstream copies that version or nothing.
    headers['x-amz-copy-source-if-match'] = src.etag;
    await using up = await upstreamRequest(ctx, { method: 'PUT', path: objectPath(bucket, key), query: upstreamQuery(ctx.s3.query), headers });
    if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
    // Checksums of the ciphertext mean nothing to the client.
    const xml = replaceElements(removeElements(await readText(up), /^Checksum/), 'ETag', encryptedEtag);
    const extra: Record<string, string> = { ...echo, ...writtenVersion(up) };
    const copied = up.headers['x-amz-copy-source-version-id'];
    if (typeof copied === 'string') extra['x-amz-copy-source-version-id'] = copied;
    return sendXml(ctx, 200, xml, extra);
  }
  // Plain ↔ SSE-C (or a re-encryption): the bytes change, so they pass through the proxy.
  delete headers['x-amz-metadata-directive'];
  await copyTags(ctx, src, headers);
  const layout = opened ? await layoutOf(ctx, src, { chunkSize: opened.chunkSize, dataKey: opened.dataKey }) : undefined;
  const plainSize = layout ? layout.plainSize : src.size;
  refuseTooLarge(keys.dstKey ? encryptedSize(plainSize, 2 ** ctx.config.chunkSizeLog2) : plainSize);
  const body = await readSource(ctx, src, opened, layout, undefined);
  let stages: ReturnType<typeof sealingStages>['stages'] = [];
  let length = plainSize;
  if (keys.dstKey) {
    const envelope = sealEnvelope({ customerKey: keys.dstKey.key, bucket, key, chunkSizeLog2: ctx.config.chunkSizeLog2 });
    using dataKey = scoped(envelope.dataKey);
    headers[ENVELOPE_META] = envelope.value;
    Object.assign(headers, keys.meta);
    const sealed = sealingStages({ dataKey, chunkSize: envelope.chunkSize, partNumber: 0, plainSize, given: () => ({}) });
    stages = sealed.stages;
    length = sealed.cipherSize;
  }
  const up = await streamUpload(ctx, { path: objectPath(bucket, key), query: upstreamQuery(ctx.s3.query), headers, length }, body, stages);
  if (up.statusCode !== 200) throw await upstreamRefusal(up);
  const extra: Record<string, string> = { ...echo, ...sourceVersion(src), ...writtenVersion(up) };
  const etag = String(up.headers['etag'] ?? '');
  return sendXml(ctx, 200, copyResult(keys.dstKey ? encryptedEtag(etag) : etag, isoDate(up.headers['date'])), extra);
}

/**
 * A copy above the upstream's single-copy limit: the store copies the ciphertext in parts
 * (objects/copy-parts.ts), the destination carrying the source's tags unless the request replaces them.
 */
async function multipartServerCopy(
  ctx: ObjectContext,
  src: Source,
  headers: Record<string, string>,
  echo: Record<string, string>,
): Promise<void> {
  const createHeaders: Record<string, string> = { ...headers };
  delete createHeaders['x-amz-metadata-directive'];
  await copyTags(ctx, src, createHeaders);
  const copied = await copyInParts(ctx, src, ctx.s3, createHeaders, String(ctx.req.headers['x-amz-copy-source']));
  if ('relay' in copied) {
    await using refused = copied.relay;
    return relayUpstreamError(ctx, refused);
  }
  const extra: Record<string, string> = { ...echo, ...sourceVersion(src), ...writtenVersion({ headers: copied.headers }) };
  return sendXml(ctx, 200, copyResult(encryptedEtag(copied.etag), isoDate(copied.headers['date'])), extra);
}

/** The source's plaintext (whole, or the inclusive range), streamed from one upstream GET of the same version. */
function readSource(ctx: ObjectContext, src: Source, opened: OpenedObject | undefined, layout: ObjectLayout | undefined, range: ResolvedRange | undefined) {
  return readPlaintext(ctx, src, opened, layout, range, (status) => sourceError(status, src.key));
}

/** UploadPartCopy: a range of a plain or SSE-C source, decrypted, re-encrypted as a part of the upload. */
export async function uploadPartCopy(ctx: ObjectContext): Promise<void> {
  const parsed = parseUploadId(queryGet(ctx.s3.query, 'uploadId') ?? '');
  if (!parsed.tag && !hasSsecHeaders(ctx.req.headers) && !hasSsecHeaders(ctx.req.headers, COPY_SSEC_PREFIX)) {
    // An upstream copy of an encrypted source would carry its envelope to a name it is not bound to; an
    // SSE-S3/KMS source is decrypted below (its key needs no client).
    const src = await headSource(ctx, false);
    if (src.envelope !== undefined && !isManaged(src)) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
    if (src.envelope === undefined) return ctx.passthrough(ctx);
  }
  const src = await headSource(ctx, true);
  const srcKey = await readKeyOf(ctx, src, parseCustomerKey(ctx.req.headers, 'write', COPY_SSEC_PREFIX));
  const dstKey = parseCustomerKey(ctx.req.headers, 'write') ?? (await uploadKeyOf(ctx, parsed, ctx.s3.bucket, ctx.s3.key));
  using keys: CopyKeys & Disposable = {
    ...(srcKey ? { srcKey } : {}),
    ...(dstKey ? { dstKey } : {}),
    meta: {},
    [Symbol.dispose]: () => wipe(srcKey?.managed ? srcKey.key : undefined, dstKey?.managed ? dstKey.key : undefined),
  };
  requireKeyFor(src, keys.srcKey);
  const partNumber = partNumberOf(ctx.s3.query, 'required');
  if (parsed.tag && !keys.dstKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.partialHeaders);
  if (!parsed.tag && keys.dstKey) {
    throw new S3Error('InvalidRequest', `${SSEC_MESSAGES.mismatch} Use the upload id returned by CreateMultipartUpload.`);
  }
  using opened = openObject(src, keys.srcKey);
  const layout = opened ? await layoutOf(ctx, src, { chunkSize: opened.chunkSize, dataKey: opened.dataKey }) : undefined;
  const plainSize = layout ? layout.plainSize : src.size;
  const rangeHeader = ctx.req.headers['x-amz-copy-source-range'];
  let range = { start: 0, end: plainSize - 1 };
  if (typeof rangeHeader === 'string') {
    const spec = parseRange(rangeHeader);
    if (!spec || spec.kind !== 'from' || spec.end === undefined) {
      throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy', {
        extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: rangeHeader.slice(0, 64) },
      });
    }
    if (spec.end >= plainSize) {
      throw new S3Error('InvalidArgument', `Range specified is not valid for source object of size: ${plainSize}`, {
        extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: rangeHeader.slice(0, 64) },
      });
    }
    range = resolveRange(spec, plainSize);
  }
  const length = range.end - range.start + 1;
  const query: Array<[string, string]> = [
    ['partNumber', String(partNumber)],
    ['uploadId', parsed.upstreamId],
  ];
  let stages: ReturnType<typeof sealingStages>['stages'] = [];
  let cipherLength = length;
  let echo: Record<string, string> = {};
  // The upload's checksum of the copied plaintext, for the answer and the Complete that lists it.
  let checksums = (): Record<string, string> => ({});
  if (keys.dstKey) {
    using dataKey = scoped(multipartDataKey(keys.dstKey.key, ctx.s3.bucket, ctx.s3.key, parsed.nonce));
    if (!tagMatches(parsed, dataKey)) throw new S3Error('InvalidRequest', SSEC_MESSAGES.mismatch);
    // A part of an upload with tail records ends with one, with the upload's checksum computed over the copied
    // plaintext (nothing comes from the client here).
    const sealed = sealingStages({
      dataKey,
      chunkSize: 2 ** parsed.chunkSizeLog2!,
      partNumber,
      plainSize: length,
      tail: parsed.tails,
      compute: parsed.checksum?.algorithm,
      given: () => ({}),
    });
    stages = sealed.stages;
    cipherLength = sealed.cipherSize;
    checksums = sealed.checksums;
    echo = ssecEchoHeaders(keys.dstKey);
  }
  // A zero-byte part: no read of the source at all.
  const body = length > 0 ? await readSource(ctx, src, opened, layout, range) : Readable.from([]);
  const up = await streamUpload(ctx, { path: objectPath(ctx.s3.bucket, ctx.s3.key), query, headers: {}, length: cipherLength }, body, stages);
  if (up.statusCode !== 200) throw await upstreamRefusal(up);
  const upstreamEtag = String(up.headers['etag'] ?? '');
  const etag = keys.dstKey ? encryptedPartEtag(parsed.checksum?.algorithm, upstreamEtag, checksums()) : upstreamEtag;
  const xml = copyResult(etag, isoDate(up.headers['date']), true, checksums());
  return sendXml(ctx, 200, xml, { ...echo, ...sourceVersion(src) });
}
