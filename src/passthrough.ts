/**
 * Everything the proxy does not transform: streamed both ways by http-proxy-3, re-signed for the upstream.
 * The client's signature was verified before we get here; its Authorization never leaves the proxy.
 */
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { RequestContext } from './context.ts';
import { acceptBody } from './context.ts';
import { chain } from './objects/chain.ts';
import { uploadSlot } from './objects/write.ts';
import { clientResponseHeaders, forwardableRequestHeaders } from './s3/headers.ts';
import { canonicalPath, upstreamQuery } from './s3/operation.ts';
import { requestTimeout, S3Error } from './s3/errors.ts';
import type { Upstream } from './upstream.ts';

interface Prepared {
  path: string;
  headers: Record<string, string>;
}

/** Headers S3 wants signed when present (all x-amz-* must be). */
function mustSign(name: string): boolean {
  return name.startsWith('x-amz-') || name === 'content-md5' || name === 'content-type';
}

/** Passes a store's error answer on unchanged, noting its S3 error code (from the first bytes) for the access log. */
function errorCodeOf(stats: RequestContext['stats']): Transform {
  let head = '';
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (head.length < 1024) {
        head += chunk.toString('latin1', 0, 1024);
        const code = /<Code>([A-Za-z0-9.]{1,64})<\/Code>/.exec(head)?.[1];
        if (code) stats.code = code;
      }
      done(null, chunk);
    },
  });
}

export function createPassthrough(upstream: Upstream) {
  const agent =
    upstream.url.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, maxSockets: 256, ...(upstream.ca ? { ca: upstream.ca } : {}) })
      : new http.Agent({ keepAlive: true, maxSockets: 256 });
  const proxy = createProxyServer({
    target: upstream.url.origin,
    agent,
    changeOrigin: true,
    xfwd: false,
    selfHandleResponse: true,
    proxyTimeout: 300_000,
  });
  const prepared = new WeakMap<http.IncomingMessage, Prepared>();

  const outgoing = new WeakMap<http.IncomingMessage, http.ClientRequest>();
  /** Starts a request's body flowing, once its upstream headers are final. */
  const startBody = new WeakMap<http.IncomingMessage, () => void>();
  proxy.on('proxyReq', (proxyReq, req) => {
    outgoing.set(req, proxyReq);
    const p = prepared.get(req);
    if (!p) return;
    for (const name of proxyReq.getHeaderNames()) proxyReq.removeHeader(name);
    for (const [name, value] of Object.entries(p.headers)) proxyReq.setHeader(name, value);
    proxyReq.path = p.path;
    startBody.get(req)?.();
  });

  const stats = new WeakMap<http.IncomingMessage, RequestContext['stats']>();
  const started = new WeakMap<http.IncomingMessage, bigint>();
  const answered = new WeakMap<http.IncomingMessage, (status: number, headers: http.IncomingHttpHeaders) => void>();
  proxy.on('proxyReq', (_proxyReq, req) => started.set(req, process.hrtime.bigint()));
  proxy.on('proxyRes', (proxyRes, req, res) => {
    const t0 = started.get(req);
    if (t0 !== undefined) upstream.observer?.answered(proxyRes.statusCode ?? 0, Number(process.hrtime.bigint() - t0) / 1e9);
    answered.get(req)?.(proxyRes.statusCode ?? 0, proxyRes.headers);
    const headers = clientResponseHeaders(proxyRes.headers, { encrypted: false });
    res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
    const counted = stats.get(req);
    // An upstream failure mid-body can only be signalled by cutting the client's connection (chain destroys
    // the answer with it, and the store's answer when the client leaves).
    const stages = (proxyRes.statusCode ?? 0) >= 400 && counted ? [errorCodeOf(counted), res] : [res];
    chain(proxyRes, stages, () => {});
  });

  /**
   * `query` replaces the client's query (e.g. an upload id mapped back to the upstream's); `onAnswer` sees the
   * upstream's status and headers (e.g. to remember a plain object written through the proxy).
   */
  return async function passthrough(
    ctx: RequestContext,
    opts: {
      query?: Array<[string, string]>;
      dropHeaders?: string[];
      onAnswer?: (status: number, headers: http.IncomingHttpHeaders) => void;
    } = {},
  ): Promise<void> {
    const { req, res, s3 } = ctx;
    const all = forwardableRequestHeaders(req.headers);
    for (const h of opts.dropHeaders ?? []) delete all[h];
    const toSign: Record<string, string> = {};
    const unsigned: Record<string, string> = {};
    for (const [k, v] of Object.entries(all)) (mustSign(k) ? toSign : unsigned)[k] = v;
    // A signed hex payload hash stays: the upstream then checks the body itself.
    toSign['x-amz-content-sha256'] = /^[0-9a-f]{64}$/.test(ctx.payloadHash) || ctx.payloadHash.startsWith('STREAMING-UNSIGNED')
      ? ctx.payloadHash
      : 'UNSIGNED-PAYLOAD';
    const signed = await upstream.sign({
      identity: ctx.identity,
      method: req.method ?? 'GET',
      path: canonicalPath(s3.pathStyleRawPath),
      query: opts.query ?? upstreamQuery(s3.query),
      headers: toSign,
    });
    const headers: Record<string, string> = { ...unsigned, ...signed.headers };
    const cl = req.headers['content-length'];
    if (cl !== undefined) headers['content-length'] = cl;
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && cl === undefined) headers['transfer-encoding'] = 'chunked';
    prepared.set(req, { path: signed.url.slice(upstream.url.origin.length), headers });
    if (opts.onAnswer) answered.set(req, opts.onAnswer);
    stats.set(req, ctx.stats);
    // A body held open by a slow (or anonymous) client takes an upload slot like the proxy's own uploads, so
    // pass-through writes cannot hold every store connection either; refused before 100-continue.
    const hasBody = (cl !== undefined && cl !== '0') || te !== undefined;
    using _slot = hasBody ? uploadSlot(ctx) : undefined;
    acceptBody(req, res);
    // Node's client sends the headers at once when a request carries Expect, before 'proxyReq' could replace
    // them; the proxy has answered the 100 itself.
    delete req.headers.expect;
    ctx.stats.upstreamRequests++;
    // A body silent for `bodyIdleMs` ends the request (S3's RequestTimeout), as for the proxy's own uploads: a
    // slow client must not hold an upstream connection for ever.
    let idleOut = false;
    let body: Transform | undefined;
    if (hasBody) {
      const idle = setTimeout(() => {
        idleOut = true;
        // The upstream request is abandoned (nothing stored); the client still gets S3's answer.
        outgoing.get(req)?.destroy();
        body?.destroy();
      }, ctx.config.bodyIdleMs).unref();
      // Not a 'data' listener on req: that would start the body flowing before the upstream can take it.
      body = new Transform({
        transform(chunk: Buffer, _enc, done) {
          idle.refresh();
          done(null, chunk);
        },
      });
      req.once('close', () => clearTimeout(idle));
      const guard = body;
      startBody.set(req, () => req.pipe(guard));
    }
    await new Promise<void>((resolve, reject) => {
      res.on('finish', resolve);
      res.on('close', () => (idleOut ? reject(requestTimeout()) : resolve()));
      proxy.web(req, res, body ? { buffer: body } : {}, (err) => {
        if (idleOut) return reject(requestTimeout());
        upstream.observer?.failed();
        reject(
          err instanceof S3Error
            ? err
            : new S3Error('ServiceUnavailable', 'The upstream store is unreachable. Please retry.', { cause: err }),
        );
      });
    });
  };
}
