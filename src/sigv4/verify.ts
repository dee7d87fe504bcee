/**
 * Verify a client's AWS Signature Version 4 (header or presigned query) before anything is forwarded.
 *
 * Behaviour follows S3 (sources in the report beside this module): the canonical request is rebuilt from the
 * request target exactly as sent (path segments and query decoded then RFC 3986 re-encoded, `+` read as a
 * space, no dot-segment removal, no double encoding), and errors carry S3's codes, statuses and messages.
 * Error messages never contain secrets, signatures, or request header values; the canonical request is never
 * exposed (it holds the signed SSE-C key header).
 */

import { timingSafeEqual } from 'node:crypto';
import { S3Error } from '../s3/errors.ts';
import {
  ALGORITHM,
  TERMINATOR,
  UNSIGNED_PAYLOAD,
  canonicalHeaderValue,
  canonicalPathFromWire,
  canonicalQueryFromRaw,
  deriveSigningKey,
  formatAmzDate,
  formatIsoSeconds,
  hmacSha256,
  parseAmzDate,
  parseRawQuery,
  stringToSign,
  type RawQueryParam,
} from './canonical.ts';

/** Headers as Node gives them (`req.headers`), or better `req.headersDistinct` (keeps repeated headers apart). */
export type RequestHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface VerifyInput {
  readonly method: string;
  /** Raw request target as received: path + optional `?` + query, percent-encoded as on the wire. */
  readonly url: string;
  readonly headers: RequestHeaders;
}

export interface VerifyOptions {
  /** Secret for an access key id; undefined when the key is unknown. */
  readonly lookupSecret: (accessKeyId: string) => string | undefined;
  /** The current time (injected). */
  readonly now: Date;
  /** Service in the credential scope. @default 's3' */
  readonly service?: 's3';
  /** Allowed difference between the request time and `now`. @default 900000 (15 minutes, as S3) */
  readonly maxSkewMs?: number;
  /** Region the credential scope must name; any region is accepted when unset. */
  readonly region?: string;
}

export interface VerifiedRequest {
  readonly accessKeyId: string;
  /** Region from the credential scope. */
  readonly region: string;
  /** The signing time (x-amz-date, else Date; X-Amz-Date for presigned). */
  readonly date: Date;
  /** The signing time as `yyyymmddThhmmssZ`, as it appears in the string to sign. */
  readonly amzDate: string;
  /** `yyyymmdd/region/service/aws4_request`. */
  readonly scope: string;
  /** SignedHeaders, lower-case, in the order the client listed them. */
  readonly signedHeaders: readonly string[];
  readonly presigned: boolean;
  /**
   * The payload mode/hash that was signed: the `x-amz-content-sha256` value for header auth; for presigned,
   * the `X-Amz-Content-Sha256` query parameter or `UNSIGNED-PAYLOAD`. Decide body handling from this, not
   * from the header (which presigned requests do not sign).
   */
  readonly payloadHash: string;
  /** The derived signing key (a copy), for aws-chunked chunk signatures. */
  readonly signingKey: Buffer;
  /** The request's (seed) signature, lower-case hex. */
  readonly signature: string;
}

/** The authentication mechanisms a request can present. */
export type AuthKind =
  | 'header-v4'
  | 'query-v4'
  | 'header-v2'
  | 'query-v2'
  | 'header-v4a'
  | 'query-v4a'
  | 'header-unknown'
  | 'multiple'
  | 'none';

/** S3's words for the failures this module reports. */
export const SIGV4_MESSAGES = {
  accessDenied: 'Access Denied',
  unsupportedMechanism: 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
  unsupportedType: 'Unsupported Authorization Type',
  onlyOneMechanism:
    'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
  headerComponents:
    'The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.',
  headerCredential:
    'The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
  headerCredentialDate: 'The authorization header is malformed; Invalid credential date. Date is not the same as X-Amz-Date.',
  queryRequired:
    'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
  queryAlgorithm: 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
  queryCredential:
    'Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
  queryDate: 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"',
  expiresNumber: 'X-Amz-Expires should be a number',
  expiresNegative: 'X-Amz-Expires must be non-negative',
  expiresTooLarge:
    'X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds',
  expired: 'Request has expired',
  notYetValid: 'Request is not valid yet',
  needDate: 'AWS authentication requires a valid Date or x-amz-date header',
  skewed: 'The difference between the request time and the current time is too large.',
  missingContentSha256: 'Missing required header for this request: x-amz-content-sha256',
  invalidContentSha256:
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
  unsignedHeaders: 'There were headers present in the request which were not signed',
  invalidAccessKeyId: 'The AWS Access Key Id you provided does not exist in our records.',
  signatureMismatch:
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
} as const;

/** Payload modes this proxy accepts in `x-amz-content-sha256` (besides a lower-case hex SHA-256). */
export const PAYLOAD_MODES: ReadonlySet<string> = new Set([
  'UNSIGNED-PAYLOAD',
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
]);

/** Longest presigned validity S3 accepts, seconds. */
export const MAX_PRESIGNED_EXPIRES = 604800;
export const DEFAULT_MAX_SKEW_MS = 15 * 60 * 1000;

const ALGORITHM_V4A = 'AWS4-ECDSA-P256-SHA256';
const Q_ALGORITHM = 'X-Amz-Algorithm';
const Q_CREDENTIAL = 'X-Amz-Credential';
const Q_DATE = 'X-Amz-Date';
const Q_EXPIRES = 'X-Amz-Expires';
const Q_SIGNED_HEADERS = 'X-Amz-SignedHeaders';
const Q_SIGNATURE = 'X-Amz-Signature';
const Q_CONTENT_SHA256 = 'x-amz-content-sha256'; // matched case-insensitively

function isValidPayloadValue(v: string): boolean {
  return PAYLOAD_MODES.has(v) || /^[0-9a-f]{64}$/.test(v);
}

// ---------------------------------------------------------------------------------------------------------
// Request target and headers

interface Target {
  readonly rawPath: string;
  readonly rawQuery: string;
}

function splitTarget(url: string): Target {
  let u = url;
  // absolute-form (RFC 9112 §3.2.2): drop scheme and authority
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(u);
  if (abs !== null) u = u.slice(abs[0].length);
  const hash = u.indexOf('#');
  if (hash >= 0) u = u.slice(0, hash);
  const q = u.indexOf('?');
  return q < 0 ? { rawPath: u, rawQuery: '' } : { rawPath: u.slice(0, q), rawQuery: u.slice(q + 1) };
}

/** Lower-cased header map; repeated headers (arrays, or the same name in two cases) keep every value. */
export function normaliseHeaders(headers: RequestHeaders): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const key = name.toLowerCase();
    const list = out.get(key) ?? [];
    if (typeof value === 'string') list.push(value);
    else list.push(...value);
    out.set(key, list);
  }
  return out;
}

const MULTIPLE = Symbol('multiple');

/** The single value of a header, or undefined if absent; `MULTIPLE` when it was sent more than once. */
function single(h: Map<string, string[]>, name: string): string | undefined | typeof MULTIPLE {
  const v = h.get(name);
  if (v === undefined || v.length === 0) return undefined;
  if (v.length > 1) return MULTIPLE;
  return v[0];
}

function queryParamsNamed(params: readonly RawQueryParam[], name: string, caseInsensitive = false): string[] {
  const out: string[] = [];
  const want = caseInsensitive ? name.toLowerCase() : name;
  for (const p of params) {
    const n = p.name.toString('utf8');
    if ((caseInsensitive ? n.toLowerCase() : n) === want) out.push(p.value.toString('utf8'));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Classification

function classifyParsed(h: Map<string, string[]>, params: readonly RawQueryParam[]): AuthKind {
  const names = new Set(params.map((p) => p.name.toString('utf8')));
  const auth = h.get('authorization');
  const queryV4 = names.has(Q_ALGORITHM) || names.has(Q_CREDENTIAL) || names.has(Q_SIGNATURE);
  const queryV2 = names.has('AWSAccessKeyId') || names.has('Signature');
  if (auth !== undefined && auth.length > 0) {
    if (queryV4 || queryV2) return 'multiple';
    if (auth.length > 1) return 'header-unknown';
    const value = (auth[0] ?? '').trimStart();
    const scheme = value.split(/[ \t]/, 1)[0] ?? '';
    if (scheme === ALGORITHM) return 'header-v4';
    if (scheme === 'AWS') return 'header-v2';
    if (scheme === ALGORITHM_V4A) return 'header-v4a';
    return 'header-unknown';
  }
  if (queryV4) {
    const alg = queryParamsNamed(params, Q_ALGORITHM);
    if (alg.length === 1 && alg[0] === ALGORITHM_V4A) return 'query-v4a';
    return 'query-v4';
  }
  if (queryV2) return 'query-v2';
  return 'none';
}

/**
 * Which authentication mechanism a request presents, without verifying it. Callers that serve some
 * requests without authentication (e.g. CORS preflight) can branch on `'none'` before calling
 * `verifyRequest`, which rejects anonymous requests.
 */
export function classifyAuth(input: Pick<VerifyInput, 'url' | 'headers'>): AuthKind {
  const { rawQuery } = splitTarget(input.url);
  return classifyParsed(normaliseHeaders(input.headers), parseRawQuery(rawQuery));
}

/** True for the error `verifyRequest` throws for SigV2 (and SigV4a) requests, which this proxy does not accept. */
export function isUnsupportedAuthError(e: unknown): boolean {
  return e instanceof S3Error && e.code === 'InvalidRequest' && e.message === SIGV4_MESSAGES.unsupportedMechanism;
}

// ---------------------------------------------------------------------------------------------------------
// Signing-key cache: tiny, bounded, oldest entry evicted first.

const KEY_CACHE_MAX = 64;
const keyCache = new Map<string, Buffer>();

function signingKeyFor(secret: string, shortDate: string, region: string, service: string): Buffer {
  const cacheKey = `${shortDate}\n${region}\n${service}\n${secret}`;
  const hit = keyCache.get(cacheKey);
  if (hit !== undefined) return hit;
  const key = deriveSigningKey(secret, shortDate, region, service);
  keyCache.set(cacheKey, key);
  if (keyCache.size > KEY_CACHE_MAX) {
    const oldest = keyCache.keys().next();
    if (oldest.done !== true) keyCache.delete(oldest.value);
  }
  return key;
}

// ---------------------------------------------------------------------------------------------------------
// Parsing the two forms

interface ParsedAuth {
  readonly presigned: boolean;
  readonly accessKeyId: string;
  readonly shortDate: string;
  readonly region: string;
  readonly service: string;
  readonly terminator: string;
  readonly signedHeadersRaw: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

function headerMalformed(message: string, extra?: Record<string, string>): S3Error {
  return new S3Error('AuthorizationHeaderMalformed', message, extra === undefined ? {} : { extra });
}

function queryError(message: string, extra?: Record<string, string>): S3Error {
  return new S3Error('AuthorizationQueryParametersError', message, extra === undefined ? {} : { extra });
}

/** A value from the request safe to echo in an error (S3 echoes region/service); otherwise a placeholder. */
function echo(s: string): string {
  return /^[A-Za-z0-9._-]{1,64}$/.test(s) ? s : '(invalid)';
}

function parseCredential(credential: string, malformed: () => S3Error) {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts.some((p) => p === '')) throw malformed();
  const [accessKeyId, shortDate, region, service, terminator] = parts as [string, string, string, string, string];
  if (!/^\d{8}$/.test(shortDate)) throw malformed();
  return { accessKeyId, shortDate, region, service, terminator };
}

function parseSignedHeaders(raw: string, malformed: () => S3Error): string[] {
  const list = raw.split(';').map((s) => s.toLowerCase());
  if (list.some((s) => s === '' || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(s))) throw malformed();
  return list;
}

function parseHeaderAuth(value: string): ParsedAuth {
  const v = value.trim();
  const rest = v.slice(ALGORITHM.length).trim();
  const fields = new Map<string, string>();
  for (const piece of rest.split(',')) {
    const part = piece.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw headerMalformed(SIGV4_MESSAGES.headerComponents);
    const k = part.slice(0, eq).trim();
    if (k !== 'Credential' && k !== 'SignedHeaders' && k !== 'Signature') {
      throw headerMalformed(SIGV4_MESSAGES.headerComponents);
    }
    if (fields.has(k)) throw headerMalformed(SIGV4_MESSAGES.headerComponents);
    fields.set(k, part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeadersRaw = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeadersRaw === undefined || signature === undefined) {
    throw headerMalformed(SIGV4_MESSAGES.headerComponents);
  }
  const cred = parseCredential(credential, () => headerMalformed(SIGV4_MESSAGES.headerCredential));
  const signedHeaders = parseSignedHeaders(signedHeadersRaw, () => headerMalformed(SIGV4_MESSAGES.headerComponents));
  return { presigned: false, ...cred, signedHeadersRaw, signedHeaders, signature };
}

function onlyOne(params: readonly RawQueryParam[], name: string): string | undefined {
  const values = queryParamsNamed(params, name);
  if (values.length > 1) throw queryError(SIGV4_MESSAGES.queryRequired);
  return values[0];
}

interface ParsedQueryAuth extends ParsedAuth {
  readonly amzDateRaw: string;
  readonly expiresSeconds: number;
  readonly payloadHash: string;
}

function parseQueryAuth(params: readonly RawQueryParam[]): ParsedQueryAuth {
  const algorithm = onlyOne(params, Q_ALGORITHM);
  const credential = onlyOne(params, Q_CREDENTIAL);
  const amzDateRaw = onlyOne(params, Q_DATE);
  const expires = onlyOne(params, Q_EXPIRES);
  const signedHeadersRaw = onlyOne(params, Q_SIGNED_HEADERS);
  const signature = onlyOne(params, Q_SIGNATURE);
  if (
    algorithm === undefined ||
    credential === undefined ||
    amzDateRaw === undefined ||
    expires === undefined ||
    signedHeadersRaw === undefined ||
    signature === undefined
  ) {
    throw queryError(SIGV4_MESSAGES.queryRequired);
  }
  if (algorithm !== ALGORITHM) throw queryError(SIGV4_MESSAGES.queryAlgorithm);
  const cred = parseCredential(credential, () => queryError(SIGV4_MESSAGES.queryCredential));
  const signedHeaders = parseSignedHeaders(signedHeadersRaw, () => queryError(SIGV4_MESSAGES.queryRequired));
  if (!/^-?\d+$/.test(expires)) throw queryError(SIGV4_MESSAGES.expiresNumber);
  const expiresSeconds = Number(expires);
  if (expiresSeconds < 0) throw queryError(SIGV4_MESSAGES.expiresNegative);
  if (expiresSeconds > MAX_PRESIGNED_EXPIRES) throw queryError(SIGV4_MESSAGES.expiresTooLarge);
  const payloadValues = queryParamsNamed(params, Q_CONTENT_SHA256, true);
  if (payloadValues.length > 1) throw queryError(SIGV4_MESSAGES.queryRequired);
  const payloadHash = payloadValues[0] ?? UNSIGNED_PAYLOAD;
  if (!isValidPayloadValue(payloadHash)) {
    throw new S3Error('InvalidArgument', SIGV4_MESSAGES.invalidContentSha256, {
      extra: { ArgumentName: 'X-Amz-Content-Sha256' },
    });
  }
  return {
    presigned: true,
    ...cred,
    signedHeadersRaw,
    signedHeaders,
    signature,
    amzDateRaw,
    expiresSeconds,
    payloadHash,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Scope checks

function checkScope(
  p: ParsedAuth,
  expectedRegion: string | undefined,
  service: string,
  amzDate: string,
): void {
  const prefix = p.presigned ? 'Error parsing the X-Amz-Credential parameter; ' : 'The authorization header is malformed; ';
  const fail = (message: string, extra?: Record<string, string>) =>
    p.presigned ? queryError(message, extra) : headerMalformed(message, extra);
  if (expectedRegion !== undefined && p.region !== expectedRegion) {
    throw fail(`${prefix}the region '${echo(p.region)}' is wrong; expecting '${expectedRegion}'`, {
      Region: expectedRegion,
    });
  }
  if (p.service !== service) {
    throw fail(`${prefix}incorrect service "${echo(p.service)}". This endpoint belongs to "${service}".`);
  }
  if (p.terminator !== TERMINATOR) {
    throw fail(`${prefix}incorrect terminal "${echo(p.terminator)}". This endpoint uses "${TERMINATOR}".`);
  }
  if (p.shortDate !== amzDate.slice(0, 8)) {
    if (p.presigned) {
      throw queryError(
        `Invalid credential date "${p.shortDate}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`,
      );
    }
    throw headerMalformed(SIGV4_MESSAGES.headerCredentialDate);
  }
}

function buildCanonicalRequest(
  method: string,
  rawPath: string,
  params: readonly RawQueryParam[],
  headers: Map<string, string[]>,
  parsed: ParsedAuth,
  payloadHash: string,
): string {
  const canonicalUri = canonicalPathFromWire(rawPath, true);
  const canonicalQuery = parsed.presigned
    ? canonicalQueryFromRaw(params, (n) => n === Q_SIGNATURE)
    : canonicalQueryFromRaw(params);
  let canonicalHeaders = '';
  for (const name of parsed.signedHeaders) {
    let values = headers.get(name);
    if (values === undefined && name === 'host') values = headers.get(':authority'); // HTTP/2
    // A signed header the request lacks canonicalises as an empty value (S3 accepts such requests when the
    // client signed it empty; otherwise the signature simply does not match).
    const value = values === undefined ? '' : values.map(canonicalHeaderValue).join(',');
    canonicalHeaders += `${name}:${value}\n`;
  }
  return [method, canonicalUri, canonicalQuery, canonicalHeaders, parsed.signedHeaders.join(';'), payloadHash].join('\n');
}

/**
 * The canonical request verifyRequest would sign-check, with no other check made. For tests and local
 * debugging only: it contains signed header values (the SSE-C key among them), so never log or return it.
 * @internal
 */
export function canonicalRequestForTesting(input: VerifyInput): string {
  const { rawPath, rawQuery } = splitTarget(input.url);
  const headers = normaliseHeaders(input.headers);
  const params = parseRawQuery(rawQuery);
  const auth = headers.get('authorization');
  if (auth !== undefined) {
    const parsed = parseHeaderAuth(auth[0] ?? '');
    const payloadHash = headers.get('x-amz-content-sha256')?.[0] ?? UNSIGNED_PAYLOAD;
    return buildCanonicalRequest(input.method, rawPath, params, headers, parsed, payloadHash);
  }
  const parsed = parseQueryAuth(params);
  return buildCanonicalRequest(input.method, rawPath, params, headers, parsed, parsed.payloadHash);
}

// ---------------------------------------------------------------------------------------------------------

/**
 * Verify a SigV4-signed request (Authorization header or presigned query). Returns what was authenticated, or
 * throws an `S3Error` carrying S3's code, status and message. Anonymous requests are rejected (AccessDenied);
 * SigV2 and SigV4a are rejected with InvalidRequest (see `isUnsupportedAuthError`).
 *
 * Pass `req.headersDistinct` when you can: `req.headers` joins repeated headers with `, ` where the
 * canonical form wants `,`, and drops repeats of some headers entirely.
 */
export function verifyRequest(input: VerifyInput, opts: VerifyOptions): VerifiedRequest {
  const service = opts.service ?? 's3';
  const maxSkewMs = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const now = opts.now;
  const { rawPath, rawQuery } = splitTarget(input.url);
  const headers = normaliseHeaders(input.headers);
  const params = parseRawQuery(rawQuery);

  const kind = classifyParsed(headers, params);
  switch (kind) {
    case 'none':
      throw new S3Error('AccessDenied', SIGV4_MESSAGES.accessDenied);
    case 'header-v2':
    case 'query-v2':
    case 'header-v4a':
    case 'query-v4a':
      throw new S3Error('InvalidRequest', SIGV4_MESSAGES.unsupportedMechanism);
    case 'multiple':
      throw new S3Error('InvalidArgument', SIGV4_MESSAGES.onlyOneMechanism, {
        extra: { ArgumentName: 'Authorization' },
      });
    case 'header-unknown':
      throw new S3Error('InvalidArgument', SIGV4_MESSAGES.unsupportedType, {
        extra: { ArgumentName: 'Authorization' },
      });
    case 'header-v4':
    case 'query-v4':
      break;
    default: {
      const never: never = kind;
      throw new Error(`unhandled auth kind ${String(never)}`);
    }
  }

  let parsed: ParsedAuth;
  let date: Date;
  let amzDate: string;
  let payloadHash: string;

  if (kind === 'header-v4') {
    parsed = parseHeaderAuth(headers.get('authorization')?.[0] ?? '');

    const contentSha = single(headers, 'x-amz-content-sha256');
    if (contentSha === undefined) throw new S3Error('InvalidRequest', SIGV4_MESSAGES.missingContentSha256);
    if (contentSha === MULTIPLE || !isValidPayloadValue(contentSha)) {
      throw new S3Error('InvalidArgument', SIGV4_MESSAGES.invalidContentSha256, {
        extra: { ArgumentName: 'x-amz-content-sha256' },
      });
    }
    payloadHash = contentSha;

    // x-amz-date wins over Date; whichever is present must be valid.
    const xAmzDate = single(headers, 'x-amz-date');
    let d: Date | undefined;
    if (xAmzDate !== undefined) {
      d = xAmzDate === MULTIPLE ? undefined : parseAmzDate(xAmzDate.trim());
    } else {
      const httpDate = single(headers, 'date');
      if (typeof httpDate === 'string') {
        const t = Date.parse(httpDate);
        if (!Number.isNaN(t)) d = new Date(Math.floor(t / 1000) * 1000);
      }
    }
    if (d === undefined) throw new S3Error('AccessDenied', SIGV4_MESSAGES.needDate);
    date = d;
    amzDate = formatAmzDate(date);
    checkScope(parsed, opts.region, service, amzDate);

    if (Math.abs(now.getTime() - date.getTime()) > maxSkewMs) {
      throw new S3Error('RequestTimeTooSkewed', SIGV4_MESSAGES.skewed, {
        extra: {
          RequestTime: amzDate,
          ServerTime: formatIsoSeconds(now),
          MaxAllowedSkewMilliseconds: String(maxSkewMs),
        },
      });
    }
  } else {
    const q = parseQueryAuth(params);
    parsed = q;
    const d = parseAmzDate(q.amzDateRaw);
    if (d === undefined) throw queryError(SIGV4_MESSAGES.queryDate);
    date = d;
    amzDate = q.amzDateRaw;
    checkScope(parsed, opts.region, service, amzDate);
    payloadHash = q.payloadHash;

    const expiresAt = new Date(date.getTime() + q.expiresSeconds * 1000);
    if (date.getTime() - now.getTime() > maxSkewMs) {
      throw new S3Error('AccessDenied', SIGV4_MESSAGES.notYetValid, {
        extra: { Expires: formatIsoSeconds(expiresAt), ServerTime: formatIsoSeconds(now) },
      });
    }
    if (now.getTime() > expiresAt.getTime()) {
      throw new S3Error('AccessDenied', SIGV4_MESSAGES.expired, {
        extra: {
          'X-Amz-Expires': String(q.expiresSeconds),
          Expires: formatIsoSeconds(expiresAt),
          ServerTime: formatIsoSeconds(now),
        },
      });
    }
  }

  // host must be signed, and so must every x-amz-* header present (S3: AccessDenied, HeadersNotSigned).
  const signedSet = new Set(parsed.signedHeaders);
  const notSigned: string[] = [];
  if (!signedSet.has('host')) notSigned.push('host');
  for (const name of headers.keys()) {
    if (!name.startsWith('x-amz-') || signedSet.has(name)) continue;
    // The header-auth payload hash is bound as the canonical request's last line; S3 tolerates it unsigned.
    if (name === 'x-amz-content-sha256' && (!parsed.presigned || single(headers, name) === payloadHash)) continue;
    notSigned.push(name);
  }
  if (notSigned.length > 0) {
    throw new S3Error('AccessDenied', SIGV4_MESSAGES.unsignedHeaders, {
      extra: { HeadersNotSigned: notSigned.join(', ') },
    });
  }

  const secret = opts.lookupSecret(parsed.accessKeyId);
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', SIGV4_MESSAGES.invalidAccessKeyId);

  const canonicalRequest = buildCanonicalRequest(input.method, rawPath, params, headers, parsed, payloadHash);

  const scope = `${parsed.shortDate}/${parsed.region}/${parsed.service}/${TERMINATOR}`;
  const signingKey = signingKeyFor(secret, parsed.shortDate, parsed.region, parsed.service);
  const expected = hmacSha256(signingKey, stringToSign(amzDate, scope, canonicalRequest)).toString('hex');

  const provided = Buffer.from(parsed.signature, 'utf8');
  const wanted = Buffer.from(expected, 'utf8');
  if (provided.length !== wanted.length || !timingSafeEqual(provided, wanted)) {
    throw new S3Error('SignatureDoesNotMatch', SIGV4_MESSAGES.signatureMismatch);
  }

  return {
    accessKeyId: parsed.accessKeyId,
    region: parsed.region,
    date,
    amzDate,
    scope,
    signedHeaders: parsed.signedHeaders,
    presigned: parsed.presigned,
    payloadHash,
    signingKey: Buffer.from(signingKey),
    signature: expected,
  };
}
