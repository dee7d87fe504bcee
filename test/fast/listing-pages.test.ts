/**
 * Listing pages as a store writes them (s3/listing.ts): what the proxy does not edit reaches the client byte for
 * byte, whatever the store's bytes are; the ETag of an encrypted object keeps the store's way of quoting; a page
 * longer than the proxy reads is an error, never a cut 200; the access log counts both pages.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { encryptedSize } from '../../src/format/layout.ts';
import { errorCode, logLine, rawRequest, startTestProxy, type TestProxy } from '../support/proxy.ts';

const C = 65536;
const up = { accessKeyId: 'AKLISTING', secretAccessKey: 'listing-secret', region: 'us-east-1' };
const MD5 = '0123456789abcdef0123456789abcdef';

/** A ListObjectsV2 page with these `<Contents>` (raw XML, bytes as given). */
const page = (...contents: Buffer[]) =>
  Buffer.concat([
    Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>false</IsTruncated>'),
    ...contents.map((c) => Buffer.concat([Buffer.from('<Contents>'), c, Buffer.from('</Contents>')])),
    Buffer.from('</ListBucketResult>\n'),
  ]);

describe('listing pages from a store that writes them its own way', () => {
  let store: http.Server;
  let proxy: TestProxy;
  /** What the store answers to the next listing. */
  let answer: Buffer = page();
  before(async () => {
    store = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/xml', 'content-length': String(answer.length) });
      res.end(answer);
    });
    await new Promise<void>((r) => store.listen(0, '127.0.0.1', r));
    const port = (store.address() as AddressInfo).port;
    // Declared encrypted-only: sizes of encrypted single PUTs are derived from the page alone (no HEAD to answer).
    proxy = await startTestProxy({ endpoint: `http://127.0.0.1:${port}`, ...up }, { SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: '["b"]' });
  });
  after(async () => {
    await proxy.close();
    store.closeAllConnections();
    await new Promise((r) => store.close(r));
  });

  const list = () => rawRequest(proxy, up, { method: 'GET', path: '/b', query: { 'list-type': '2' } });

  test('bytes that are not UTF-8, and entries it does not edit, pass byte for byte', async () => {
    const owner = Buffer.concat([Buffer.from('<Owner><DisplayName>'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('</DisplayName></Owner>')]);
    // Sizes below one encrypted chunk: plain for sure.
    answer = page(Buffer.concat([Buffer.from(`<Key>a</Key><ETag>&#34;${MD5}&#34;</ETag><Size>3</Size>`), owner]), Buffer.from(`<Key>b</Key><ETag>"x"</ETag><Size>0</Size>`));
    const r = await list();
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(answer), r.body.toString('latin1'));
  });

  test("an encrypted object's entry: the plaintext size, and the ETag marked in the store's own quoting", async () => {
    const stored = encryptedSize(100, C);
    const rest = (n: number) => `<LastModified>2026-12-05T00:00:00.000Z</LastModified><StorageClass>STANDARD</StorageClass><Extra>é${n}</Extra>`;
    answer = page(
      Buffer.from(`<Key>one</Key><ETag>&#34;${MD5}&#34;</ETag><Size>${stored}</Size>${rest(1)}`),
      Buffer.from(`<Key>two</Key><ETag>&quot;${MD5}&quot;</ETag><Size>${stored}</Size>${rest(2)}`),
      Buffer.from(`<Key>three</Key><ETag>"${MD5}"</ETag><Size>${stored}</Size>${rest(3)}`),
    );
    const r = await list();
    assert.equal(r.status, 200);
    const expected = page(
      Buffer.from(`<Key>one</Key><ETag>&#34;${MD5}-0&#34;</ETag><Size>100</Size>${rest(1)}`),
      Buffer.from(`<Key>two</Key><ETag>&quot;${MD5}-0&quot;</ETag><Size>100</Size>${rest(2)}`),
      Buffer.from(`<Key>three</Key><ETag>"${MD5}-0"</ETag><Size>100</Size>${rest(3)}`),
    );
    assert.equal(r.body.toString(), expected.toString());
  });

  test('an ETag whose quotes are spelled another way is marked too (written &quot;); one not MD5-shaped is left byte for byte', async () => {
    const stored = encryptedSize(100, C);
    const odd = Buffer.concat([Buffer.from('<Key>odd</Key><ETag>"ab'), Buffer.from([0xff]), Buffer.from(`"</ETag><Size>${stored}</Size>`)]);
    answer = page(Buffer.from(`<Key>hex</Key><ETag>&#x22;${MD5}&#034;</ETag><Size>${stored}</Size>`), odd);
    const r = await list();
    assert.equal(r.status, 200);
    const expected = page(
      Buffer.from(`<Key>hex</Key><ETag>&quot;${MD5}-0&quot;</ETag><Size>100</Size>`),
      Buffer.concat([Buffer.from('<Key>odd</Key><ETag>"ab'), Buffer.from([0xff]), Buffer.from(`"</ETag><Size>100</Size>`)]),
    );
    assert.ok(r.body.equals(expected), r.body.toString('latin1'));
  });

  test('a page with a byte-order mark, padding before the root, and a Unicode space after it is still edited', async () => {
    const stored = encryptedSize(100, C);
    const body = page(Buffer.from(`<Key>a</Key><ETag>"${MD5}"</ETag><Size>${stored}</Size>`));
    const declarationEnd = body.indexOf('?>') + 2;
    answer = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      body.subarray(0, declarationEnd),
      Buffer.from(' '.repeat(4096)),
      body.subarray(declarationEnd),
      Buffer.from('\u00a0\u2028', 'utf8'),
    ]);
    const r = await list();
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), new RegExp(`<ETag>"${MD5}-0"</ETag><Size>100</Size>`));
  });

  test('a key no request can name (a lone surrogate) is left as listed, not a 500', async () => {
    // A size no encrypted stream has: without the key check, the object would go to a HEAD that cannot be sent.
    answer = page(Buffer.from(`<Key>&#xD800;</Key><ETag>"${MD5}"</ETag><Size>${encryptedSize(100, C) + 3}</Size>`));
    const r = await list();
    assert.equal(r.status, 200, r.body.toString());
    assert.ok(r.body.equals(answer));
  });

  test('the access log counts the answer sent and the page read', async () => {
    answer = page(Buffer.from(`<Key>one</Key><ETag>"${MD5}"</ETag><Size>${encryptedSize(5, C)}</Size>`));
    const n = proxy.logs.length;
    const r = await list();
    const line = await logLine(proxy, n, 'ListObjectsV2');
    assert.equal(line.bytesOut, r.body.length);
    assert.equal(line.upstreamBytesIn, answer.length);
    assert.notEqual(r.body.length, answer.length, 'the size and ETag were edited');
  });

  test('a page longer than the proxy reads: 500 InternalError, not a 200 cut at the limit', async () => {
    const filler = Buffer.alloc(64 * 1024 * 1024, ' ');
    answer = page(Buffer.concat([Buffer.from(`<Key>a</Key><ETag>"x"</ETag><Size>1</Size>`), filler]));
    const r = await list();
    assert.equal(r.status, 500);
    assert.equal(errorCode(r.body), 'InternalError');
  });
});
