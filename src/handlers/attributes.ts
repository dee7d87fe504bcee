/**
 * GetObjectAttributes on SSE-C objects: the plaintext ObjectSize and part sizes, never the ciphertext's.
 * Unencrypted objects are answered from the store's HEAD too: RGW 16 and Swift ignore `?attributes` and would
 * send the object itself.
 */
import { S3Error } from '../s3/errors.ts';
import { queryGet } from '../s3/operation.ts';
import { xmlEscape } from '../s3/xml.ts';
import { parseCustomerKey, ssecEchoHeaders } from '../sse-c/customer-key.ts';
import { relayUpstreamError, sendXml, type ObjectContext } from '../context.ts';
import { storedChecksum } from '../objects/checksum.ts';
import { layoutOf } from '../objects/layout.ts';
import { readKeyOf } from '../objects/keys.ts';
import { openObject } from '../objects/open.ts';
import { requestObject, storedObject } from '../objects/stored.ts';
import { encryptedEtag, partsCountOf } from '../s3/etag.ts';

const ATTRIBUTES = new Set(['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize']);

export async function getObjectAttributes(ctx: ObjectContext): Promise<void> {
  const wanted = String(ctx.req.headers['x-amz-object-attributes'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (wanted.length === 0 || wanted.some((a) => !ATTRIBUTES.has(a))) {
    throw new S3Error('InvalidArgument', 'Invalid attribute name specified.', { extra: { ArgumentName: 'x-amz-object-attributes' } });
  }
  const given = parseCustomerKey(ctx.req.headers, 'read');
  const versionId = queryGet(ctx.s3.query, 'versionId');
  const name = { bucket: ctx.s3.bucket, key: ctx.s3.key, versionId };
  await using head = await requestObject(ctx, name, 'HEAD');
  // A HEAD's answer has no error body to relay: S3's is written here.
  if (head.statusCode === 404) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { extra: { Key: ctx.s3.key } });
  const stored = storedObject(name, head.headers);
  const customerKey = head.statusCode === 200 ? await readKeyOf(ctx, stored, given) : given;
  if (stored.envelope === undefined && !customerKey) {
    if (head.statusCode !== 200) return relayUpstreamError(ctx, head);
    return sendAttributes(ctx, wanted, head.headers, {
      etag: stored.etag,
      // Neither RGW 16 nor Swift keeps a checksum to show; HEAD in checksum mode relays one a store keeps.
      checksum: undefined,
      // S3 lists no Part of an upload made without checksums; PartsCount is the ETag's.
      partsCount: partsCountOf(stored.etag) > 1 ? partsCountOf(stored.etag) : undefined,
      size: Number(head.headers['content-length']),
    });
  }
  if (stored.envelope !== undefined && head.statusCode !== 200) return relayUpstreamError(ctx, head);
  using opened = openObject(stored, customerKey)!;
  // Parts are listed for objects made of parts (a single PUT has none, as in S3).
  const needParts = wanted.includes('ObjectParts') && (partsCountOf(stored.etag) > 1 || stored.fromParts);
  const layout = await layoutOf(ctx, stored, { chunkSize: opened.chunkSize, dataKey: opened.dataKey, parts: needParts });
  const checksum = wanted.includes('Checksum') ? await storedChecksum(ctx, stored, opened.dataKey, layout) : undefined;
  const parts = layout.parts?.map((p) => ({ size: p.plainSize, sum: p.checksum }));
  const checksumValue = checksum && {
    algorithm: checksum.algorithm,
    type: checksum.type,
    // GetObjectAttributes gives a composite checksum without GET's `-N` part count (PartsCount says it).
    value: checksum.type === 'COMPOSITE' ? checksum.value.replace(/-\d+$/, '') : checksum.value,
  };
  return sendAttributes(ctx, wanted, head.headers, {
    etag: encryptedEtag(stored.etag),
    checksum: checksumValue,
    partsCount: parts?.length,
    parts,
    size: layout.plainSize,
    echo: ssecEchoHeaders(customerKey!, false),
  });
}

interface Attributes {
  etag: string;
  checksum: { algorithm: string; type: string; value: string } | undefined;
  /** Objects made of parts; `parts` lists them when their sizes are known. */
  partsCount: number | undefined;
  parts?: ReadonlyArray<{ size: number; sum?: { algorithm: string; digest: Buffer } | undefined }>;
  size: number;
  echo?: Record<string, string>;
}

function sendAttributes(ctx: ObjectContext, wanted: string[], stored: Record<string, string | string[] | undefined>, a: Attributes): void {
  let xml = '<?xml version="1.0" encoding="UTF-8"?>\n<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">';
  if (wanted.includes('ETag')) xml += `<ETag>${xmlEscape(a.etag.replace(/"/g, ''))}</ETag>`;
  if (wanted.includes('Checksum') && a.checksum) {
    const name = `Checksum${a.checksum.algorithm.toUpperCase()}`;
    xml += `<Checksum><${name}>${xmlEscape(a.checksum.value)}</${name}><ChecksumType>${xmlEscape(a.checksum.type)}</ChecksumType></Checksum>`;
  }
  if (wanted.includes('ObjectParts') && a.partsCount !== undefined) {
    const max = Math.min(1000, Number(ctx.req.headers['x-amz-max-parts'] ?? 1000) || 1000);
    const marker = Number(ctx.req.headers['x-amz-part-number-marker'] ?? 0) || 0;
    // Each part's own checksum, when the upload declared an algorithm (composite or full-object alike).
    const listed = (a.parts ?? []).map((p, i) => ({ n: i + 1, size: p.size, sum: p.sum })).filter((p) => p.n > marker);
    const page = listed.slice(0, max);
    const truncated = listed.length > page.length;
    xml += `<ObjectParts><PartsCount>${a.partsCount}</PartsCount>`;
    if (a.parts) {
      xml += `<PartNumberMarker>${marker}</PartNumberMarker>`;
      xml += `<NextPartNumberMarker>${page.length ? page[page.length - 1]!.n : marker}</NextPartNumberMarker><MaxParts>${max}</MaxParts>`;
      xml += `<IsTruncated>${truncated}</IsTruncated>`;
    }
    for (const p of page) {
      const sum = p.sum ? `<Checksum${p.sum.algorithm.toUpperCase()}>${p.sum.digest.toString('base64')}</Checksum${p.sum.algorithm.toUpperCase()}>` : '';
      xml += `<Part><PartNumber>${p.n}</PartNumber><Size>${p.size}</Size>${sum}</Part>`;
    }
    xml += '</ObjectParts>';
  }
  if (wanted.includes('StorageClass')) xml += `<StorageClass>${xmlEscape(String(stored['x-amz-storage-class'] ?? 'STANDARD'))}</StorageClass>`;
  if (wanted.includes('ObjectSize')) xml += `<ObjectSize>${a.size}</ObjectSize>`;
  xml += '</GetObjectAttributesResponse>';
  const headers: Record<string, string> = { ...a.echo };
  for (const h of ['last-modified', 'x-amz-version-id']) {
    const v = stored[h];
    if (typeof v === 'string') headers[h] = v;
  }
  sendXml(ctx, 200, xml, headers);
}
