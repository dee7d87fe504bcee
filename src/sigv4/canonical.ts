/**
 * SigV4 canonicalisation helpers shared by verify.ts (client → proxy) and sign.ts (proxy → upstream).
 *
 * Everything here works on bytes: a percent-escape stands for one byte, a raw character stands for its UTF-8
 * bytes, and output is RFC 3986 encoded (unreserved `A-Z a-z 0-9 - . _ ~` kept, every other byte `%XX` with
 * upper-case hex). Decoding then re-encoding makes the canonical form independent of how the client chose to
 * escape unreserved characters or which hex case it used, which is what S3 does.
 *
 * Two facts about S3 that differ from generic URL handling (both checked against real S3 reports, see the
 * module's report): a raw `+` in the path or in the query of a request *to S3* means a space, and an encoded
 * `%2F` inside a path segment stays `%2F` in the canonical URI (we never turn it into a separator).
 */

import { createHash, createHmac, createSecretKey } from 'node:crypto';
import { S3Error } from '../s3/errors.ts';

/** SHA-256 of the empty string, hex. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const TERMINATOR = 'aws4_request';

const HEX = '0123456789ABCDEF';

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x2d || // -
    b === 0x2e || // .
    b === 0x5f || // _
    b === 0x7e // ~
  );
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** RFC 3986 encoding of raw bytes (SigV4 `UriEncode`). `/` is kept only when `keepSlash`. */
export function uriEncodeBytes(bytes: Uint8Array, keepSlash = false): string {
  let out = '';
  for (const b of bytes) {
    if (isUnreserved(b) || (keepSlash && b === 0x2f)) out += String.fromCharCode(b);
    else out += '%' + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/** RFC 3986 encoding of a string's UTF-8 bytes (SigV4 `UriEncode`). */
export function uriEncode(s: string, keepSlash = false): string {
  return uriEncodeBytes(Buffer.from(s, 'utf8'), keepSlash);
}

/** S3's answer to a request target it cannot parse. */
export function invalidUri(): S3Error {
  return new S3Error('InvalidURI', "Couldn't parse the specified URI.");
}

/**
 * Percent-decode one path segment or query component to bytes. A malformed escape (`%` not followed by two
 * hex digits) throws InvalidURI. With `plusAsSpace`, a raw `+` decodes to a space (S3's reading of its own
 * request targets); `%2B` is always a plus.
 */
export function percentDecodeBytes(s: string, plusAsSpace: boolean): Buffer {
  const parts: Buffer[] = [];
  let run: number[] = [];
  const flush = (): void => {
    if (run.length > 0) {
      parts.push(Buffer.from(run));
      run = [];
    }
  };
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const h = i + 2 < s.length ? hexVal(s.charCodeAt(i + 1)) : -1;
      const l = i + 2 < s.length ? hexVal(s.charCodeAt(i + 2)) : -1;
      if (h < 0 || l < 0) throw invalidUri();
      run.push((h << 4) | l);
      i += 3;
    } else if (c === 0x2b /* + */ && plusAsSpace) {
      run.push(0x20);
      i += 1;
    } else if (c < 0x80) {
      run.push(c);
      i += 1;
    } else {
      // A raw non-ASCII character (Node's parser never delivers one, other callers might): its UTF-8 bytes.
      const cp = s.codePointAt(i) ?? c;
      const ch = String.fromCodePoint(cp);
      flush();
      parts.push(Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  flush();
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/**
 * Canonical URI of a path as it came over the wire: split on literal `/`, each segment decoded then
 * re-encoded (so `%2F` inside a segment stays `%2F`); no dot-segment removal, no double encoding, empty
 * segments kept. `plusAsSpace` follows S3 (true for requests from clients).
 */
export function canonicalPathFromWire(rawPath: string, plusAsSpace: boolean): string {
  if (rawPath === '') return '/';
  return rawPath
    .split('/')
    .map((seg) => uriEncodeBytes(percentDecodeBytes(seg, plusAsSpace)))
    .join('/');
}

/** One query parameter: raw bytes of name and value, and whether an `=` was present. */
export interface RawQueryParam {
  readonly name: Buffer;
  readonly value: Buffer;
  readonly hasValue: boolean;
}

/**
 * Split a raw query string (without the leading `?`) into parameters, decoding each name and value to bytes.
 * Empty pieces (`a=1&&b=2`, a trailing `&`) are dropped. `+` means space (S3 semantics).
 */
export function parseRawQuery(rawQuery: string): RawQueryParam[] {
  const out: RawQueryParam[] = [];
  if (rawQuery === '') return out;
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const rawName = eq < 0 ? piece : piece.slice(0, eq);
    const rawValue = eq < 0 ? '' : piece.slice(eq + 1);
    out.push({
      name: percentDecodeBytes(rawName, true),
      value: percentDecodeBytes(rawValue, true),
      hasValue: eq >= 0,
    });
  }
  return out;
}

/** A decoded query parameter as S3 reads it (`+` is a space; invalid UTF-8 becomes U+FFFD). */
export interface QueryParam {
  readonly name: string;
  readonly value: string;
}

/**
 * The query parameters of a raw request target, decoded the way S3 reads them. Use this (not
 * `URLSearchParams`, which agrees on `+` but not on malformed escapes) when acting on what a verified
 * request asked for, so the proxy acts on exactly what was signed.
 */
export function parseQuery(rawQuery: string): QueryParam[] {
  return parseRawQuery(rawQuery).map((p) => ({ name: p.name.toString('utf8'), value: p.value.toString('utf8') }));
}

/**
 * Canonical query string: each name and value RFC 3986 encoded, sorted by encoded name then encoded value,
 * a parameter without a value as `name=`, joined with `&`.
 */
export function canonicalQueryFromPairs(pairs: ReadonlyArray<readonly [string, string]>): string {
  const sorted = [...pairs].sort((a, b) =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0,
  );
  return sorted.map(([n, v]) => `${n}=${v}`).join('&');
}

/** Canonical query string of raw parameters, leaving out those `exclude` names (decoded, exact match). */
export function canonicalQueryFromRaw(params: readonly RawQueryParam[], exclude?: (name: string) => boolean): string {
  const pairs: Array<[string, string]> = [];
  for (const p of params) {
    if (exclude !== undefined && exclude(p.name.toString('latin1'))) continue;
    pairs.push([uriEncodeBytes(p.name), uriEncodeBytes(p.value)]);
  }
  return canonicalQueryFromPairs(pairs);
}

/**
 * Canonical query string of a decoded query object (what sign.ts sends): every value (string or each array
 * element) RFC 3986 encoded; the same string is used on the wire so the upstream canonicalises identically.
 */
export function canonicalQueryFromRecord(query: Readonly<Record<string, string | readonly string[]>>): string {
  const pairs: Array<[string, string]> = [];
  for (const name of Object.keys(query)) {
    const v = query[name];
    if (v === undefined) continue;
    const en = uriEncode(name);
    if (typeof v === 'string') pairs.push([en, uriEncode(v)]);
    else for (const item of v) pairs.push([en, uriEncode(item)]);
  }
  return canonicalQueryFromPairs(pairs);
}

/**
 * Canonical header value: leading/trailing spaces and tabs removed, inner runs collapsed to one space (CR/LF
 * count as spaces). Only space and tab: Node hands over bytes >= 0x80 as latin1 characters, and U+00A0 must
 * survive, as it does in the AWS SDK signers.
 */
export function canonicalHeaderValue(value: string): string {
  return value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '');
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmacSha256(key: Uint8Array | string, data: string | Uint8Array): Buffer {
  // A Buffer key costs node 24 ~14 µs more per HMAC than a KeyObject (strings are fast already).
  return createHmac('sha256', typeof key === 'string' ? key : createSecretKey(key)).update(data).digest();
}

/** `kSigning` = HMAC chain over date (YYYYMMDD), region, service and `aws4_request`. */
export function deriveSigningKey(secretAccessKey: string, shortDate: string, region: string, service: string): Buffer {
  const kDate = hmacSha256('AWS4' + secretAccessKey, shortDate);
  const kRegion = hmacSha256(kDate, region);
  const kService = hmacSha256(kRegion, service);
  return hmacSha256(kService, TERMINATOR);
}

/** `yyyymmddThhmmssZ` of a Date (UTC); the last second's string is kept (every request formats one or two). */
let amzSecond = NaN;
let amzString = '';
export function formatAmzDate(d: Date): string {
  const second = Math.floor(d.getTime() / 1000);
  if (second === amzSecond) return amzString;
  const s = d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  amzSecond = second;
  amzString = s;
  return s;
}

/** Parse `yyyymmddThhmmssZ`; undefined when malformed or not a real calendar time. */
export function parseAmzDate(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  const date = new Date(t);
  if (
    date.getUTCFullYear() !== y ||
    date.getUTCMonth() !== mo - 1 ||
    date.getUTCDate() !== d ||
    date.getUTCHours() !== h ||
    date.getUTCMinutes() !== mi ||
    date.getUTCSeconds() !== se
  ) {
    return undefined;
  }
  return date;
}

/** `yyyy-mm-ddThh:mm:ssZ` (S3's ServerTime / Expires form, no milliseconds). */
export function formatIsoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The string to sign for a request. */
export function stringToSign(amzDate: string, scope: string, canonicalRequest: string): string {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
}
