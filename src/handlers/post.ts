/**
 * PostObject: browser form uploads (multipart/form-data) authenticated by a signed policy document (SigV4, or
 * SigV2 when allowed), with the SSE-C trio as form fields. The form is read as S3 reads it: the part named
 * `file` is the file, every other part is a field whatever its headers (python-requests sends each field
 * with a filename), names compare without case, and parts after the file are ignored. The policy is checked
 * as S3 checks it; the file is then stored like a PutObject (encrypted when the form carries SSE-C).
 *
 * The form is authenticated when its file part starts, before a byte of the file is read. The upstream needs a
 * Content-Length and a form gives the file's size only at its end, so the file is held until then on local
 * disk, encrypted under an ephemeral key (objects/spool.ts), up to MAX_POST_FILE bytes (S3 allows 5 GB).
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import busboy from 'busboy';
import { refuseOutsideAllowList } from '../s3/allow-list.ts';
import { requestTimeout, S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { encryptedEtag } from '../s3/etag.ts';
import { ENVELOPE_META } from '../s3/headers.ts';
import { objectPath } from '../s3/operation.ts';
import { parseTagging, parseXml, xmlEscape } from '../s3/xml.ts';
import { authenticatePost, checkPolicy, checkSize, isAnonymousForm, missingField, sizeRange, type CredentialLookup, type PostAuth } from '../sigv4/post-policy.ts';
import { ssecEchoHeaders } from '../sse-c/customer-key.ts';
import { scoped } from '../sse-c/data-key.ts';
import { sealEnvelope } from '../sse-c/envelope.ts';
import { relayUpstreamError, type BucketContext } from '../context.ts';
import { postObjectPolicy } from '../policy/stored.ts';
import { keyForWrite, planWrite, type WritePlan } from '../objects/keys.ts';
import { remember } from '../objects/layout.ts';
import { spool, type Spooled } from '../objects/spool.ts';
import { sealingStages, streamUpload, uploadSlot } from '../objects/write.ts';

export type { CredentialLookup };

export const MAX_POST_FILE = 256 * 1024 * 1024;
/** The fields before the file are read (and held) before anything is authenticated: bounded. */
const MAX_FIELDS_BYTES = 64 * 1024;

const tooManyFields = () => new S3Error('MaxPostPreDataLengthExceeded', 'Your POST request fields preceding the upload file were too large.', { extra: { MaxPostPreDataLengthBytes: String(MAX_FIELDS_BYTES) } });
const malformed = () => new S3Error('MalformedPOSTRequest', 'The body of your POST request is not well-formed multipart/form-data.', { status: 400 });

interface Form {
  /** Lower-case name → value; a repeated field's values joined with `,` (as S3's policy check reads them). */
  fields: Map<string, string>;
  /** Lower-case name → the name as sent (for messages). */
  names: Map<string, string>;
  /** The file, held until its end (its size is needed before the upstream PUT); never whole in memory. */
  file: Spooled;
  /** The file part's own Content-Type, when it had a filename (a bare `file` field has none). */
  fileContentType: string | undefined;
}

/**
 * Reads the form. When the file starts every field is known (S3 ignores fields after it): `admit`
 * authenticates and checks them then, before a byte of the file is read, and gives the most file bytes to
 * accept. A refused form is never read further.
 */
/** The fields before the file (read before the form is authenticated) must arrive within this, however slowly. */
const PRE_FILE_MS = 30_000;

async function readForm(
  req: IncomingMessage,
  idleMs: number,
  admit: (form: Pick<Form, 'fields' | 'names'>, filename: string | undefined) => number,
): Promise<Form> {
  let idle: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  try {
    return await readFormWithin(req, admit, (stop) => {
      // A client that stops sending (or drips its fields) is S3's RequestTimeout, so it cannot hold a
      // connection, an upload slot or a spool for ever.
      idle = setTimeout(() => stop(requestTimeout()), idleMs).unref();
      req.on('data', () => idle?.refresh());
      deadline = setTimeout(() => stop(requestTimeout(), true), PRE_FILE_MS).unref();
    });
  } finally {
    clearTimeout(idle);
    clearTimeout(deadline);
  }
}

function readFormWithin(
  req: IncomingMessage,
  admit: (form: Pick<Form, 'fields' | 'names'>, filename: string | undefined) => number,
  guard: (stop: (e: unknown, onlyBeforeFile?: boolean) => void) => void,
): Promise<Form> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fieldSize: MAX_FIELDS_BYTES, fields: 1000, files: 1000, fileSize: MAX_POST_FILE + 1 } });
    } catch {
      reject(malformed());
      return;
    }
    let failed = false;
    let fileSource: Readable | undefined;
    const stop = (e: unknown) => {
      if (failed) return;
      failed = true;
      req.unpipe(bb);
      bb.removeAllListeners('close');
      // A file being spooled ends with the form (its spool is removed).
      fileSource?.destroy(new Error('form refused'));
      reject(e);
    };
    const fields = new Map<string, string>();
    const names = new Map<string, string>();
    let preFileBytes = 0;
    const add = (name: string, value: string) => {
      preFileBytes += name.length + value.length;
      if (preFileBytes > MAX_FIELDS_BYTES) return stop(tooManyFields());
      const lower = name.toLowerCase();
      const before = fields.get(lower);
      fields.set(lower, before === undefined ? value : `${before},${value}`);
      if (!names.has(lower)) names.set(lower, name);
    };
    // Fields sent as file parts arrive as streams: the file waits until each is read.
    const pending: Array<Promise<void>> = [];
    let file: Promise<Spooled> | undefined;
    let fileContentType: string | undefined;
    const startFile = (source: Readable, filename: string | undefined) => {
      fileSource = source;
      source.on('error', () => {}); // its spool sees the failure; the form's own answer is `stop`'s
      file = Promise.all(pending).then(() => {
        if (failed) throw new Error('form refused');
        let max: number;
        try {
          max = admit({ fields, names }, filename);
        } catch (e) {
          source.resume();
          throw e;
        }
        const tooLarge = () => new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', { extra: { MaxSizeAllowed: String(max) } });
        return spool(source, max, tooLarge);
      });
      file.catch(stop);
    };
    bb.on('field', (name, value, info) => {
      if (file !== undefined) return; // after the file: ignored, as S3 does
      if (name.toLowerCase() === 'file') {
        // A `file` part without a filename (a text area): its content is the file, bounded like a field.
        if (info.valueTruncated) return stop(tooManyFields());
        startFile(Readable.from([Buffer.from(value, 'utf8')]), undefined);
        return;
      }
      add(name, value);
    });
    bb.on('fieldsLimit', () => {
      if (file === undefined) stop(tooManyFields());
    });
    bb.on('file', (name, stream, info) => {
      if (file !== undefined) {
        stream.resume();
        return;
      }
      if (name.toLowerCase() !== 'file') {
        // A field sent with a filename (python-requests' `files=`): still a field, bounded like one.
        const chunks: Buffer[] = [];
        let size = 0;
        pending.push(
          new Promise<void>((done) => {
            stream.on('data', (c: Buffer) => {
              size += c.length;
              if (preFileBytes + name.length + size > MAX_FIELDS_BYTES) {
                stream.resume();
                stop(tooManyFields());
                return;
              }
              chunks.push(c);
            });
            stream.on('end', () => {
              if (!failed) add(name, Buffer.concat(chunks).toString('utf8'));
              done();
            });
          }),
        );
        return;
      }
      fileContentType = info.mimeType;
      startFile(stream, info.filename);
    });
    bb.on('error', () => {
      // A file already held is let go: its spool is removed.
      file?.then((held) => held[Symbol.asyncDispose]()).catch(() => {});
      stop(malformed());
    });
    bb.on('close', () => {
      if (file === undefined) {
        stop(new S3Error('InvalidArgument', 'POST requires exactly one file upload per request.', { extra: { ArgumentName: 'file', ArgumentValue: '0' } }));
      } else file.then((held) => resolve({ fields, names, file: held, fileContentType }), stop);
    });
    guard((e, onlyBeforeFile) => {
      if (!onlyBeforeFile || file === undefined) stop(e);
    });
    req.pipe(bb);
  });
}

/** The object's headers from the form's fields, as S3 takes them (PutObject's headers, as fields). */
const HEADER_FIELDS = new Set([
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'expires',
  'x-amz-storage-class',
  'x-amz-acl',
  'x-amz-website-redirect-location',
  'x-amz-server-side-encryption',
  'x-amz-server-side-encryption-aws-kms-key-id',
  'x-amz-server-side-encryption-context',
  'x-amz-server-side-encryption-bucket-key-enabled',
]);

/** The `tagging` field (Tagging XML) as the x-amz-tagging header; not XML → MalformedXML, as S3. */
function taggingHeader(xml: string): string {
  parseXml(xml, { client: true });
  return new URLSearchParams(parseTagging(xml).map((t): [string, string] => [t.key, t.value])).toString();
}

export async function postObject(ctx: BucketContext, lookup: CredentialLookup, now: Date, secure: boolean): Promise<void> {
  const bucket = ctx.s3.bucket;
  let admitted: { auth: PostAuth | undefined; fields: Map<string, string>; key: string; plan: WritePlan } | undefined;
  // An anonymous form takes its upload slot (from the anonymous share) before its file is spooled: only the
  // store can refuse it, once it has the file, so anonymous spools are as bounded as anonymous uploads.
  let slot: Disposable | undefined;
  // The bucket's policy (its SSE-C conditions) is read before the form; its verdict on the fields comes with them.
  const policy = await postObjectPolicy(ctx, bucket);
  let form: Awaited<ReturnType<typeof readForm>>;
  try {
    form = await readForm(ctx.req, ctx.config.bodyIdleMs, ({ fields: sent, names }, filename) => {
      // `${filename}` is expanded in every field before the policy is checked (S3's rule); a file part without
      // a filename leaves it as it is, as S3 does.
      const fields = new Map(sent);
      if (filename !== undefined) for (const [n, v] of fields) fields.set(n, v.replaceAll('${filename}', filename));
      const key = fields.get('key');
      if (!key) throw missingField('key');
      // SSE-C, SSE-S3/KMS or the bucket's default, refused by the bucket's encryption policy before the file is read.
      const customerKey = (): WritePlan => {
        const plan = planWrite(ctx, Object.fromEntries(fields), bucket);
        if (plan && 'customerKey' in plan && !secure) throw new S3Error('InvalidRequest', SSEC_MESSAGES.needTls);
        return plan;
      };
      if (ctx.config.allowAnonymous && isAnonymousForm(fields)) {
        // No policy to check: S3 takes an anonymous form where the bucket lets anyone write; so does the store.
        slot = uploadSlot(ctx);
        admitted = { auth: undefined, fields, key, plan: customerKey() };
        policy(key, fields.get('x-amz-server-side-encryption-customer-algorithm'), true);
        return MAX_POST_FILE;
      }
      const auth = authenticatePost(fields, lookup, now, ctx.config.region, ctx.config.allowSigV2);
      refuseOutsideAllowList(auth.buckets, [bucket]);
      // Every condition but the file's size, before the file is read.
      checkPolicy(auth, fields, names, bucket);
      admitted = { auth, fields, key, plan: customerKey() };
      policy(key, fields.get('x-amz-server-side-encryption-customer-algorithm'), false);
      return Math.min(MAX_POST_FILE, sizeRange(auth.policy).max);
    });
  } catch (e) {
    slot?.[Symbol.dispose]();
    throw e;
  }
  await using file = form.file;
  ctx.stats.bytesIn += file.size;
  using _slot = slot;
  const { auth, fields, key, plan } = admitted!;
  if (auth) checkSize(auth.policy, file.size);
  const written = await keyForWrite(ctx, plan, bucket, key);
  const customerKey = written?.customerKey;
  using _externalKey = customerKey?.managed ? scoped(customerKey.key) : undefined;

  const headers: Record<string, string> = {};
  for (const [name, v] of fields) if (name.startsWith('x-amz-meta-') || HEADER_FIELDS.has(name)) headers[name] = v;
  const acl = fields.get('acl');
  if (acl) headers['x-amz-acl'] = acl;
  const tagging = fields.get('tagging');
  if (tagging !== undefined) headers['x-amz-tagging'] = taggingHeader(tagging);
  headers['content-type'] = fields.get('content-type') ?? form.fileContentType ?? 'binary/octet-stream';
  let stages: ReturnType<typeof sealingStages>['stages'] = [];
  let length = file.size;
  const chunkSize = 2 ** ctx.config.chunkSizeLog2;
  if (customerKey) {
    if (!customerKey.managed && headers['x-amz-server-side-encryption'] !== undefined) {
      throw new S3Error('InvalidArgument', 'Server Side Encryption with Customer provided key is incompatible with the encryption method specified', {
        extra: { ArgumentName: 'x-amz-server-side-encryption', ArgumentValue: headers['x-amz-server-side-encryption'].slice(0, 16) },
      });
    }
    const envelope = sealEnvelope({ customerKey: customerKey.key, bucket, key, chunkSizeLog2: ctx.config.chunkSizeLog2 });
    using dataKey = scoped(envelope.dataKey);
    const sealed = sealingStages({ dataKey, chunkSize, partNumber: 0, plainSize: file.size, given: () => ({}) });
    stages = sealed.stages;
    length = sealed.cipherSize;
    headers[ENVELOPE_META] = envelope.value;
    Object.assign(headers, written.meta);
  }
  // SSE-S3/KMS fields are the proxy's to serve (the store would apply its own encryption).
  for (const name of Object.keys(headers)) if (name.startsWith('x-amz-server-side-encryption')) delete headers[name];
  const up = await streamUpload(ctx, { path: objectPath(bucket, key), query: [], headers, length }, file.read(), stages, auth?.identity, slot);
  if (up.statusCode !== 200) return relayUpstreamError(ctx, up);
  const storedEtag = String(up.headers['etag'] ?? '');
  if (customerKey) remember(ctx, { bucket, key, etag: storedEtag }, { encrypted: true, size: file.size, chunkSize });
  const etag = customerKey ? encryptedEtag(storedEtag) : storedEtag;
  const version = up.headers['x-amz-version-id'];
  const out: Record<string, string> = {
    'x-amz-request-id': ctx.requestId,
    etag,
    ...(typeof version === 'string' ? { 'x-amz-version-id': version } : {}),
    ...(customerKey ? ssecEchoHeaders(customerKey) : {}),
  };
  // The object's URL, its key's `/` encoded as S3 encodes it there.
  const virtualHost = ctx.s3.pathStyleRawPath !== ctx.s3.rawPath;
  const location = `${secure ? 'https' : 'http'}://${ctx.req.headers.host ?? ''}${virtualHost ? '' : '/' + encodeURIComponent(bucket)}/${encodeURIComponent(key)}`;
  const redirect = redirectTo(fields.get('success_action_redirect') ?? fields.get('redirect'), bucket, key, etag);
  if (redirect !== undefined) {
    ctx.res.writeHead(303, { ...out, location: redirect, 'content-length': '0' });
    ctx.res.end();
    return;
  }
  const status = fields.get('success_action_status');
  if (status === '201') {
    const xml =
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<PostResponse><Location>${xmlEscape(location)}</Location><Bucket>${xmlEscape(bucket)}</Bucket>` +
      `<Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(etag)}</ETag></PostResponse>`;
    ctx.res.writeHead(201, { ...out, 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(xml)), location });
    ctx.res.end(xml);
    return;
  }
  // 200 or 204 (the default, and the answer to any other value), with an empty body.
  ctx.res.writeHead(status === '200' ? 200 : 204, { ...out, location, ...(status === '200' ? { 'content-length': '0' } : {}) });
  ctx.res.end();
}

/**
 * Where `success_action_redirect` sends the browser: the URL as given (its query kept as it is) with bucket,
 * key and etag appended, form-encoded. A URL S3 cannot read (not absolute http(s)) is as if absent.
 */
function redirectTo(url: string | undefined, bucket: string, key: string, etag: string): string | undefined {
  if (!url || !/^https?:\/\/[^/?#\s]/i.test(url)) return undefined;
  try {
    new URL(url);
  } catch {
    return undefined;
  }
  const hash = url.indexOf('#');
  const base = hash < 0 ? url : url.slice(0, hash);
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return base + sep + new URLSearchParams([['bucket', bucket], ['key', key], ['etag', etag]]).toString();
}
