/**
 * Re-sign requests for the upstream with the proxy's own credentials (header SigV4, via
 * @smithy/signature-v4 as the AWS SDKs do). The URL returned carries the path and query in exactly the form
 * that was signed (RFC 3986, query sorted), so the upstream's canonicalisation reproduces the signature.
 */

import { createHash, createHmac, createSecretKey, type Hash, type Hmac } from 'node:crypto';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { UNSIGNED_PAYLOAD, canonicalQueryFromRecord, percentDecodeBytes, uriEncodeBytes } from './canonical.ts';

export interface UpstreamSignerOptions {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
  /** @default 's3' */
  readonly service?: 's3';
}

export interface UpstreamRequest {
  readonly method: string;
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  /** Omit (or give the scheme's default) to leave the port out of `host`. */
  readonly port?: number;
  /**
   * The path as it will go on the wire, percent-encoded, starting with `/`. It is normalised to RFC 3986
   * (escapes decoded and re-encoded, upper-case hex); a raw `+` is taken as a literal plus and sent as `%2B`.
   */
  readonly path: string;
  /** Decoded query parameters; an empty string is a parameter without a value (`?uploads` → `uploads=`). */
  readonly query: Readonly<Record<string, string | readonly string[]>>;
  /**
   * Headers to send and sign (names in any case). Give `x-amz-content-sha256` (default UNSIGNED-PAYLOAD).
   * `host`, `x-amz-date` and `authorization` are generated; `date` is dropped. Hop-by-hop headers
   * (`connection`, `transfer-encoding`, `expect`, …) and `user-agent` are never signed.
   */
  readonly headers: Readonly<Record<string, string>>;
}

export interface SignedUpstreamRequest {
  /** All headers to send, lower-case names, including host, x-amz-date, x-amz-content-sha256, authorization. */
  readonly headers: Record<string, string>;
  /** Full URL, with path and query encoded exactly as signed. */
  readonly url: string;
}

export interface UpstreamSigner {
  sign(req: UpstreamRequest, opts?: { signingDate?: Date }): Promise<SignedUpstreamRequest>;
}

/** Normalise an on-the-wire path to RFC 3986 per segment, `+` kept as a literal plus. */
export function normaliseUpstreamPath(path: string): string {
  if (!path.startsWith('/')) throw new TypeError('upstream path must start with "/"');
  return path
    .split('/')
    .map((seg) => uriEncodeBytes(percentDecodeBytes(seg, false)))
    .join('/');
}

function hostHeader(req: UpstreamRequest): string {
  const host = req.hostname.includes(':') && !req.hostname.startsWith('[') ? `[${req.hostname}]` : req.hostname;
  const defaultPort = req.protocol === 'https:' ? 443 : 80;
  return req.port === undefined || req.port === defaultPort ? host : `${host}:${req.port}`;
}

/** Path, host and headers as they go on the wire, signed or not. */
function prepare(req: UpstreamRequest): { path: string; host: string; headers: Record<string, string> } {
  const path = normaliseUpstreamPath(req.path);
  const host = hostHeader(req);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    const lower = name.toLowerCase();
    if (Object.hasOwn(headers, lower)) throw new TypeError(`header given twice: ${lower}`);
    if (lower === 'host' || lower === 'authorization' || lower === 'x-amz-date' || lower === 'date') continue;
    headers[lower] = value;
  }
  headers['host'] = host;
  headers['x-amz-content-sha256'] ??= UNSIGNED_PAYLOAD;
  return { path, host, headers };
}

function urlOf(req: UpstreamRequest, host: string, path: string): string {
  const qs = canonicalQueryFromRecord(req.query);
  return `${req.protocol}//${host}${path}${qs === '' ? '' : `?${qs}`}`;
}

/**
 * An anonymous client's request as it goes to the upstream: the same path, query and headers, with no
 * signature at all, so the store's ACLs and policies decide as they would for the client directly.
 */
export function unsignedUpstreamRequest(req: UpstreamRequest): SignedUpstreamRequest {
  const { path, host, headers } = prepare(req);
  return { headers, url: urlOf(req, host, path) };
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytesOf(data: SourceData): string | Buffer {
  if (typeof data === 'string') return data;
  return ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);
}

/**
 * The signer's SHA-256 / HMAC-SHA256 (the smithy Checksum shape). Same bytes as @smithy/hash-node's `Hash`, but
 * binary HMAC keys become KeyObjects: node 24 pays ~14 µs more per HMAC with a Buffer key, and signing one
 * request takes several.
 */
class Sha256 {
  #hash!: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.reset();
  }
  update(data: SourceData, encoding?: 'utf8' | 'ascii' | 'latin1'): void {
    if (typeof data === 'string') this.#hash.update(data, encoding ?? 'utf8');
    else this.#hash.update(bytesOf(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.#hash.digest());
  }
  reset(): void {
    if (this.secret === undefined) {
      this.#hash = createHash('sha256');
      return;
    }
    const key = bytesOf(this.secret);
    this.#hash = createHmac('sha256', typeof key === 'string' ? key : createSecretKey(key));
  }
}

export function createUpstreamSigner(opts: UpstreamSignerOptions): UpstreamSigner {
  const signer = new SignatureV4({
    credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
    region: opts.region,
    service: opts.service ?? 's3',
    sha256: Sha256,
    uriEscapePath: false, // S3: the path is signed as sent, not double-encoded
    applyChecksum: false, // never hash a body here; x-amz-content-sha256 is set explicitly
  });

  return {
    async sign(req, signOpts = {}) {
      const { path, host, headers } = prepare(req);
      const query: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(req.query)) query[name] = typeof value === 'string' ? value : [...value];

      const request = new HttpRequest({
        method: req.method,
        protocol: req.protocol,
        hostname: req.hostname,
        ...(req.port === undefined ? {} : { port: req.port }),
        path,
        query,
        headers,
      });
      const signed = await signer.sign(request, { signingDate: signOpts.signingDate ?? new Date() });

      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(signed.headers)) out[name.toLowerCase()] = value;
      return { headers: out, url: urlOf(req, host, path) };
    },
  };
}
