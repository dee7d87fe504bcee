/**
 * Header names and the rules for what crosses the proxy in each direction.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { encryptedEtag } from './etag.ts';

/** The user-metadata entry holding the sealed envelope. Never shown to clients, never accepted from them. */
export const ENVELOPE_META = 'x-amz-meta-s3-ssec-proxy';
/**
 * Set on objects completed from a multipart upload: their body is several part streams, whatever the ETag
 * says (a server-side copy gives a multipart object a plain ETag).
 */
export const LAYOUT_META = 'x-amz-meta-s3-ssec-proxy-layout';
/** Reserved prefix: anything under it belongs to the proxy (future format fields too). */
export const RESERVED_META_PREFIX = 'x-amz-meta-s3-ssec-proxy';

/** RFC 7230 §6.1 hop-by-hop headers, plus those named in Connection. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export function hopByHop(headers: IncomingHttpHeaders): Set<string> {
  const set = new Set(HOP_BY_HOP);
  const conn = headers.connection;
  if (typeof conn === 'string') for (const t of conn.split(',')) set.add(t.trim().toLowerCase());
  return set;
}

/** Client → upstream: headers that describe the client's own request and are replaced or meaningless upstream. */
const CLIENT_ONLY = new Set([
  'host',
  'authorization',
  'x-amz-date',
  'date',
  'x-amz-content-sha256',
  'x-amz-security-token',
  'expect',
  'content-length',
]);

/** Headers that must not reach an upstream that receives ciphertext (they describe the plaintext). */
export const PLAINTEXT_DESCRIBING = [
  'content-md5',
  'x-amz-decoded-content-length',
  'x-amz-trailer',
  'x-amz-sdk-checksum-algorithm',
  'x-amz-checksum-algorithm',
  'x-amz-checksum-type',
];

export function isSsecHeader(name: string): boolean {
  return (
    name.startsWith('x-amz-server-side-encryption-customer-') ||
    name.startsWith('x-amz-copy-source-server-side-encryption-customer-')
  );
}

/**
 * The headers to forward upstream: lower-case names, single string values, without hop-by-hop, client auth,
 * SSE-C material, SSE-S3/KMS requests (the proxy's to serve: the store would apply its own encryption, or
 * refuse) or the proxy's reserved metadata.
 */
export function forwardableRequestHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const drop = hopByHop(headers);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || drop.has(name) || CLIENT_ONLY.has(name)) continue;
    if (isSsecHeader(name) || name.startsWith('x-amz-server-side-encryption') || name.startsWith(RESERVED_META_PREFIX)) continue;
    if (name.startsWith('amz-sdk-') || name === 'x-amz-user-agent') continue;
    out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

/**
 * Upstream → client: drop hop-by-hop, the proxy's metadata, and checksums that describe ciphertext; an encrypted
 * object's ETag in the form clients are given (s3/etag.ts).
 */
export function clientResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
  opts: { encrypted: boolean },
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const conn = headers['connection'];
  const drop = new Set(HOP_BY_HOP);
  if (typeof conn === 'string') for (const t of conn.split(',')) drop.add(t.trim().toLowerCase());
  const sealed = headers[ENVELOPE_META] !== undefined;
  for (const [rawName, value] of Object.entries(headers)) {
    const name = rawName.toLowerCase();
    if (value === undefined || drop.has(name) || name.startsWith(RESERVED_META_PREFIX)) continue;
    if (name === 'etag' && sealed && typeof value === 'string') {
      out[name] = encryptedEtag(value);
      continue;
    }
    if (opts.encrypted) {
      if (
        name === 'content-length' ||
        name === 'content-range' ||
        name === 'content-md5' ||
        name.startsWith('x-amz-checksum-') ||
        name.startsWith('x-amz-server-side-encryption') ||
        name === 'x-amz-mp-parts-count'
      ) {
        continue;
      }
    }
    out[name] = value;
  }
  return out;
}
