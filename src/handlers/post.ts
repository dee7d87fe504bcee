/**
 * PostObject: browser form uploads (multipart/form-data) authenticated by a SigV4-signed policy document,
 * with the SSE-C trio as form fields. The policy is checked as S3 checks it; the file is then stored like a
 * PutObject (encrypted when the form carries SSE-C).
 *
 * The form is authenticated when its file part starts, before a byte of the file is read. The upstream needs a
 * Content-Length and a form gives the file's size only at its end, so the file is held until then on local
 * disk, encrypted under an ephemeral key (objects/spool.ts), up to MAX_POST_FILE bytes (S3 allows 5 GB).
 */
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { refuseOutsideAllowList } from '../s3/allow-list.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { ENVELOPE_META } from '../s3/headers.ts';
import { objectPath } from '../s3/operation.ts';
import { xmlEscape } from '../s3/xml.ts';
import { authenticatePost, checkPolicy, maxContentLength, type CredentialLookup } from '../sigv4/post-policy.ts';
import { parseCustomerKey, ssecEchoHeaders, type CustomerKey } from '../sse-c/customer-key.ts';
import type { UpstreamIdentity } from '../upstream.ts';
import { scoped } from '../sse-c/data-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { relayUpstreamError, type BucketContext } from '../context.ts';
import { postObjectPolicy } from '../policy/stored.ts';
import { remember } from '../objects/layout.ts';
import { spool, type Spooled } from '../objects/spool.ts';
import { sealingStages, streamUpload } from '../objects/write.ts';

export type { CredentialLookup };

export const MAX_POST_FILE = 256 * 1024 * 1024;
const MAX_FIELDS_BYTES = 64 * 1024;

interface Form {
  fields: Map<string, string>; // lower-case names
  /** The file, held until its end (its size is needed before the upstream PUT); never whole in memory. */
  file: Spooled;
  filename: string;
  fileContentType: string | undefined;
}

/**
 * Reads the form. S3 takes the fields before the file (and ignores any after it), so when the file starts
 * every field is known: `admit` authenticates and checks them then, before a byte of the file is read, and
 * gives the most file bytes to accept. A refused form is never read further.
 */
async function readForm(req: IncomingMessage, admit: (fields: Map<string, string>, filename: string) => number): Promise<Form> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fieldSize: MAX_FIELDS_BYTES, fields: 1000, files: 1, fileSize: MAX_POST_FILE + 1 } });
    } catch {
      reject(new S3Error('MalformedPOSTRequest', 'The body of your POST request is not well-formed multipart/form-data.', { status: 400 }));
      return;
    }
    const stop = (e: unknown) => {
      req.unpipe(bb);
      bb.removeAllListeners('close');
      reject(e);
    };
    const fields = new Map<string, string>();
    let fileSeen = false;
    let preFileBytes = 0;
    let file: Promise<Spooled> | undefined;
    let filename = '';
    let fileContentType: string | undefined;
    bb.on('field', (name, value) => {
      // S3 ignores fields after the file; the fields before it are bounded (read before authentication).
      if (fileSeen) return;
      preFileBytes += name.length + value.length;
      if (preFileBytes > MAX_FIELDS_BYTES) return stop(new S3Error('MaxPostPreDataLengthExceeded', 'Your POST request fields preceding the upload file were too large.'));
      fields.set(name.toLowerCase(), value);
    });
    bb.on('fieldsLimit', () => stop(new S3Error('MaxPostPreDataLengthExceeded', 'Your POST request fields preceding the upload file were too large.')));
    bb.on('file', (_name, stream, info) => {
      fileSeen = true;
      filename = info.filename ?? '';
      fileContentType = info.mimeType;
      let max: number;
      try {
        max = admit(fields, filename);
      } catch (e) {
        stop(e);
        return;
      }
      const tooLarge = () => new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', { extra: { MaxSizeAllowed: String(max) } });
      file = spool(stream, max, tooLarge);
      file.catch(stop);
    });
    bb.on('error', () => {
      // A file already held is let go: its spool is removed.
      file?.then((held) => held[Symbol.asyncDispose]()).catch(() => {});
      reject(new S3Error('MalformedPOSTRequest', 'The body of your POST request is not well-formed multipart/form-data.', { status: 400 }));
    });
    bb.on('close', () => {
      if (file === undefined) reject(new S3Error('InvalidArgument', 'POST requires exactly one file upload per request.', { extra: { ArgumentName: 'file', ArgumentValue: '0' } }));
      else file.then((held) => resolve({ fields, file: held, filename, fileContentType }), reject);
    });
    req.pipe(bb);
  });
}

export async function postObject(ctx: BucketContext, lookup: CredentialLookup, now: Date, secure: boolean): Promise<void> {
  const bucket = ctx.s3.bucket;
  let admitted: { identity: UpstreamIdentity; conditions: unknown[]; key: string; customerKey: CustomerKey | undefined } | undefined;
  const policy = await postObjectPolicy(ctx, bucket);
  const form = await readForm(ctx.req, (fields, filename) => {
    const { identity, buckets, conditions } = authenticatePost(fields, lookup, now, ctx.config.region);
    refuseOutsideAllowList(buckets, [bucket]);
    const rawKey = fields.get('key');
    if (!rawKey) throw new S3Error('InvalidArgument', 'Bucket POST must contain a field named \'key\'.', { extra: { ArgumentName: 'key' } });
    // Every condition but the file's size, before the file is read.
    checkPolicy(conditions, fields, bucket, undefined);
    const customerKey = parseCustomerKey(Object.fromEntries(fields), 'write');
    if (customerKey && !secure) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needTls);
    admitted = { identity, conditions, key: rawKey.replace(/\$\{filename\}/g, filename), customerKey };
    policy(admitted.key, fields.get('x-amz-server-side-encryption-customer-algorithm'));
    return Math.min(MAX_POST_FILE, maxContentLength(conditions));
  });
  await using file = form.file;
  ctx.stats.bytesIn += file.size;
  const { identity, conditions, key, customerKey } = admitted!;
  checkPolicy(conditions, form.fields, bucket, file.size);

  // Object headers come from the form's fields, as S3 takes them.
  const headers: Record<string, string> = {};
  for (const [name, v] of form.fields) {
    if (name.startsWith('x-amz-meta-') || ['cache-control', 'content-disposition', 'content-encoding', 'expires', 'x-amz-storage-class', 'x-amz-tagging', 'x-amz-acl'].includes(name)) {
      headers[name === 'x-amz-acl' ? 'x-amz-acl' : name] = v;
    }
  }
  if (form.fields.get('acl')) headers['x-amz-acl'] = form.fields.get('acl')!;
  headers['content-type'] = form.fields.get('content-type') ?? form.fileContentType ?? 'binary/octet-stream';
  let stages: ReturnType<typeof sealingStages>['stages'] = [];
  let length = file.size;
  const chunkSize = 2 ** ctx.config.chunkSizeLog2;
  if (customerKey) {
    const envelope = sealEnvelope({ customerKey: customerKey.key, bucket, key, chunkSizeLog2: ctx.config.chunkSizeLog2 });
    using dataKey = scoped(envelope.dataKey);
    const sealed = sealingStages({ dataKey, chunkSize, partNumber: 0, plainSize: file.size, given: () => ({}) });
    stages = sealed.stages;
    length = sealed.cipherSize;
    headers[ENVELOPE_META] = envelope.value;
  }
  const up = await streamUpload(ctx, { path: objectPath(bucket, key), query: [], headers, length }, file.read(), stages, identity);
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const etag = String(up.headers['etag'] ?? '');
  if (customerKey) remember(ctx, { bucket, key, etag }, { encrypted: true, size: file.size, chunkSize });
  const out: Record<string, string> = { 'x-amz-request-id': ctx.requestId, etag, ...(customerKey ? ssecEchoHeaders(customerKey) : {}) };
  const location = `/${encodeURIComponent(bucket)}/${encodeURIComponent(key)}`;
  const redirect = form.fields.get('success_action_redirect') ?? form.fields.get('redirect');
  if (redirect) {
    const url = new URL(redirect);
    url.searchParams.set('bucket', bucket);
    url.searchParams.set('key', key);
    url.searchParams.set('etag', etag);
    ctx.res.writeHead(303, { ...out, location: url.toString(), 'content-length': '0' });
    ctx.res.end();
    return;
  }
  const status = form.fields.get('success_action_status');
  if (status === '201') {
    const xml =
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<PostResponse><Location>${xmlEscape(location)}</Location><Bucket>${xmlEscape(bucket)}</Bucket>` +
      `<Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(etag)}</ETag></PostResponse>`;
    ctx.res.writeHead(201, { ...out, 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(xml)), location });
    ctx.res.end(xml);
    return;
  }
  ctx.res.writeHead(status === '200' ? 200 : 204, { ...out, location, 'content-length': '0' });
  ctx.res.end();
}
