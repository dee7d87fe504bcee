/**
 * GetObjectAttributes on SSE-C objects: the plaintext ObjectSize and part sizes, never the ciphertext's.
 * Unencrypted objects are the upstream's to answer.
 */
import { S3Error } from '../s3/errors.ts';
import { queryGet } from '../s3/operation.ts';
import { xmlEscape } from '../s3/xml.ts';
import { parseCustomerKey, ssecEchoHeaders } from '../sse-c/customer-key.ts';
import { relayUpstreamError, sendXml, type ObjectContext } from '../context.ts';
import { storedChecksum } from '../objects/checksum.ts';
import { layoutOf } from '../objects/layout.ts';
import { openObject } from '../objects/open.ts';
import { requestObject, storedObject } from '../objects/stored.ts';
import { partsCountOf } from '../s3/etag.ts';

const ATTRIBUTES = new Set(['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize']);

export async function getObjectAttributes(ctx: ObjectContext): Promise<void> {
  const wanted = String(ctx.req.headers['x-amz-object-attributes'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (wanted.length === 0 || wanted.some((a) => !ATTRIBUTES.has(a))) {
    throw new S3Error('InvalidArgument', 'Invalid attribute name specified.', { extra: { ArgumentName: 'x-amz-object-attributes' } });
  }
  const customerKey = parseCustomerKey(ctx.req.headers, 'read');
  const versionId = queryGet(ctx.s3.query, 'versionId');
  const name = { bucket: ctx.s3.bucket, key: ctx.s3.key, versionId };
  await using head = await requestObject(ctx, name, 'HEAD');
  const stored = storedObject(name, head.headers);
  if (stored.envelope === undefined && !customerKey) {
    if (head.statusCode !== 200) return relayUpstreamError(ctx, head);
    return ctx.passthrough(ctx);
  }
  if (stored.envelope !== undefined && head.statusCode !== 200) return relayUpstreamError(ctx, head);
  using opened = openObject(stored, customerKey)!;
  // Parts are listed for objects made of parts (a single PUT has none, as in S3).
  const needParts = wanted.includes('ObjectParts') && (partsCountOf(stored.etag) > 1 || stored.fromParts);
  const layout = await layoutOf(ctx, stored, { chunkSize: opened.chunkSize, dataKey: opened.dataKey, parts: needParts });
  const checksum = wanted.includes('Checksum') ? await storedChecksum(ctx, stored, opened.dataKey, layout) : undefined;
  const etag = stored.etag;

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
  const headers: Record<string, string> = ssecEchoHeaders(customerKey!);
  for (const h of ['last-modified', 'x-amz-version-id']) {
    const v = head.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  sendXml(ctx, 200, xml, headers);
}
