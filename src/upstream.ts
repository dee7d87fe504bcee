/**
 * The upstream S3 store: one undici Agent, one signer per upstream identity. Every request the proxy makes on
 * its own account (handlers) goes through `request`; transport failures become typed S3 errors.
 */
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import { S3Error } from './s3/errors.ts';
import { createUpstreamSigner, unsignedUpstreamRequest } from './sigv4/sign.ts';

export interface UpstreamIdentity {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface UpstreamRequest {
  /** Whose signature the upstream sees; `undefined` for an anonymous client (sent unsigned). */
  identity: UpstreamIdentity | undefined;
  method: string;
  /** Percent-encoded path, e.g. `/bucket/a%20b`. */
  path: string;
  query?: ReadonlyArray<readonly [string, string]>;
  /** Lower-case names. `x-amz-content-sha256` defaults to UNSIGNED-PAYLOAD. */
  headers?: Record<string, string>;
  body?: Readable | Buffer | string;
  signal?: AbortSignal;
}

export type UpstreamResponse = Dispatcher.ResponseData;

type Signer = ReturnType<typeof createUpstreamSigner>;

/** Metrics hooks: an answer (status, seconds to its headers), or a failure without one. */
export interface UpstreamObserver {
  answered(status: number, seconds: number): void;
  failed(): void;
}

/** Waiting for an answer's headers (a PUT's starts once its body is sent): a store stuck longer is down. */
const HEADERS_TIMEOUT_MS = 60_000;
/** Silence inside an answer's body. */
const BODY_TIMEOUT_MS = 30_000;

export class Upstream {
  readonly url: URL;
  readonly region: string;
  readonly agent: Agent;
  /**
   * Streamed request bodies (uploads) have connections of their own: clients that upload slowly hold those,
   * never the ones reads need.
   */
  readonly uploadAgent: Agent;
  private readonly signers = new Map<string, Signer>();

  /** Metrics hooks, also called by the pass-through for the requests it makes. */
  readonly observer: UpstreamObserver | undefined;

  /** Extra CAs trusted for an https upstream (with the system's). */
  readonly ca: string[] | undefined;

  constructor(url: string, region: string, opts: { connections?: number; uploadConnections?: number; observer?: UpstreamObserver; ca?: string } = {}) {
    this.url = new URL(url);
    this.region = region;
    this.observer = opts.observer;
    this.ca = opts.ca ? [...tls.rootCertificates, opts.ca] : undefined;
    const options = {
      ...(this.ca ? { connect: { ca: this.ca, timeout: 10_000 } } : { connect: { timeout: 10_000 } }),
      keepAliveTimeout: 30_000,
      connections: opts.connections ?? 128,
      headersTimeout: HEADERS_TIMEOUT_MS,
      bodyTimeout: BODY_TIMEOUT_MS,
    };
    this.agent = new Agent(options);
    // As many as uploads may run at once (maxConcurrentUploads): an admitted upload never waits in a queue.
    this.uploadAgent = new Agent({ ...options, connections: opts.uploadConnections ?? options.connections });
  }

  private signer(identity: UpstreamIdentity): Signer {
    const id = `${identity.accessKeyId}\u0000${identity.secretAccessKey}`;
    let s = this.signers.get(id);
    if (!s) {
      s = createUpstreamSigner({ ...identity, region: this.region });
      this.signers.set(id, s);
    }
    return s;
  }

  /** Headers and URL for a request, signed for the upstream. Also used by the pass-through. */
  async sign(r: Omit<UpstreamRequest, 'body' | 'signal'>): Promise<{ url: string; headers: Record<string, string> }> {
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of r.query ?? []) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const headers: Record<string, string> = { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...r.headers };
    const request = {
      method: r.method,
      protocol: this.url.protocol as 'http:' | 'https:',
      hostname: this.url.hostname,
      ...(this.url.port ? { port: Number(this.url.port) } : {}),
      path: r.path,
      query,
      headers,
    };
    return r.identity ? this.signer(r.identity).sign(request) : unsignedUpstreamRequest(request);
  }

  async request(r: UpstreamRequest): Promise<UpstreamResponse> {
    const signed = await this.sign(r);
    const started = process.hrtime.bigint();
    try {
      const streamed = r.body !== undefined && typeof r.body !== 'string' && !Buffer.isBuffer(r.body);
      const res = await (streamed ? this.uploadAgent : this.agent).request({
        origin: this.url.origin,
        path: signed.url.slice(this.url.origin.length),
        method: r.method as Dispatcher.HttpMethod,
        headers: signed.headers,
        body: r.body ?? null,
        signal: r.signal ?? null,
      });
      this.observer?.answered(res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
      return res;
    } catch (e) {
      this.observer?.failed();
      throw mapTransportError(e);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.agent.close(), this.uploadAgent.close()]);
  }
}

/** undici failures → S3 errors the client can act on (retry on 503), keeping the cause for logs. */
export function mapTransportError(e: unknown): unknown {
  if (e instanceof S3Error) return e;
  if (e instanceof Error && e.name === 'AbortError') return e;
  if (e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError) {
    return new S3Error('ServiceUnavailable', 'The upstream store did not answer in time. Please retry.', { cause: e });
  }
  // undici's own errors, and the system's (ECONNRESET, EPIPE, EAI_AGAIN…: not Node's ERR_* nor format codes).
  if (e instanceof undiciErrors.UndiciError || /^E(?!RR_)[A-Z_]+$/.test(String((e as NodeJS.ErrnoException)?.code ?? ''))) {
    return new S3Error('ServiceUnavailable', 'The upstream store is unreachable. Please retry.', { cause: e });
  }
  return e;
}

/** An upstream answer released when its `await using` scope ends: an unread body is dumped then. */
export type OwnedResponse = UpstreamResponse & AsyncDisposable;

/**
 * undici's rule is "always consume or dump a body": `await using up = owned(res)` does it at scope exit
 * for every path (returns, throws), instead of a dump by hand on each. A body that was read, piped or
 * destroyed is left as it is.
 */
export function owned(res: UpstreamResponse): OwnedResponse {
  if (Symbol.asyncDispose in res) return res as OwnedResponse;
  return Object.assign(res, {
    [Symbol.asyncDispose]: async () => {
      const body = res.body;
      if (body.destroyed || body.readableEnded || body.readableDidRead) return;
      await dump(res);
    },
  });
}

/** Always consume or dump a body we do not forward, so the connection returns to the pool. */
export async function dump(res: UpstreamResponse): Promise<void> {
  try {
    await res.body.dump();
  } catch {
    /* the connection is discarded instead */
  }
}

/** Reads an upstream error body (small XML) to pass the upstream's own S3 error to the client; cut at `limit`. */
export async function readText(res: UpstreamResponse, limit = 64 * 1024): Promise<string> {
  return Buffer.concat((await collect(res, limit)).chunks).toString('utf8');
}

/** A whole upstream body of at most `limit` bytes; undefined (and the body destroyed) for a longer one. */
export async function readBytes(res: UpstreamResponse, limit: number): Promise<Buffer | undefined> {
  const { chunks, over } = await collect(res, limit);
  return over ? undefined : Buffer.concat(chunks);
}

async function collect(res: UpstreamResponse, limit: number): Promise<{ chunks: Buffer[]; over: boolean }> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      res.body.destroy();
      return { chunks, over: true };
    }
    chunks.push(b);
  }
  return { chunks, over: false };
}
