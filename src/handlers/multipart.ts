/**
 * Multipart uploads with SSE-C, with no state in the proxy (see sse-c/upload-id.ts): each part is its own
 * encrypted stream under the upload's data key, which every replica derives from the request alone.
 */
import { createHash } from 'node:crypto';
import { plaintextSize } from '../format/layout.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { objectPath, queryGet, upstreamQuery } from '../s3/operation.ts';
import { elementText, mapBlocks, removeElements, replaceElements } from '../s3/xml.ts';
import { parseCustomerKey, ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { clientUploadId, multipartDataKey, parseUploadId, tagMatches, type ParsedUploadId, type UploadChecksum } from '../sse-c/upload-id.ts';
import { CHECKSUM_META, multipartChecksumMeta } from '../sse-c/sealed-checksum.ts';
import { parsePartEtag, partEtag } from '../sse-c/part-etag.ts';
import { CHECKSUM_NAMES, combineCrcs, compositeChecksum, declaredChecksum, type ChecksumName } from '../sigv4/checksums.ts';
import { partsCountOf, probeLayout, type ObjectLayout } from './object-layout.ts';
import { infoOf } from '../object-info.ts';
import { TAIL_SIZE } from '../format/tail.ts';
import { dump, readText } from '../upstream.ts';
import { acceptBody } from './body.ts';
import { relayUpstreamError, upstreamRequest, type RequestContext } from './context.ts';
import { encryptedWriteHeaders, uploadDecoded, uploadEncrypted } from './put.ts';

const MAX_COMPLETE_BODY = 2 * 1024 * 1024;

function uploadIdOf(ctx: RequestContext): ParsedUploadId {
  const id = queryGet(ctx.s3.query, 'uploadId');
  if (!id) throw new S3Error('InvalidArgument', 'This operation requires an upload id.');
  return parseUploadId(id);
}

/** The client's query with the upload id mapped back to the upstream's. */
function upstreamQueryFor(ctx: RequestContext, parsed: ParsedUploadId): Array<[string, string]> {
  return upstreamQuery(ctx.s3.query).map(([k, v]) => [k, k === 'uploadId' ? parsed.upstreamId : v]);
}

async function sendXml(ctx: RequestContext, status: number, xml: string, extra: Record<string, string> = {}) {
  ctx.res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': String(Buffer.byteLength(xml)),
    'x-amz-request-id': ctx.requestId,
    ...extra,
  });
  ctx.res.end(xml);
}

/** CreateMultipartUpload's x-amz-checksum-algorithm / -type, validated as S3 does. */
function uploadChecksumOf(ctx: RequestContext): UploadChecksum | undefined {
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

export async function createMultipartUpload(ctx: RequestContext, customerKey: CustomerKey): Promise<void> {
  const { bucket, key } = { bucket: ctx.s3.bucket!, key: ctx.s3.key! };
  const checksum = uploadChecksumOf(ctx);
  const dataKey = multipartDataKey(customerKey.key, bucket, key);
  const envelope = sealEnvelope({ customerKey: customerKey.key, bucket, key, dataKey, chunkSizeLog2: ctx.config.chunkSizeLog2 });
  const headers = encryptedWriteHeaders(ctx);
  headers[ENVELOPE_META] = envelope.value;
  // Every part ends with a tail record (docs/FORMAT.md §5.6): the part table is read from the end.
  headers[LAYOUT_META] = 'tails';
  if (checksum) headers[CHECKSUM_META] = multipartChecksumMeta(checksum);
  ctx.stats.upstreamRequests++;
  let up;
  try {
    up = await ctx.upstream.request({
      identity: ctx.identity,
      method: 'POST',
      path: objectPath(bucket, key),
      query: upstreamQuery(ctx.s3.query),
      headers,
    });
  } finally {
    envelope.dataKey.fill(0);
  }
  ctx.stats.upstreamStatus = up.statusCode;
  if (up.statusCode !== 200) {
    dataKey.fill(0);
    return relayUpstreamError(ctx, up);
  }
  const xml = await readText(up);
  const upstreamId = elementText(xml, 'UploadId');
  if (!upstreamId) {
    dataKey.fill(0);
    throw new S3Error('InternalError', 'The upstream store did not return an upload id.');
  }
  const out = replaceElements(xml, 'UploadId', () => clientUploadId(upstreamId, dataKey, ctx.config.chunkSizeLog2, checksum));
  dataKey.fill(0);
  const extra = ssecEchoHeaders(customerKey);
  if (checksum) Object.assign(extra, { 'x-amz-checksum-algorithm': checksum.algorithm.toUpperCase(), 'x-amz-checksum-type': checksum.type });
  return sendXml(ctx, 200, out, extra);
}

export async function uploadPart(ctx: RequestContext): Promise<void> {
  const parsed = uploadIdOf(ctx);
  const customerKey = parseCustomerKey(ctx.req.headers, 'write');
  if (!customerKey) {
    if (parsed.tag) {
      // The upload was created with SSE-C: every part must repeat the key (S3 refuses it too).
      throw new S3Error('InvalidRequest', SSEC_MESSAGES.partialHeaders);
    }
    const query = upstreamQueryFor(ctx, parsed);
    return ctx.payloadHash.startsWith('STREAMING-') ? uploadDecoded(ctx, query) : ctx.passthrough(ctx, { query });
  }
  if (!parsed.tag) {
    // A bare id (from ListMultipartUploads, or an upload created without SSE-C): the proxy cannot tell which
    // key the upload was created with, and mixing keys or plaintext into one object would make it unreadable.
    throw new S3Error('InvalidRequest', `${SSEC_MESSAGES.mismatch} Use the upload id returned by CreateMultipartUpload.`);
  }
  const partNumber = Number(queryGet(ctx.s3.query, 'partNumber'));
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
      extra: { ArgumentName: 'partNumber' },
    });
  }
  const dataKey = multipartDataKey(customerKey.key, ctx.s3.bucket!, ctx.s3.key!);
  try {
    if (!tagMatches(parsed, dataKey)) {
      throw new S3Error('InvalidRequest', SSEC_MESSAGES.mismatch);
    }
    if (parsed.checksum?.type === 'COMPOSITE' && !declaredChecksum(ctx.req.headers, ctx.s3.query)) {
      // S3 needs every part's own checksum for a composite one (FULL_OBJECT parts it computes, and so do we).
      throw new S3Error('InvalidRequest', `Checksum Type mismatch occurred, expected checksum Type: ${parsed.checksum.algorithm}, actual checksum Type: null`);
    }
    const headers = encryptedWriteHeaders(ctx);
    await uploadEncrypted(ctx, customerKey, {
      dataKey,
      chunkSize: 2 ** parsed.chunkSizeLog2!,
      partNumber,
      headers,
      query: upstreamQueryFor(ctx, parsed),
      ...(parsed.tails ? { tail: true, compute: parsed.checksum?.algorithm } : {}),
      ...(parsed.checksum ? { etag: withChecksum(parsed.checksum.algorithm) } : {}),
    });
  } finally {
    dataKey.fill(0);
  }
}

/** The part ETag that carries the part's checksum (sse-c/part-etag.ts). */
export function withChecksum(algorithm: ChecksumName) {
  return (upstreamEtag: string, checksums: Record<string, string>): string => {
    const value = checksums[`x-amz-checksum-${algorithm}`];
    return value && upstreamEtag.replace(/"/g, '') !== '' ? partEtag(upstreamEtag, algorithm, value) : upstreamEtag;
  };
}

export async function completeMultipartUpload(ctx: RequestContext): Promise<void> {
  const parsed = uploadIdOf(ctx);
  const customerKey = parseCustomerKey(ctx.req.headers, 'write');
  if (customerKey && parsed.tag) {
    const dataKey = multipartDataKey(customerKey.key, ctx.s3.bucket!, ctx.s3.key!);
    const ok = tagMatches(parsed, dataKey);
    dataKey.fill(0);
    if (!ok) throw new S3Error('InvalidRequest', SSEC_MESSAGES.mismatch);
  }
  acceptBody(ctx.req, ctx.res);
  const body = await readBody(ctx);
  const partSums = parsed.checksum ? partChecksums(body, parsed.checksum) : undefined;
  // Part checksums were verified by the proxy over the plaintext (the upstream never saw them, and holds
  // ciphertext for SSE-C parts): they are not the upstream's to check. Listed ones must match what the proxy
  // verified (carried by the part ETags), and the upstream gets its own part ETags back.
  const upstreamBody = removeElements(
    mapBlocks(body, 'Part', (block) => {
      const etag = parsePartEtag(elementText(block, 'ETag') ?? '');
      if (etag.algorithm) {
        const listed = elementText(block, `Checksum${etag.algorithm.toUpperCase()}`);
        if (listed !== undefined && listed.trim() !== etag.checksum) {
          throw new S3Error(
            'InvalidPart',
            "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
          );
        }
      }
      return replaceElements(block, 'ETag', () => etag.upstream);
    }),
    /^Checksum/,
  );
  const up = await upstreamRequest(ctx, {
    method: 'POST',
    path: objectPath(ctx.s3.bucket!, ctx.s3.key!),
    query: upstreamQueryFor(ctx, parsed),
    headers: {
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(upstreamBody)),
      'x-amz-content-sha256': createHash('sha256').update(upstreamBody).digest('hex'),
    },
    body: upstreamBody,
  });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  let xml = await readText(up, MAX_COMPLETE_BODY);
  if (xml.includes('<Error>')) return sendXml(ctx, 200, xml); // S3 reports late failures inside a 200
  const headers: Record<string, string> = customerKey ? ssecEchoHeaders(customerKey) : {};
  const version = up.headers['x-amz-version-id'];
  if (typeof version === 'string') headers['x-amz-version-id'] = version;
  const etag = elementText(xml, 'ETag');
  if (!etag || etag.replace(/"/g, '') === '') {
    // RGW 16 answers with an empty <ETag>. S3's multipart ETag is MD5(concat(part MD5s))-N, computed here from
    // the very parts completed (no extra request, no race with a concurrent overwrite).
    const real = multipartEtag(upstreamBody);
    if (real) {
      xml = xml.includes('<ETag>')
        ? replaceElements(xml, 'ETag', () => real)
        : xml.replace('</Key>', `</Key><ETag>${real.replace(/"/g, '&quot;')}</ETag>`);
    }
  }
  const completedEtag = elementText(xml, 'ETag');
  const layout = parsed.tails && completedEtag ? await learnSoon(ctx, parsed, customerKey, completedEtag) : undefined;
  if (parsed.checksum) {
    const value = await objectChecksum(parsed.checksum, layout, partSums);
    if (value) {
      const name = `Checksum${parsed.checksum.algorithm.toUpperCase()}`;
      const sum = `<${name}>${value}</${name}><ChecksumType>${parsed.checksum.type}</ChecksumType>`;
      xml = xml.includes('</ETag>') ? xml.replace('</ETag>', `</ETag>${sum}`) : xml.replace('</Key>', `</Key>${sum}`);
    }
  }
  return sendXml(ctx, 200, xml, headers);
}

/**
 * The parts' checksums as the Complete body lists them. A composite upload needs every one (S3 refuses the
 * Complete otherwise, before anything is stored); a full-object upload may omit them.
 */
function partChecksums(body: string, declared: UploadChecksum): Buffer[] | undefined {
  const name = `Checksum${declared.algorithm.toUpperCase()}`;
  const sums: Buffer[] = [];
  let missing: string | undefined;
  mapBlocks(body, 'Part', (block) => {
    const v = elementText(block, name);
    if (v === undefined) missing ??= elementText(block, 'PartNumber') ?? '?';
    else sums.push(Buffer.from(v.trim(), 'base64'));
    return block;
  });
  if (missing === undefined) return sums;
  if (declared.type === 'FULL_OBJECT') return undefined;
  throw new S3Error(
    'InvalidRequest',
    `The upload was created using a ${declared.algorithm} checksum. The complete request must include the checksum for each part. It was missing for part ${missing} in the request.`,
  );
}

/**
 * The part table of the object just completed, read from its tail records (one HEAD, then one small read per
 * part, batched) and remembered: listings and reads through this replica then need no further request. With
 * the key the records are opened (the table is trusted for reads, and carries the parts' checksums).
 */
async function learnCompleted(
  ctx: RequestContext,
  parsed: ParsedUploadId,
  customerKey: CustomerKey | undefined,
  etag: string,
): Promise<ObjectLayout | undefined> {
  const { bucket, key } = { bucket: ctx.s3.bucket!, key: ctx.s3.key! };
  const chunkSize = 2 ** parsed.chunkSizeLog2!;
  const dataKey = customerKey ? multipartDataKey(customerKey.key, bucket, key) : undefined;
  try {
    const head = await upstreamRequest(ctx, { method: 'HEAD', path: objectPath(bucket, key), headers: { 'if-match': etag } });
    await dump(head);
    // Replaced meanwhile, or not what this upload made: nothing to learn.
    if (head.statusCode !== 200 || head.headers[LAYOUT_META] !== 'tails') return undefined;
    const ref = { bucket, key, etag, tails: true };
    const layout = await probeLayout(ctx, ref, Number(head.headers['content-length'] ?? 0), chunkSize, dataKey ? { dataKey } : {});
    ctx.objects.set(bucket, key, etag, infoOf(layout, chunkSize));
    return layout;
  } catch {
    return undefined; // unreachable or unreadable: the upload is complete all the same; a read will tell
  } finally {
    dataKey?.fill(0);
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
  ctx: RequestContext,
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

/** `"<md5 of the concatenated part MD5s>-N"` from a CompleteMultipartUpload body, if every ETag is an MD5. */
export function multipartEtag(completeXml: string): string | undefined {
  const digests: Buffer[] = [];
  mapBlocks(completeXml, 'Part', (block) => {
    digests.push(Buffer.from((elementText(block, 'ETag') ?? '').replace(/"/g, '').trim(), 'hex'));
    return block;
  });
  if (digests.length === 0 || digests.some((d) => d.length !== 16)) return undefined;
  return `"${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}"`;
}

async function readBody(ctx: RequestContext): Promise<string> {
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

export async function abortMultipartUpload(ctx: RequestContext): Promise<void> {
  return ctx.passthrough(ctx, { query: upstreamQueryFor(ctx, uploadIdOf(ctx)) });
}

/** ListParts: the upload id as the client knows it, and plaintext part sizes for SSE-C uploads. */
export async function listParts(ctx: RequestContext): Promise<void> {
  const parsed = uploadIdOf(ctx);
  // Sizes are converted for the uploads this proxy knows are SSE-C (tagged ids); a bare id's parts are shown
  // as stored.
  const encrypted = parsed.tag !== undefined;
  const up = await upstreamRequest(ctx, {
    method: 'GET',
    path: objectPath(ctx.s3.bucket!, ctx.s3.key!),
    query: upstreamQueryFor(ctx, parsed),
  });
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  let xml = await readText(up, 16 * 1024 * 1024);
  xml = replaceElements(xml, 'UploadId', () => queryGet(ctx.s3.query, 'uploadId')!);
  if (encrypted) {
    const chunkSize = 2 ** parsed.chunkSizeLog2!;
    const tail = parsed.tails ? TAIL_SIZE : 0;
    xml = mapBlocks(xml, 'Part', (block) =>
      replaceElements(removeElements(block, /^Checksum/), 'Size', (v) => String(plaintextSize(Number(v) - tail, chunkSize))),
    );
  }
  return sendXml(ctx, 200, xml);
}
