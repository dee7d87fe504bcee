/**
 * S3 XML. Everything the proxy *reads* from clients and upstreams goes through one configured fast-xml-parser
 * instance (`parseXml` and the typed readers below). The regex helpers at the end only *edit* upstream answers
 * (listings, ListParts, copy results) in place: a parse and rebuild would change bytes the client sees
 * (attribute order, namespace prefixes, whitespace, entity spelling), so those answers are patched as text.
 */
import { XMLParser, XMLValidator, type EntityDecoderOptions } from 'fast-xml-parser';
import { S3Error } from './errors.ts';

const MALFORMED_MESSAGE = 'The XML you provided was not well-formed or did not validate against our published schema.';

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * The parser's entity decoder: the five XML entities and numeric character references (any Unicode code point,
 * as upstream listings can carry keys with control characters), nothing else. An unknown entity is a
 * well-formedness error; entities a DOCTYPE declares are never expanded (see `parseXml`).
 */
let sawDoctype = false;
const entityDecoder: EntityDecoderOptions = {
  setExternalEntities: () => {},
  // Called by the parser whenever it reads a DOCTYPE (with its internal entities, which are dropped). A module
  // flag is safe: parsing is synchronous, and parseXml clears it before each parse.
  addInputEntities: () => {
    sawDoctype = true;
  },
  reset: () => {},
  setXmlVersion: () => {},
  decode: (text) => (text.includes('&') ? text.replace(/&([^;&]*);|&/g, decodeEntity) : text),
};

function decodeEntity(match: string, ref: string | undefined): string {
  if (ref !== undefined) {
    const named = Object.hasOwn(ENTITIES, ref) ? ENTITIES[ref] : undefined;
    if (named !== undefined) return named;
    const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(ref);
    const cp = m ? parseInt(m[1] ?? m[2]!, m[1] !== undefined ? 16 : 10) : NaN;
    if (cp <= 0x10ffff) return String.fromCodePoint(cp);
  }
  throw new Error(`unknown or malformed entity reference ${match}`);
}

/** `Parent.Child` paths whose elements always come back as arrays, even when there is only one. */
const ARRAY_PATHS = new Set([
  'CompleteMultipartUpload.Part',
  'ListBucketResult.Contents',
  'ListVersionsResult.Version',
  'Tagging.TagSet.Tag',
  'ListAllMyBucketsResult.Buckets.Bucket',
]);

/**
 * - removeNSPrefix: `<s3:Part>` reads as `Part` (and `xmlns:*` attributes go with the ignored attributes).
 * - ignoreAttributes: S3's documents carry no data in attributes (`xmlns`, `xsi:type` at most).
 * - parseTagValue / parseAttributeValue off: values stay the text they were ("0001", ETags, sizes past 2^53).
 * - trimValues off: the parser keeps text exactly. S3 trims whitespace around token values (ETag, PartNumber,
 *   checksums, sizes, version ids) and the readers below do the same for those fields, but object keys and tag
 *   keys/values may begin or end with spaces, so those are returned untouched. A side effect is a `#text` entry
 *   (the indentation) next to the children of a pretty-printed element; readers ignore it.
 * - CDATA sections are text (no cdataPropName) and comments are dropped (no commentPropName); text either side
 *   of them joins up.
 * - ignoreDeclaration / ignorePiTags: the result holds the root element only.
 * - entityDecoder: see above. fast-xml-parser v5 reads a DOCTYPE's internal entities and would expand them in
 *   text; ours never does, and client input with any DOCTYPE is refused.
 */
const parser = new XMLParser({
  removeNSPrefix: true,
  ignoreAttributes: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  processEntities: true,
  htmlEntities: false,
  entityDecoder,
  isArray: (_name, jPath) => ARRAY_PATHS.has(String(jPath)),
});

function malformed(cause?: unknown): S3Error {
  return new S3Error('MalformedXML', MALFORMED_MESSAGE, cause === undefined ? {} : { cause });
}

/** Text after the root element other than whitespace and comments (fast-xml-parser's validator misses it after `<Root/>`). */
function hasTrailingText(text: string): boolean {
  let end = text.length;
  for (;;) {
    while (end > 0 && /\s/.test(text[end - 1]!)) end--;
    if (end < 7 || !text.startsWith('-->', end - 3)) return text[end - 1] !== '>';
    const start = text.lastIndexOf('<!--', end - 7);
    if (start < 0 || text.indexOf('-->', start + 4) !== end - 3) return true;
    end = start;
  }
}

/**
 * Parses one XML document into `{ Root: … }` (exactly one key, the root element without namespace prefix).
 * Leaf elements are strings; elements with children are objects; repeated elements are arrays.
 * Throws S3Error MalformedXML when the text is not well-formed XML with exactly one root element, uses an
 * undeclared entity, or (with `client: true`) has a DOCTYPE at all. Without `client`, a DOCTYPE is skipped and
 * the entities it declares stay undeclared (a reference to one is then an error): nothing is ever expanded.
 */
export function parseXml(text: string, opts: { client?: boolean } = {}): Record<string, unknown> {
  if (text.startsWith('\ufeff')) text = text.slice(1);
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw malformed(new Error(valid.err.msg));
  if (hasTrailingText(text)) throw malformed(new Error('text after the root element'));
  sawDoctype = false;
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (err) {
    throw malformed(err);
  }
  if (opts.client && sawDoctype) throw malformed(new Error('DOCTYPE is not allowed'));
  if (!isNode(doc)) throw malformed();
  const names = Object.keys(doc);
  if (names.length !== 1 || Array.isArray(doc[names[0]!])) throw malformed(new Error('not exactly one root element'));
  return doc;
}

type XmlNode = Record<string, unknown>;

function isNode(v: unknown): v is XmlNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The root element's name and content, or undefined when the text does not parse (upstream input). Leading
 * whitespace is skipped: an upstream may pad a slow answer with it.
 */
function tryRoot(xml: string): { name: string; value: unknown } | undefined {
  try {
    const doc = parseXml(xml.trimStart());
    const name = Object.keys(doc)[0]!;
    return { name, value: doc[name] };
  } catch {
    return undefined;
  }
}

/** The child element(s) called `name` (own properties only: `toString` is not an element). */
function child(node: unknown, name: string): unknown {
  return isNode(node) && Object.hasOwn(node, name) ? node[name] : undefined;
}

function children(node: unknown, name: string): unknown[] {
  const v = child(node, name);
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** The text of a child that is a single leaf element, else undefined. */
function text(node: unknown, name: string): string | undefined {
  const v = child(node, name);
  return typeof v === 'string' ? v : undefined;
}

/** Like `text`, trimmed (S3 ignores whitespace around tokens); undefined when empty. */
function token(node: unknown, name: string): string | undefined {
  const v = text(node, name)?.trim();
  return v ? v : undefined;
}

export interface CompletedPart {
  partNumber: string;
  etag: string;
  /** `ChecksumCRC32`, `ChecksumSHA256`, … as listed for the part (trimmed text). */
  checksums: Record<string, string>;
}

/**
 * The parts of a client's CompleteMultipartUpload body, in document order. PartNumber, ETag and checksums are
 * trimmed and otherwise returned as written (the caller checks numbers, order and ETags: InvalidPart,
 * InvalidPartOrder). As AWS S3 does, answers MalformedXML for a body that is not XML, has another root, lists
 * no Part, or has a Part without (or with an empty or repeated) PartNumber or ETag.
 */
export function parseCompleteMultipartUpload(xml: string): CompletedPart[] {
  const doc = parseXml(xml, { client: true });
  if (!Object.hasOwn(doc, 'CompleteMultipartUpload')) throw malformed(new Error('root is not CompleteMultipartUpload'));
  const parts = children(doc.CompleteMultipartUpload, 'Part');
  if (parts.length === 0) throw malformed(new Error('no Part'));
  return parts.map((part) => {
    const partNumber = token(part, 'PartNumber');
    const etag = token(part, 'ETag');
    if (partNumber === undefined || etag === undefined) throw malformed(new Error('Part without PartNumber or ETag'));
    const checksums: Record<string, string> = {};
    for (const name of Object.keys(part as XmlNode)) {
      if (!name.startsWith('Checksum')) continue;
      const v = text(part, name);
      if (v === undefined) throw malformed(new Error(`bad ${name}`));
      checksums[name] = v.trim();
    }
    return { partNumber, etag, checksums };
  });
}

/** The CompleteMultipartUpload body the proxy sends upstream: the parts in the order given, escaped, no checksums. */
export function buildCompleteMultipartUpload(parts: ReadonlyArray<{ partNumber: string | number; etag: string }>): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    parts
      .map((p) => `<Part><PartNumber>${xmlEscape(String(p.partNumber))}</PartNumber><ETag>${xmlEscape(p.etag)}</ETag></Part>`)
      .join('') +
    '</CompleteMultipartUpload>'
  );
}

/** Code (trimmed) and Message of an upstream `<Error>` document; {} for anything else. Never throws. */
export function parseS3Error(xml: string): { code?: string; message?: string } {
  const root = tryRoot(xml);
  if (root?.name !== 'Error') return {};
  const out: { code?: string; message?: string } = {};
  const code = token(root.value, 'Code');
  const message = text(root.value, 'Message');
  if (code !== undefined) out.code = code;
  if (message !== undefined) out.message = message;
  return out;
}

/**
 * The text of the element at `path` from the root (root name first), e.g.
 * `textAt(xml, 'InitiateMultipartUploadResult', 'UploadId')`; the first one where an element repeats.
 * Exact text (not trimmed); undefined when absent, not a leaf, or the document does not parse. Never throws.
 */
export function textAt(xml: string, ...path: string[]): string | undefined {
  const root = tryRoot(xml);
  if (!root || path.length === 0 || path[0] !== root.name) return undefined;
  let node: unknown = root.value;
  for (const name of path.slice(1)) {
    node = child(node, name);
    if (Array.isArray(node)) node = node[0];
  }
  return typeof node === 'string' ? node : undefined;
}

/** Whether the document's root element is `name` (e.g. an `<Error>` in a 200 answer to CompleteMultipartUpload). Never throws. */
export function hasRoot(xml: string, name: string): boolean {
  return tryRoot(xml)?.name === name;
}

/** The tags of a GetObjectTagging answer (`Tagging/TagSet/Tag`), keys and values exact; [] when it does not parse. */
export function parseTagging(xml: string): Array<{ key: string; value: string }> {
  const root = tryRoot(xml);
  if (root?.name !== 'Tagging') return [];
  const tags: Array<{ key: string; value: string }> = [];
  for (const tag of children(child(root.value, 'TagSet'), 'Tag')) {
    const key = text(tag, 'Key');
    if (key !== undefined) tags.push({ key, value: text(tag, 'Value') ?? '' });
  }
  return tags;
}

/**
 * The bucket names of a ListBuckets answer, one per `<Bucket>` element in document order (undefined for one
 * without a Name), to zip with `mapBlocks(xml, 'Bucket', …)`; [] when it does not parse.
 */
export function parseBucketNames(xml: string): Array<string | undefined> {
  const root = tryRoot(xml);
  if (root?.name !== 'ListAllMyBucketsResult') return [];
  return children(child(root.value, 'Buckets'), 'Bucket').map((b) => text(b, 'Name'));
}

/** IsTruncated and NextContinuationToken of a ListObjectsV2 page, in one parse; undefined when it does not parse as one. */
export function listingContinuation(xml: string): { truncated: boolean; token: string | undefined } | undefined {
  const root = tryRoot(xml);
  if (root?.name !== 'ListBucketResult') return undefined;
  return { truncated: text(root.value, 'IsTruncated') === 'true', token: text(root.value, 'NextContinuationToken') };
}

// ---------------------------------------------------------------------------------------------------------
// In-place edits of upstream answers. These stay regex-based on purpose: they patch ListParts and copy answers
// byte for byte, where parsing and rebuilding would change bytes clients see (listing pages: s3/listing.ts).
// Never use them to read values: use the parser above.

const ANY_BUT_QUOT = /&(?:#|amp;|lt;|gt;|apos;)/;

/** The text of an element as written (entities and character references) to its value. */
export function xmlUnescape(s: string): string {
  // Quotes alone (every ETag in a listing) without a callback per match.
  if (!ANY_BUT_QUOT.test(s)) return s.replaceAll('&quot;', '"');
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (m, e: string) => {
    if (!e.startsWith('#')) return ENTITIES[e]!;
    const cp = e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    // Not a code point (a store's answer may carry anything): left as written rather than thrown on.
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
  });
}

const ESCAPES: Record<string, string> = Object.fromEntries(Object.entries(ENTITIES).map(([name, c]) => [c, `&${name};`]));

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Replaces the text of every `<name>` element with `fn(old)` (escaped in and out). */
export function replaceElements(xml: string, name: string, fn: (value: string) => string): string {
  return xml.replace(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, 'g'), (_m, v: string) => {
    return `<${name}>${xmlEscape(fn(xmlUnescape(v)))}</${name}>`;
  });
}

/** Applies `fn` to each `<name>…</name>` block (raw XML in, raw XML out). */
export function mapBlocks(xml: string, name: string, fn: (block: string) => string): string {
  return xml.replace(new RegExp(`<${name}>[\\s\\S]*?</${name}>`, 'g'), (block) => fn(block));
}

/** Removes every element whose name matches (e.g. plaintext checksums the upstream cannot check). */
export function removeElements(xml: string, namePattern: RegExp): string {
  return xml.replace(/<([A-Za-z0-9]+)>[^<]*<\/\1>/g, (m, n: string) => (namePattern.test(n) ? '' : m));
}
