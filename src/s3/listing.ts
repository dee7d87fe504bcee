/**
 * A listing page (ListObjects, ListObjectsV2, ListObjectVersions) as the store sent it: its entries read in one
 * scan, and its bytes edited in place, so that everything but the edited texts reaches the client byte for
 * byte (a parse and rebuild would reorder, re-escape and drop).
 *
 * Pages stay bytes: a 1,000-entry page is 200–400 KB, and every page of a listing of millions is read, edited
 * and sent once; decoding it to a string (~0.7 ms a page) and encoding it back cost more than the scan, which
 * reads the bytes and decodes only the texts it returns. The store's listing is informational (it could show any
 * size anyway), so only its frame is checked: the root element opened and closed (a cut answer has no entries),
 * and the blocks' leaf values are all that is read.
 */
import { xmlUnescape } from './xml.ts';

export type ListingBlock = 'Contents' | 'Version';

/** Byte offsets [start, end) of an element's text in the page. */
export type Span = readonly [number, number];

export interface ListingEntry {
  /** As listed: still url-encoded when the listing was asked for with encoding-type=url. */
  key: string;
  etag: string;
  /** The ETag as the page writes it (its quotes escaped the store's way), for an edit that keeps that form. */
  etagXml: string;
  size: string;
  versionId?: string;
  /** Where the texts of `<Size>` and `<ETag>` are, for ListingEdits. */
  sizeAt: Span;
  etagAt: Span;
}

const ROOT = { Contents: 'ListBucketResult', Version: 'ListVersionsResult' } as const;
const frame = (root: string) => ({
  open: new RegExp(`^<(?:[A-Za-z][\\w.-]*:)?${root}[\\s>]`),
  close: new RegExp(`^</(?:[A-Za-z][\\w.-]*:)?${root}>\\s*$`),
});
const FRAME = { Contents: frame(ROOT.Contents), Version: frame(ROOT.Version) } as const;
const XML_DECLARATION = Buffer.from('<?xml');
const SPACE = /^\s*$/;

/**
 * The listing's root element opened at the start and closed at the end: not another answer, and not cut short
 * (a read limit, a dropped connection). The frame only; the entries are read by parseListingEntries. Before the
 * root, an XML declaration and whitespace (any Unicode space, a byte-order mark, a store's padding of a slow
 * answer); after it, whitespace.
 */
export function isWholeListing(page: Buffer, block: ListingBlock): boolean {
  let root = page.indexOf(LT);
  if (root === -1 || !SPACE.test(page.toString('utf8', 0, root))) return false;
  if (page.subarray(root, root + XML_DECLARATION.length).equals(XML_DECLARATION)) {
    const declarationEnd = page.indexOf('?>', root);
    if (declarationEnd === -1) return false;
    root = page.indexOf(LT, declarationEnd + 2);
    if (root === -1 || !SPACE.test(page.toString('utf8', declarationEnd + 2, root))) return false;
  }
  const lastEndTag = page.lastIndexOf('</');
  return (
    lastEndTag > root &&
    FRAME[block].open.test(page.toString('latin1', root, root + ROOT[block].length + 64)) &&
    FRAME[block].close.test(page.toString('utf8', lastEndTag))
  );
}

const ascii = (s: string) => Buffer.from(s, 'latin1');
const tag = (name: string) => ({ open: ascii(`<${name}>`), close: ascii(`</${name}>`) });
const BLOCK = { Contents: tag('Contents'), Version: tag('Version') } as const;
/** The leaves an entry is read from (Key, ETag, Size and, only in versions, VersionId: `entry` reads them in that order). */
const LEAVES = { Contents: [tag('Key'), tag('ETag'), tag('Size')], Version: [tag('Key'), tag('ETag'), tag('Size'), tag('VersionId')] };
const LT = 0x3c;
const SLASH = 0x2f;

/**
 * One entry per `<Contents>` of a ListObjects(V2) answer (root ListBucketResult) or `<Version>` of a
 * ListObjectVersions answer (root ListVersionsResult), in document order; undefined for one without Key, Size
 * or ETag. CommonPrefixes and DeleteMarker are not entries (upstream listings have no namespace prefixes
 * inside). None when the answer has another root or is cut short. Never throws.
 */
export function parseListingEntries(page: Buffer, block: ListingBlock): Array<ListingEntry | undefined> {
  const out: Array<ListingEntry | undefined> = [];
  forEachListingEntry(page, block, (e) => out.push(e));
  return out;
}

/**
 * parseListingEntries one entry at a time: a handler that keeps only what it edits leaves a thousand entries
 * per page to the young generation, instead of carrying them all (and their copies) through collections.
 */
export function forEachListingEntry(page: Buffer, block: ListingBlock, visit: (entry: ListingEntry | undefined) => void): void {
  if (!isWholeListing(page, block)) return;
  const { open, close } = BLOCK[block];
  const names = LEAVES[block];
  const end = page.length;
  // One pass over the bytes, tag by tag: outside a block only its start tag counts; inside, its end tag and the
  // first leaf of each name (a leaf's text has no `<`, so the pass goes on from its end tag). The leaves' spans
  // go to one scratch array per page (start, end per name; -1 for none yet), not to arrays per entry.
  const spans = new Int32Array(2 * names.length);
  let inBlock = false;
  for (let i = 0; i < end; i++) {
    if (page[i] !== LT) continue;
    if (!inBlock) {
      if (bytesAt(page, i, open, end)) {
        inBlock = true;
        spans.fill(-1);
      }
      continue;
    }
    // The byte after `<` tells end tags and the leaves apart without comparing whole names.
    const next = page[i + 1];
    if (next === SLASH) {
      if (bytesAt(page, i, close, end)) {
        visit(entry(page, spans));
        inBlock = false;
      }
      continue;
    }
    for (let k = 0; k < names.length; k++) {
      const tag = names[k]!;
      if (tag.open[1] !== next || spans[2 * k] !== -1 || !bytesAt(page, i, tag.open, end)) continue;
      const start = i + tag.open.length;
      let lt = start;
      while (lt < end && page[lt] !== LT) lt++;
      if (bytesAt(page, lt, tag.close, end)) {
        spans[2 * k] = start;
        spans[2 * k + 1] = lt;
        i = lt - 1;
      }
      break;
    }
  }
}

/** Whether the bytes at `at` (ending before `to`) are `s`. */
function bytesAt(page: Buffer, at: number, s: Buffer, to: number): boolean {
  if (at + s.length > to) return false;
  for (let j = 0; j < s.length; j++) if (page[at + j] !== s[j]) return false;
  return true;
}

/** The entry whose leaves' spans are in `spans` (in the order of LEAVES; -1 where a leaf is missing). */
function entry(page: Buffer, spans: Int32Array): ListingEntry | undefined {
  if (spans[0] === -1 || spans[2] === -1 || spans[4] === -1) return undefined;
  const etagAt: Span = [spans[2]!, spans[3]!];
  const sizeAt: Span = [spans[4]!, spans[5]!];
  const etagXml = page.toString('utf8', etagAt[0], etagAt[1]);
  const etag = etagOf(etagXml);
  const size = text(page, sizeAt[0], sizeAt[1]).trim();
  if (!etag || !size) return undefined;
  const e: ListingEntry = { key: text(page, spans[0]!, spans[1]!), etag, etagXml, size, sizeAt, etagAt };
  const versionId = spans.length > 6 && spans[6] !== -1 ? text(page, spans[6]!, spans[7]!).trim() : '';
  if (versionId) e.versionId = versionId;
  return e;
}

/** An element's text as UTF-8, unescaped. */
function text(page: Buffer, start: number, end: number): string {
  return unescaped(page.toString('utf8', start, end));
}

const unescaped = (s: string) => (s.includes('&') ? xmlUnescape(s) : s);

const QUOT = '&quot;';

/** An ETag's value: `&quot;…&quot;` (how S3 and RGW write every one) without a general unescape. */
function etagOf(xml: string): string {
  const inner = xml.slice(QUOT.length, -QUOT.length);
  if (xml.length >= 2 * QUOT.length && xml.startsWith(QUOT) && xml.endsWith(QUOT) && !inner.includes('&')) return `"${inner}"`;
  return unescaped(xml).trim();
}

/**
 * Replacements of element texts in a page, applied at once: the rest is the page's own bytes, copied once into
 * an answer of the exact length. Kept as flat arrays, as a page may have a thousand pairs.
 */
export class ListingEdits {
  readonly #bounds: number[] = [];
  readonly #xml: string[] = [];

  /** The text at `at` becomes `xml` (XML as given: escaped by the caller). Spans must not overlap. */
  set(at: Span, xml: string): void {
    this.#bounds.push(at[0], at[1]);
    this.#xml.push(xml);
  }

  apply(page: Buffer): Buffer {
    let bounds = this.#bounds;
    let texts = this.#xml;
    // Set in page order but for the few answered later (a HEAD each).
    if (!ascending(bounds)) {
      const order = texts.map((_, i) => i).sort((a, b) => this.#bounds[2 * a]! - this.#bounds[2 * b]!);
      bounds = order.flatMap((i) => [this.#bounds[2 * i]!, this.#bounds[2 * i + 1]!]);
      texts = order.map((i) => this.#xml[i]!);
    }
    // Sizes and ETags are ASCII (but for a store's odd ETag): then written without a UTF-8 pass over each.
    const encoding = NON_ASCII.test(texts.join('')) ? 'utf8' : 'ascii';
    let length = page.length;
    let pos = 0;
    for (let i = 0; i < texts.length; i++) {
      const start = bounds[2 * i]!;
      const end = bounds[2 * i + 1]!;
      if (start < pos || end < start || end > page.length) throw new RangeError(`listing edits overlap or fall outside the page at ${start}`);
      length += (encoding === 'ascii' ? texts[i]!.length : Buffer.byteLength(texts[i]!)) - (end - start);
      pos = end;
    }
    const out = Buffer.allocUnsafe(length);
    let w = 0;
    pos = 0;
    for (let i = 0; i < texts.length; i++) {
      w += page.copy(out, w, pos, bounds[2 * i]!);
      w += out.write(texts[i]!, w, encoding);
      pos = bounds[2 * i + 1]!;
    }
    w += page.copy(out, w, pos);
    if (w !== length) throw new Error(`listing edit wrote ${w} of ${length} bytes`);
    return out;
  }
}

const NON_ASCII = /[^\x00-\x7f]/;

/** Whether the spans' starts (every other bound) ascend. */
function ascending(bounds: readonly number[]): boolean {
  for (let j = 2; j < bounds.length; j += 2) if (bounds[j]! < bounds[j - 2]!) return false;
  return true;
}
