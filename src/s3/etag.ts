/**
 * S3's ETags: multipart ones (`"<md5 of the concatenated part MD5s>-N"`), and the form a client sees for an object
 * the proxy encrypted.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Number of parts from a multipart ETag (`"…-N"`), or 1. */
export function partsCountOf(etag: string | undefined): number {
  const m = /-(\d+)"?$/.exec(etag ?? '');
  return m ? Number(m[1]) : 1;
}

/** The multipart ETag of an object completed from parts with these ETags, if every one is an MD5. */
export function multipartEtag(partEtags: readonly string[]): string | undefined {
  const digests = partEtags.map((e) => Buffer.from(e.replace(/"/g, '').trim(), 'hex'));
  if (digests.length === 0 || digests.some((d) => d.length !== 16)) return undefined;
  return `"${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}"`;
}

/**
 * The suffix on the ETag of an object (or part) the proxy encrypted. The store's ETag of a single stream is the MD5
 * of the ciphertext, in the one shape S3 reserves for the MD5 of the content (32 hex digits, and S3's SSE-S3
 * ETags are that MD5): clients that check it — rclone on every upload and download, s3cmd on each part — would
 * call every transfer corrupted, and rclone deletes what it calls corrupted. `-0` is never an S3 ETag (a
 * multipart one counts at least one part) and reads as "not a content MD5" to those clients (rclone matches
 * `^[0-9a-f]{32}$`; s3cmd and the Java SDK look for a `-`). Clients send it back in conditions; the store gets
 * its own ETag again (`storeEtag`). The proxy's integrity check is the authenticated encryption itself.
 */
export const ENCRYPTED_ETAG_SUFFIX = '-0';

const QUOTE = String.raw`(?:"|&quot;|&#34;)?`;
const MD5_SHAPED = new RegExp(String.raw`^(\s*${QUOTE})([0-9a-fA-F]{32})(${QUOTE}\s*)$`);
const MARKED = new RegExp(String.raw`^(\s*(?:W/)?${QUOTE})([0-9a-fA-F]{32})${ENCRYPTED_ETAG_SUFFIX}(${QUOTE}\s*)$`);

/**
 * The ETag a client sees for an encrypted object, from the store's (a header value or the text of an XML
 * `<ETag>`, quoted or escaped): an MD5-shaped one gains the suffix; others (`"…-N"`, empty) stay as they are.
 */
export function encryptedEtag(storeEtag: string): string {
  // The two usual spellings first, without the general pattern: a listing page marks a thousand.
  for (const quote of USUAL_QUOTES) {
    const q = quote.length;
    if (storeEtag.length === 32 + 2 * q && storeEtag.startsWith(quote) && storeEtag.endsWith(quote) && isHex(storeEtag, q, q + 32)) {
      return storeEtag.slice(0, q + 32) + ENCRYPTED_ETAG_SUFFIX + quote;
    }
  }
  return storeEtag.replace(MD5_SHAPED, `$1$2${ENCRYPTED_ETAG_SUFFIX}$3`);
}

const USUAL_QUOTES = ['"', '&quot;'];

function isHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46))) return false;
  }
  return true;
}

/** The store's ETag for one a client was given (the suffix removed); any other value as it is. */
export function storeEtag(clientEtag: string): string {
  return clientEtag.replace(MARKED, '$1$2$3');
}

/** The request headers that carry entity tags a client was given. */
export const ENTITY_TAG_HEADERS = ['if-match', 'if-none-match', 'x-amz-copy-source-if-match', 'x-amz-copy-source-if-none-match'] as const;

/** Per request: the objects' MD5s (hex) a client named in the encrypted form, for a 304 to answer in kind. */
const givenEncrypted = new WeakMap<IncomingHttpHeaders, Set<string>>();

/** Rewrites the entity tags of a request's conditions (after its signature was checked) to the store's form. */
export function toStoreEntityTags(headers: IncomingHttpHeaders): void {
  for (const name of ENTITY_TAG_HEADERS) {
    const value = headers[name];
    if (typeof value !== 'string' || !value.includes(ENCRYPTED_ETAG_SUFFIX)) continue;
    headers[name] = rewrite(value, (hex) => {
      const set = givenEncrypted.get(headers) ?? new Set<string>();
      set.add(hex.toLowerCase());
      givenEncrypted.set(headers, set);
    });
  }
}

/**
 * The ETag to answer a 304 with. The store's 304 carries its ETag but no metadata, so whether the object is
 * encrypted is not in the answer: it is in the request, whose condition named this ETag in the encrypted form.
 */
export function etagAsGiven(headers: IncomingHttpHeaders, storeEtag: string): string {
  const hex = MD5_SHAPED.exec(storeEtag)?.[2]?.toLowerCase();
  return hex !== undefined && givenEncrypted.get(headers)?.has(hex) ? encryptedEtag(storeEtag) : storeEtag;
}

/** An `If-Match`-style value (`*`, or a comma-separated list of entity tags) with every tag in the store's form. */
export function storeEntityTags(value: string): string {
  return value.includes(ENCRYPTED_ETAG_SUFFIX) ? rewrite(value) : value;
}

/** Each tag of a list in the store's form, one match per tag; `marked` hears the MD5 of each tag that had the suffix. */
function rewrite(value: string, marked?: (hex: string) => void): string {
  return value
    .split(',')
    .map((tag) => {
      const m = MARKED.exec(tag);
      if (!m) return tag;
      marked?.(m[2]!);
      return m[1]! + m[2]! + m[3]!;
    })
    .join(',');
}
