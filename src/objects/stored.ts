/**
 * What a HEAD or GET of the store says of one stored object: its name and version, ETag, stored size, and the
 * proxy's metadata (envelope, layout marker, sealed checksum). Everything else in objects/ starts from this.
 */
import type { Config } from '../config.ts';
import { partsCountOf } from '../s3/etag.ts';
import { ENVELOPE_META, LAYOUT_META } from '../s3/headers.ts';
import { tailSizeOf } from '../sse-c/sealed-checksum.ts';
import { objectPath } from '../s3/operation.ts';
import type { OwnedResponse, UpstreamResponse } from '../upstream.ts';
import { upstreamRequest, type RequestContext } from '../context.ts';

export type StoredHeaders = UpstreamResponse['headers'];

/** Which object: a bucket, a key and, for a versioned read, the version. */
export interface ObjectName {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string | undefined;
}

export interface StoredObject extends ObjectName {
  /** The upstream's ETag ('' when it sent none). */
  readonly etag: string;
  /** Stored bytes. */
  readonly size: number;
  /** Stored bytes that are chunks: the size minus a single PUT's trailing checksum record. */
  readonly chunksSize: number;
  /** The sealed envelope: present on every object the proxy encrypted. */
  readonly envelope: string | undefined;
  /** Completed from parts (LAYOUT_META), whatever its ETag says. */
  readonly fromParts: boolean;
  /** Its parts end with tail records (LAYOUT_META `tails`). */
  readonly tails: boolean;
  /** The upstream's headers as they came. */
  readonly headers: StoredHeaders;
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Total object size from a 200 (Content-Length) or 206 (Content-Range `bytes a-b/total`). */
export function storedSpan(headers: StoredHeaders): { total: number; start: number; end: number } {
  const cr = headers['content-range'];
  if (typeof cr === 'string') {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(cr.trim());
    if (m) return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
  }
  const total = Number(headers['content-length'] ?? 0);
  return { start: 0, end: total - 1, total };
}

/** The stored object an upstream HEAD, GET or ranged GET of `name` answered. */
export function storedObject(name: ObjectName, headers: StoredHeaders): StoredObject {
  const size = storedSpan(headers).total;
  const layout = one(headers[LAYOUT_META]);
  return {
    bucket: name.bucket,
    key: name.key,
    ...(name.versionId !== undefined ? { versionId: name.versionId } : {}),
    etag: one(headers['etag']) ?? '',
    size,
    chunksSize: size - tailSizeOf(headers),
    envelope: one(headers[ENVELOPE_META]),
    fromParts: layout !== undefined,
    tails: layout === 'tails',
    headers,
  };
}

/** Whether the object may be made of several part streams (its layout then needs a look at its bytes). */
export function isMultipart(o: Pick<StoredObject, 'etag' | 'fromParts'>, config: Pick<Config, 'probeAllLayouts'>): boolean {
  return partsCountOf(o.etag) > 1 || o.fromParts || config.probeAllLayouts;
}

/**
 * One request for exactly the object `name`: its version when one is named, and nothing else of the client's
 * query (which may name another operation, e.g. GetObjectAttributes' `attributes`).
 */
export function requestObject(ctx: RequestContext, name: ObjectName, method: 'GET' | 'HEAD', headers: Record<string, string> = {}): Promise<OwnedResponse> {
  return upstreamRequest(ctx, {
    method,
    path: objectPath(name.bucket, name.key),
    query: name.versionId ? [['versionId', name.versionId]] : [],
    headers,
  });
}
