/**
 * The listeners and the path of every request: classify → TLS rule → authenticate → handler or pass-through.
 * This is the single place where errors become S3 XML answers.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Config } from './config.ts';
import { FormatError } from './format/errors.ts';
import type { RequestContext } from './handlers/context.ts';
import { getObject } from './handlers/get.ts';
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  listParts,
  uploadPart,
} from './handlers/multipart.ts';
import { getObjectAttributes } from './handlers/attributes.ts';
import { listObjects } from './handlers/list.ts';
import { postObject } from './handlers/post.ts';
import { putObject, uploadDecoded } from './handlers/put.ts';
import type { Metrics } from './admin.ts';
import { createLogger } from './log.ts';
import { ObjectInfoCache } from './object-info.ts';
import { createPassthrough } from './passthrough.ts';
import { S3Error, SSEC_MESSAGES, toXml } from './s3/errors.ts';
import { classify, queryGet, upstreamQuery, type S3Request } from './s3/operation.ts';
import { parseUploadId } from './sse-c/upload-id.ts';
import { copyObject, refuseEncryptedCopySource, uploadPartCopy } from './handlers/copy.ts';
import { COPY_SSEC_PREFIX, hasSsecHeaders, parseCustomerKey } from './sse-c/customer-key.ts';
import { verifyRequest, type VerifiedRequest } from './sigv4/verify.ts';
import { copySourceBucket, refuseOutsideAllowList } from './s3/allow-list.ts';
import type { Upstream, UpstreamIdentity } from './upstream.ts';

export interface ProxyDeps {
  readonly config: Config;
  readonly upstream: Upstream;
  /** PEM cert and key for the TLS listener. */
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Injected for tests. */
  readonly now?: () => Date;
  readonly log?: (line: Record<string, unknown>) => void;
  readonly metrics?: Metrics;
  /** Certificate and key files to watch: replaced files are loaded for new connections, none is dropped. */
  readonly tlsFiles?: { readonly cert: string; readonly key: string };
}

export interface RunningProxy {
  readonly https: https.Server;
  readonly http: http.Server | undefined;
  /** Actual addresses after listen (port 0 resolved). */
  readonly httpsPort: number;
  readonly httpPort: number | undefined;
  close(graceMs?: number): Promise<void>;
}

function isLoopback(addr: string | undefined): boolean {
  return addr !== undefined && (addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.'));
}

export function createRequestHandler(deps: ProxyDeps) {
  const { config, upstream } = deps;
  const now = deps.now ?? (() => new Date());
  const logger = deps.log ? undefined : createLogger();
  const log =
    deps.log ??
    ((line: Record<string, unknown>) => {
      const { level, msg, ...fields } = line;
      if (level === 'warn') logger!.warn(fields, String(msg ?? ''));
      else logger!.info(fields, 'request');
    });
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

  async function route(ctx: RequestContext): Promise<void> {
    const { req, s3 } = ctx;
    switch (s3.op) {
      case 'PutObject': {
        const key = parseCustomerKey(req.headers, 'write');
        if (key) return putObject(ctx, key);
        if (ctx.payloadHash.startsWith('STREAMING-')) return uploadDecoded(ctx, upstreamQuery(s3.query));
        // A plain object written through this replica needs no HEAD when a listing shows it.
        const size = Number(req.headers['content-length']);
        return passthrough(ctx, {
          onAnswer: (status, h) => {
            if (status === 200 && typeof h.etag === 'string' && Number.isSafeInteger(size)) {
              ctx.objects.set(s3.bucket!, s3.key!, h.etag, { encrypted: false, size });
            }
          },
        });
      }
      case 'GetObject':
      case 'HeadObject':
        return getObject(ctx);
      case 'CreateMultipartUpload': {
        const key = parseCustomerKey(req.headers, 'write');
        // Part checksums are verified by the proxy and not forwarded, so the upstream must not expect them.
        return key ? createMultipartUpload(ctx, key) : passthrough(ctx, { dropHeaders: ['x-amz-checksum-algorithm', 'x-amz-checksum-type'] });
      }
      case 'UploadPart':
        return uploadPart(ctx);
      case 'CompleteMultipartUpload':
        return completeMultipartUpload(ctx);
      case 'AbortMultipartUpload':
        return abortMultipartUpload(ctx);
      case 'ListParts':
        return listParts(ctx);
      case 'CopyObject':
        return copyObject(ctx);
      case 'UploadPartCopy': {
        const sseUpload = parseUploadId(queryGet(s3.query, 'uploadId') ?? '').tag !== undefined;
        if (sseUpload || hasSsecHeaders(req.headers) || hasSsecHeaders(req.headers, COPY_SSEC_PREFIX)) {
          return uploadPartCopy(ctx);
        }
        // An upstream copy of an encrypted source would carry its envelope to a name it is not bound to.
        await refuseEncryptedCopySource(ctx);
        return passthrough(ctx);
      }
      case 'PostObject':
        throw new Error('PostObject is authenticated by its form and handled before SigV4 verification');
      case 'ListObjects':
      case 'ListObjectsV2':
      case 'ListObjectVersions':
        return listObjects(ctx);
      case 'GetObjectAttributes':
        return getObjectAttributes(ctx);
      case 'ListBuckets':
      case 'ListMultipartUploads':
      case 'BucketOperation':
      case 'DeleteObject':
      case 'ObjectSubresource':
        return passthrough(ctx);
      default: {
        const never: never = s3.op;
        throw new Error(`unhandled operation ${String(never)}`);
      }
    }
  }

  return async function handle(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    const started = process.hrtime.bigint();
    let s3: S3Request | undefined;
    const stats: RequestContext['stats'] = { bytesIn: 0, bytesOut: 0, upstreamRequests: 0, upstreamBytesIn: 0 };
    let status = 0;
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
      const context = (identity: UpstreamIdentity, auth: VerifiedRequest | undefined): RequestContext => ({
        req,
        res,
        s3: s3!,
        identity,
        payloadHash: auth?.payloadHash ?? 'UNSIGNED-PAYLOAD',
        auth: auth as VerifiedRequest, // undefined only for PostObject, which never reads it
        upstream,
        config,
        requestId,
        stats,
        passthrough,
        objects,
      });
      if (s3.op === 'PostObject' && typeof req.headers.authorization !== 'string') {
        // Browser form uploads carry their signature (over a policy) in the form itself; postObject
        // re-signs as the identity of the form's credential.
        await postObject(context({ accessKeyId: '', secretAccessKey: '' }, undefined), (ak) => credentials.get(ak), now(), secure);
        status = res.statusCode;
        return;
      }
      const auth = verifyRequest(
        { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headersDistinct },
        {
          lookupSecret: (ak) => credentials.get(ak)?.secret,
          now: now(),
          region: config.region,
          maxSkewMs: config.maxClockSkewMs,
        },
      );
      const credential = credentials.get(auth.accessKeyId)!;
      refuseOutsideAllowList(credential.buckets, [s3.bucket, copySourceBucket(req.headers['x-amz-copy-source'])]);
      const ctx = context(credential.identity, auth);
      await route(ctx);
      status = res.statusCode;
    } catch (e) {
      status = sendError(req, res, e, requestId, s3);
      if (status >= 500) log({ level: 'warn', requestId, msg: describe(e) });
    } finally {
      const line = {
        level: 'info',
        requestId,
        op: s3?.op,
        bucket: s3?.bucket,
        key: s3?.key,
        status,
        bytesIn: stats.bytesIn,
        bytesOut: stats.bytesOut,
        upstreamStatus: stats.upstreamStatus,
        upstreamRequests: stats.upstreamRequests,
        upstreamBytesIn: stats.upstreamBytesIn,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      };
      log(line);
      deps.metrics?.observe(line);
    }
  };
}

/** Error kinds from below the edge, mapped to S3 answers. Never includes header values or keys. */
export function toS3Error(e: unknown): S3Error {
  if (e instanceof S3Error) return e;
  if (e instanceof FormatError) {
    if (e.code === 'EnvelopeUnsealFailed') return new S3Error('AccessDenied', SSEC_MESSAGES.wrongKey, { cause: e });
    return new S3Error('InternalError', 'The stored object failed its integrity check.', { cause: e });
  }
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.', { cause: e });
}

function describe(e: unknown): string {
  if (e instanceof S3Error) return `${e.code}: ${e.message}${e.cause ? ' (cause: ' + describe(e.cause) + ')' : ''}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

function sendError(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  e: unknown,
  requestId: string,
  s3: S3Request | undefined,
): number {
  const err = toS3Error(e);
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

/** Node's own parse errors (oversize headers, malformed requests) answered as S3 would. */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const e = tooLarge
    ? new S3Error('RequestHeaderSectionTooLarge', 'Your request header section exceeds the maximum allowed size.')
    : new S3Error('InvalidRequest', 'The request could not be parsed.', { status: 400 });
  const body = toXml(e, '/', randomBytes(8).toString('hex').toUpperCase());
  socket.end(
    `HTTP/1.1 ${e.status} Bad Request\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export async function startProxy(deps: ProxyDeps): Promise<RunningProxy> {
  const { config } = deps;
  const inner = createRequestHandler(deps);
  // In-flight requests, for draining on shutdown.
  let inflight = 0;
  const handle = (req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): Promise<void> => {
    inflight++;
    deps.metrics?.inflight.inc();
    res.once('close', () => {
      inflight--;
      deps.metrics?.inflight.dec();
    });
    return inner(req, res, secure);
  };
  const tlsServer = https.createServer({ cert: deps.tls.cert, key: deps.tls.key }, (req, res) => {
    void handle(req, res, true);
  });
  const files = deps.tlsFiles;
  const reload = () => {
    if (!files) return;
    try {
      tlsServer.setSecureContext({ cert: readFileSync(files.cert), key: readFileSync(files.key) });
      process.stderr.write(`reloaded the TLS certificate from ${files.cert}\n`);
    } catch (e) {
      // A half-written pair (cert replaced before key): keep serving the old one; the next change retries.
      process.stderr.write(`TLS certificate not reloaded: ${(e as Error).message}\n`);
    }
  };
  if (files) for (const f of [files.cert, files.key]) watchFile(f, { interval: 1000 }, reload);
  const servers: Array<http.Server | https.Server> = [tlsServer];
  let plain: http.Server | undefined;
  if (config.http) {
    const { allowSsecFromLoopback, trustedProxies } = config.http;
    /**
     * Plain HTTP counts as secure for SSE-C only from loopback (when allowed), or from a configured
     * TLS-terminating peer that says the client's leg was HTTPS.
     */
    const secure = (req: http.IncomingMessage) => {
      const peer = req.socket.remoteAddress?.replace(/^::ffff:/, '');
      if (allowSsecFromLoopback && isLoopback(req.socket.remoteAddress)) return true;
      return peer !== undefined && trustedProxies.includes(peer) && String(req.headers['x-forwarded-proto']).toLowerCase() === 'https';
    };
    plain = http.createServer((req, res) => void handle(req, res, secure(req)));
    plain.on('checkContinue', (req, res) => void handle(req, res, secure(req)));
    servers.push(plain);
  }
  // Expect: 100-continue is answered by the handlers once the headers passed every check (auth, SSE-C).
  tlsServer.on('checkContinue', (req, res) => void handle(req, res, true));
  for (const s of servers) {
    s.keepAliveTimeout = 20_000;
    s.requestTimeout = 0; // uploads of many GiB are legitimate
    s.headersTimeout = 60_000;
    s.on('clientError', onClientError);
  }
  const listen = (s: http.Server, host: string, port: number) =>
    new Promise<number>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => resolve((s.address() as AddressInfo).port));
    });
  const httpsPort = await listen(tlsServer, config.listen.host, config.listen.port);
  const httpPort = plain && config.http ? await listen(plain, config.http.host, config.http.port) : undefined;
  return {
    https: tlsServer,
    http: plain,
    httpsPort,
    httpPort,
    /**
     * Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts the rest: a cut upload's
     * upstream request is aborted before its final chunk, so no partial object is ever stored.
     */
    async close(graceMs = Infinity) {
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      const deadline = Date.now() + graceMs;
      while (inflight > 0 && Date.now() < deadline) {
        for (const s of servers) s.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const s of servers) s.closeAllConnections();
      if (files) for (const f of [files.cert, files.key]) unwatchFile(f, reload);
      await closed;
    },
  };
}
