/** Part ETags that carry the part's checksum (src/sse-c/part-etag.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePartEtag, partEtag } from '../../src/sse-c/part-etag.ts';

test('round trip: the upstream ETag comes back quoted, with the algorithm and base64 checksum', () => {
  const e = partEtag('"5d41402abc4b2a76b9719d911017c592"', 'crc32', 'rVnXbw==');
  assert.match(e, /^"5d41402abc4b2a76b9719d911017c592\.ck1[A-Za-z0-9_-]+"$/);
  assert.deepEqual(parsePartEtag(e), { upstream: '"5d41402abc4b2a76b9719d911017c592"', algorithm: 'crc32', checksum: 'rVnXbw==' });
  const sha = Buffer.alloc(32, 0xfe).toString('base64');
  assert.equal(parsePartEtag(partEtag('abc', 'sha256', sha)).checksum, sha);
});

test('ETags as clients echo them: quoted, unquoted (minio), or plain upstream ETags', () => {
  const e = partEtag('"abc"', 'crc64nvme', 'AAAAAAAAAAA=');
  assert.equal(parsePartEtag(e.replace(/"/g, '')).algorithm, 'crc64nvme');
  assert.deepEqual(parsePartEtag('"5d41402abc4b2a76b9719d911017c592"'), { upstream: '"5d41402abc4b2a76b9719d911017c592"' });
  assert.deepEqual(parsePartEtag(' 5d41402a '), { upstream: '"5d41402a"' });
});
