/**
 * The listeners: HTTPS (and optional plain HTTP for sidecars), TLS certificate reload, and drain on shutdown.
 * Every request goes to the pipeline (pipeline.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { note } from './log.ts';
import { uploadsInUse } from './objects/write.ts';
import { createRequestHandler, type PipelineDeps } from './pipeline.ts';
import { S3Error, toXml } from './s3/errors.ts';

export { createRequestHandler, toS3Error } from './pipeline.ts';

export interface ProxyDeps extends PipelineDeps {
  /** PEM cert and key for the TLS listener. */
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer };
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

/** A TLS handshake must finish within this. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** A request's headers must arrive within this. */
const HEADERS_TIMEOUT_MS = 20_000;

function isLoopback(addr: string | undefined): boolean {
  return addr !== undefined && (addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.'));
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
  const tlsServer = https.createServer({ cert: deps.tls.cert, key: deps.tls.key, handshakeTimeout: HANDSHAKE_TIMEOUT_MS }, (req, res) => {
    void handle(req, res, true);
  });
  // TCP connections that have not finished TLS: the HTTP layer does not know them, so shutdown closes them
  // itself (a client that connects and never speaks must not keep the process alive).
  const handshaking = new Map<string, Socket>();
  const peer = (s: Socket) => `${s.remoteAddress}:${s.remotePort}`;
  tlsServer.on('connection', (raw: Socket) => {
    const id = peer(raw);
    handshaking.set(id, raw);
    raw.once('close', () => handshaking.get(id) === raw && handshaking.delete(id));
  });
  tlsServer.on('secureConnection', (s: Socket) => handshaking.delete(peer(s)));
  const files = deps.tlsFiles;
  const reload = () => {
    if (!files) return;
    try {
      tlsServer.setSecureContext({ cert: readFileSync(files.cert), key: readFileSync(files.key) });
      note(`reloaded the TLS certificate from ${files.cert}`);
    } catch (e) {
      // A half-written pair (cert replaced before key): keep serving the old one; the next change retries.
      note(`TLS certificate not reloaded: ${(e as Error).message}`);
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
  // Open client connections (TCP, TLS or not yet), for the saturation metrics.
  let connections = 0;
  deps.metrics?.watchSaturation({
    uploads: uploadsInUse,
    maxUploads: config.maxConcurrentUploads,
    connections: () => connections,
    maxConnections: config.maxConnections * servers.length,
  });
  for (const s of servers) {
    s.on('connection', (socket: Socket) => {
      connections++;
      socket.once('close', () => connections--);
    });
    s.on('drop', () => deps.metrics?.connectionsDropped.inc());
    s.keepAliveTimeout = 20_000;
    s.requestTimeout = 0; // uploads of many GiB are legitimate; a stalled body is cut by its own idle timeout
    s.headersTimeout = HEADERS_TIMEOUT_MS;
    s.maxConnections = config.maxConnections;
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
      for (const raw of handshaking.values()) raw.destroy();
      const deadline = Date.now() + graceMs;
      while (inflight > 0 && Date.now() < deadline) {
        for (const s of servers) s.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const s of servers) s.closeAllConnections();
      for (const raw of handshaking.values()) raw.destroy();
      if (files) for (const f of [files.cert, files.key]) unwatchFile(f, reload);
      await closed;
    },
  };
}
