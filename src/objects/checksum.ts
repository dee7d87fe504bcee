/**
 * The client's checksum of a stored object's plaintext, as S3 returns it (GET/HEAD with checksum mode,
 * GetObjectAttributes): a single PUT's sealed in the metadata (given as a header) or in its tail record (given
 * as a trailer; one small read of the same version); a multipart object's from its parts' tail records (in
 * the layout), COMPOSITE or FULL_OBJECT as the upload declared.
 */
import type { ObjectLayout } from '../format/parts.ts';
import { openTail, TAIL_SIZE } from '../format/tail.ts';
import { combineCrcs, compositeChecksum, type ChecksumName } from '../s3/checksums.ts';
import { S3Error } from '../s3/errors.ts';
import { CHECKSUM_META, checksumTailOf, multipartChecksumOf, openChecksum } from '../sse-c/sealed-checksum.ts';
import type { RequestContext } from '../context.ts';
import { requestObject, type StoredObject } from './stored.ts';

export interface StoredChecksum {
  readonly algorithm: ChecksumName;
  readonly value: string;
  readonly type: 'COMPOSITE' | 'FULL_OBJECT';
}

export async function storedChecksum(
  ctx: RequestContext,
  stored: StoredObject,
  dataKey: Buffer,
  layout?: ObjectLayout,
): Promise<StoredChecksum | undefined> {
  const declared = multipartChecksumOf(stored.headers);
  if (declared) {
    const parts = layout?.parts;
    if (!parts?.length || parts.some((p) => p.checksum?.algorithm !== declared.algorithm)) return undefined;
    const value =
      declared.type === 'COMPOSITE'
        ? await compositeChecksum(declared.algorithm, parts.map((p) => p.checksum!.digest))
        : combineCrcs(declared.algorithm, parts.map((p) => ({ digest: p.checksum!.digest, length: p.plainSize })));
    return { ...declared, value };
  }
  const algorithm = checksumTailOf(stored.headers);
  if (!algorithm) {
    const sealed = stored.headers[CHECKSUM_META];
    const opened = openChecksum(dataKey, typeof sealed === 'string' ? sealed : undefined);
    return opened && { ...opened, type: 'FULL_OBJECT' };
  }
  const at = stored.chunksSize;
  await using up = await requestObject(ctx, stored, 'GET', {
    range: `bytes=${at}-${at + TAIL_SIZE - 1}`,
    ...(stored.etag ? { 'if-match': stored.etag } : {}),
  });
  if (up.statusCode !== 200 && up.statusCode !== 206) {
    throw new S3Error('ServiceUnavailable', 'The object changed while it was read. Please retry.', { status: 503 });
  }
  // A FormatError (edited record) is the edge's integrity failure.
  const opened = openTail(dataKey, Buffer.concat(await up.body.toArray()));
  if (opened.algorithm !== algorithm || !opened.digest) return undefined;
  return { algorithm, value: opened.digest.toString('base64'), type: 'FULL_OBJECT' };
}
