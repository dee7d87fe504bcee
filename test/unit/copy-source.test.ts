import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copySourceBucket, parseCopySource } from '../../src/s3/copy-source.ts';

test('x-amz-copy-source is decoded, then split at its first `/`, as S3 and the stores read it', () => {
  assert.deepEqual(parseCopySource('/src/dir/a%20b.txt'), { bucket: 'src', key: 'dir/a b.txt' });
  assert.deepEqual(parseCopySource('src/k?versionId=3'), { bucket: 'src', key: 'k', versionId: '3' });
  // `%2F` in the bucket segment separates bucket and key there too: the allow-list sees the bucket the store reads.
  assert.deepEqual(parseCopySource('/victim%2Fzz-pub/x'), { bucket: 'victim', key: 'zz-pub/x' });
  assert.equal(copySourceBucket('/victim%2Fzz-pub/x'), 'victim');
});

test('a copy source without a key, or whose bucket is not a bucket name, is S3\'s InvalidArgument; the allow-list still sees its bucket', () => {
  for (const bad of ['/onlybucket', '/b/', '/b%00x/k', '/%ZZ/k']) {
    assert.throws(() => parseCopySource(bad), (e: unknown) => (e as { code?: string }).code === 'InvalidArgument', bad);
  }
  assert.equal(copySourceBucket('/b%00x/k'), 'b\u0000x');
});
