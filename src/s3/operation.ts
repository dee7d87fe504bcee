/**
 * Request → S3 operation, named as in the AWS API reference. Classified once, before authentication, so the
 * rest of the proxy switches over a tagged union instead of re-reading methods and query strings.
 */
import { S3Error } from './errors.ts';

/** Operations on the service (no bucket). */
type ServiceOperation = 'ListBuckets';
/** Operations on a bucket (no key). */
type BucketOperationName =
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'ListObjectVersions'
  | 'ListMultipartUploads'
  | 'BucketOperation'
  | 'PutBucketPolicy'
  | 'GetBucketPolicy'
  | 'DeleteBucketPolicy'
  | 'PostObject';
/** Operations on an object. */
type ObjectOperation =
  | 'PutObject'
  | 'CopyObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'UploadPartCopy'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'GetObjectAttributes'
  | 'ObjectSubresource';

export type OperationName = ServiceOperation | BucketOperationName | ObjectOperation | 'PreflightRequest';

interface RequestTarget {
  /** The raw (still percent-encoded) path as received, e.g. `/bucket/a%20b` (or `/a%20b` virtual-hosted). */
  readonly rawPath: string;
  /** The same request's path in path style (`/bucket/key`), raw: what the upstream is asked for. */
  readonly pathStyleRawPath: string;
  /** Decoded query parameters, in order, repeated names kept. */
  readonly query: ReadonlyArray<readonly [string, string]>;
}

export interface ServiceRequest extends RequestTarget {
  readonly op: ServiceOperation;
  readonly bucket?: undefined;
  readonly key?: undefined;
}

export interface BucketRequest extends RequestTarget {
  readonly op: BucketOperationName;
  readonly bucket: string;
  readonly key?: undefined;
}

export interface ObjectRequest extends RequestTarget {
  readonly op: ObjectOperation;
  readonly bucket: string;
  /** Decoded object key. */
  readonly key: string;
}

/** A browser's CORS preflight (`OPTIONS`) for a bucket or an object: unauthenticated by design. */
export interface PreflightRequest extends RequestTarget {
  readonly op: 'PreflightRequest';
  readonly bucket: string;
  readonly key?: string;
}

/** A classified request: the operation says which of bucket and key it has. */
export type S3Request = ServiceRequest | BucketRequest | ObjectRequest | PreflightRequest;

/**
 * Query parameters that select a different resource than the object's data (tagging, acl, ...), with the methods
 * S3 defines for each. Any other method with one is refused: a store may ignore the parameter and take the
 * request for a write of the object's data (RGW 16 does, for `PUT ?torrent`), which would bypass encryption.
 */
const OBJECT_SUBRESOURCES: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['acl', new Set(['GET', 'PUT'])],
  ['tagging', new Set(['GET', 'PUT', 'DELETE'])],
  ['legal-hold', new Set(['GET', 'PUT'])],
  ['retention', new Set(['GET', 'PUT'])],
  ['torrent', new Set(['GET'])],
  ['restore', new Set(['POST'])],
  ['select', new Set(['POST'])],
  ['select-type', new Set(['POST'])],
]);

/** Query parameters of the bucket listings; any other parameter names a bucket subresource. */
const LISTING_PARAMS = new Set([
  'versions',
  'uploads',
  'list-type',
  'prefix',
  'delimiter',
  'marker',
  'max-keys',
  'max-uploads',
  'encoding-type',
  'continuation-token',
  'fetch-owner',
  'start-after',
  'key-marker',
  'version-id-marker',
  'upload-id-marker',
  'x-id',
]);

export function parseQuery(search: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (!search) return out;
  for (const part of search.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    out.push([decodeComponent(name), decodeComponent(value)]);
  }
  return out;
}

/**
 * Percent-decoding of a query component or path segment. S3 reads a raw '+' as a space in both (clients send
 * '%2B' for a plus), and so does the verifier.
 */
function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, '%20'));
  } catch {
    throw new S3Error('InvalidURI', "Couldn't parse the specified URI.");
  }
}

/** S3's bucket-name grammar, legacy names included (upper case, `_`, up to 255): nothing else is a bucket. */
export function isBucketName(name: string): boolean {
  return /^[A-Za-z0-9._-]{1,255}$/.test(name);
}

export function queryGet(q: S3Request['query'], name: string): string | undefined {
  for (const [k, v] of q) if (k === name) return v;
  return undefined;
}

export function queryHas(q: S3Request['query'], name: string): boolean {
  return q.some(([k]) => k === name);
}

/** The bucket a virtual-hosted-style Host names (`bucket.<domain>[:port]`), or undefined for path style. */
export function virtualHostBucket(host: string | undefined, domain: string | undefined): string | undefined {
  if (!host || !domain) return undefined;
  const name = host.replace(/:\d+$/, '').toLowerCase();
  const suffix = '.' + domain.toLowerCase();
  return name.endsWith(suffix) && name.length > suffix.length ? name.slice(0, -suffix.length) : undefined;
}

/**
 * `url` is the raw request target (`/bucket/key?query`, or `/key?query` when `Host` is `bucket.<domain>` for
 * the configured virtual-host domain).
 */
export function classify(method: string, url: string, headers: Record<string, unknown>, virtualHostDomain?: string): S3Request {
  const qi = url.indexOf('?');
  const rawPath = qi < 0 ? url : url.slice(0, qi);
  const query = parseQuery(qi < 0 ? '' : url.slice(qi + 1));
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidURI', "Couldn't parse the specified URI.");
  const vhBucket = virtualHostBucket(typeof headers['host'] === 'string' ? headers['host'] : undefined, virtualHostDomain);
  const pathStyleRawPath = vhBucket !== undefined ? '/' + encodeSegment(vhBucket) + rawPath : rawPath;
  const path = pathStyleRawPath.slice(1);
  const slash = path.indexOf('/');
  const bucket = decodeComponent(slash < 0 ? path : path.slice(0, slash));
  const key = slash < 0 ? '' : decodeComponent(path.slice(slash + 1));
  // Names of S3's grammar only (legacy ones included): a bucket name is a cache key, a policy resource and an
  // allow-list subject here, so nothing that could read as another bucket (`/`, NUL, control characters).
  if (bucket !== '' && !isBucketName(bucket)) throw new S3Error('InvalidBucketName', 'The specified bucket is not valid.', { extra: { BucketName: bucket.replace(/[^\x20-\x7e]/g, '?').slice(0, 255) } });
  const base = { rawPath, pathStyleRawPath, query };
  const has = (n: string) => queryHas(query, n);

  if (method === 'OPTIONS' && bucket !== '') return { op: 'PreflightRequest', bucket, ...(key === '' ? {} : { key }), ...base };
  if (bucket === '') return { op: 'ListBuckets', ...base };
  if (key === '') {
    if (method === 'POST' && !has('delete') && isForm(headers)) return { op: 'PostObject', bucket, ...base };
    if (method === 'GET' && query.every(([k]) => LISTING_PARAMS.has(k) || CLIENT_ONLY_QUERY.has(k.toLowerCase()))) {
      if (has('versions')) return { op: 'ListObjectVersions', bucket, ...base };
      if (has('uploads')) return { op: 'ListMultipartUploads', bucket, ...base };
      return { op: queryGet(query, 'list-type') === '2' ? 'ListObjectsV2' : 'ListObjects', bucket, ...base };
    }
    if (has('policy')) {
      // Handled by the proxy: the SSE-C statements of a policy are its to enforce (handlers/bucket-policy.ts).
      if (method === 'PUT') return { op: 'PutBucketPolicy', bucket, ...base };
      if (method === 'GET') return { op: 'GetBucketPolicy', bucket, ...base };
      if (method === 'DELETE') return { op: 'DeleteBucketPolicy', bucket, ...base };
    }
    return { op: 'BucketOperation', bucket, ...base };
  }
  const obj = { bucket, key, ...base };
  const subresources = [...OBJECT_SUBRESOURCES.keys()].filter(has);
  if (subresources.length > 0) {
    if (subresources.every((n) => OBJECT_SUBRESOURCES.get(n)!.has(method)) && !has('uploads') && !has('uploadId')) return { op: 'ObjectSubresource', ...obj };
    throw methodNotAllowed(method);
  }
  const copy = headers['x-amz-copy-source'] !== undefined;
  switch (method) {
    case 'PUT':
      if (has('partNumber') && has('uploadId')) return { op: copy ? 'UploadPartCopy' : 'UploadPart', ...obj };
      return { op: copy ? 'CopyObject' : 'PutObject', ...obj };
    case 'GET':
      if (has('uploadId')) return { op: 'ListParts', ...obj };
      if (has('attributes')) return { op: 'GetObjectAttributes', ...obj };
      return { op: 'GetObject', ...obj };
    case 'HEAD':
      return { op: 'HeadObject', ...obj };
    case 'POST':
      if (has('uploads')) return { op: 'CreateMultipartUpload', ...obj };
      if (has('uploadId')) return { op: 'CompleteMultipartUpload', ...obj };
      // A form or anything else POSTed to a key: S3 takes forms only on the bucket; a store may write the key.
      throw methodNotAllowed(method);
    case 'DELETE':
      if (has('uploadId')) return { op: 'AbortMultipartUpload', ...obj };
      return { op: 'DeleteObject', ...obj };
    default:
      throw methodNotAllowed(method);
  }
}

function methodNotAllowed(method: string): S3Error {
  return new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', {
    extra: { Method: method.slice(0, 16), ResourceType: 'OBJECT' },
  });
}


function isForm(headers: Record<string, unknown>): boolean {
  const ct = headers['content-type'];
  return typeof ct === 'string' && ct.toLowerCase().startsWith('multipart/form-data');
}

/** RFC 3986 encoding of one path segment, the form S3 canonicalises and the upstream signer expects. */
export function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** `/bucket/key` for the upstream, percent-encoded segment by segment ('/' kept). */
export function objectPath(bucket: string, key?: string): string {
  const segs = key === undefined ? [] : key.split('/');
  return '/' + [bucket, ...segs].map(encodeSegment).join('/');
}

/** Re-encodes a client's raw path canonically (decode each segment, encode RFC 3986). */
export function canonicalPath(rawPath: string): string {
  return rawPath
    .split('/')
    .map((seg) => encodeSegment(decodeComponent(seg)))
    .join('/');
}

/** Query parameters that must never reach the upstream: client auth, SDK routing hints, keys in the query. */
const CLIENT_ONLY_QUERY = new Set([
  'x-amz-algorithm',
  'x-amz-credential',
  'x-amz-date',
  'x-amz-expires',
  'x-amz-signedheaders',
  'x-amz-signature',
  'x-amz-security-token',
  'x-amz-content-sha256',
  'x-id',
  'awsaccesskeyid',
  'signature',
  'expires',
  'ssecustomeralgorithm',
  'ssecustomerkey',
  'ssecustomerkeymd5',
]);

export function upstreamQuery(q: S3Request['query'], drop: readonly string[] = []): Array<[string, string]> {
  return q
    .filter(([k]) => {
      const n = k.toLowerCase();
      return !CLIENT_ONLY_QUERY.has(n) && !n.startsWith('x-amz-server-side-encryption-customer-') && !drop.includes(k);
    })
    .map(([k, v]) => [k, v] as [string, string]);
}
