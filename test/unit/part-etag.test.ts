/** Part ETags that carry the part's checksum (src/sse-c/part-etag.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encryptedPartEtag, parsePartEtag, partEtag } from '../../src/sse-c/part-etag.ts';

test('round trip: the upstream ETag comes back quoted, with the algorithm and base64 checksum', () => {
  const e = partEtag('"5d41402abc4b2a76b9719d911017c592"', 'crc32', 'rVnXbw==');
  assert.match(e, /^"5d41402abc4b2a76b9719d911017c592\.ck1[A-Za-z0-9_-]+-0"$/);
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

test('every part ETag of an encrypted upload ends in -0 (s3cmd compares a bare one with the part MD5) and parses back', () => {
  const up = '"5d41402abc4b2a76b9719d911017c592"';
  assert.equal(encryptedPartEtag(undefined, up, {}), '"5d41402abc4b2a76b9719d911017c592-0"');
  assert.deepEqual(parsePartEtag(encryptedPartEtag(undefined, up, {})), { upstream: up });
  // A digest whose base64url itself ends in "-0": the suffix is told by the digest's length.
  const raw = Buffer.from(`${'A'.repeat(41)}-0`, 'base64url');
  assert.equal(raw.toString('base64url'), `${'A'.repeat(41)}-0`);
  for (const [algorithm, b64] of [['sha256', raw.toString('base64')], ['crc32', 'rVnXbw==']] as const) {
    const e = encryptedPartEtag(algorithm, up, { [`x-amz-checksum-${algorithm}`]: b64 });
    assert.match(e, /-0"$/);
    assert.deepEqual(parsePartEtag(e), { upstream: up, algorithm, checksum: b64 });
    // As a client that kept an ETag from before the suffix sends it back.
    assert.deepEqual(parsePartEtag(e.replace(/-0"$/, '"')), { upstream: up, algorithm, checksum: b64 });
  }
});
