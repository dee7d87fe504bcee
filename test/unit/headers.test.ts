import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientResponseHeaders, ENVELOPE_META, forwardableRequestHeaders, LAYOUT_META } from '../../src/s3/headers.ts';

test('client → upstream: hop-by-hop (RFC 7230 §6.1, including those named in Connection), auth and SSE-C never cross', () => {
  const out = forwardableRequestHeaders({
    host: 'proxy:8443',
    connection: 'keep-alive, x-private-hop',
    'keep-alive': 'timeout=5',
    'x-private-hop': '1',
    te: 'trailers',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    'proxy-authorization': 'secret',
    authorization: 'AWS4-HMAC-SHA256 Credential=…',
    'x-amz-date': '20261122T000000Z',
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
    'x-amz-server-side-encryption-customer-key': 'c2VjcmV0',
    'x-amz-copy-source-server-side-encryption-customer-key': 'c2VjcmV0',
    [ENVELOPE_META]: 'forged',
    [LAYOUT_META]: 'forged',
    'content-type': 'text/plain',
    'x-amz-meta-colour': 'blue',
    'x-amz-tagging': 'a=b',
  });
  assert.deepEqual(out, { 'content-type': 'text/plain', 'x-amz-meta-colour': 'blue', 'x-amz-tagging': 'a=b' });
});

test('upstream → client: the proxy\'s metadata and ciphertext descriptions are dropped for encrypted objects', () => {
  const upstream = {
    connection: 'close, x-hop',
    'x-hop': '1',
    'content-length': '105',
    'content-range': 'bytes 0-104/105',
    'x-amz-checksum-crc32': 'AAAAAA==',
    'x-amz-server-side-encryption': 'AES256',
    'x-amz-mp-parts-count': '3',
    [ENVELOPE_META]: 'secret envelope',
    [LAYOUT_META]: 'parts',
    etag: '"abc"',
    'x-amz-meta-colour': 'blue',
  };
  assert.deepEqual(clientResponseHeaders(upstream, { encrypted: true }), { etag: '"abc"', 'x-amz-meta-colour': 'blue' });
  const plain = clientResponseHeaders(upstream, { encrypted: false });
  assert.equal(plain['content-length'], '105');
  assert.equal(plain['x-amz-checksum-crc32'], 'AAAAAA==');
  assert.equal(plain[ENVELOPE_META], undefined);
  assert.equal(plain['x-hop'], undefined);
});
