/**
 * Listing pages as bytes (s3/listing.ts): the entries one scan reads (against the texts a page was written with,
 * and fast-xml-parser's reading of an edited page); edits that change only the texts they name, byte for byte
 * elsewhere, with keys in any script (string offsets of the scan are byte offsets); frames that are not whole;
 * a hostile store's bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isWholeListing, ListingEdits, parseListingEntries, type ListingEntry, type Span } from '../../src/s3/listing.ts';
import { parseXml, xmlEscape } from '../../src/s3/xml.ts';

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';

const LIST_V2 = `${DECL}<ListBucketResult xmlns="${NS}">
    <Name>bucket</Name>
    <Prefix/>
    <KeyCount>4</KeyCount>
    <MaxKeys>1000</MaxKeys>
    <Delimiter>/</Delimiter>
    <IsTruncated>false</IsTruncated>
    <Contents>
        <Key>my-image.jpg</Key>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
        <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
        <ChecksumType>FULL_OBJECT</ChecksumType>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
    </Contents>
    <CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes>
    <Contents>
        <Key>a &amp; b &lt;c&gt;.txt</Key>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>"599bab3ed2c697f1d26842727561fd94-3"</ETag>
        <Size>0</Size>
        <StorageClass>STANDARD</StorageClass>
    </Contents>
    <CommonPrefixes><Prefix>videos/</Prefix></CommonPrefixes>
    <Contents>
        <Key>no-etag</Key>
        <Size>1</Size>
    </Contents>
    <Contents>
        <Key> spaced </Key>
        <ETag>"x"</ETag>
        <Size>18446744073709551617</Size>
    </Contents>
</ListBucketResult>`;

const VERSIONS = `${DECL}<ListVersionsResult xmlns="${NS}">
    <Name>bucket</Name>
    <Prefix>my</Prefix>
    <KeyMarker/>
    <VersionIdMarker/>
    <MaxKeys>5</MaxKeys>
    <IsTruncated>false</IsTruncated>
    <DeleteMarker>
        <Key>my-second-image.jpg</Key>
        <VersionId>03jpff543dhffds434rfdsFDN943fdsFkdmqnh892</VersionId>
        <IsLatest>true</IsLatest>
        <LastModified>2009-11-12T17:50:30.000Z</LastModified>
        <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd@amazon.com</DisplayName></Owner>
    </DeleteMarker>
    <Version>
        <Key>my-image.jpg</Key>
        <VersionId>3/L4kqtJl40Nr8X8gdRQBpUMLUo</VersionId>
        <IsLatest>true</IsLatest>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
        <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd@amazon.com</DisplayName></Owner>
    </Version>
    <DeleteMarker>
        <Key>my-image.jpg</Key>
        <VersionId>null</VersionId>
        <IsLatest>false</IsLatest>
    </DeleteMarker>
    <Version>
        <Key>my-second-image.jpg</Key>
        <VersionId>QUpfdndhfd8438MNFDN93jdnJFkdmqnh893</VersionId>
        <IsLatest>false</IsLatest>
        <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
        <Size>166434</Size>
    </Version>
    <CommonPrefixes><Prefix>my/</Prefix></CommonPrefixes>
    <Version>
        <Key>my-third-image.jpg</Key>
        <VersionId>null</VersionId>
        <ETag>"e"</ETag>
    </Version>
</ListVersionsResult>`;

/** ListingEdits with these edits, applied. */
function editListing(page: Buffer, edits: ReadonlyArray<{ at: Span; xml: string }>): Buffer {
  const e = new ListingEdits();
  for (const { at, xml } of edits) e.set(at, xml);
  return e.apply(page);
}

/** An entry without its spans, to compare with what a page lists. */
const plain = (e: ListingEntry | undefined) => e && { key: e.key, etag: e.etag, size: e.size, ...(e.versionId ? { versionId: e.versionId } : {}) };
const entries = (xml: string | Buffer, block: 'Contents' | 'Version') => parseListingEntries(Buffer.from(xml), block).map(plain);

test('parseListingEntries: Contents in document order, undefined where Key/Size/ETag is missing', () => {
  assert.deepEqual(entries(LIST_V2, 'Contents'), [
    { key: 'my-image.jpg', etag: '"fba9dede5f27731c9771645a39863328"', size: '434234' },
    { key: 'a & b <c>.txt', etag: '"599bab3ed2c697f1d26842727561fd94-3"', size: '0' },
    undefined,
    { key: ' spaced ', etag: '"x"', size: '18446744073709551617' },
  ]);
  assert.deepEqual(entries(LIST_V2, 'Version'), [], 'a ListBucketResult has no versions');
});

test('parseListingEntries: Version entries only, never DeleteMarker', () => {
  assert.deepEqual(entries(VERSIONS, 'Version'), [
    { key: 'my-image.jpg', etag: '"fba9dede5f27731c9771645a39863328"', size: '434234', versionId: '3/L4kqtJl40Nr8X8gdRQBpUMLUo' },
    { key: 'my-second-image.jpg', etag: '"9b2cf535f27731c974343645a3985328"', size: '166434', versionId: 'QUpfdndhfd8438MNFDN93jdnJFkdmqnh893' },
    undefined,
  ]);
  assert.deepEqual(entries(VERSIONS, 'Contents'), [], 'a ListVersionsResult has no Contents');
});

test('parseListingEntries: the spans are where Size and ETag are written', () => {
  const page = Buffer.from(LIST_V2);
  const [first] = parseListingEntries(page, 'Contents');
  assert.equal(page.toString('utf8', ...first!.sizeAt), '434234');
  assert.equal(page.toString('utf8', ...first!.etagAt), '&quot;fba9dede5f27731c9771645a39863328&quot;');
  assert.equal(first!.etagXml, '&quot;fba9dede5f27731c9771645a39863328&quot;');
});

test('parseListingEntries: one entry, url-encoded keys, empty and broken listings, other answers', () => {
  const encoded = `<ListBucketResult xmlns="${NS}"><EncodingType>url</EncodingType><Contents><Key>a%20b%2Bc+d%26</Key><ETag>"e"</ETag><Size>3</Size></Contents></ListBucketResult>`;
  assert.deepEqual(entries(encoded, 'Contents'), [{ key: 'a%20b%2Bc+d%26', etag: '"e"', size: '3' }]);
  assert.deepEqual(entries(`<ListBucketResult xmlns="${NS}"><Name>b</Name><KeyCount>0</KeyCount></ListBucketResult>`, 'Contents'), []);
  assert.deepEqual(entries(`<ListBucketResult xmlns="${NS}"/>`, 'Contents'), []);
  assert.deepEqual(entries(LIST_V2.slice(0, 400), 'Contents'), [], 'cut inside an entry');
  assert.deepEqual(entries(LIST_V2.slice(0, LIST_V2.lastIndexOf('</Contents>') + 11), 'Contents'), [], 'cut between entries');
  assert.deepEqual(entries(`${LIST_V2}<Contents><Key>x</Key><ETag>"e"</ETag><Size>3</Size></Contents>`, 'Contents'), [], 'more after the root');
  assert.deepEqual(entries(`${DECL}<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`, 'Contents'), []);
  assert.deepEqual(entries(`<html><body><Contents><Key>a</Key><ETag>"e"</ETag><Size>1</Size></Contents></body></html>`, 'Contents'), []);
});

test('ETags as stores write them: the usual &quot;…&quot; and every other spelling read alike', () => {
  const one = (etag: string) => entries(`<ListBucketResult><Contents><Key>k</Key><ETag>${etag}</ETag><Size>1</Size></Contents></ListBucketResult>`, 'Contents')[0]?.etag;
  assert.equal(one('&quot;abc&quot;'), '"abc"');
  assert.equal(one('&quot;&quot;'), '""');
  assert.equal(one('&quot;'), '"', 'one quote entity is not a quoted empty ETag');
  assert.equal(one(' &quot;abc&quot; '), '"abc"');
  assert.equal(one('&#34;abc&#34;'), '"abc"');
  assert.equal(one('"abc-2"'), '"abc-2"');
  assert.equal(one('&quot;a&amp;b&quot;'), '"a&b"');
  assert.equal(one(''), undefined);
});

test('isWholeListing: the frame, with an XML declaration, a namespace prefix and trailing whitespace', () => {
  const body = '<Contents><Key>a</Key><ETag>"e"</ETag><Size>3</Size></Contents>';
  assert.equal(isWholeListing(Buffer.from(`${DECL}<ListBucketResult xmlns="${NS}">${body}</ListBucketResult>\n\n  `), 'Contents'), true);
  assert.equal(isWholeListing(Buffer.from(`<s3:ListBucketResult xmlns:s3="${NS}">${body}</s3:ListBucketResult>`), 'Contents'), true);
  assert.equal(isWholeListing(Buffer.from(`<ListBucketResult>${body}</ListBucketResult>x`), 'Contents'), false);
  assert.equal(isWholeListing(Buffer.from(`<ListBucketResult>${body}`), 'Contents'), false);
  assert.equal(isWholeListing(Buffer.from(''), 'Contents'), false);
  assert.equal(isWholeListing(Buffer.from(`\ufeff${DECL}<ListBucketResult>${body}</ListBucketResult>`), 'Contents'), true, 'a byte-order mark');
  assert.equal(isWholeListing(Buffer.from(`${' '.repeat(5000)}${DECL}${'\n'.repeat(5000)}<ListBucketResult>${body}</ListBucketResult>\u00a0`), 'Contents'), true, 'padding');
  assert.equal(isWholeListing(Buffer.from(`x<ListBucketResult>${body}</ListBucketResult>`), 'Contents'), false, 'text before the root');
  assert.equal(isWholeListing(Buffer.from(`${DECL}x<ListBucketResult>${body}</ListBucketResult>`), 'Contents'), false, 'text after the declaration');
  assert.equal(isWholeListing(Buffer.from(`<?xml version="1.0"<ListBucketResult>${body}</ListBucketResult>`), 'Contents'), false, 'a declaration never closed');
  assert.equal(isWholeListing(Buffer.from(`<ListBucketResult/>`), 'Contents'), false);
  assert.equal(isWholeListing(Buffer.from(`<ListVersionsResult>${body}</ListVersionsResult>`), 'Contents'), false);
});

test('ListingEdits: only the texts at the spans change, to the XML given; everything else byte for byte', () => {
  for (const [xml, block] of [
    [LIST_V2, 'Contents'],
    [VERSIONS, 'Version'],
  ] as const) {
    const page = Buffer.from(xml);
    const listed = parseListingEntries(page, block);
    const edits = listed.flatMap((e) => (e ? [{ at: e.etagAt, xml: xmlEscape(`${e.etag}<&>`) }, { at: e.sizeAt, xml: `${e.size}0` }] : []));
    const out = editListing(page, edits);
    assert.deepEqual(
      parseListingEntries(out, block).map(plain),
      listed.map((e) => e && { ...plain(e), size: `${e.size}0`, etag: `${e.etag}<&>` }),
    );
    const strip = (s: string) => s.replace(/<Size>[^<]*<\/Size>|<ETag>[^<]*<\/ETag>/g, '');
    assert.equal(strip(out.toString()), strip(xml));
    assert.match(out.toString(), /&lt;&amp;&gt;<\/ETag>/);
  }
  const page = Buffer.from(LIST_V2);
  assert.deepEqual(editListing(page, []), page);
  const [a] = parseListingEntries(page, 'Contents');
  assert.throws(() => editListing(page, [{ at: a!.sizeAt, xml: '1' }, { at: a!.sizeAt, xml: '2' }]), RangeError, 'overlapping');
  const [, b] = parseListingEntries(page, 'Contents');
  assert.deepEqual(
    editListing(page, [{ at: b!.sizeAt, xml: '2' }, { at: a!.sizeAt, xml: '1' }]),
    editListing(page, [{ at: a!.sizeAt, xml: '1' }, { at: b!.sizeAt, xml: '2' }]),
    'set out of page order (answered by a HEAD later): applied in page order',
  );
  assert.throws(() => editListing(page, [{ at: [page.length - 1, page.length + 1], xml: '1' }]), RangeError, 'past the end');
});

test('keys in any script: decoded as UTF-8, and the edits land on byte offsets', () => {
  const key = 'ключ/日本 & 𝄞.txt';
  const page = Buffer.from(`${DECL}<ListBucketResult xmlns="${NS}"><Contents><Key>${xmlEscape(key)}</Key><ETag>&quot;e&quot;</ETag><Size>3</Size></Contents><Contents><Key>ü</Key><ETag>"f"</ETag><Size>4</Size></Contents></ListBucketResult>`);
  const listed = parseListingEntries(page, 'Contents');
  assert.deepEqual(listed.map(plain), [
    { key, etag: '"e"', size: '3' },
    { key: 'ü', etag: '"f"', size: '4' },
  ]);
  const out = editListing(page, listed.map((e, i) => ({ at: e!.sizeAt, xml: String(10 + i) })));
  const root = parseXml(out.toString()) as { ListBucketResult: { Contents: Array<{ Key: string; Size: number }> } };
  assert.deepEqual(
    root.ListBucketResult.Contents.map((c) => [c.Key, String(c.Size)]),
    [
      [key, '10'],
      ['ü', '11'],
    ],
  );
});

test('a hostile store: bytes that are not UTF-8 pass through as sent; references beyond Unicode never throw', () => {
  const head = Buffer.from(`<ListBucketResult><Contents><Key>k&#x110000;</Key><ETag>"e"</ETag><Owner>`);
  const tail = Buffer.from(`</Owner><Size>&#99999999;</Size></Contents></ListBucketResult>`);
  const page = Buffer.concat([head, Buffer.from([0xff, 0xfe, 0xc3]), tail]);
  const listed = parseListingEntries(page, 'Contents');
  assert.deepEqual(listed.map(plain), [{ key: 'k&#x110000;', etag: '"e"', size: '&#99999999;' }]);
  const out = editListing(page, [{ at: listed[0]!.sizeAt, xml: '1' }]);
  assert.deepEqual(out, Buffer.concat([head, Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(`</Owner><Size>1</Size></Contents></ListBucketResult>`)]));
});

test('property: the scan reads the keys, ETags and sizes a page was written with, and a Size edit changes nothing else', () => {
  const entry = fc.record({
    // Any text, as a store escapes it (the XML 1.0 characters; S3 escapes the rest as references).
    key: fc.string({ unit: 'grapheme', maxLength: 12 }).map((k) => k.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')),
    size: fc.nat(),
    etag: fc.stringMatching(/^[0-9a-f]{32}(-[1-9][0-9]{0,3})?$/),
    prefix: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 8 }), (list) => {
      const body = list
        .map(
          (e) =>
            (e.prefix ? `<CommonPrefixes><Prefix>${xmlEscape(e.key)}/</Prefix></CommonPrefixes>` : '') +
            `<Contents><Key>${xmlEscape(e.key)}</Key><LastModified>2026-12-05T00:00:00.000Z</LastModified><ETag>&quot;${e.etag}&quot;</ETag><Size>${e.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
        )
        .join('');
      const page = Buffer.from(`${DECL}<ListBucketResult xmlns="${NS}"><Name>b</Name><IsTruncated>false</IsTruncated>${body}</ListBucketResult>`);
      const listed = parseListingEntries(page, 'Contents');
      assert.deepEqual(
        listed.map(plain),
        list.map((e) => ({ key: e.key, etag: `"${e.etag}"`, size: String(e.size) })),
      );
      const out = editListing(page, listed.map((e) => ({ at: e!.sizeAt, xml: String(Number(e!.size) + 1) })));
      assert.deepEqual(
        parseListingEntries(out, 'Contents').map(plain),
        list.map((e) => ({ key: e.key, etag: `"${e.etag}"`, size: String(e.size + 1) })),
      );
      assert.equal(out.toString().replace(/<Size>\d+<\/Size>/g, ''), page.toString().replace(/<Size>\d+<\/Size>/g, ''));
    }),
  );
});
