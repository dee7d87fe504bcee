/**
 * The path of every request: classify → TLS rule → authenticate → handler or pass-through. This is the single
 * place where errors become S3 XML answers and where each request's access-log line is written.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { Config } from './config.ts';
import { FormatError } from './format/errors.ts';
import { ClientGone, isClientAbort, type RequestContext } from './context.ts';
import { getObject } from './handlers/get.ts';
import { abortMultipartUpload, completeMultipartUpload, createMultipartUpload, listParts, uploadPart } from './handlers/multipart.ts';
import { getObjectAttributes } from './handlers/attributes.ts';
import { listBuckets, listObjects } from './handlers/list.ts';
import { postObject } from './handlers/post.ts';
import { putObject } from './handlers/put.ts';
import { copyObject, uploadPartCopy } from './handlers/copy.ts';
import { deleteBucketPolicy, getBucketPolicy, putBucketPolicy } from './handlers/bucket-policy.ts';
import { bucketEncryption } from './handlers/bucket-encryption.ts';
import type { Metrics } from './admin.ts';
import { createLogger } from './log.ts';
import { enforceBucketPolicy } from './policy/stored.ts';
import { ObjectInfoCache } from './objects/info-cache.ts';
import { createPassthrough } from './passthrough.ts';
import { copySourceBucket } from './s3/copy-source.ts';
import { S3Error, SSEC_MESSAGES, toXml } from './s3/errors.ts';
import { toStoreEntityTags } from './s3/etag.ts';
import { classify, type S3Request } from './s3/operation.ts';
import { COPY_SSEC_PREFIX, hasSsecHeaders, refuseKeyInQuery } from './sse-c/customer-key.ts';
import { classifyAuth, PAYLOAD_MODES, type VerifiedRequest } from './sigv4/verify.ts';
import { authenticateRequest } from './sigv2/verify.ts';
import { refuseOutsideAllowList } from './s3/allow-list.ts';
import { mapTransportError, type Upstream, type UpstreamIdentity } from './upstream.ts';

export interface PipelineDeps {
  readonly config: Config;
  readonly upstream: Upstream;
  /** Injected for tests. */
  readonly now?: () => Date;
  readonly log?: (line: Record<string, unknown>) => void;
  readonly metrics?: Metrics;
}

export function createRequestHandler(deps: PipelineDeps) {
  const { config, upstream } = deps;
  const now = deps.now ?? (() => new Date());
  const logger = deps.log ? undefined : createLogger(process.stdout, config.logLevel);
  const log =
    deps.log ??
    ((line: Record<string, unknown>) => {
      const { level, msg, ...fields } = line;
      if (level === 'warn') logger!.warn(fields, String(msg ?? 'request'));
      else logger!.info(fields, 'request');
    });
  const { metrics } = deps;
  const passthrough = createPassthrough(upstream);
  const objects = new ObjectInfoCache();

  // Client access key → (secret, upstream identity). Default: the upstream's own pair.
  const credentials = new Map<string, { secret: string; identity: UpstreamIdentity; buckets?: readonly string[] }>();
  for (const c of config.credentials) {
    credentials.set(c.accessKeyId, { secret: c.secretAccessKey, identity: c.upstream, ...(c.buckets ? { buckets: c.buckets } : {}) });
  }
  if (credentials.size === 0 && config.upstream) {
    const u = config.upstream;
    credentials.set(u.accessKeyId, { secret: u.secretAccessKey, identity: u });
  }

  /** The handler of each operation; what it does with the request is the handler's decision. */
  async function route(ctx: RequestContext): Promise<void> {
    const { s3 } = ctx;
    // Conditions name ETags as clients were given them; from here on, and upstream, they are the store's.
    toStoreEntityTags(ctx.req.headers);
    switch (s3.op) {
      case 'PutObject':
        return putObject({ ...ctx, s3 });
      case 'GetObject':
      case 'HeadObject':
        return getObject({ ...ctx, s3 });
      case 'CreateMultipartUpload':
        return createMultipartUpload({ ...ctx, s3 });
      case 'UploadPart':
        return uploadPart({ ...ctx, s3 });
      case 'CompleteMultipartUpload':
        return completeMultipartUpload({ ...ctx, s3 });
      case 'AbortMultipartUpload':
        return abortMultipartUpload({ ...ctx, s3 });
      case 'ListParts':
        return listParts({ ...ctx, s3 });
      case 'CopyObject':
        return copyObject({ ...ctx, s3 });
      case 'UploadPartCopy':
        return uploadPartCopy({ ...ctx, s3 });
      case 'PostObject':
        throw new Error('PostObject is authenticated by its form and handled before SigV4 verification');
      case 'ListObjects':
      case 'ListObjectsV2':
      case 'ListObjectVersions':
        return listObjects({ ...ctx, s3 });
      case 'GetObjectAttributes':
        return getObjectAttributes({ ...ctx, s3 });
      case 'ListBuckets':
        return listBuckets(ctx);
      case 'PutBucketPolicy':
        return putBucketPolicy({ ...ctx, s3 });
      case 'GetBucketPolicy':
        return getBucketPolicy({ ...ctx, s3 });
      case 'DeleteBucketPolicy':
        return deleteBucketPolicy({ ...ctx, s3 });
      case 'BucketOperation':
        // The bucket's default encryption is the proxy's (configuration), not the store's.
        if (s3.query.some(([k]) => k === 'encryption')) return bucketEncryption({ ...ctx, s3 });
        return passthrough(ctx);
      case 'ListMultipartUploads':
      case 'PreflightRequest':
      case 'DeleteObject':
      case 'ObjectSubresource':
        return passthrough(ctx);
      default: {
        const never: never = s3;
        throw new Error(`unhandled operation ${String((never as S3Request).op)}`);
      }
    }
  }

  return async function handle(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): Promise<void> {
    const requestId = newRequestId();
    const started = process.hrtime.bigint();
    let s3: S3Request | undefined;
    const stats: RequestContext['stats'] = { bytesIn: 0, bytesOut: 0, upstreamRequests: 0, upstreamBytesIn: 0 };
    let status = 0;
    let failure: S3Error | undefined;
    // The access key the request claims (signature checked or not yet), and whether a refusal came from
    // authentication or authorization.
    let accessKeyId: string | undefined;
    let refusedAuth = false;
    let formAuth = false;
    const authStep = async <T>(step: () => T | Promise<T>): Promise<T> => {
      try {
        return await step();
      } catch (e) {
        refusedAuth = true;
        throw e;
      }
    };
    const lookup = <T>(ak: string, get: (ak: string) => T): T => {
      accessKeyId = ak;
      return get(ak);
    };
    const encryption = watchEncryption(res);
    // Read now: a request's socket is gone from it once the connection closes.
    const client = req.socket.remoteAddress;
    const forwarded = forwardedFor(req, client, config);
    try {
      s3 = classify(req.method ?? 'GET', req.url ?? '/', req.headers, config.virtualHostDomain);
      if (!secure && (hasSsecHeaders(req.headers) || hasSsecHeaders(req.headers, COPY_SSEC_PREFIX))) {
        throw new S3Error('InvalidRequest', SSEC_MESSAGES.needTls);
      }
      if (hasSsecHeaders(req.headers) && req.headers['x-amz-server-side-encryption'] !== undefined) {
        // SSE-C together with SSE-S3 or SSE-KMS: S3 refuses the combination.
        throw new S3Error('InvalidArgument', 'Server Side Encryption with Customer provided key is incompatible with the encryption method specified', {
          extra: { ArgumentName: 'x-amz-server-side-encryption', ArgumentValue: String(req.headers['x-amz-server-side-encryption']).slice(0, 16) },
        });
      }
      const context = (identity: UpstreamIdentity | undefined, auth: VerifiedRequest | undefined, allowedBuckets?: readonly string[]): RequestContext => ({
        req,
        res,
        s3: s3!,
        identity,
        payloadHash: auth?.payloadHash ?? anonymousPayload(req.headers['x-amz-content-sha256']),
        auth,
        upstream,
        config,
        requestId,
        stats,
        passthrough,
        objects,
        ...(allowedBuckets ? { allowedBuckets } : {}),
      });
      if (s3.op === 'PostObject' && typeof req.headers.authorization !== 'string') {
        // Browser form uploads carry their signature (over a policy) in the form itself; postObject
        // re-signs as the identity of the form's credential. Its 403s are the form's signature or policy.
        formAuth = true;
        await postObject({ ...context(undefined, undefined), s3 }, (ak) => lookup(ak, (k) => credentials.get(k)), now(), secure);
        status = res.statusCode;
        return;
      }
      // A CORS preflight carries no credentials (browsers send none): the store's CORS rules answer it.
      // Anything else with no signature at all is an anonymous request: forwarded unsigned, never with a
      // credential of the proxy's, so the store's ACLs and policies decide as they would directly.
      if (s3.op === 'PreflightRequest' || classifyAuth({ url: req.url ?? '/', headers: req.headersDistinct }) === 'none') {
        await authStep(() => {
          if (s3!.op !== 'PreflightRequest' && !config.allowAnonymous) throw new S3Error('AccessDenied', 'Access Denied');
          if (String(req.headers['x-amz-content-sha256']).startsWith('STREAMING-AWS4-')) throw new S3Error('AccessDenied', 'Access Denied');
        });
        refuseKeyInQuery(s3.query, req.headers);
        const anonymous = context(undefined, undefined);
        if (s3.op !== 'PreflightRequest') await authStep(() => enforceBucketPolicy(anonymous));
        await route(anonymous);
        status = res.statusCode;
        return;
      }
      const auth = await authStep(() =>
        authenticateRequest(
          { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headersDistinct },
          {
            lookupSecret: (ak) => lookup(ak, (k) => credentials.get(k)?.secret),
            now: now(),
            region: config.region,
            maxSkewMs: config.maxClockSkewMs,
            allowSigV2: config.allowSigV2,
            resourcePath: s3!.pathStyleRawPath,
            defaultRegion: config.region,
          },
        ),
      );
      const credential = credentials.get(auth.accessKeyId)!;
      await authStep(() => refuseOutsideAllowList(credential.buckets, [s3!.bucket, copySourceBucket(req.headers['x-amz-copy-source'])]));
      refuseKeyInQuery(s3.query, req.headers);
      const ctx = context(credential.identity, auth, credential.buckets);
      await authStep(() => enforceBucketPolicy(ctx));
      await route(ctx);
      status = res.statusCode;
    } catch (e) {
      if (clientGone(e)) {
        // Nobody to answer: not the proxy's failure, nor the store's.
        res.destroy();
        status = CLIENT_CLOSED;
      } else {
        if (!res.headersSent) await drainShortBody(req);
        failure = toS3Error(e);
        status = sendError(req, res, failure, requestId, s3);
        if (status >= 500) log({ level: 'warn', requestId, msg: describe(e) });
        const integrity = integrityFailure(e);
        if (integrity) metrics?.integrityFailures.inc({ code: integrity });
        if ((refusedAuth || (formAuth && status === 403)) && status < 500) metrics?.authFailures.inc({ code: failure.code });
      }
    } finally {
      const sse = status >= 200 && status < 300 && s3 && OBJECT_DATA_OPS.has(s3.op) ? encryption() : undefined;
      if (sse) metrics?.objectRequests.inc({ operation: s3!.op, mode: sse });
      const line = {
        level: 'info',
        requestId,
        method: req.method,
        op: s3?.op,
        bucket: s3?.bucket,
        key: s3?.key,
        status,
        ...(failure ? { code: failure.code } : stats.code !== undefined ? { code: stats.code } : {}),
        ...(sse ? { sse } : {}),
        client,
        ...forwarded,
        ...(accessKeyId !== undefined ? { accessKeyId: accessKeyId.slice(0, 128) } : {}),
        ...(typeof req.headers['user-agent'] === 'string' ? { userAgent: req.headers['user-agent'].slice(0, 256) } : {}),
        bytesIn: stats.bytesIn,
        bytesOut: stats.bytesOut,
        upstreamStatus: stats.upstreamStatus,
        upstreamRequests: stats.upstreamRequests,
        upstreamBytesIn: stats.upstreamBytesIn,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      };
      log(line);
      metrics?.observe(line);
    }
  };
}

/** Request ids are cut from a pool of random bytes: one getrandom call per 512 requests rather than each. */
const ID_POOL = 4096;
let idPool = Buffer.alloc(0);
let idAt = 0;
function newRequestId(): string {
  if (idAt + 8 > idPool.length) {
    idPool = randomBytes(ID_POOL);
    idAt = 0;
  }
  idAt += 8;
  return idPool.toString('hex', idAt - 8, idAt).toUpperCase();
}

/**
 * The payload mode of an anonymous request: its own `x-amz-content-sha256` when it names one that needs no
 * signature (a hex SHA-256, which is then checked, or an unsigned mode), else UNSIGNED-PAYLOAD. Signed
 * streaming modes are refused when the body is read (their chunk signatures chain from a signature it lacks).
 */
function anonymousPayload(value: string | string[] | undefined): string {
  if (typeof value !== 'string') return 'UNSIGNED-PAYLOAD';
  return /^[0-9a-f]{64}$/.test(value) || PAYLOAD_MODES.has(value) ? value : 'UNSIGNED-PAYLOAD';
}

/** A refused request's unread body up to this size is read (and dropped) before the answer. */
const DRAIN_LIMIT = 1024 * 1024;
const DRAIN_MS = 1000;

/**
 * Reads and drops what is left of a short request body, for a bounded time: closing a connection with unread
 * bytes makes the kernel send a reset, and the client then sees a connection error instead of the S3 error
 * answer (an `Expect: 100-continue` client sent nothing yet; a long body is cut instead).
 */
async function drainShortBody(req: http.IncomingMessage): Promise<void> {
  if (req.complete || req.readableEnded || req.destroyed) return;
  if (String(req.headers.expect ?? '').toLowerCase() === '100-continue') return;
  const length = Number(req.headers['content-length'] ?? NaN);
  if (!Number.isSafeInteger(length) || length > DRAIN_LIMIT) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, DRAIN_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    req.once('end', done);
    req.once('error', done);
    req.resume();
  });
}

/** The access log's status for a request whose client went away before its answer (nginx's 499). */
const CLIENT_CLOSED = 499;

/**
 * The failure is the client's leaving (its connection closed mid-request), not an error of the proxy or the
 * store: only where that is known (ClientGone from the stages that can tell, or Node's abort of a request
 * body), never for a connection the proxy cut itself.
 */
function clientGone(e: unknown): boolean {
  return e instanceof ClientGone || isClientAbort(e);
}

/** Error kinds from below the edge, mapped to S3 answers. Never includes header values or keys. */
export function toS3Error(e: unknown): S3Error {
  if (e instanceof S3Error) return e;
  if (e instanceof FormatError) {
    if (e.code === 'EnvelopeUnsealFailed') return new S3Error('AccessDenied', SSEC_MESSAGES.wrongKey, { cause: e });
    return new S3Error('InternalError', 'The stored object failed its integrity check.', { cause: e });
  }
  // A store that resets or stalls mid-answer (after the request itself succeeded): retryable.
  const transport = mapTransportError(e);
  if (transport instanceof S3Error) return transport;
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.', { cause: e });
}

/** The format error code of a stored object that failed its integrity check (not a wrong key), or undefined. */
function integrityFailure(e: unknown): string | undefined {
  for (let c = e; c instanceof Error; c = c.cause) {
    if (c instanceof FormatError) return c.code === 'EnvelopeUnsealFailed' ? undefined : c.code;
  }
  return undefined;
}

/** Operations that read or write an object's data, counted by the encryption their answer reports. */
const OBJECT_DATA_OPS: ReadonlySet<S3Request['op']> = new Set([
  'PutObject',
  'PostObject',
  'GetObject',
  'HeadObject',
  'CopyObject',
  'CreateMultipartUpload',
  'UploadPart',
  'UploadPartCopy',
  'CompleteMultipartUpload',
  'GetObjectAttributes',
]);

export type EncryptionMode = 'plain' | 'sse-c' | 'sse-s3' | 'sse-kms';

/**
 * The encryption an answer reports to its client, read from the headers as they are written (handlers answer
 * with `writeHead`, whose headers `getHeader` does not see): SSE-C's algorithm echo, or SSE-S3/KMS's header.
 */
function watchEncryption(res: http.ServerResponse): () => EncryptionMode {
  let mode: EncryptionMode = 'plain';
  const writeHead = res.writeHead;
  res.writeHead = function (this: http.ServerResponse, ...args: unknown[]) {
    const given = args.find((a): a is Record<string, unknown> => typeof a === 'object' && a !== null && !Array.isArray(a));
    const header = (name: string) => given?.[name] ?? res.getHeader(name);
    const sse = String(header('x-amz-server-side-encryption') ?? '');
    if (header('x-amz-server-side-encryption-customer-algorithm') !== undefined) mode = 'sse-c';
    else if (sse === 'aws:kms') mode = 'sse-kms';
    else if (sse === 'AES256') mode = 'sse-s3';
    return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
  } as typeof res.writeHead;
  return () => mode;
}

/** The client's address as a trusted TLS-terminating peer reports it (X-Forwarded-For), for the access log. */
function forwardedFor(req: http.IncomingMessage, client: string | undefined, config: Config): { forwardedFor?: string } {
  const peer = client?.replace(/^::ffff:/, '');
  const value = req.headers['x-forwarded-for'];
  if (peer === undefined || typeof value !== 'string' || !config.http?.trustedProxies.includes(peer)) return {};
  return { forwardedFor: value.slice(0, 256) };
}

function describe(e: unknown): string {
  if (e instanceof S3Error) return `${e.code}: ${e.message}${e.cause ? ' (cause: ' + describe(e.cause) + ')' : ''}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

function sendError(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  err: S3Error,
  requestId: string,
  s3: S3Request | undefined,
): number {
  if (res.headersSent) {
    // Mid-body failure: the only honest signal left is a cut connection.
    res.destroy();
    return err.status;
  }
  const body = req.method === 'HEAD' ? '' : toXml(err, s3?.rawPath ?? '/', requestId);
  const headers: Record<string, string> = {
    ...err.headers,
    'content-type': 'application/xml',
    'content-length': String(Buffer.byteLength(body)),
    'x-amz-request-id': requestId,
  };
  // A body we did not read: close rather than drain an unknown amount.
  if (!req.complete && !req.readableEnded) {
    const expect = req.headers.expect?.toLowerCase() === '100-continue';
    if (!expect) headers['connection'] = 'close';
  }
  res.writeHead(err.status, headers);
  res.end(body);
  return err.status;
}

