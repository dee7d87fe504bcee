/**
 * A store-side copy of a stored object above the store's single-copy limit: an upstream multipart upload whose
 * parts are server-side copies of byte ranges of the source's ciphertext. The bytes, and so the chunk layout,
 * stay exactly as they were; the object is marked as made of parts so readers map its layout from the bytes.
 * Used by CopyObject's re-seal (key change, copy onto itself) and by the rotate tool.
 */
import { S3Error, type S3ErrorCode } from '../s3/errors.ts';
import { multipartEtag } from '../s3/etag.ts';
import { LAYOUT_META } from '../s3/headers.ts';
import { objectPath } from '../s3/operation.ts';
import { buildCompleteMultipartUpload, hasRoot, parseS3Error, textAt } from '../s3/xml.ts';
import { readText, type OwnedResponse, type UpstreamResponse } from '../upstream.ts';
import { upstreamRequest, type RequestContext } from '../context.ts';
import type { StoredObject } from './stored.ts';

/** The smallest part an upstream multipart copy may use (S3's minimum part size is 5 MiB). */
const PART_COPY_MIN = 8 * 1024 * 1024;

/** Part copies at once. */
const PART_COPY_CONCURRENCY = 4;

/** An upstream refusal (S3 XML), passed on with its own code and status; server errors become retryable 503s. */
export async function upstreamRefusal(up: UpstreamResponse): Promise<S3Error> {
  const text = await readText(up).catch(() => '');
  if (up.statusCode >= 500) return new S3Error('ServiceUnavailable', 'The upstream store failed. Please retry.', { status: 503 });
  const { code, message } = parseS3Error(text);
  return new S3Error((code ?? 'InvalidRequest') as S3ErrorCode, message ?? 'The upstream store refused the request.', { status: up.statusCode });
}

/**
 * Copies `src` to `dest` in parts, every part pinned to the ETag `src` was read with. `headers` are the new
 * object's (metadata, tags, the re-sealed entries); `copySource` the x-amz-copy-source value naming `src`.
 * A refused CreateMultipartUpload comes back unread as `relay`; any later failure aborts the upload (nothing
 * half-copied is left) and is thrown, as is anything `beforeComplete` throws (it runs once every part is
 * copied, right before the Complete: a last check that the source is unchanged, since the store does not pin
 * the Complete to it). Returns the new object's ETag and the Complete's answer headers.
 */
export async function copyInParts(
  ctx: RequestContext,
  src: StoredObject,
  dest: { readonly bucket: string; readonly key: string },
  headers: Record<string, string>,
  copySource: string,
  beforeComplete?: () => Promise<void>,
): Promise<{ relay: OwnedResponse } | { etag: string; headers: UpstreamResponse['headers'] }> {
  const path = objectPath(dest.bucket, dest.key);
  // The copy is byte for byte: tail records stay where they are; otherwise the parts are found by walking.
  const createHeaders: Record<string, string> = { ...headers, [LAYOUT_META]: src.tails ? 'tails' : 'parts' };
  const created = await upstreamRequest(ctx, { method: 'POST', path, query: [['uploads', '']], headers: createHeaders });
  if (created.statusCode !== 200) return { relay: created };
  const uploadId = textAt(await readText(created), 'InitiateMultipartUploadResult', 'UploadId');
  if (!uploadId) throw new S3Error('InternalError', 'The upstream store did not return an upload id.');
  const partSize = Math.min(5 * 1024 ** 3, Math.max(PART_COPY_MIN, Math.ceil(src.size / 10_000)));
  const count = Math.max(1, Math.ceil(src.size / partSize));
  const etags: string[] = new Array(count);
  let stopped = false;
  try {
    let next = 0;
    const worker = async () => {
      while (next < count && !stopped) {
        const i = next++;
        const first = i * partSize;
        const last = Math.min(src.size, first + partSize) - 1;
        await using up = await upstreamRequest(ctx, {
          method: 'PUT',
          path,
          query: [
            ['partNumber', String(i + 1)],
            ['uploadId', uploadId],
          ],
          headers: {
            'x-amz-copy-source': copySource,
            'x-amz-copy-source-range': `bytes=${first}-${last}`,
            'x-amz-copy-source-if-match': src.etag,
          },
        });
        if (up.statusCode !== 200) throw await upstreamRefusal(up);
        const etag = textAt(await readText(up), 'CopyPartResult', 'ETag');
        if (!etag) throw new S3Error('ServiceUnavailable', 'The upstream part copy gave no ETag. Please retry.', { status: 503 });
        etags[i] = etag;
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(PART_COPY_CONCURRENCY, count) }, () =>
        worker().catch((e: unknown) => {
          stopped = true; // no new part copies after the first failure
          throw e;
        }),
      ),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    await beforeComplete?.();
    const parts = etags.map((etag, i) => ({ partNumber: i + 1, etag }));
    const body = buildCompleteMultipartUpload(parts);
    await using done = await upstreamRequest(ctx, {
      method: 'POST',
      path,
      query: [['uploadId', uploadId]],
      headers: { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    const xml = await readText(done);
    if (done.statusCode !== 200 || hasRoot(xml, 'Error')) throw new S3Error('InternalError', 'The upstream multipart copy did not complete.');
    const given = textAt(xml, 'CompleteMultipartUploadResult', 'ETag');
    return { etag: given?.replace(/"/g, '') ? given : (multipartEtag(etags) ?? ''), headers: done.headers };
  } catch (e) {
    // Nothing half-copied is left behind.
    await upstreamRequest(ctx, { method: 'DELETE', path, query: [['uploadId', uploadId]] }).then(
      (up) => up[Symbol.asyncDispose](),
      () => {},
    );
    throw e;
  }
}
