/**
 * An in-memory S3 server for fast tests: node:http on 127.0.0.1 port 0, path-style addressing, with the status
 * codes, headers and XML answers AWS documents for the operations the proxy uses. Every request is recorded with
 * the response-body bytes actually handed to the socket, so a test can tell when the proxy asked for a body and
 * cut it off.
 *
 * Implemented: ListBuckets, CreateBucket, HeadBucket; PutObject, GetObject and HeadObject (one Range,
 * conditionals, response-* overrides), DeleteObject, CopyObject; CreateMultipartUpload, UploadPart, UploadPartCopy,
 * CompleteMultipartUpload, AbortMultipartUpload, ListParts; ListObjects, ListObjectsV2; Get/PutObjectTagging,
 * x-amz-tagging and x-amz-tagging-count. Answered 501 NotImplemented: aws-chunked request bodies (the proxy
 * decodes them), GET ?partNumber=N, DeleteObjects, ListMultipartUploads, ACLs, versioning and every other
 * subresource. versionId is ignored (one version per key); presigned URLs are refused.
 *
 * Authentication: a request must carry `Authorization: AWS4-HMAC-SHA256 Credential=<accessKeyId>/…` with the
 * double's access key. The signature is NOT verified (the proxy's signer has its own tests); a hex
 * `x-amz-content-sha256` is checked against the body, and Content-MD5 on PutObject/UploadPart.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  /** The operation the double took the request for, e.g. `GetObject` ('' when refused before routing). */
  op: string;
  method: string;
  /** Percent-encoded, as received: `/bucket/a%20b`. */
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  status: number;
  bodyBytesIn: number;
  /** Body bytes of the answer (its Content-Length; 0 for HEAD, 204 and 304). */
  bodyBytesRequested: number;
  /** Body bytes the socket accepted before the exchange ended. */
  bodyBytesOut: number;
  /** The client closed the connection before the whole answer was written. */
  aborted: boolean;
  /** The exchange is over (answer finished or connection closed). */
  done: boolean;
}

/** Object attributes besides its bytes, as a write request sets them. */
interface Attributes {
  contentType: string;
  /** User metadata: lower-case names without `x-amz-meta-`. */
  metadata: Record<string, string>;
  /** Other stored headers (cache-control, content-disposition, …), returned on GET and HEAD. */
  headers: Record<string, string>;
  tags: Array<[string, string]>;
}

export interface StoredObject extends Attributes {
  body: Buffer;
  /** Quoted: `"<md5 hex>"`, or `"<md5 of the part MD5s>-N"` for a completed multipart upload. */
  etag: string;
  lastModified: Date;
}

type Part = Pick<StoredObject, 'body' | 'etag' | 'lastModified'>;

interface Bucket {
  created: Date;
  objects: Map<string, StoredObject>;
  uploads: Map<string, { key: string; init: Attributes; parts: Map<number, Part> }>;
}

export interface S3Double {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Every request, in arrival order; an entry is complete once `done` (see `idle`). */
  requests: RecordedRequest[];
  resetRequests(): void;
  /** Resolves when every exchange begun so far has ended. */
  idle(): Promise<void>;
  /** What is stored. `get` returns the live record: edit its `body` to tamper with the stored bytes. */
  objects: {
    get(bucket: string, key: string): StoredObject | undefined;
    put(bucket: string, key: string, body: Buffer, attrs?: Partial<Attributes>): StoredObject;
    delete(bucket: string, key: string): boolean;
    keys(bucket: string): string[];
  };
  close(): Promise<void>;
}

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const MIN_PART_SIZE = 5 * 1024 * 1024;
const STORED_HEADERS = ['cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'];
const RESPONSE_OVERRIDE = /^response-(content-(type|language|disposition|encoding)|expires|cache-control)$/;
const LISTING_PARAMS = ['list-type', 'prefix', 'delimiter', 'max-keys', 'marker', 'continuation-token', 'start-after', 'fetch-owner', 'encoding-type'];

class S3Fault extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, string> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const fault = (status: number, code: string, message: string, extra: Record<string, string> = {}) => new S3Fault(status, code, message, extra);
const invalidArgument = (message: string, name: string, value: string) => fault(400, 'InvalidArgument', message, { ArgumentName: name, ArgumentValue: value });
const preconditionFailed = (condition: string) =>
  fault(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: condition });
const notImplemented = () => fault(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented.');
const malformedXml = () => fault(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&${Object.keys(ENTITIES).find((k) => ENTITIES[k] === ch)};`);
const unesc = (s: string) => s.replace(/&(amp|lt|gt|quot|apos);/g, (_m, e: string) => ENTITIES[e]!);

/** Elements with escaped text; undefined values are left out. */
function el(fields: Record<string, string | number | boolean | undefined>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<${k}>${esc(String(v))}</${k}>`)
    .join('');
}

const xmlDoc = (root: string, inner: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${NS}">${inner}</${root}>`;
/** The text of every `<name>` element in `xml` (unescaped). */
const texts = (xml: string, name: string) => [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, 'g'))].map((m) => unesc(m[1]!));
const md5 = (b: Buffer) => createHash('md5').update(b).digest();
const quotedMd5 = (b: Buffer) => `"${md5(b).toString('hex')}"`;
const unquote = (etag: string) => etag.trim().replace(/^W\//, '').replace(/"/g, '');
/** S3 keeps Last-Modified to the second. */
const now = () => new Date(Math.floor(Date.now() / 1000) * 1000);
const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw fault(400, 'InvalidURI', "Couldn't parse the specified URI.");
  }
}

/** `header` (a list of ETags, or `*`) names `etag`. */
function etagListMatches(header: string, etag: string): boolean {
  return header.split(',').some((e) => e.trim() === '*' || unquote(e) === unquote(etag));
}

/**
 * The conditional headers (read through `get`) in S3's order of evaluation (RFC 7232 §6): the failed
 * precondition (412), 'not-modified' (304 for reads), or undefined when every one holds.
 */
function conditionOutcome(get: (name: string) => string | undefined, o: StoredObject): string | undefined {
  const [ifMatch, ifNoneMatch, ifModified, ifUnmodified] = ['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'].map(get);
  if (ifMatch !== undefined && !etagListMatches(ifMatch, o.etag)) return 'If-Match';
  if (ifMatch === undefined && ifUnmodified !== undefined && o.lastModified > new Date(ifUnmodified)) return 'If-Unmodified-Since';
  if (ifNoneMatch !== undefined) return etagListMatches(ifNoneMatch, o.etag) ? 'not-modified' : undefined;
  if (ifModified !== undefined && !(o.lastModified > new Date(ifModified))) return 'not-modified';
  return undefined;
}

/** Content-Type, x-amz-meta-*, stored headers and x-amz-tagging of a write request. */
function attributesOf(h: http.IncomingHttpHeaders): Attributes {
  const metadata: Record<string, string> = {};
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) {
    if (typeof value !== 'string') continue;
    if (name.startsWith('x-amz-meta-')) metadata[name.slice('x-amz-meta-'.length)] = value;
    else if (STORED_HEADERS.includes(name)) headers[name] = value;
  }
  const tags = typeof h['x-amz-tagging'] === 'string' ? [...new URLSearchParams(h['x-amz-tagging'])] : [];
  return { contentType: h['content-type'] ?? 'binary/octet-stream', metadata, headers, tags };
}

/** One request being answered. */
interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  rec: RecordedRequest;
  body: Buffer;
  bucket: string;
  key: string;
  q: URLSearchParams;
  requestId: string;
}

export async function startS3Double(opts: { accessKeyId?: string; secretAccessKey?: string; region?: string } = {}): Promise<S3Double> {
  const accessKeyId = opts.accessKeyId ?? 'DOUBLEKEY';
  const secretAccessKey = opts.secretAccessKey ?? 'double-secret';
  const region = opts.region ?? 'us-east-1';
  const owner = el({ ID: accessKeyId, DisplayName: accessKeyId });
  const buckets = new Map<string, Bucket>();
  const requests: RecordedRequest[] = [];
  const pending = new Set<Promise<void>>();
  let counter = 0;

  // ---- answers ---------------------------------------------------------------------------------------------

  /** Writes an answer in 64 KiB writes, counting the body bytes the socket accepts. */
  function send(c: Ctx, status: number, headers: Record<string, string>, body: Buffer = Buffer.alloc(0)): void {
    const noBody = c.req.method === 'HEAD' || status === 204 || status === 304;
    c.rec.status = status;
    c.rec.bodyBytesRequested = noBody ? 0 : body.length;
    const all: Record<string, string> = { 'x-amz-request-id': c.requestId, 'x-amz-id-2': c.requestId, date: new Date().toUTCString(), ...headers };
    if (status !== 204 && status !== 304) all['content-length'] ??= String(body.length);
    c.res.writeHead(status, all);
    let offset = noBody ? body.length : 0;
    const pump = () => {
      while (offset < body.length) {
        const piece = body.subarray(offset, offset + 65536);
        offset += piece.length;
        const more = c.res.write(piece, (err) => {
          if (!err) c.rec.bodyBytesOut += piece.length;
        });
        if (!more) return void c.res.once('drain', pump);
      }
      c.res.end();
    };
    pump();
  }

  function sendXml(c: Ctx, xml: string): void {
    send(c, 200, { 'content-type': 'application/xml' }, Buffer.from(xml));
  }

  function sendFault(c: Ctx, f: S3Fault): void {
    const fields = { Code: f.code, Message: f.message, ...f.extra, Resource: c.rec.path, RequestId: c.requestId, HostId: c.requestId };
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${el(fields)}</Error>`;
    send(c, f.status, { 'content-type': 'application/xml', ...f.headers }, Buffer.from(xml));
  }

  // ---- lookups ---------------------------------------------------------------------------------------------

  function bucketOf(name: string): Bucket {
    const b = buckets.get(name);
    if (!b) throw fault(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: name });
    return b;
  }

  function objectOf(bucket: string, key: string): StoredObject {
    const o = bucketOf(bucket).objects.get(key);
    if (!o) throw fault(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
    return o;
  }

  function uploadOf(c: Ctx) {
    const id = c.q.get('uploadId')!;
    const u = bucketOf(c.bucket).uploads.get(id);
    if (u?.key === c.key) return u;
    const message = 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.';
    throw fault(404, 'NoSuchUpload', message, { UploadId: id });
  }

  function store(bucket: string, key: string, body: Buffer, attrs: Attributes, etag = quotedMd5(body)): StoredObject {
    const o: StoredObject = { ...attrs, body, etag, lastModified: now() };
    bucketOf(bucket).objects.set(key, o);
    return o;
  }

  /** The object `x-amz-copy-source` names (`[/]bucket/key[?versionId=…]`, percent-encoded), its conditions checked. */
  function copySource(c: Ctx): { bucket: string; key: string; obj: StoredObject } {
    const raw = String(c.req.headers['x-amz-copy-source']);
    const path = raw.split('?')[0]!.replace(/^\//, '');
    const slash = path.indexOf('/');
    if (slash <= 0 || slash === path.length - 1) {
      throw invalidArgument('Copy Source must mention the source bucket and key: sourcebucket/sourcekey', 'x-amz-copy-source', raw);
    }
    const [bucket, key] = [percentDecode(path.slice(0, slash)), percentDecode(path.slice(slash + 1))];
    const obj = objectOf(bucket, key);
    // Every failed condition of a copy is a 412, If-None-Match and If-Modified-Since included.
    const failed = conditionOutcome((n) => c.req.headers[`x-amz-copy-source-${n}`] as string | undefined, obj);
    if (failed) throw preconditionFailed(failed === 'not-modified' ? 'x-amz-copy-source-If-None-Match' : `x-amz-copy-source-${failed}`);
    return { bucket, key, obj };
  }

  // ---- buckets ---------------------------------------------------------------------------------------------

  function listBuckets(c: Ctx): void {
    const items = [...buckets.keys()].sort(utf8Order).map((name) => `<Bucket>${el({ Name: name, CreationDate: buckets.get(name)!.created.toISOString() })}</Bucket>`);
    sendXml(c, xmlDoc('ListAllMyBucketsResult', `<Owner>${owner}</Owner><Buckets>${items.join('')}</Buckets>`));
  }

  function createBucket(c: Ctx): void {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(c.bucket)) throw fault(400, 'InvalidBucketName', 'The specified bucket is not valid.', { BucketName: c.bucket });
    if (buckets.has(c.bucket)) {
      const message = 'Your previous request to create the named bucket succeeded and you already own it.';
      throw fault(409, 'BucketAlreadyOwnedByYou', message, { BucketName: c.bucket });
    }
    buckets.set(c.bucket, { created: new Date(), objects: new Map(), uploads: new Map() });
    send(c, 200, { location: `/${c.bucket}` });
  }

  function headBucket(c: Ctx): void {
    bucketOf(c.bucket);
    send(c, 200, { 'x-amz-bucket-region': region });
  }

  // ---- objects ---------------------------------------------------------------------------------------------

  function putObject(c: Ctx): void {
    send(c, 200, { etag: store(c.bucket, c.key, c.body, attributesOf(c.req.headers)).etag });
  }

  /** One `Range: bytes=a-b | a- | -n` of `size` bytes: [first, last], undefined when absent or malformed (ignored), or a 416. */
  function rangeOf(c: Ctx, size: number): [number, number] | undefined {
    const header = c.req.headers.range;
    const m = typeof header === 'string' ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
    if (!m || (m[1] === '' && m[2] === '')) return undefined;
    const unsatisfiable = new S3Fault(416, 'InvalidRange', 'The requested range is not satisfiable', { RangeRequested: header!, ActualObjectSize: String(size) }, {
      'content-range': `bytes */${size}`,
    });
    if (m[1] === '') {
      if (Number(m[2]) === 0 || size === 0) throw unsatisfiable;
      return [Math.max(0, size - Number(m[2])), size - 1];
    }
    const first = Number(m[1]);
    if (m[2] !== '' && Number(m[2]) < first) return undefined;
    if (first >= size) throw unsatisfiable;
    return [first, m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)];
  }

  function getObject(c: Ctx): void {
    if (c.q.has('partNumber')) throw notImplemented();
    const o = objectOf(c.bucket, c.key);
    const outcome = conditionOutcome((n) => c.req.headers[n] as string | undefined, o);
    if (outcome === 'not-modified') return send(c, 304, { etag: o.etag, 'last-modified': o.lastModified.toUTCString() });
    if (outcome) throw preconditionFailed(outcome);
    const headers: Record<string, string> = { etag: o.etag, 'last-modified': o.lastModified.toUTCString(), 'content-type': o.contentType, 'accept-ranges': 'bytes', ...o.headers };
    for (const [k, v] of Object.entries(o.metadata)) headers[`x-amz-meta-${k}`] = v;
    if (o.tags.length) headers['x-amz-tagging-count'] = String(o.tags.length);
    for (const [k, v] of c.q) if (RESPONSE_OVERRIDE.test(k)) headers[k.slice('response-'.length)] = v;
    const range = rangeOf(c, o.body.length);
    if (!range) return send(c, 200, headers, o.body);
    const [first, last] = range;
    send(c, 206, { ...headers, 'content-range': `bytes ${first}-${last}/${o.body.length}` }, o.body.subarray(first, last + 1));
  }

  function deleteObject(c: Ctx): void {
    bucketOf(c.bucket).objects.delete(c.key);
    send(c, 204, {});
  }

  function copyObject(c: Ctx): void {
    const src = copySource(c);
    const directive = String(c.req.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
    if (directive !== 'COPY' && directive !== 'REPLACE') throw invalidArgument('Unknown metadata directive.', 'x-amz-metadata-directive', directive);
    if (src.bucket === c.bucket && src.key === c.key && directive === 'COPY') {
      const message =
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";
      throw fault(400, 'InvalidRequest', message);
    }
    const given = attributesOf(c.req.headers);
    const { contentType, metadata, headers } = directive === 'REPLACE' ? given : src.obj;
    const replaceTags = String(c.req.headers['x-amz-tagging-directive'] ?? 'COPY').toUpperCase() === 'REPLACE';
    const attrs = { contentType, metadata: { ...metadata }, headers: { ...headers }, tags: replaceTags ? given.tags : [...src.obj.tags] };
    const o = store(c.bucket, c.key, Buffer.from(src.obj.body), attrs);
    sendXml(c, xmlDoc('CopyObjectResult', el({ LastModified: o.lastModified.toISOString(), ETag: o.etag })));
  }

  function getObjectTagging(c: Ctx): void {
    const tags = objectOf(c.bucket, c.key).tags.map(([Key, Value]) => `<Tag>${el({ Key, Value })}</Tag>`);
    sendXml(c, xmlDoc('Tagging', `<TagSet>${tags.join('')}</TagSet>`));
  }

  function putObjectTagging(c: Ctx): void {
    const o = objectOf(c.bucket, c.key);
    const text = c.body.toString('utf8');
    if (!/<Tagging[\s>]/.test(text)) throw malformedXml();
    const tags = texts(text, 'Tag').map((t): [string, string] => [texts(t, 'Key')[0] ?? '', texts(t, 'Value')[0] ?? '']);
    if (tags.length > 10) throw fault(400, 'BadRequest', 'Object tags cannot be greater than 10');
    if (new Set(tags.map(([k]) => k)).size !== tags.length) throw fault(400, 'InvalidTag', 'Cannot provide multiple Tags with the same key');
    o.tags = tags;
    send(c, 200, {});
  }

  // ---- multipart -------------------------------------------------------------------------------------------

  function createMultipartUpload(c: Ctx): void {
    const uploadId = randomBytes(24).toString('base64url');
    bucketOf(c.bucket).uploads.set(uploadId, { key: c.key, init: attributesOf(c.req.headers), parts: new Map() });
    sendXml(c, xmlDoc('InitiateMultipartUploadResult', el({ Bucket: c.bucket, Key: c.key, UploadId: uploadId })));
  }

  function savePart(c: Ctx, body: Buffer): Part {
    const v = c.q.get('partNumber') ?? '';
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 10000) {
      throw invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber', v);
    }
    const part = { body, etag: quotedMd5(body), lastModified: now() };
    uploadOf(c).parts.set(Number(v), part);
    return part;
  }

  function uploadPart(c: Ctx): void {
    uploadOf(c);
    send(c, 200, { etag: savePart(c, c.body).etag });
  }

  function uploadPartCopy(c: Ctx): void {
    uploadOf(c);
    const { obj } = copySource(c);
    let body = obj.body;
    const range = c.req.headers['x-amz-copy-source-range'];
    if (typeof range === 'string') {
      const m = /^bytes=(\d+)-(\d+)$/.exec(range);
      const bad = (message: string) => invalidArgument(message, 'x-amz-copy-source-range', range);
      if (!m || Number(m[2]) < Number(m[1])) {
        throw bad('The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy');
      }
      if (Number(m[2]) >= body.length) throw bad(`Range specified is not valid for source object of size: ${body.length}`);
      body = body.subarray(Number(m[1]), Number(m[2]) + 1);
    }
    const part = savePart(c, Buffer.from(body));
    sendXml(c, xmlDoc('CopyPartResult', el({ LastModified: part.lastModified.toISOString(), ETag: part.etag })));
  }

  function completeMultipartUpload(c: Ctx): void {
    const u = uploadOf(c);
    const listed = texts(c.body.toString('utf8'), 'Part').map((p) => ({ n: Number(texts(p, 'PartNumber')[0]), etag: texts(p, 'ETag')[0] }));
    if (listed.length === 0 || listed.some((p) => !Number.isInteger(p.n) || p.etag === undefined)) throw malformedXml();
    const parts = listed.map(({ n, etag }, i) => {
      if (i > 0 && n <= listed[i - 1]!.n) {
        throw fault(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
      }
      const p = u.parts.get(n);
      if (p && unquote(p.etag) === unquote(etag!)) return p;
      const message =
        "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.";
      throw fault(400, 'InvalidPart', message, { UploadId: c.q.get('uploadId')!, PartNumber: String(n) });
    });
    const small = parts.findIndex((p, i) => i < parts.length - 1 && p.body.length < MIN_PART_SIZE);
    if (small >= 0) {
      const extra = { ProposedSize: String(parts[small]!.body.length), MinSizeAllowed: String(MIN_PART_SIZE) };
      throw fault(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', extra);
    }
    // S3's multipart ETag: the MD5 of the concatenated binary part MD5s, and the number of parts.
    const digest = md5(Buffer.concat(parts.map((p) => Buffer.from(unquote(p.etag), 'hex')))).toString('hex');
    const o = store(c.bucket, c.key, Buffer.concat(parts.map((p) => p.body)), u.init, `"${digest}-${parts.length}"`);
    bucketOf(c.bucket).uploads.delete(c.q.get('uploadId')!);
    const location = `http://${c.req.headers.host}/${c.bucket}/${encodeURIComponent(c.key)}`;
    sendXml(c, xmlDoc('CompleteMultipartUploadResult', el({ Location: location, Bucket: c.bucket, Key: c.key, ETag: o.etag })));
  }

  function abortMultipartUpload(c: Ctx): void {
    uploadOf(c);
    bucketOf(c.bucket).uploads.delete(c.q.get('uploadId')!);
    send(c, 204, {});
  }

  function listParts(c: Ctx): void {
    const u = uploadOf(c);
    const max = Math.min(1000, Number(c.q.get('max-parts') ?? 1000));
    const marker = Number(c.q.get('part-number-marker') ?? 0);
    const after = [...u.parts.entries()].filter(([n]) => n > marker).sort(([a], [b]) => a - b);
    const shown = after.slice(0, max);
    const parts = shown.map(([n, p]) => `<Part>${el({ PartNumber: n, LastModified: p.lastModified.toISOString(), ETag: p.etag, Size: p.body.length })}</Part>`);
    const head = el({ Bucket: c.bucket, Key: c.key, UploadId: c.q.get('uploadId')!, PartNumberMarker: marker });
    const next = el({ NextPartNumberMarker: shown.at(-1)?.[0] ?? marker, MaxParts: max, IsTruncated: after.length > shown.length });
    sendXml(c, xmlDoc('ListPartsResult', `${head}${next}<Initiator>${owner}</Initiator><Owner>${owner}</Owner>${el({ StorageClass: 'STANDARD' })}${parts.join('')}`));
  }

  // ---- listings --------------------------------------------------------------------------------------------

  /**
   * The keys under `prefix` after `after` (and not under it when it is a common prefix), rolled up at
   * `delimiter`, at most `max` entries (keys and common prefixes alike), in S3's UTF-8 byte order.
   */
  function listing(c: Ctx, after: string) {
    const max = Number(c.q.get('max-keys') ?? 1000);
    if (!Number.isInteger(max) || max < 0) throw invalidArgument('Provided max-keys not an integer or within integer range', 'max-keys', String(c.q.get('max-keys')));
    const [prefix, delimiter] = [c.q.get('prefix') ?? '', c.q.get('delimiter') ?? ''];
    const objects = bucketOf(c.bucket).objects;
    const contents: string[] = [];
    const prefixes: string[] = [];
    let last = '';
    let truncated = false;
    for (const key of [...objects.keys()].sort(utf8Order)) {
      if (!key.startsWith(prefix) || utf8Order(key, after) <= 0 || (delimiter && after.endsWith(delimiter) && key.startsWith(after))) continue;
      const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      const entry = cut >= 0 ? key.slice(0, cut + delimiter.length) : key;
      if (entry === last) continue; // one more key under the same common prefix
      if (contents.length + prefixes.length >= Math.min(max, 1000)) {
        truncated = true;
        break;
      }
      (cut >= 0 ? prefixes : contents).push(entry);
      last = entry;
    }
    const url = c.q.get('encoding-type') === 'url';
    const enc = (s: string) => (url ? encodeURIComponent(s).replace(/%2F/g, '/') : s);
    const withOwner = c.q.get('list-type') !== '2' || c.q.get('fetch-owner') === 'true';
    const items = contents.map((k) => {
      const o = objects.get(k)!;
      const fields = el({ Key: enc(k), LastModified: o.lastModified.toISOString(), ETag: o.etag, Size: o.body.length });
      return `<Contents>${fields}${withOwner ? `<Owner>${owner}</Owner>` : ''}${el({ StorageClass: 'STANDARD' })}</Contents>`;
    });
    const common = prefixes.map((p) => `<CommonPrefixes>${el({ Prefix: enc(p) })}</CommonPrefixes>`);
    const head = el({ Name: c.bucket, Prefix: enc(prefix), Delimiter: delimiter ? enc(delimiter) : undefined, MaxKeys: Math.min(max, 1000), IsTruncated: truncated });
    const body = items.join('') + common.join('') + el({ EncodingType: url ? 'url' : undefined });
    return { head, body, truncated, last, count: contents.length + prefixes.length };
  }

  function listObjectsV2(c: Ctx): void {
    const token = c.q.get('continuation-token');
    const startAfter = c.q.get('start-after') ?? '';
    const after = token === null ? startAfter : Buffer.from(token, 'base64url').toString('utf8');
    if (token !== null && !after) throw invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
    const r = listing(c, after);
    const next = r.truncated ? Buffer.from(r.last).toString('base64url') : undefined;
    const more = el({ KeyCount: r.count, ContinuationToken: token ?? undefined, NextContinuationToken: next, StartAfter: startAfter || undefined });
    sendXml(c, xmlDoc('ListBucketResult', r.head + more + r.body));
  }

  function listObjects(c: Ctx): void {
    const marker = c.q.get('marker') ?? '';
    const r = listing(c, marker);
    // NextMarker only with a delimiter, as S3 (without one, the last key listed is the next marker).
    const more = el({ Marker: marker, NextMarker: r.truncated && c.q.get('delimiter') ? r.last : undefined });
    sendXml(c, xmlDoc('ListBucketResult', r.head + more + r.body));
  }

  // ---- routing ---------------------------------------------------------------------------------------------

  /** The operation, as S3 tells them apart: method, bucket or object, subresources, copy source. */
  function operationOf(c: Ctx): [string, (c: Ctx) => void] {
    const m = c.req.method;
    const sub = [...c.q.keys()].filter((k) => k !== 'x-id' && k !== 'versionId');
    const only = (...allowed: string[]) => sub.every((k) => allowed.includes(k));
    const has = (k: string) => c.q.has(k);
    const copy = c.req.headers['x-amz-copy-source'] !== undefined;
    const unknown: [string, (c: Ctx) => void] = ['?', () => { throw notImplemented(); }];
    if (!c.bucket) return m === 'GET' && only() ? ['ListBuckets', listBuckets] : unknown;
    if (!c.key) {
      if (m === 'GET' && only(...LISTING_PARAMS)) return c.q.get('list-type') === '2' ? ['ListObjectsV2', listObjectsV2] : ['ListObjects', listObjects];
      if (m === 'PUT' && only()) return ['CreateBucket', createBucket];
      if (m === 'HEAD' && only()) return ['HeadBucket', headBucket];
      return unknown;
    }
    if (m === 'PUT' && has('uploadId') && only('uploadId', 'partNumber')) return copy ? ['UploadPartCopy', uploadPartCopy] : ['UploadPart', uploadPart];
    if (m === 'PUT' && has('tagging') && only('tagging')) return ['PutObjectTagging', putObjectTagging];
    if (m === 'PUT' && only()) return copy ? ['CopyObject', copyObject] : ['PutObject', putObject];
    if (m === 'GET' && has('uploadId') && only('uploadId', 'max-parts', 'part-number-marker')) return ['ListParts', listParts];
    if (m === 'GET' && has('tagging') && only('tagging')) return ['GetObjectTagging', getObjectTagging];
    if ((m === 'GET' || m === 'HEAD') && sub.every((k) => k === 'partNumber' || RESPONSE_OVERRIDE.test(k))) return [m === 'GET' ? 'GetObject' : 'HeadObject', getObject];
    if (m === 'DELETE' && has('uploadId') && only('uploadId')) return ['AbortMultipartUpload', abortMultipartUpload];
    if (m === 'DELETE' && only()) return ['DeleteObject', deleteObject];
    if (m === 'POST' && has('uploads') && only('uploads')) return ['CreateMultipartUpload', createMultipartUpload];
    if (m === 'POST' && has('uploadId') && only('uploadId')) return ['CompleteMultipartUpload', completeMultipartUpload];
    return unknown;
  }

  /** The access key of a SigV4 Authorization header (the signature is not checked), and the payload hash. */
  function authenticate(c: Ctx): void {
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\//.exec(c.req.headers.authorization ?? '');
    if (!m) throw fault(403, 'AccessDenied', 'Access Denied');
    if (m[1] !== accessKeyId) throw fault(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: m[1]! });
    const sha = c.req.headers['x-amz-content-sha256'];
    if (typeof sha !== 'string') throw fault(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
    if (sha.startsWith('STREAMING-')) throw notImplemented(); // aws-chunked: the proxy decodes it, this double does not
    if (sha === 'UNSIGNED-PAYLOAD') return;
    if (!/^[0-9a-f]{64}$/.test(sha)) throw invalidArgument('x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a valid sha256 value.', 'x-amz-content-sha256', sha);
    const computed = createHash('sha256').update(c.body).digest('hex');
    if (computed !== sha) {
      const extra = { ClientComputedContentSHA256: sha, S3ComputedContentSHA256: computed };
      throw fault(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", extra);
    }
  }

  function checkContentMd5(c: Ctx): void {
    const given = c.req.headers['content-md5'];
    if (typeof given !== 'string') return;
    if (Buffer.from(given, 'base64').length !== 16) throw fault(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.', { 'Content-MD5': given });
    const computed = md5(c.body).toString('base64');
    if (computed !== given) throw fault(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.', { ExpectedDigest: given, CalculatedDigest: computed });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://double');
    const [method, path, query, headers] = [req.method ?? 'GET', url.pathname, Object.fromEntries(url.searchParams), req.headers];
    const rec: RecordedRequest = { op: '', method, path, query, headers, status: 0, bodyBytesIn: 0, bodyBytesRequested: 0, bodyBytesOut: 0, aborted: false, done: false };
    requests.push(rec);
    const ended = new Promise<void>((resolve) =>
      res.on('close', () => {
        Object.assign(rec, { aborted: !res.writableFinished, done: true });
        pending.delete(ended);
        resolve();
      }),
    );
    pending.add(ended);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer);
    } catch {
      return; // the client went away mid-request
    }
    const [, bucket = '', ...key] = url.pathname.split('/');
    const requestId = (++counter).toString(16).toUpperCase().padStart(16, '0');
    const c: Ctx = { req, res, rec, body: Buffer.concat(chunks), bucket, key: key.join('/'), q: url.searchParams, requestId };
    rec.bodyBytesIn = c.body.length;
    try {
      [c.bucket, c.key] = [percentDecode(c.bucket), percentDecode(c.key)];
      authenticate(c);
      const [op, fn] = operationOf(c);
      rec.op = op;
      if (op === 'PutObject' || op === 'UploadPart') checkContentMd5(c);
      fn(c);
    } catch (e) {
      if (!(e instanceof S3Fault)) throw e;
      sendFault(c, e);
    }
  }

  const server = http.createServer((req, res) => void handle(req, res).catch((e: unknown) => res.destroy(e as Error)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    accessKeyId,
    secretAccessKey,
    region,
    requests,
    resetRequests: () => void requests.splice(0),
    idle: async () => {
      while (pending.size) await Promise.all([...pending]);
    },
    objects: {
      get: (bucket, key) => buckets.get(bucket)?.objects.get(key),
      put: (bucket, key, body, attrs = {}) => store(bucket, key, body, { contentType: 'binary/octet-stream', metadata: {}, headers: {}, tags: [], ...attrs }),
      delete: (bucket, key) => buckets.get(bucket)?.objects.delete(key) ?? false,
      keys: (bucket) => [...(buckets.get(bucket)?.objects.keys() ?? [])],
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One line per recorded request, for assertion messages and diagnostics. */
export function describeRequests(requests: readonly RecordedRequest[]): string {
  return requests
    .map((r) => {
      const q = new URLSearchParams(Object.entries(r.query).filter(([k]) => k !== 'x-id')).toString();
      const range = r.headers.range ? ` range=${r.headers.range}` : '';
      const ifMatch = r.headers['if-match'] ? ` if-match=${r.headers['if-match']}` : '';
      const body = `${r.bodyBytesOut}/${r.bodyBytesRequested} body bytes${r.aborted ? ' ABORTED' : ''}`;
      return `${r.op || '?'} ${r.method} ${r.path}${q ? '?' + q : ''}${range}${ifMatch} → ${r.status}, ${body}`;
    })
    .join('\n');
}
