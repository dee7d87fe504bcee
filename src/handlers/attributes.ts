/**
 * GetObjectAttributes on SSE-C objects: the plaintext ObjectSize and part sizes, never the ciphertext's.
 * Unencrypted objects are the upstream's to answer.
 */
import { FormatError } from '../format/errors.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { objectPath, queryGet } from '../s3/operation.ts';
import { xmlEscape } from '../s3/xml.ts';
import { parseCustomerKey, ssecEchoHeaders } from '../sse-c/customer-key.ts';
import { openEnvelope } from '../sse-c/envelope.ts';
import { tailSizeOf } from '../sse-c/sealed-checksum.ts';
import { dump } from '../upstream.ts';
import { relayUpstreamError, upstreamRequest, type RequestContext } from './context.ts';
import { storedChecksum } from './get.ts';
import { partsCountOf, probeLayout } from './object-layout.ts';

const ATTRIBUTES = new Set(['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize']);

export async function getObjectAttributes(ctx: RequestContext): Promise<void> {
  const wanted = String(ctx.req.headers['x-amz-object-attributes'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (wanted.length === 0 || wanted.some((a) => !ATTRIBUTES.has(a))) {
    throw new S3Error('InvalidArgument', 'Invalid attribute name specified.', { extra: { ArgumentName: 'x-amz-object-attributes' } });
  }
  const customerKey = parseCustomerKey(ctx.req.headers, 'read');
  const versionId = queryGet(ctx.s3.query, 'versionId');
  const { bucket, key } = { bucket: ctx.s3.bucket!, key: ctx.s3.key! };
  const head = await upstreamRequest(ctx, {
    method: 'HEAD',
    path: objectPath(bucket, key),
    query: versionId ? [['versionId', versionId]] : [],
  });
  await dump(head);
  const envelope = head.headers[ENVELOPE_META];
  if (typeof envelope !== 'string') {
    if (customerKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.notApplicable);
    if (head.statusCode !== 200) return relayUpstreamError(ctx, head);
    return ctx.passthrough(ctx);
  }
  if (head.statusCode !== 200) return relayUpstreamError(ctx, head);
  if (!customerKey) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needKey);
  let opened;
  try {
    opened = openEnvelope(envelope, customerKey.key, bucket, key);
  } catch (e) {
    if (e instanceof FormatError) throw new S3Error('AccessDenied', SSEC_MESSAGES.wrongKey, { cause: e });
    throw e;
  }
  const { chunkSize, dataKey } = opened;
  const etag = String(head.headers['etag'] ?? '');
  const cipherSize = Number(head.headers['content-length'] ?? 0) - tailSizeOf(head.headers);
  const meta = head.headers[LAYOUT_META];
  const fromParts = meta !== undefined;
  const multipart = partsCountOf(etag) > 1 || fromParts;
  const needParts = wanted.includes('ObjectParts') && multipart;
  let layout;
  let checksum;
  try {
    const ref = { bucket, key, versionId, etag, fromParts, tails: meta === 'tails' };
    layout = await probeLayout(ctx, ref, cipherSize, chunkSize, { parts: needParts, dataKey });
    checksum = wanted.includes('Checksum') ? await storedChecksum(ctx, head.headers, dataKey, etag, cipherSize, layout) : undefined;
  } finally {
    dataKey.fill(0);
  }

  let xml = '<?xml version="1.0" encoding="UTF-8"?>\n<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">';
  if (wanted.includes('ETag')) xml += `<ETag>${xmlEscape(etag.replace(/"/g, ''))}</ETag>`;
  if (checksum) {
    const name = `Checksum${checksum.algorithm.toUpperCase()}`;
    // GetObjectAttributes gives a composite checksum without GET's `-N` part count (PartsCount says it).
    const value = checksum.type === 'COMPOSITE' ? checksum.value.replace(/-\d+$/, '') : checksum.value;
    xml += `<Checksum><${name}>${xmlEscape(value)}</${name}><ChecksumType>${checksum.type}</ChecksumType></Checksum>`;
  }
  if (wanted.includes('ObjectParts') && layout.parts) {
    const max = Math.min(1000, Number(ctx.req.headers['x-amz-max-parts'] ?? 1000) || 1000);
    const marker = Number(ctx.req.headers['x-amz-part-number-marker'] ?? 0) || 0;
    // Each part's own checksum, when the upload declared an algorithm (composite or full-object alike).
    const listed = layout.parts.map((p, i) => ({ n: i + 1, size: p.plainSize, sum: p.checksum })).filter((p) => p.n > marker);
    const page = listed.slice(0, max);
    const truncated = listed.length > page.length;
    xml += `<ObjectParts><PartsCount>${layout.parts.length}</PartsCount><PartNumberMarker>${marker}</PartNumberMarker>`;
    xml += `<NextPartNumberMarker>${page.length ? page[page.length - 1]!.n : marker}</NextPartNumberMarker><MaxParts>${max}</MaxParts>`;
    xml += `<IsTruncated>${truncated}</IsTruncated>`;
    for (const p of page) {
      const sum = p.sum ? `<Checksum${p.sum.algorithm.toUpperCase()}>${p.sum.digest.toString('base64')}</Checksum${p.sum.algorithm.toUpperCase()}>` : '';
      xml += `<Part><PartNumber>${p.n}</PartNumber><Size>${p.size}</Size>${sum}</Part>`;
    }
    xml += '</ObjectParts>';
  }
  if (wanted.includes('StorageClass')) xml += `<StorageClass>${xmlEscape(String(head.headers['x-amz-storage-class'] ?? 'STANDARD'))}</StorageClass>`;
  if (wanted.includes('ObjectSize')) xml += `<ObjectSize>${layout.plainSize}</ObjectSize>`;
  xml += '</GetObjectAttributesResponse>';
  const headers: Record<string, string> = {
    'content-type': 'application/xml',
    'content-length': String(Buffer.byteLength(xml)),
    'x-amz-request-id': ctx.requestId,
    ...ssecEchoHeaders(customerKey),
  };
  for (const h of ['last-modified', 'x-amz-version-id']) {
    const v = head.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  ctx.res.writeHead(200, headers);
  ctx.res.end(xml);
}
