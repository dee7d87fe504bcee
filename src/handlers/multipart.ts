/**
 * Multipart uploads with SSE-C, with no state in the proxy (see sse-c/upload-id.ts): each part is its own
 * encrypted stream under the upload's data key, which every replica derives from the request alone.
 */
import { createHash } from 'node:crypto';
import type { ObjectLayout } from '../format/parts.ts';
import { plaintextSize } from '../format/layout.ts';
import { TAIL_SIZE } from '../format/tail.ts';
import { CHECKSUM_NAMES, combineCrcs, compositeChecksum, declaredChecksum, type ChecksumName } from '../s3/checksums.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { encryptedEtag, multipartEtag, partsCountOf } from '../s3/etag.ts';
import { ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { partNumberOf } from '../s3/parts.ts';
import { buildCompleteMultipartUpload, hasRoot, mapBlocks, parseCompleteMultipartUpload, removeElements, replaceElements, textAt } from '../s3/xml.ts';
import { parseCustomerKey, ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { scoped, wipe } from '../sse-c/data-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { encryptedPartEtag, parsePartEtag } from '../sse-c/part-etag.ts';
import { CHECKSUM_META, multipartChecksumMeta } from '../sse-c/sealed-checksum.ts';
import { clientUploadId, multipartDataKey, newUploadNonce, parseUploadId, tagMatches, withManagedKey, type ParsedUploadId, type UploadChecksum } from '../sse-c/upload-id.ts';
import { KMS_META } from '../sse-kms/managed.ts';
import { readText } from '../upstream.ts';
import { acceptBody, answerWrite, relayUpstreamError, sendXml, upstreamRequest, type ObjectContext } from '../context.ts';
import { uploadKeyOf, writeKeyOf } from '../objects/keys.ts';
import { layoutOf } from '../objects/layout.ts';
import { storedObject } from '../objects/stored.ts';
import { encryptedWriteHeaders, writeRequestBody } from '../objects/write.ts';

const MAX_COMPLETE_BODY = 2 * 1024 * 1024;

function uploadIdOf(ctx: ObjectContext): ParsedUploadId {
  const id = queryGet(ctx.s3.query, 'uploadId');
  if (!id) throw new S3Error('InvalidArgument', 'This operation requires an upload id.');
  return parseUploadId(id);
}

/** The client's query with the upload id mapped back to the upstream's. */
function upstreamQueryFor(ctx: ObjectContext, parsed: ParsedUploadId): Array<[string, string]> {
  return upstreamQuery(ctx.s3.query).map(([k, v]) => [k, k === 'uploadId' ? parsed.upstreamId : v]);
}

/** CreateMultipartUpload's x-amz-checksum-algorithm / -type, validated as S3 does. */
function uploadChecksumOf(ctx: ObjectContext): UploadChecksum | undefined {
  const alg = ctx.req.headers['x-amz-checksum-algorithm'];
  const type = ctx.req.headers['x-amz-checksum-type'];
  if (typeof alg !== 'string') {
    if (typeof type === 'string') throw new S3Error('InvalidRequest', 'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.');
    return undefined;
  }
  const algorithm = alg.toLowerCase() as ChecksumName;
  if (!CHECKSUM_NAMES.includes(algorithm)) {
    throw new S3Error('InvalidRequest', 'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]');
  }
  const t = typeof type === 'string' ? type.toUpperCase() : algorithm === 'crc64nvme' ? 'FULL_OBJECT' : 'COMPOSITE';
  const crc = algorithm.startsWith('crc');
  if ((t !== 'COMPOSITE' && t !== 'FULL_OBJECT') || (t === 'FULL_OBJECT' && !crc) || (t === 'COMPOSITE' && algorithm === 'crc64nvme')) {
    throw new S3Error('InvalidRequest', `The ${t} checksum type cannot be used with the ${algorithm} checksum algorithm.`);
  }
  return { algorithm, type: t };
}

/** The upload's data key under the client's key, checked against the upload id's tag (S3's 400 otherwise). */
function uploadDataKey(ctx: ObjectContext, parsed: ParsedUploadId, customerKey: CustomerKey) {
  const dataKey = scoped(multipartDataKey(customerKey.key, ctx.s3.bucket, ctx.s3.key, parsed.nonce));
  if (!tagMatches(parsed, dataKey)) {
    dataKey[Symbol.dispose]();
    throw new S3Error('InvalidRequest', SSEC_MESSAGES.mismatch);
  }
  return dataKey;
}

export async function createMultipartUpload(ctx: ObjectContext): Promise<void> {
  const { bucket, key } = ctx.s3;
  const written = await writeKeyOf(ctx, ctx.req.headers, bucket, key);
  // Part checksums are verified by the proxy and not forwarded, so the upstream must not expect them.
  if (!written) return ctx.passthrough(ctx, { dropHeaders: ['x-amz-checksum-algorithm', 'x-amz-checksum-type'] });
  const { customerKey, meta } = written;
  using _externalKey = customerKey.managed ? scoped(customerKey.key) : undefined;
  const checksum = uploadChecksumOf(ctx);
  // The upload's own random value: its data key is its own (parts of other uploads to this name do not open).
  const nonce = newUploadNonce();
  using dataKey = scoped(multipartDataKey(customerKey.key, bucket, key, nonce));
  const envelope = sealEnvelope({ customerKey: customerKey.key, bucket, key, dataKey, chunkSizeLog2: ctx.config.chunkSizeLog2 });
  wipe(envelope.dataKey); // sealEnvelope's own copy of dataKey
  const headers = encryptedWriteHeaders(ctx.req.headers);
  headers[ENVELOPE_META] = envelope.value;
  Object.assign(headers, meta);
  // Every part ends with a tail record (docs/FORMAT.md §5.6): the part table is read from the end.
  headers[LAYOUT_META] = 'tails';
  if (checksum) headers[CHECKSUM_META] = multipartChecksumMeta(checksum);
  await using up = await upstreamRequest(ctx, { method: 'POST', path: objectPath(bucket, key), query: upstreamQuery(ctx.s3.query), headers });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const xml = await readText(up);
  const upstreamId = textAt(xml, 'InitiateMultipartUploadResult', 'UploadId');
  if (!upstreamId) throw new S3Error('InternalError', 'The upstream store did not return an upload id.');
  // The upstream's answer is kept as it came, only the upload id swapped for the client's.
  const id = clientUploadId(upstreamId, dataKey, ctx.config.chunkSizeLog2, checksum, nonce);
  // An SSE-S3/KMS upload's parts come with no key: the id carries the sealed external key for them.
  const kmsMeta = meta[KMS_META];
  const out = replaceElements(xml, 'UploadId', () => (kmsMeta === undefined ? id : withManagedKey(id, kmsMeta)));
  const extra = ssecEchoHeaders(customerKey);
  if (checksum) Object.assign(extra, { 'x-amz-checksum-algorithm': checksum.algorithm.toUpperCase(), 'x-amz-checksum-type': checksum.type });
  return sendXml(ctx, 200, out, extra);
}

export async function uploadPart(ctx: ObjectContext): Promise<void> {
  const parsed = uploadIdOf(ctx);
  const customerKey = parseCustomerKey(ctx.req.headers, 'write') ?? (await uploadKeyOf(ctx, parsed, ctx.s3.bucket, ctx.s3.key));
  if (!customerKey) {
    if (parsed.tag) {
      // The upload was created with SSE-C: every part must repeat the key (S3 refuses it too).
      throw new S3Error('InvalidRequest', SSEC_MESSAGES.partialHeaders);
    }
    const query = upstreamQueryFor(ctx, parsed);
    if (!ctx.payloadHash.startsWith('STREAMING-')) return ctx.passthrough(ctx, { query });
    // aws-chunked: decoded and checked here (the upstream would refuse trailers or store the framing).
    const { up, checksums } = await writeRequestBody(ctx, { headers: encryptedWriteHeaders(ctx.req.headers), query });
    if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
    return answerWrite(ctx, up, checksums());
  }
  if (!parsed.tag) {
    // A bare id (from ListMultipartUploads, or an upload created without SSE-C): the proxy cannot tell which
    // key the upload was created with, and mixing keys or plaintext into one object would make it unreadable.
    throw new S3Error('InvalidRequest', `${SSEC_MESSAGES.mismatch} Use the upload id returned by CreateMultipartUpload.`);
  }
  const partNumber = partNumberOf(ctx.s3.query, 'required');
  using dataKey = uploadDataKey(ctx, parsed, customerKey);
  if (parsed.checksum?.type === 'COMPOSITE' && !declaredChecksum(ctx.req.headers, ctx.s3.query)) {
    // S3 needs every part's own checksum for a composite one (FULL_OBJECT parts it computes, and so do we).
    throw new S3Error('InvalidRequest', `Checksum Type mismatch occurred, expected checksum Type: ${parsed.checksum.algorithm}, actual checksum Type: null`);
  }
  const seal = {
    dataKey,
    chunkSize: 2 ** parsed.chunkSizeLog2!,
    partNumber,
    ...(parsed.tails ? { tail: true, compute: parsed.checksum?.algorithm } : {}),
  };
  const { up, checksums } = await writeRequestBody(ctx, { headers: encryptedWriteHeaders(ctx.req.headers), query: upstreamQueryFor(ctx, parsed), seal });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const sums = checksums();
  return answerWrite(ctx, up, { ...ssecEchoHeaders(customerKey), ...sums }, (e) => encryptedPartEtag(parsed.checksum?.algorithm, e, sums));
}

const INVALID_PART =
  "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.";

export async function completeMultipartUpload(ctx: ObjectContext): Promise<void> {
  const parsed = uploadIdOf(ctx);
  const customerKey = parseCustomerKey(ctx.req.headers, 'write') ?? (await uploadKeyOf(ctx, parsed, ctx.s3.bucket, ctx.s3.key));
  if (customerKey && parsed.tag) uploadDataKey(ctx, parsed, customerKey)[Symbol.dispose]();
  acceptBody(ctx.req, ctx.res);
  const parts = parseCompleteMultipartUpload(await readBody(ctx));
  const partSums = parsed.checksum ? partChecksums(parts, parsed.checksum) : undefined;
  // Part checksums were verified by the proxy over the plaintext (the upstream never saw them, and holds
  // ciphertext for SSE-C parts): they are not the upstream's to check. Listed ones must match what the proxy
  // verified (carried by the part ETags), and the upstream gets its own part ETags back.
  const upstreamParts = parts.map((p) => {
    const etag = parsePartEtag(p.etag);
    if (etag.algorithm) {
      const listed = p.checksums[`Checksum${etag.algorithm.toUpperCase()}`];
      if (listed !== undefined && listed.trim() !== etag.checksum) throw new S3Error('InvalidPart', INVALID_PART);
    }
    return { partNumber: p.partNumber, etag: etag.upstream };
  });
  const upstreamBody = buildCompleteMultipartUpload(upstreamParts);
  await using up = await upstreamRequest(ctx, {
    method: 'POST',
    path: objectPath(ctx.s3.bucket, ctx.s3.key),
    query: upstreamQueryFor(ctx, parsed),
    headers: {
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(upstreamBody)),
      'x-amz-content-sha256': createHash('sha256').update(upstreamBody).digest('hex'),
    },
    body: upstreamBody,
  });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  // The upstream's answer is edited in place (ETag, checksum) and otherwise passed on as it came.
  let xml = await readText(up, MAX_COMPLETE_BODY);
  // S3 reports late failures inside a 200 (the substring too: a half-sent answer may not parse).
  if (hasRoot(xml, 'Error') || xml.includes('<Error>')) return sendXml(ctx, 200, xml);
  const headers: Record<string, string> = customerKey ? ssecEchoHeaders(customerKey) : {};
  const version = up.headers['x-amz-version-id'];
  if (typeof version === 'string') headers['x-amz-version-id'] = version;
  const etag = textAt(xml, 'CompleteMultipartUploadResult', 'ETag');
  if (!etag || etag.replace(/"/g, '') === '') {
    // RGW 16 answers with an empty <ETag>. S3's multipart ETag is MD5(concat(part MD5s))-N, computed here from
    // the very parts completed (no extra request, no race with a concurrent overwrite).
    const real = multipartEtag(upstreamParts.map((p) => p.etag));
    if (real) {
      xml = xml.includes('<ETag>')
        ? replaceElements(xml, 'ETag', () => real)
        : xml.replace('</Key>', `</Key><ETag>${real.replace(/"/g, '&quot;')}</ETag>`);
    }
  }
  const completedEtag = textAt(xml, 'CompleteMultipartUploadResult', 'ETag');
  const layout = parsed.tails && completedEtag ? await learnSoon(ctx, parsed, customerKey, completedEtag) : undefined;
  if (parsed.checksum) {
    const value = await objectChecksum(parsed.checksum, layout, partSums);
    if (value) {
      const name = `Checksum${parsed.checksum.algorithm.toUpperCase()}`;
      const sum = `<${name}>${value}</${name}><ChecksumType>${parsed.checksum.type}</ChecksumType>`;
      xml = xml.includes('</ETag>') ? xml.replace('</ETag>', `</ETag>${sum}`) : xml.replace('</Key>', `</Key>${sum}`);
    }
  }
  // An encrypted object's ETag as clients see it (s3/etag.ts): a store whose multipart ETags lack `-N` answers 32 hex.
  if (customerKey) xml = replaceElements(xml, 'ETag', encryptedEtag);
  return sendXml(ctx, 200, xml, headers);
}

/**
 * The parts' checksums as the Complete body lists them. A composite upload needs every one (S3 refuses the
 * Complete otherwise, before anything is stored); a full-object upload may omit them.
 */
function partChecksums(parts: ReturnType<typeof parseCompleteMultipartUpload>, declared: UploadChecksum): Buffer[] | undefined {
  const name = `Checksum${declared.algorithm.toUpperCase()}`;
  const missing = parts.find((p) => p.checksums[name] === undefined);
  if (missing === undefined) return parts.map((p) => Buffer.from(p.checksums[name]!.trim(), 'base64'));
  if (declared.type === 'FULL_OBJECT') return undefined;
  throw new S3Error(
    'InvalidRequest',
    `The upload was created using a ${declared.algorithm} checksum. The complete request must include the checksum for each part. It was missing for part ${missing.partNumber} in the request.`,
  );
}

/**
 * The part table of the object just completed, read from its tail records (one HEAD, then one small read per
 * part, batched) and remembered: listings and reads through this replica then need no further request. With
 * the key the records are opened (the table is trusted for reads, and carries the parts' checksums).
 */
async function learnCompleted(
  ctx: ObjectContext,
  parsed: ParsedUploadId,
  customerKey: CustomerKey | undefined,
  etag: string,
): Promise<ObjectLayout | undefined> {
  const { bucket, key } = ctx.s3;
  using dataKey = customerKey ? scoped(multipartDataKey(customerKey.key, bucket, key, parsed.nonce)) : undefined;
  try {
    await using head = await upstreamRequest(ctx, { method: 'HEAD', path: objectPath(bucket, key), headers: { 'if-match': etag } });
    const stored = storedObject({ bucket, key }, head.headers);
    // Replaced meanwhile, or not what this upload made: nothing to learn.
    if (head.statusCode !== 200 || !stored.tails) return undefined;
    return await layoutOf(ctx, stored, { chunkSize: 2 ** parsed.chunkSizeLog2!, dataKey });
  } catch {
    return undefined; // unreachable or unreadable: the upload is complete all the same; a read will tell
  }
}

/** Uploads up to this many parts are learned before Complete answers (a few dozen batched reads at most). */
const LEARN_BEFORE_ANSWER_PARTS = 1000;
const LEARN_BEFORE_ANSWER_MS = 15_000;

/**
 * learnCompleted, without letting it hold up the Complete answer: bounded in parts and time (what is not
 * learned by then is learned in the background, for later listings and reads); the access log keeps the
 * Complete's own upstream status.
 */
async function learnSoon(
  ctx: ObjectContext,
  parsed: ParsedUploadId,
  customerKey: CustomerKey | undefined,
  etag: string,
): Promise<ObjectLayout | undefined> {
  const status = ctx.stats.upstreamStatus;
  const learning = learnCompleted(ctx, parsed, customerKey, etag);
  try {
    if (partsCountOf(etag) > LEARN_BEFORE_ANSWER_PARTS) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, LEARN_BEFORE_ANSWER_MS, undefined)));
    const layout = await Promise.race([learning, late]);
    clearTimeout(timer);
    return layout;
  } finally {
    ctx.stats.upstreamStatus = status;
  }
}

/**
 * The completed object's checksum for the Complete answer: from the parts' tail records when they were opened
 * with the key (what GET will return), else from the part checksums the client listed (sizes from the records'
 * clear fields for FULL_OBJECT).
 */
async function objectChecksum(declared: UploadChecksum, layout: ObjectLayout | undefined, listed: Buffer[] | undefined): Promise<string | undefined> {
  const parts = layout?.parts;
  let digests: Buffer[] | undefined;
  if (layout?.verified && parts) {
    if (parts.some((p) => p.checksum?.algorithm !== declared.algorithm)) return undefined;
    digests = parts.map((p) => p.checksum!.digest);
  } else digests = listed;
  if (!digests) return undefined;
  if (declared.type === 'COMPOSITE') return compositeChecksum(declared.algorithm, digests);
  if (!parts || parts.length !== digests.length) return undefined;
  return combineCrcs(declared.algorithm, parts.map((p, i) => ({ digest: digests[i]!, length: p.plainSize })));
}

async function readBody(ctx: ObjectContext): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of ctx.req) {
    n += (c as Buffer).length;
    if (n > MAX_COMPLETE_BODY) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
    chunks.push(c as Buffer);
  }
  ctx.stats.bytesIn += n;
  const body = Buffer.concat(chunks);
  if (/^[0-9a-f]{64}$/.test(ctx.payloadHash) && createHash('sha256').update(body).digest('hex') !== ctx.payloadHash) {
    throw new S3Error('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  return body.toString('utf8');
}

export async function abortMultipartUpload(ctx: ObjectContext): Promise<void> {
  return ctx.passthrough(ctx, { query: upstreamQueryFor(ctx, uploadIdOf(ctx)) });
}

/** ListParts: the upload id as the client knows it, and plaintext part sizes for SSE-C uploads. */
export async function listParts(ctx: ObjectContext): Promise<void> {
  const parsed = uploadIdOf(ctx);
  await using up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(ctx.s3.bucket, ctx.s3.key),
    query: upstreamQueryFor(ctx, parsed),
  });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  // Edited in place, byte for byte otherwise: the upload id, and for the uploads this proxy knows are SSE-C
  // (tagged ids) the part sizes (plaintext) and checksums (of ciphertext); a bare id's parts are as stored.
  let xml = await readText(up, 16 * 1024 * 1024);
  xml = replaceElements(xml, 'UploadId', () => queryGet(ctx.s3.query, 'uploadId')!);
  if (parsed.tag !== undefined) {
    const chunkSize = 2 ** parsed.chunkSizeLog2!;
    const tail = parsed.tails ? TAIL_SIZE : 0;
    xml = mapBlocks(xml, 'Part', (block) =>
      replaceElements(
        replaceElements(removeElements(block, /^Checksum/), 'Size', (v) => String(plaintextSize(Number(v) - tail, chunkSize))),
        'ETag',
        encryptedEtag,
      ),
    );
  }
  return sendXml(ctx, 200, xml);
}
