/**
 * S3 XML reading through fast-xml-parser: the typed readers on documents shaped like the AWS S3 API reference's
 * examples, the client-input cases the old regex helpers got wrong (attributes, `s3:` prefixes, CDATA, comments,
 * entities, whitespace), what is refused as MalformedXML (DOCTYPE, truncated, wrong root), and the regex editors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { S3Error } from '../../src/s3/errors.ts';
import {
  buildCompleteMultipartUpload,
  hasRoot,
  mapBlocks,
  parseCompleteMultipartUpload,
  parseS3Error,
  parseTagging,
  parseXml,
  replaceElements,
  textAt,
  xmlUnescape,
} from '../../src/s3/xml.ts';

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';

function isMalformed(e: unknown): boolean {
  return (
    e instanceof S3Error &&
    e.code === 'MalformedXML' &&
    e.status === 400 &&
    e.message === 'The XML you provided was not well-formed or did not validate against our published schema.'
  );
}

const complete = (parts: string, open = `<CompleteMultipartUpload xmlns="${NS}">`, close = '</CompleteMultipartUpload>') =>
  `${DECL}${open}${parts}${close}`;

// ---------------------------------------------------------------------------------------------------------
// parseXml

test('parseXml: one root, leaves are strings (never numbers), repeated elements are arrays', () => {
  const doc = parseXml(`${DECL}<A xmlns="${NS}"><N>0001</N><Big>18446744073709551617</Big><B>x</B><B>y</B><E/><F></F></A>`);
  assert.deepEqual(doc, { A: { N: '0001', Big: '18446744073709551617', B: ['x', 'y'], E: '', F: '' } });
  assert.deepEqual(parseXml('<?xml version="1.0"?>\n<!-- before -->\n<A/>\n<!-- after --><!---->\n'), { A: '' });
});

test('parseXml: malformed input throws MalformedXML', () => {
  const bad: Array<[string, string]> = [
    ['empty', ''],
    ['whitespace only', '  \n'],
    ['not XML', 'hello'],
    ['truncated', '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>'],
    ['truncated in a tag', '<CompleteMultipartUpload><Part><PartNum'],
    ['mismatched close', '<A><B>1</b></A>'],
    ['two roots', '<A>1</A><B>2</B>'],
    ['two self-closed roots', '<A/><A/>'],
    ['text after a self-closed root', '<A/>junk'],
    ['text after a root', '<A>1</A>junk'],
    ['text after a self-closed root and a comment', '<A/><!-- a --> -->'],
    ['text before the root', 'junk<A/>'],
    ['bare ampersand', '<A>x & y</A>'],
    ['undeclared entity', '<A>&nbsp;</A>'],
    ['code point out of range', '<A>&#x110000;</A>'],
    ['unclosed CDATA', '<A><![CDATA[x</A>'],
    ['unclosed comment', '<A><!-- x</A>'],
    ['declaration not first', ' <?xml version="1.0"?><A/>'],
  ];
  for (const [name, xml] of bad) {
    assert.throws(() => parseXml(xml), isMalformed, name);
    assert.throws(() => parseXml(xml, { client: true }), isMalformed, name);
  }
});

test('parseXml: a DOCTYPE in client input is refused, never expanded', () => {
  const lolz =
    '<!DOCTYPE CompleteMultipartUpload [\n' +
    '  <!ENTITY lol "lol">\n' +
    '  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n' +
    '  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">\n' +
    '  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n' +
    ']>\n';
  const cases: Array<[string, string]> = [
    ['billion laughs', `${DECL}${lolz}<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&lol3;</ETag></Part></CompleteMultipartUpload>`],
    ['declared but unused', `${lolz}<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>`],
    ['plain entity', '<!DOCTYPE A [<!ENTITY e "etag">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&e;</ETag></Part></CompleteMultipartUpload>'],
    ['no internal subset', '<!DOCTYPE CompleteMultipartUpload><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>'],
    ['external entity', '<!DOCTYPE A [<!ENTITY x SYSTEM "file:///etc/passwd">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&x;</ETag></Part></CompleteMultipartUpload>'],
  ];
  for (const [name, xml] of cases) {
    assert.throws(() => parseXml(xml, { client: true }), isMalformed, name);
    assert.throws(() => parseCompleteMultipartUpload(xml), isMalformed, name);
  }
  // Upstream input: the DOCTYPE is skipped, its entities stay undeclared.
  assert.deepEqual(parseXml('<!DOCTYPE A><A>x</A>'), { A: 'x' });
  assert.throws(() => parseXml('<!DOCTYPE A [<!ENTITY e "etag">]><A>&e;</A>'), isMalformed);
  assert.equal(textAt(`${lolz}<A><B>&lol3;</B></A>`, 'A', 'B'), undefined);
});

// ---------------------------------------------------------------------------------------------------------
// parseCompleteMultipartUpload

test('parseCompleteMultipartUpload: the AWS reference example and the SDKs’ shape', () => {
  // The API reference's example request body (pretty-printed, no namespace).
  const reference = `<CompleteMultipartUpload>
  <Part>
    <PartNumber>1</PartNumber>
    <ETag>"a54357aff0632cce46d942af68356b38"</ETag>
  </Part>
  <Part>
    <PartNumber>2</PartNumber>
    <ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <ETag>"acbd18db4cc2f85cedef654fccc4a4d8"</ETag>
  </Part>
</CompleteMultipartUpload>`;
  assert.deepEqual(parseCompleteMultipartUpload(reference), [
    { partNumber: '1', etag: '"a54357aff0632cce46d942af68356b38"', checksums: {} },
    { partNumber: '2', etag: '"0c78aef83f66abc1fa1e8477f296d394"', checksums: {} },
    { partNumber: '3', etag: '"acbd18db4cc2f85cedef654fccc4a4d8"', checksums: {} },
  ]);
  // The JS SDK v3: declaration, namespace, ETag before PartNumber, quotes as &quot;, checksums.
  const sdk = complete(
    '<Part><ChecksumCRC32>sOO8/Q==</ChecksumCRC32><ETag>&quot;F43138D9DEDB4ECB62CC97650F694FDE&quot;</ETag><PartNumber>1</PartNumber></Part>' +
      '<Part><ChecksumCRC32>AAAAAA==</ChecksumCRC32><ETag>&quot;056BD2D873D7CE26B24AB1AD7EC60017&quot;</ETag><PartNumber>2</PartNumber></Part>',
  );
  assert.deepEqual(parseCompleteMultipartUpload(sdk), [
    { partNumber: '1', etag: '"F43138D9DEDB4ECB62CC97650F694FDE"', checksums: { ChecksumCRC32: 'sOO8/Q==' } },
    { partNumber: '2', etag: '"056BD2D873D7CE26B24AB1AD7EC60017"', checksums: { ChecksumCRC32: 'AAAAAA==' } },
  ]);
});

test('parseCompleteMultipartUpload: client input regexes got wrong', () => {
  const one = (xml: string) => {
    const parts = parseCompleteMultipartUpload(xml);
    assert.equal(parts.length, 1, xml);
    return parts[0]!;
  };
  const cases: Array<[string, string, { partNumber: string; etag: string; checksums?: Record<string, string> }]> = [
    ['a single Part is still a list', complete('<Part><PartNumber>7</PartNumber><ETag>"e"</ETag></Part>'), { partNumber: '7', etag: '"e"' }],
    ['leading zeros kept', complete('<Part><PartNumber>0001</PartNumber><ETag>"e"</ETag></Part>'), { partNumber: '0001', etag: '"e"' }],
    [
      'attributes on elements',
      complete('<Part id="p1"><PartNumber type="int">1</PartNumber><ETag xml:space="preserve">"e"</ETag></Part>', `<CompleteMultipartUpload xmlns="${NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`),
      { partNumber: '1', etag: '"e"' },
    ],
    [
      's3: namespace prefixes',
      complete(
        '<s3:Part><s3:PartNumber>1</s3:PartNumber><s3:ETag>"e"</s3:ETag><s3:ChecksumSHA256>47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=</s3:ChecksumSHA256></s3:Part>',
        `<s3:CompleteMultipartUpload xmlns:s3="${NS}">`,
        '</s3:CompleteMultipartUpload>',
      ),
      { partNumber: '1', etag: '"e"', checksums: { ChecksumSHA256: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' } },
    ],
    ['CDATA', complete('<Part><PartNumber><![CDATA[1]]></PartNumber><ETag><![CDATA["e&amp;<x>"]]></ETag></Part>'), { partNumber: '1', etag: '"e&amp;<x>"' }],
    ['CDATA next to text', complete('<Part><PartNumber>1</PartNumber><ETag>"a<![CDATA[b]]>c"</ETag></Part>'), { partNumber: '1', etag: '"abc"' }],
    [
      'comments between elements',
      complete('<!-- parts --><Part><!-- n --><PartNumber>1</PartNumber><!-- e --><ETag>"e"</ETag><!-- end --></Part><!-- done -->'),
      { partNumber: '1', etag: '"e"' },
    ],
    ['a comment inside a value', complete('<Part><PartNumber>1<!-- one --></PartNumber><ETag>"ab<!-- x -->cd"</ETag></Part>'), { partNumber: '1', etag: '"abcd"' }],
    ['a comment that looks like a Part', complete('<!-- <Part><PartNumber>9</PartNumber><ETag>x</ETag></Part> --><Part><PartNumber>1</PartNumber><ETag>"e"</ETag></Part>'), { partNumber: '1', etag: '"e"' }],
    ['&quot; in the ETag', complete('<Part><PartNumber>1</PartNumber><ETag>&quot;e&quot;</ETag></Part>'), { partNumber: '1', etag: '"e"' }],
    ['&#34; and &#x22; in the ETag', complete('<Part><PartNumber>1</PartNumber><ETag>&#34;e&#x22;</ETag></Part>'), { partNumber: '1', etag: '"e"' }],
    ['other entities', complete('<Part><PartNumber>&#49;</PartNumber><ETag>&lt;&amp;&gt;&apos;</ETag></Part>'), { partNumber: '1', etag: `<&>'` }],
    [
      'whitespace and newlines around values',
      complete('\n  <Part>\n    <PartNumber>\n      2\n    </PartNumber>\n    <ETag>\t"e"\r\n</ETag>\n    <ChecksumCRC32C> ABCDEF== </ChecksumCRC32C>\n  </Part>\n'),
      { partNumber: '2', etag: '"e"', checksums: { ChecksumCRC32C: 'ABCDEF==' } },
    ],
    ['self-closed unknown elements are ignored', complete('<Part><Size>5</Size><PartNumber>1</PartNumber><ETag>"e"</ETag><Extra/></Part>'), { partNumber: '1', etag: '"e"' }],
    [
      'every checksum element',
      complete(
        '<Part><PartNumber>1</PartNumber><ETag>"e"</ETag><ChecksumCRC32>a</ChecksumCRC32><ChecksumCRC32C>b</ChecksumCRC32C>' +
          '<ChecksumCRC64NVME>c</ChecksumCRC64NVME><ChecksumSHA1>d</ChecksumSHA1><ChecksumSHA256>e</ChecksumSHA256></Part>',
      ),
      { partNumber: '1', etag: '"e"', checksums: { ChecksumCRC32: 'a', ChecksumCRC32C: 'b', ChecksumCRC64NVME: 'c', ChecksumSHA1: 'd', ChecksumSHA256: 'e' } },
    ],
    ['a byte-order mark', `\ufeff${complete('<Part><PartNumber>1</PartNumber><ETag>"e"</ETag></Part>')}`, { partNumber: '1', etag: '"e"' }],
  ];
  for (const [name, xml, want] of cases) {
    assert.deepEqual(one(xml), { checksums: {}, ...want }, name);
  }
});

test('parseCompleteMultipartUpload: parts in document order, duplicates and disorder left to the caller', () => {
  const xml = complete(
    [3, 1, 2, 2].map((n) => `<Part><PartNumber>${n}</PartNumber><ETag>"e${n}"</ETag></Part>`).join('\n'),
  );
  assert.deepEqual(
    parseCompleteMultipartUpload(xml).map((p) => [p.partNumber, p.etag]),
    [['3', '"e3"'], ['1', '"e1"'], ['2', '"e2"'], ['2', '"e2"']],
  );
});

test('parseCompleteMultipartUpload: MalformedXML as AWS S3 answers it', () => {
  const part = '<Part><PartNumber>1</PartNumber><ETag>"e"</ETag></Part>';
  const bad: Array<[string, string]> = [
    ['empty body', ''],
    ['no Part', complete('')],
    ['self-closed root', `<CompleteMultipartUpload xmlns="${NS}"/>`],
    ['only whitespace and comments', complete('\n  <!-- nothing -->\n')],
    ['wrong root', `<CompleteMultipartUploadResult>${part}</CompleteMultipartUploadResult>`],
    ['Error root', `<Error>${part}</Error>`],
    ['wrong case', `<completeMultipartUpload>${part}</completeMultipartUpload>`],
    ['part in lower case', complete('<part><PartNumber>1</PartNumber><ETag>"e"</ETag></part>')],
    ['Part nested deeper', complete(`<Parts>${part}</Parts>`)],
    ['Part without PartNumber', complete(`${part}<Part><ETag>"e"</ETag></Part>`)],
    ['Part without ETag', complete(`${part}<Part><PartNumber>2</PartNumber></Part>`)],
    ['partnumber in lower case', complete('<Part><partNumber>1</partNumber><ETag>"e"</ETag></Part>')],
    ['empty PartNumber', complete('<Part><PartNumber> </PartNumber><ETag>"e"</ETag></Part>')],
    ['empty ETag', complete('<Part><PartNumber>1</PartNumber><ETag/></Part>')],
    ['two PartNumbers in one Part', complete('<Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>"e"</ETag></Part>')],
    ['an element inside ETag', complete('<Part><PartNumber>1</PartNumber><ETag><x/>"e"</ETag></Part>')],
    ['text Part', complete('<Part>1 "e"</Part>')],
    ['truncated', complete(part).slice(0, -10)],
    ['entity in a checksum left undeclared', complete('<Part><PartNumber>1</PartNumber><ETag>"e"</ETag><ChecksumCRC32>&x;</ChecksumCRC32></Part>')],
    ['a repeated checksum', complete('<Part><PartNumber>1</PartNumber><ETag>"e"</ETag><ChecksumCRC32>a</ChecksumCRC32><ChecksumCRC32>b</ChecksumCRC32></Part>')],
    ['JSON', '{"Parts":[{"PartNumber":1,"ETag":"e"}]}'],
  ];
  for (const [name, xml] of bad) assert.throws(() => parseCompleteMultipartUpload(xml), isMalformed, name);
});

// ---------------------------------------------------------------------------------------------------------
// buildCompleteMultipartUpload

test('buildCompleteMultipartUpload: escaped, in order, no checksums', () => {
  const xml = buildCompleteMultipartUpload([
    { partNumber: 1, etag: '"a54357aff0632cce46d942af68356b38"' },
    { partNumber: '2', etag: `<&>"'` },
  ]);
  assert.equal(
    xml,
    `${DECL}<CompleteMultipartUpload xmlns="${NS}">` +
      '<Part><PartNumber>1</PartNumber><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>' +
      '<Part><PartNumber>2</PartNumber><ETag>&lt;&amp;&gt;&quot;&apos;</ETag></Part>' +
      '</CompleteMultipartUpload>',
  );
  assert.deepEqual(parseCompleteMultipartUpload(xml), [
    { partNumber: '1', etag: '"a54357aff0632cce46d942af68356b38"', checksums: {} },
    { partNumber: '2', etag: `<&>"'`, checksums: {} },
  ]);
});

test('buildCompleteMultipartUpload: ETags with < and & round-trip through parseCompleteMultipartUpload', () => {
  for (const etag of ['a<b', 'a&b', '&amp;', '&lt;x&gt;', ']]>', '<![CDATA[x]]>', '<!-- c -->', '"x"&<y>', '&#34;']) {
    const [part] = parseCompleteMultipartUpload(buildCompleteMultipartUpload([{ partNumber: 1, etag }]));
    assert.equal(part!.etag, etag, etag);
  }
});

/** A client's body as the SDKs and hand-written tools vary it: namespace or prefix, element order, checksums. */
function clientBody(
  parts: Array<{ partNumber: string; etag: string; checksums: Record<string, string> }>,
  prefix: string,
  etagFirst: boolean,
): string {
  const p = prefix ? `${prefix}:` : '';
  const el = (name: string, value: string) => `<${p}${name}>${value.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'))}</${p}${name}>`;
  const body = parts
    .map((part) => {
      const fields = [el('PartNumber', part.partNumber), el('ETag', part.etag)];
      if (etagFirst) fields.reverse();
      return `<${p}Part>${fields.join('')}${Object.entries(part.checksums).map(([k, v]) => el(k, v)).join('\n')}</${p}Part>`;
    })
    .join('\n');
  const xmlns = prefix ? `xmlns:${prefix}="${NS}"` : `xmlns="${NS}"`;
  return `${DECL}<${p}CompleteMultipartUpload ${xmlns}>${body}</${p}CompleteMultipartUpload>`;
}

test('property: parse(build(parts)) and parse(a client’s body) return the parts', () => {
  const etagChar = fc.constantFrom(...'0123456789abcdefABCDEF"\'&<>;#-/ xé€😀'.split(/(?:)/u), '&amp;', '&#34;', ']]>', '<!--', '\t');
  const etag = fc
    .array(etagChar, { minLength: 1, maxLength: 40 })
    .map((cs) => cs.join(''))
    .filter((s) => s.trim() === s && s !== '');
  const partNumber = fc.oneof(fc.integer({ min: 1, max: 10_000 }).map(String), fc.stringMatching(/^0{1,3}[1-9][0-9]{0,3}$/));
  const checksums = fc.dictionary(
    fc.constantFrom('ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumCRC64NVME', 'ChecksumSHA1', 'ChecksumSHA256'),
    fc.base64String({ minLength: 4, maxLength: 44 }).filter((s) => s !== ''),
    { maxKeys: 2 },
  );
  const parts = fc.array(fc.record({ partNumber, etag, checksums }), { minLength: 1, maxLength: 12 });
  fc.assert(
    fc.property(parts, fc.constantFrom('', 's3', 'x'), fc.boolean(), (list, prefix, etagFirst) => {
      const built = parseCompleteMultipartUpload(buildCompleteMultipartUpload(list));
      assert.deepEqual(
        built.map((p) => [p.partNumber, p.etag, p.checksums]),
        list.map((p) => [p.partNumber, p.etag, {}]),
      );
      const parsed = parseCompleteMultipartUpload(clientBody(list, prefix, etagFirst));
      // fast-check's dictionaries have no prototype; the parser's records do.
      assert.deepEqual(parsed, list.map((p) => ({ ...p, checksums: { ...p.checksums } })));
    }),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------------------------------------------------
// Upstream answers: parseS3Error, textAt, hasRoot

const NO_SUCH_KEY = `${DECL}<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>`;

// CompleteMultipartUpload can answer 200 and then an error, after whitespace it sends to keep the connection open.
const ERROR_IN_200 = `${DECL}

  \n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>656c76696e6727732072657175657374</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>`;

const COMPLETED = `${DECL}<CompleteMultipartUploadResult xmlns="${NS}">
  <Location>https://example-bucket.s3.us-east-1.amazonaws.com/Example-Object</Location>
  <Bucket>Example-Bucket</Bucket>
  <Key>Example-Object</Key>
  <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
</CompleteMultipartUploadResult>`;

const INITIATED = `${DECL}<InitiateMultipartUploadResult xmlns="${NS}">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>`;

const COPIED_PART = `${DECL}<CopyPartResult>
  <LastModified>2009-10-28T22:32:00</LastModified>
  <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>
</CopyPartResult>`;

test('parseS3Error: Code and Message of an <Error>; {} otherwise, never throws', () => {
  const cases: Array<[string, string, { code?: string; message?: string }]> = [
    ['NoSuchKey', NO_SUCH_KEY, { code: 'NoSuchKey', message: 'The resource you requested does not exist' }],
    ['after padding', ERROR_IN_200, { code: 'InternalError', message: 'We encountered an internal error. Please try again.' }],
    ['entities in the message', '<Error><Code>InvalidArgument</Code><Message>a &lt; b &amp;&amp; &quot;c&quot;</Message></Error>', { code: 'InvalidArgument', message: 'a < b && "c"' }],
    ['code only', '<Error><Code> SlowDown </Code></Error>', { code: 'SlowDown' }],
    ['namespaced', `<s3:Error xmlns:s3="${NS}"><s3:Code>AccessDenied</s3:Code><s3:Message>Access Denied</s3:Message></s3:Error>`, { code: 'AccessDenied', message: 'Access Denied' }],
    ['another root', COMPLETED, {}],
    ['empty', '', {}],
    ['HTML', '<html><body>502 Bad Gateway</body>', {}],
    ['truncated', NO_SUCH_KEY.slice(0, 60), {}],
    ['garbage', '\u0000\u0001 ]]> &', {}],
  ];
  for (const [name, xml, want] of cases) assert.deepEqual(parseS3Error(xml), want, name);
});

test('textAt: the text at a path from the root; undefined when absent or unparseable', () => {
  const cases: Array<[string, string, string[], string | undefined]> = [
    ['UploadId', INITIATED, ['InitiateMultipartUploadResult', 'UploadId'], 'VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA'],
    ['copied part ETag', COPIED_PART, ['CopyPartResult', 'ETag'], '"9b2cf535f27731c974343645a3985328"'],
    ['completed ETag', COMPLETED, ['CompleteMultipartUploadResult', 'ETag'], '"3858f62230ac3c915f300c664312c11f-9"'],
    ['completed Key', COMPLETED, ['CompleteMultipartUploadResult', 'Key'], 'Example-Object'],
    ['text kept exactly', '<A><K> spaced key </K></A>', ['A', 'K'], ' spaced key '],
    ['first of repeated', '<A><B><C>1</C></B><B><C>2</C></B></A>', ['A', 'B', 'C'], '1'],
    ['root only', '<A>x</A>', ['A'], 'x'],
    ['empty element', '<A><B/></A>', ['A', 'B'], ''],
    ['not a leaf', INITIATED, ['InitiateMultipartUploadResult'], undefined],
    ['wrong root', COMPLETED, ['CopyPartResult', 'ETag'], undefined],
    ['absent', INITIATED, ['InitiateMultipartUploadResult', 'ETag'], undefined],
    ['case-sensitive', INITIATED, ['InitiateMultipartUploadResult', 'uploadId'], undefined],
    ['not an own property', INITIATED, ['InitiateMultipartUploadResult', 'constructor'], undefined],
    ['no path', INITIATED, [], undefined],
    ['an Error answer', ERROR_IN_200, ['CompleteMultipartUploadResult', 'ETag'], undefined],
    ['truncated', INITIATED.slice(0, -20), ['InitiateMultipartUploadResult', 'UploadId'], undefined],
    ['not XML', 'Internal Server Error', ['InitiateMultipartUploadResult', 'UploadId'], undefined],
  ];
  for (const [name, xml, path, want] of cases) assert.equal(textAt(xml, ...path), want, name);
});

test('hasRoot: the root element’s name, after any padding; false when unparseable', () => {
  assert.equal(hasRoot(ERROR_IN_200, 'Error'), true);
  assert.equal(hasRoot(`\n\n   ${ERROR_IN_200}`, 'Error'), true);
  assert.equal(hasRoot(ERROR_IN_200, 'CompleteMultipartUploadResult'), false);
  assert.equal(hasRoot(COMPLETED, 'CompleteMultipartUploadResult'), true);
  assert.equal(hasRoot(COMPLETED, 'Error'), false);
  assert.equal(hasRoot(`<s3:Error xmlns:s3="${NS}"><s3:Code>x</s3:Code></s3:Error>`, 'Error'), true);
  assert.equal(hasRoot('<error/>', 'Error'), false);
  assert.equal(hasRoot(`${DECL}<Error><Code>InternalError</Code>`, 'Error'), false);
  assert.equal(hasRoot('', 'Error'), false);
});

// ---------------------------------------------------------------------------------------------------------
// parseTagging

test('parseTagging: Tagging/TagSet/Tag, keys and values exact', () => {
  const reference = `${DECL}<Tagging xmlns="${NS}">
  <TagSet>
     <Tag>
       <Key>tag1</Key>
       <Value>val1</Value>
     </Tag>
     <Tag>
       <Key>tag2</Key>
       <Value>val2</Value>
     </Tag>
  </TagSet>
</Tagging>`;
  const cases: Array<[string, string, Array<{ key: string; value: string }>]> = [
    ['reference', reference, [{ key: 'tag1', value: 'val1' }, { key: 'tag2', value: 'val2' }]],
    ['one tag', '<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>', [{ key: 'k', value: 'v' }]],
    ['no tags', `<Tagging xmlns="${NS}"><TagSet/></Tagging>`, []],
    ['no TagSet', '<Tagging/>', []],
    ['empty value', '<Tagging><TagSet><Tag><Key>k</Key><Value></Value></Tag><Tag><Key>k2</Key><Value/></Tag></TagSet></Tagging>', [{ key: 'k', value: '' }, { key: 'k2', value: '' }]],
    ['spaces kept', '<Tagging><TagSet><Tag><Key> a b </Key><Value>  </Value></Tag></TagSet></Tagging>', [{ key: ' a b ', value: '  ' }]],
    ['entities', '<Tagging><TagSet><Tag><Key>a&amp;b</Key><Value>&lt;x=y&gt;+&#x2F;</Value></Tag></TagSet></Tagging>', [{ key: 'a&b', value: '<x=y>+/' }]],
    ['tag without key skipped', '<Tagging><TagSet><Tag><Value>v</Value></Tag><Tag><Key>k</Key></Tag></TagSet></Tagging>', [{ key: 'k', value: '' }]],
    ['another root', NO_SUCH_KEY, []],
    ['garbage', '<Tagging><TagSet>', []],
  ];
  for (const [name, xml, want] of cases) assert.deepEqual(parseTagging(xml), want, name);
});

// ---------------------------------------------------------------------------------------------------------
// the regex editors (listing pages: test/unit/listing.test.ts)

test('replaceElements never throws on a character reference beyond Unicode (a hostile store)', () => {
  const xml = `<ListPartsResult xmlns="${NS}"><Part><PartNumber>1</PartNumber><Size>&#99999999;</Size></Part></ListPartsResult>`;
  assert.doesNotThrow(() => mapBlocks(xml, 'Part', (b) => replaceElements(b, 'Size', () => '1')));
  assert.equal(replaceElements('<Size>&#99999999;</Size><ETag>&quot;a&quot;</ETag>', 'ETag', (v) => `${v}!`), '<Size>&#99999999;</Size><ETag>&quot;a&quot;!</ETag>');
});

test('xmlUnescape: quotes alone take the short way, with the same result as the general one', () => {
  const cases: Array<[string, string]> = [
    ['&quot;abc&quot;', '"abc"'],
    ['&quot;a&amp;quot;b&quot;', '"a&quot;b"'],
    ['&#34;x&quot;', '"x"'],
    ['&quot;&#x110000;', '"&#x110000;'],
    ['&quot;&lt;&gt;&apos;', `"<>'`],
    ['&quo;t', '&quo;t'],
  ];
  for (const [s, want] of cases) assert.equal(xmlUnescape(s), want, s);
});
