/**
 * Verify a client's AWS Signature Version 2: `Authorization: AWS AKID:signature`, the query form
 * (`AWSAccessKeyId`, `Expires`, `Signature`) and the POST policy signature. Pure: the clock and the secrets
 * are given. Many clients still sign this way (boto's `s3` signer, s3cmd, old SDKs); S3 still accepts it in the
 * regions opened before 2014, so the proxy verifies it and re-signs the request with SigV4 like any other.
 *
 * The string to sign (S3 developer guide, "Signing and authenticating REST requests"):
 * `VERB\nContent-MD5\nContent-Type\nDate|Expires\n` + every `x-amz-*` header (lower-case, sorted, values
 * trimmed, repeats joined with `,`) as `name:value\n` + the resource: the path-style path as sent and the
 * sub-resources S3 lists, sorted, values decoded. The body is not signed: UNSIGNED-PAYLOAD for the handlers.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../s3/errors.ts';
import { formatAmzDate, formatIsoSeconds, percentDecodeBytes, UNSIGNED_PAYLOAD } from '../sigv4/canonical.ts';
import {
  classifyAuth,
  DEFAULT_MAX_SKEW_MS,
  SIGV4_MESSAGES,
  verifyRequest,
  type RequestHeaders,
  type VerifiedRequest,
  type VerifyInput,
  type VerifyOptions,
  normaliseHeaders,
} from '../sigv4/verify.ts';

/** The query parameters that are part of the signed resource (botocore's `HmacV1Auth.QSAOfInterest`). */
export const SUB_RESOURCES: ReadonlySet<string> = new Set([
  'accelerate',
  'acl',
  'analytics',
  'cors',
  'defaultObjectAcl',
  'delete',
  'intelligent-tiering',
  'inventory',
  'lifecycle',
  'location',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'partNumber',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'replication',
  'requestPayment',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
  'restore',
  'retention',
  'legal-hold',
  'select',
  'select-type',
  'storageClass',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
]);

/** S3's words for SigV2 failures. */
export const SIGV2_MESSAGES = {
  headerInvalid: 'AWS authorization header is invalid.  Expected AwsAccessKeyId:signature',
  queryRequired: 'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters',
  expiresInvalid: 'Invalid date (should be seconds since epoch)',
} as const;

/** base64(HMAC-SHA1(secret, text)): the signature of a string to sign, or of a POST policy as sent. */
export function signV2(secret: string, text: string): string {
  return createHmac('sha1', secret).update(text, 'utf8').digest('base64');
}

/** Constant-time comparison of a provided signature with the expected one. */
export function signatureMatches(provided: string, expected: string): boolean {
  const a = Buffer.from(provided, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

function splitTarget(url: string): { rawPath: string; rawQuery: string } {
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url);
  const u = abs === null ? url : url.slice(abs[0].length);
  const q = u.indexOf('?');
  return q < 0 ? { rawPath: u, rawQuery: '' } : { rawPath: u.slice(0, q), rawQuery: u.slice(q + 1) };
}

interface QueryPair {
  readonly name: string;
  readonly value: string | undefined;
}

function queryPairs(rawQuery: string): QueryPair[] {
  const out: QueryPair[] = [];
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const name = percentDecodeBytes(eq < 0 ? piece : piece.slice(0, eq), false).toString('utf8');
    // `+` stays a plus here: the signature covers the value as the client's signer decoded it.
    const value = eq < 0 ? undefined : percentDecodeBytes(piece.slice(eq + 1), false).toString('utf8');
    out.push({ name, value });
  }
  return out;
}

/**
 * The SigV2 string to sign of a request. `resourcePath` is the path-style path as sent (`/bucket/key`, with
 * the bucket first also for virtual-hosted requests); `dateOrExpires` the Date line (the `Expires` value for
 * query authentication; empty when `x-amz-date` is sent).
 */
export function stringToSignV2(method: string, resourcePath: string, rawQuery: string, headers: RequestHeaders, dateOrExpires: string): string {
  const h = normaliseHeaders(headers);
  const first = (name: string) => (h.get(name)?.[0] ?? '').trim();
  let amz = '';
  const names = [...h.keys()].filter((n) => n.startsWith('x-amz-')).sort();
  for (const name of names) amz += `${name}:${(h.get(name) ?? []).map((v) => v.trim()).join(',')}\n`;
  const sub = queryPairs(rawQuery)
    .filter((p) => SUB_RESOURCES.has(p.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((p) => (p.value === undefined ? p.name : `${p.name}=${p.value}`));
  const resource = resourcePath + (sub.length > 0 ? '?' + sub.join('&') : '');
  return `${method.toUpperCase()}\n${first('content-md5')}\n${first('content-type')}\n${dateOrExpires}\n${amz}${resource}`;
}

export interface VerifyV2Options {
  readonly lookupSecret: (accessKeyId: string) => string | undefined;
  readonly now: Date;
  /** The path-style path as sent, `/bucket/key` (virtual-hosted requests sign the bucket as the first segment). */
  readonly resourcePath: string;
  /** The region the verified request is reported in (SigV2 names none). */
  readonly region: string;
  /** @default 900000 (15 minutes, as S3) */
  readonly maxSkewMs?: number;
}

function invalidAccessKey(): S3Error {
  return new S3Error('InvalidAccessKeyId', SIGV4_MESSAGES.invalidAccessKeyId);
}

function mismatch(): S3Error {
  return new S3Error('SignatureDoesNotMatch', SIGV4_MESSAGES.signatureMismatch);
}

/**
 * Verify a SigV2 request (header or query). Returns the same shape as SigV4's `verifyRequest`, with
 * `payloadHash` UNSIGNED-PAYLOAD (SigV2 signs no body; aws-chunked never applies) and no signing key.
 */
export function verifyRequestV2(input: VerifyInput, opts: VerifyV2Options): VerifiedRequest {
  const { rawQuery } = splitTarget(input.url);
  const h = normaliseHeaders(input.headers);
  const params = queryPairs(rawQuery);
  const auth = h.get('authorization');
  let accessKeyId: string;
  let signature: string;
  let date: Date;
  let dateLine: string;
  let presigned: boolean;
  if (auth !== undefined) {
    const m = /^AWS ([^:\s]+):(\S+)$/.exec((auth[0] ?? '').trim());
    if (auth.length !== 1 || m === null) {
      throw new S3Error('InvalidArgument', SIGV2_MESSAGES.headerInvalid, { extra: { ArgumentName: 'Authorization' } });
    }
    [, accessKeyId, signature] = m as unknown as [string, string, string];
    presigned = false;
    // x-amz-date wins over Date (clients that cannot set Date send it); the Date line is then empty.
    const amzDate = h.get('x-amz-date')?.[0];
    const httpDate = amzDate ?? h.get('date')?.[0];
    const t = httpDate === undefined ? NaN : Date.parse(httpDate);
    if (Number.isNaN(t)) throw new S3Error('AccessDenied', SIGV4_MESSAGES.needDate);
    date = new Date(Math.floor(t / 1000) * 1000);
    dateLine = amzDate !== undefined ? '' : (httpDate ?? '').trim();
    const maxSkewMs = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
    if (Math.abs(opts.now.getTime() - date.getTime()) > maxSkewMs) {
      throw new S3Error('RequestTimeTooSkewed', SIGV4_MESSAGES.skewed, {
        extra: { RequestTime: formatAmzDate(date), ServerTime: formatIsoSeconds(opts.now), MaxAllowedSkewMilliseconds: String(maxSkewMs) },
      });
    }
  } else {
    const one = (name: string) => {
      const v = params.filter((p) => p.name === name);
      return v.length === 1 ? v[0]?.value : undefined;
    };
    const ak = one('AWSAccessKeyId');
    const sig = one('Signature');
    const expires = one('Expires');
    if (ak === undefined || sig === undefined || expires === undefined) {
      throw new S3Error('AccessDenied', SIGV2_MESSAGES.queryRequired);
    }
    if (!/^\d{1,12}$/.test(expires)) throw new S3Error('AccessDenied', SIGV2_MESSAGES.expiresInvalid);
    accessKeyId = ak;
    // A raw `+` in the query is a plus here: base64 signatures contain it, and clients encode it as %2B.
    signature = sig;
    presigned = true;
    date = new Date(Number(expires) * 1000);
    dateLine = expires;
    if (opts.now.getTime() > date.getTime()) {
      throw new S3Error('AccessDenied', SIGV4_MESSAGES.expired, {
        extra: { Expires: formatIsoSeconds(date), ServerTime: formatIsoSeconds(opts.now) },
      });
    }
  }
  const secret = opts.lookupSecret(accessKeyId);
  if (secret === undefined) throw invalidAccessKey();
  // A bucket's own resource is `/bucket/` in S3's string to sign (botocore and s3cmd sign it so for the path
  // `/bucket`); a client that signed the path as sent is accepted too.
  const resources = /^\/[^/]+$/.test(opts.resourcePath) ? [opts.resourcePath + '/', opts.resourcePath] : [opts.resourcePath];
  const expected = resources
    .map((r) => signV2(secret, stringToSignV2(input.method, r, rawQuery, input.headers, dateLine)))
    .find((sig) => signatureMatches(signature, sig));
  if (expected === undefined) throw mismatch();
  return {
    accessKeyId,
    region: opts.region,
    date,
    amzDate: formatAmzDate(date),
    scope: '',
    signedHeaders: [],
    presigned,
    payloadHash: UNSIGNED_PAYLOAD,
    signingKey: Buffer.alloc(0),
    signature: expected,
  };
}

/**
 * The POST policy signature of SigV2 forms: `signature` = base64(HMAC-SHA1(secret, policy as sent)).
 * Throws SignatureDoesNotMatch.
 */
export function verifyPolicySignatureV2(policy: string, signature: string, secret: string): void {
  if (!signatureMatches(signature, signV2(secret, policy))) throw mismatch();
}

export interface AuthenticateOptions extends VerifyOptions {
  /** Verify SigV2 (else refused as S3 refuses it where it is not offered). */
  readonly allowSigV2: boolean;
  /** The path-style path as sent, for the SigV2 resource. */
  readonly resourcePath: string;
  /** The region SigV2 requests are reported in. */
  readonly defaultRegion: string;
}

/**
 * The one authentication of a signed request: SigV4 (header or presigned) or, when allowed, SigV2 (header
 * or query). Refusals of other mechanisms are SigV4's (`verifyRequest`).
 */
export function authenticateRequest(input: VerifyInput, opts: AuthenticateOptions): VerifiedRequest {
  const kind = classifyAuth(input);
  if (opts.allowSigV2 && (kind === 'header-v2' || kind === 'query-v2')) {
    return verifyRequestV2(input, {
      lookupSecret: opts.lookupSecret,
      now: opts.now,
      resourcePath: opts.resourcePath,
      region: opts.defaultRegion,
      ...(opts.maxSkewMs !== undefined ? { maxSkewMs: opts.maxSkewMs } : {}),
    });
  }
  return verifyRequest(input, opts);
}
