/**
 * PostObject: browser form uploads (multipart/form-data) authenticated by a SigV4-signed policy document,
 * with the SSE-C trio as form fields. The policy is checked as S3 checks it; the file is then stored like a
 * PutObject (encrypted when the form carries SSE-C).
 *
 * The upstream needs a Content-Length and a form gives the file's size only at its end, so the file is
 * buffered in memory, up to MAX_POST_FILE bytes (a documented limit; S3 allows 5 GB).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { encryptBuffer } from '../format/stream.ts';
import { refuseOutsideAllowList } from '../s3/allow-list.ts';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { ENVELOPE_META } from '../s3/headers.ts';
import { objectPath } from '../s3/operation.ts';
import { xmlEscape } from '../s3/xml.ts';
import { deriveSigningKey, parseAmzDate } from '../sigv4/canonical.ts';
import { parseCustomerKey, ssecEchoHeaders } from '../sse-c/customer-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import type { UpstreamIdentity } from '../upstream.ts';
import { dump } from '../upstream.ts';
import { relayUpstreamError, type RequestContext } from './context.ts';

export const MAX_POST_FILE = 256 * 1024 * 1024;
const MAX_FIELDS_BYTES = 64 * 1024;

export type CredentialLookup = (
  accessKeyId: string,
) => { secret: string; identity: UpstreamIdentity; buckets?: readonly string[] } | undefined;

interface Form {
  fields: Map<string, string>; // lower-case names
  file: Buffer;
  filename: string;
  fileContentType: string | undefined;
}

function denied(message: string): S3Error {
  return new S3Error('AccessDenied', message);
}

async function readForm(req: IncomingMessage): Promise<Form> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fieldSize: MAX_FIELDS_BYTES, files: 1, fileSize: MAX_POST_FILE + 1 } });
    } catch {
      reject(new S3Error('MalformedPOSTRequest', 'The body of your POST request is not well-formed multipart/form-data.', { status: 400 }));
      return;
    }
    const fields = new Map<string, string>();
    let file: Buffer | undefined;
    let filename = '';
    let fileContentType: string | undefined;
    bb.on('field', (name, value) => {
      if (file === undefined) fields.set(name.toLowerCase(), value);
    });
    bb.on('file', (_name, stream, info) => {
      filename = info.filename ?? '';
      fileContentType = info.mimeType;
      const chunks: Buffer[] = [];
      let n = 0;
      stream.on('data', (c: Buffer) => {
        n += c.length;
        chunks.push(c);
      });
      stream.on('limit', () => reject(new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', { extra: { MaxSizeAllowed: String(MAX_POST_FILE) } })));
      stream.on('end', () => (file = Buffer.concat(chunks, n)));
    });
    bb.on('error', () => reject(new S3Error('MalformedPOSTRequest', 'The body of your POST request is not well-formed multipart/form-data.', { status: 400 })));
    bb.on('close', () => {
      if (file === undefined) reject(new S3Error('InvalidArgument', 'POST requires exactly one file upload per request.', { extra: { ArgumentName: 'file', ArgumentValue: '0' } }));
      else resolve({ fields, file, filename, fileContentType });
    });
    req.pipe(bb);
  });
}

/** SigV4 POST authentication: x-amz-signature = HMAC(signing key, base64 policy). */
function authenticate(form: Form, lookup: CredentialLookup, now: Date, region: string) {
  const f = form.fields;
  if (f.has('awsaccesskeyid') || f.has('signature')) {
    throw new S3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  const policy = f.get('policy');
  const algorithm = f.get('x-amz-algorithm');
  const credential = f.get('x-amz-credential');
  const date = f.get('x-amz-date');
  const signature = f.get('x-amz-signature');
  if (!policy || !algorithm || !credential || !date || !signature) {
    throw new S3Error('InvalidArgument', 'Bucket POST must contain a policy, x-amz-algorithm, x-amz-credential, x-amz-date and x-amz-signature.');
  }
  if (algorithm !== 'AWS4-HMAC-SHA256') throw new S3Error('InvalidArgument', 'Only AWS4-HMAC-SHA256 is supported for POST.');
  const [accessKeyId, day, credRegion, service, terminator] = credential.split('/');
  if (!accessKeyId || !day || !credRegion || service !== 's3' || terminator !== 'aws4_request' || !date.startsWith(day)) {
    throw new S3Error('InvalidArgument', 'The x-amz-credential form field is malformed.');
  }
  if (credRegion !== region) throw new S3Error('AuthorizationHeaderMalformed', `the region '${credRegion}' is wrong; expecting '${region}'`);
  if (!parseAmzDate(date)) throw new S3Error('InvalidArgument', 'The x-amz-date form field is malformed.');
  const cred = lookup(accessKeyId);
  if (!cred) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  const expected = createHmac('sha256', deriveSigningKey(cred.secret, day, credRegion, 's3')).update(policy).digest('hex');
  if (!/^[0-9a-f]{64}$/.test(signature) || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  }
  let doc: { expiration?: string; conditions?: unknown[] };
  try {
    doc = JSON.parse(Buffer.from(policy, 'base64').toString('utf8')) as typeof doc;
  } catch {
    throw new S3Error('InvalidPolicyDocument', 'Invalid Policy: Invalid JSON.', { status: 400 });
  }
  const expiration = doc.expiration ? new Date(doc.expiration) : undefined;
  if (!expiration || Number.isNaN(expiration.getTime())) throw new S3Error('InvalidPolicyDocument', 'Invalid Policy: Policy missing expiration.', { status: 400 });
  if (expiration.getTime() < now.getTime()) throw denied('Invalid according to Policy: Policy expired.');
  return { identity: cred.identity, buckets: cred.buckets, conditions: Array.isArray(doc.conditions) ? doc.conditions : [] };
}

/** Every condition must hold, and every form field must be covered by one (S3's rule). */
function checkPolicy(conditions: unknown[], fields: Map<string, string>, bucket: string, size: number): void {
  const covered = new Set(['policy', 'x-amz-signature', 'file']);
  const value = (name: string) => (name === 'bucket' ? bucket : (fields.get(name) ?? ''));
  for (const c of conditions) {
    if (Array.isArray(c)) {
      const [op, a, b] = c as [string, unknown, unknown];
      if (String(op).toLowerCase() === 'content-length-range') {
        if (size < Number(a) || size > Number(b)) throw new S3Error('EntityTooLarge', 'Your proposed upload is outside the content-length-range of the policy.', { status: 400 });
        continue;
      }
      const name = String(a).replace(/^\$/, '').toLowerCase();
      covered.add(name);
      if (String(op).toLowerCase() === 'eq' && value(name) !== String(b)) throw denied(`Invalid according to Policy: Policy Condition failed: ["eq", "$${name}", "${String(b)}"]`);
      if (String(op).toLowerCase() === 'starts-with' && !value(name).startsWith(String(b))) {
        throw denied(`Invalid according to Policy: Policy Condition failed: ["starts-with", "$${name}", "${String(b)}"]`);
      }
    } else if (c && typeof c === 'object') {
      for (const [k, v] of Object.entries(c)) {
        const name = k.toLowerCase();
        covered.add(name);
        if (value(name) !== String(v)) throw denied(`Invalid according to Policy: Policy Condition failed: ["eq", "$${name}", "${String(v)}"]`);
      }
    }
  }
  const extra = [...fields.keys()].filter((n) => !covered.has(n) && !n.startsWith('x-ignore-'));
  if (extra.length) throw denied(`Invalid according to Policy: Extra input fields: ${extra.join(', ')}`);
}

export async function postObject(ctx: RequestContext, lookup: CredentialLookup, now: Date, secure: boolean): Promise<void> {
  const form = await readForm(ctx.req);
  ctx.stats.bytesIn += form.file.length;
  const bucket = ctx.s3.bucket!;
  const { identity, buckets, conditions } = authenticate(form, lookup, now, ctx.config.region);
  refuseOutsideAllowList(buckets, [bucket]);
  const rawKey = form.fields.get('key');
  if (!rawKey) throw new S3Error('InvalidArgument', 'Bucket POST must contain a field named \'key\'.', { extra: { ArgumentName: 'key' } });
  const key = rawKey.replace(/\$\{filename\}/g, form.filename);
  checkPolicy(conditions, form.fields, bucket, form.file.length);
  const customerKey = parseCustomerKey(Object.fromEntries(form.fields), 'write');
  if (customerKey && !secure) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needTls);

  // Object headers come from the form's fields, as S3 takes them.
  const headers: Record<string, string> = {};
  for (const [name, v] of form.fields) {
    if (name.startsWith('x-amz-meta-') || ['cache-control', 'content-disposition', 'content-encoding', 'expires', 'x-amz-storage-class', 'x-amz-tagging', 'x-amz-acl'].includes(name)) {
      headers[name === 'x-amz-acl' ? 'x-amz-acl' : name] = v;
    }
  }
  if (form.fields.get('acl')) headers['x-amz-acl'] = form.fields.get('acl')!;
  headers['content-type'] = form.fields.get('content-type') ?? form.fileContentType ?? 'binary/octet-stream';
  let body = form.file;
  if (customerKey) {
    const envelope = sealEnvelope({ customerKey: customerKey.key, bucket, key, chunkSizeLog2: ctx.config.chunkSizeLog2 });
    body = encryptBuffer(form.file, { dataKey: envelope.dataKey, chunkSize: envelope.chunkSize, partNumber: 0 });
    envelope.dataKey.fill(0);
    headers[ENVELOPE_META] = envelope.value;
  }
  headers['content-length'] = String(body.length);
  ctx.stats.upstreamRequests++;
  const up = await ctx.upstream.request({ identity, method: 'PUT', path: objectPath(bucket, key), headers, body });
  ctx.stats.upstreamStatus = up.statusCode;
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  await dump(up);
  const etag = String(up.headers['etag'] ?? '');
  if (customerKey) ctx.objects.set(bucket, key, etag, { encrypted: true, size: form.file.length, chunkSize: 2 ** ctx.config.chunkSizeLog2 });
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
