/**
 * Parsing and validation of the SSE-C header trios, exactly as S3 answers them (design-notes §1).
 * The key bytes only ever live in the returned Buffer; nothing here logs or formats them.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { S3Error, SSEC_MESSAGES } from '../s3/errors.ts';
import { managedEchoHeaders, type ManagedKey } from '../sse-kms/managed.ts';
import { wipe } from './data-key.ts';

export interface CustomerKey {
  /** The raw 256-bit key. */
  readonly key: Buffer;
  /** base64 MD5 of the raw key, echoed to clients as S3 does. */
  readonly keyMd5: string;
  /**
   * Set when the key is an SSE-S3/KMS object's external key (from the KMS, not the client): the object is
   * stored exactly like an SSE-C one under it, and answered with S3's SSE-S3/KMS headers instead.
   */
  readonly managed?: ManagedKey;
}

export type Headers = Record<string, string | string[] | undefined>;

export const SSEC_PREFIX = 'x-amz-server-side-encryption-customer-';
export const COPY_SSEC_PREFIX = 'x-amz-copy-source-server-side-encryption-customer-';

/** What the request is doing with the key: S3 is stricter on writes than on reads. */
export type KeyUse = 'write' | 'read';

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Names of SSE-C parameters as clients put them in a query string (minio-js also sends `SSECustomerKey`, …). */
const QUERY_KEY = /^(x-amz-server-side-encryption-customer-|ssecustomer)/i;
const QUERY_COPY_KEY = /^x-amz-copy-source-server-side-encryption-customer-/i;

/**
 * S3 takes SSE-C parameters only as headers (a presigned URL signs the header names, and the client sends the
 * headers); in the query string it ignores them. Where the headers are missing, that would store or read the
 * object as if no key had been given: refused instead, before anything is forwarded. (minio-js repeats the
 * headers in the query: that works, as on S3.)
 */
export function refuseKeyInQuery(query: ReadonlyArray<readonly [string, string]>, headers: Headers): void {
  const found = query.find(
    ([name]) => (QUERY_KEY.test(name) && !hasSsecHeaders(headers)) || (QUERY_COPY_KEY.test(name) && !hasSsecHeaders(headers, COPY_SSEC_PREFIX)),
  );
  if (found) {
    throw new S3Error('InvalidArgument', 'Requests specifying Server Side Encryption with Customer provided keys must send them as request headers.', {
      extra: { ArgumentName: found[0].slice(0, 64) },
    });
  }
}

/** True when any header of the trio is present (used to refuse SSE-C where it does not apply). */
export function hasSsecHeaders(headers: Headers, prefix: string = SSEC_PREFIX): boolean {
  return ['algorithm', 'key', 'key-md5'].some((s) => headers[prefix + s] !== undefined);
}

/**
 * Returns the customer key, or undefined when no SSE-C header is present.
 * `headers` must have lower-case names (node's IncomingMessage.headers has).
 */
export function parseCustomerKey(
  headers: Headers,
  use: KeyUse,
  prefix: string = SSEC_PREFIX,
): CustomerKey | undefined {
  const algorithm = header(headers, prefix + 'algorithm');
  const keyB64 = header(headers, prefix + 'key');
  const md5B64 = header(headers, prefix + 'key-md5');
  if (algorithm === undefined && keyB64 === undefined && md5B64 === undefined) return undefined;

  const arg = (name: string, message: string, value = 'null') =>
    new S3Error('InvalidArgument', message, { extra: { ArgumentName: prefix + name, ArgumentValue: value } });

  if (algorithm === undefined) throw arg('algorithm', SSEC_MESSAGES.partialAlgorithm);
  if (algorithm !== 'AES256') throw arg('algorithm', SSEC_MESSAGES.algorithm, algorithm.slice(0, 32));
  if (keyB64 === undefined) throw arg('key', SSEC_MESSAGES.partialHeaders);
  if (md5B64 === undefined && use === 'write') throw arg('key-MD5', SSEC_MESSAGES.missingMd5);

  const key = decodeBase64Strict(keyB64);
  if (key === undefined || key.length !== 32) {
    // S3 answers reads with a bad key as a wrong key, writes as an invalid argument.
    if (use === 'read') throw new S3Error('AccessDenied', SSEC_MESSAGES.wrongKey);
    throw new S3Error('InvalidArgument', SSEC_MESSAGES.badKey, {
      extra: { ArgumentName: prefix + 'key', ArgumentValue: '<redacted>' },
    });
  }
  const actualMd5 = createHash('md5').update(key).digest();
  if (md5B64 !== undefined) {
    const given = decodeBase64Strict(md5B64);
    if (given === undefined || given.length !== 16 || !timingSafeEqual(given, actualMd5)) {
      wipe(key);
      throw new S3Error('InvalidArgument', SSEC_MESSAGES.badMd5, {
        extra: { ArgumentName: prefix + 'key-MD5', ArgumentValue: '<redacted>' },
      });
    }
  }
  return { key, keyMd5: actualMd5.toString('base64') };
}

/** base64 (standard alphabet, padded as S3 and MinIO require) or undefined when the text is not that. */
function decodeBase64Strict(text: string): Buffer | undefined {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) return undefined;
  return Buffer.from(t, 'base64');
}

/** The response headers S3 sends back for an SSE-C request (or an SSE-S3/KMS one: `managed`). */
export function ssecEchoHeaders(key: CustomerKey, write = true): Record<string, string> {
  if (key.managed) return managedEchoHeaders(key.managed, write);
  return {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key-MD5': key.keyMd5,
  };
}
