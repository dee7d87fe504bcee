import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalPath, classify, objectPath, upstreamQuery } from '../../src/s3/operation.ts';

// Method, target, headers → operation name, as in the AWS API reference.
const table: Array<[string, string, Record<string, string>, string]> = [
  ['GET', '/', {}, 'ListBuckets'],
  ['PUT', '/b', {}, 'BucketOperation'],
  ['GET', '/b?list-type=2&prefix=a&encoding-type=url', {}, 'ListObjectsV2'],
  ['GET', '/b', {}, 'ListObjects'],
  ['GET', '/b?prefix=a&marker=m&max-keys=2', {}, 'ListObjects'],
  ['GET', '/b?versions&prefix=a', {}, 'ListObjectVersions'],
  ['GET', '/b?uploads&prefix=k', {}, 'ListMultipartUploads'],
  ['GET', '/b?location', {}, 'BucketOperation'],
  ['GET', '/b?versioning', {}, 'BucketOperation'],
  ['POST', '/b?delete', {}, 'BucketOperation'],
  ['PUT', '/b?policy', {}, 'PutBucketPolicy'],
  ['GET', '/b?policy', {}, 'GetBucketPolicy'],
  ['DELETE', '/b?policy', {}, 'DeleteBucketPolicy'],
  ['GET', '/b?policyStatus', {}, 'BucketOperation'],
  ['POST', '/b', { 'content-type': 'multipart/form-data; boundary=x' }, 'PostObject'],
  ['PUT', '/b/k', {}, 'PutObject'],
  ['PUT', '/b/k?x-id=PutObject', {}, 'PutObject'],
  ['PUT', '/b/k', { 'x-amz-copy-source': '/b/src' }, 'CopyObject'],
  ['GET', '/b/k', {}, 'GetObject'],
  ['GET', '/b/k?versionId=3&response-content-type=text/plain', {}, 'GetObject'],
  ['HEAD', '/b/k', {}, 'HeadObject'],
  ['DELETE', '/b/k', {}, 'DeleteObject'],
  ['POST', '/b/k?uploads', {}, 'CreateMultipartUpload'],
  ['POST', '/b/k?uploads=', {}, 'CreateMultipartUpload'],
  ['PUT', '/b/k?partNumber=2&uploadId=u', {}, 'UploadPart'],
  ['PUT', '/b/k?partNumber=2&uploadId=u', { 'x-amz-copy-source': 'b/src' }, 'UploadPartCopy'],
  ['POST', '/b/k?uploadId=u', {}, 'CompleteMultipartUpload'],
  ['DELETE', '/b/k?uploadId=u', {}, 'AbortMultipartUpload'],
  ['GET', '/b/k?uploadId=u', {}, 'ListParts'],
  ['GET', '/b/k?attributes', {}, 'GetObjectAttributes'],
  ['GET', '/b/k?tagging', {}, 'ObjectSubresource'],
  ['PUT', '/b/k?acl', {}, 'ObjectSubresource'],
];

for (const [method, url, headers, op] of table) {
  test(`${method} ${url} → ${op}`, () => assert.equal(classify(method, url, headers).op, op));
}

test('bucket and key are decoded; paths are re-encoded canonically', () => {
  const r = classify('GET', '/my-bucket/dir/a%20b%2Bc+d%C3%A9', {});
  assert.equal(r.bucket, 'my-bucket');
  assert.equal(r.key, 'dir/a b+c dé'); // raw '+' is a space in S3 paths, '%2B' a plus
  assert.equal(objectPath('my-bucket', 'dir/a b+c*'), '/my-bucket/dir/a%20b%2Bc%2A');
  assert.equal(canonicalPath('/b/a%20b/c!'), '/b/a%20b/c%21');
});

test('client auth, SDK hints and key-bearing parameters never reach the upstream', () => {
  const r = classify(
    'GET',
    '/b/k?X-Amz-Signature=s&X-Amz-Credential=c&x-id=GetObject&SSECustomerKey=secret&versionId=v&partNumber=1',
    {},
  );
  assert.deepEqual(upstreamQuery(r.query), [
    ['versionId', 'v'],
    ['partNumber', '1'],
  ]);
});

test('an unknown method on an object → 405', () => {
  assert.throws(() => classify('PATCH', '/b/k', {}), /not allowed/);
});

test('an object subresource with a method S3 does not define for it, or a bare POST on a key → 405, never passed through', () => {
  // A store may ignore the parameter and take the request for a write of the object's data (RGW 16 does).
  for (const [method, url, headers] of [
    ['PUT', '/b/k?torrent', {}],
    ['PUT', '/b/k?restore', {}],
    ['PUT', '/b/k?select', {}],
    ['PUT', '/b/k?torrent', { 'x-amz-copy-source': '/b/src' }],
    ['POST', '/b/k?uploads&torrent', {}],
    ['POST', '/b/k', { 'content-type': 'multipart/form-data; boundary=x' }],
    ['POST', '/b/k', {}],
    ['DELETE', '/b/k?acl', {}],
  ] as Array<[string, string, Record<string, string>]>) {
    assert.throws(() => classify(method, url, headers), (e: unknown) => (e as { code?: string; status?: number }).code === 'MethodNotAllowed' && (e as { status?: number }).status === 405, `${method} ${url}`);
  }
  for (const [method, url] of [
    ['GET', '/b/k?torrent'],
    ['POST', '/b/k?restore'],
    ['POST', '/b/k?select&select-type=2'],
    ['PUT', '/b/k?tagging'],
    ['DELETE', '/b/k?tagging'],
    ['PUT', '/b/k?acl'],
  ] as const) {
    assert.equal(classify(method, url, {}).op, 'ObjectSubresource', `${method} ${url}`);
  }
});

test('virtual-hosted style: the bucket comes from Host under the configured domain; path style still works', () => {
  const vh = classify('GET', '/dir/a%20b?versionId=1', { host: 'my.bucket.s3.example.com:8443' }, 's3.example.com');
  assert.equal(vh.op, 'GetObject');
  assert.equal(vh.bucket, 'my.bucket');
  assert.equal(vh.key, 'dir/a b');
  assert.equal(vh.pathStyleRawPath, '/my.bucket/dir/a%20b');
  assert.equal(classify('GET', '/?list-type=2', { host: 'b.s3.example.com' }, 's3.example.com').op, 'ListObjectsV2');
  const ps = classify('GET', '/b/k', { host: 's3.example.com:8443' }, 's3.example.com');
  assert.deepEqual([ps.bucket, ps.key], ['b', 'k']);
  const other = classify('GET', '/b/k', { host: 'x.elsewhere.com' }, 's3.example.com');
  assert.deepEqual([other.bucket, other.key], ['b', 'k']);
});

test('a bucket name outside S3\'s grammar (NUL, `/` through %2F, control characters, too long) → 400 InvalidBucketName before anything else', () => {
  for (const url of ['/b%00AKID/x', '/a%2Fb/x', '/b%0A/x', `/${'a'.repeat(256)}/x`, '/b%20c']) {
    assert.throws(() => classify('GET', url, {}), (e: unknown) => (e as { code?: string }).code === 'InvalidBucketName', url);
  }
  assert.equal(classify('GET', '/Legacy_Bucket.name-1/x', {}).bucket, 'Legacy_Bucket.name-1');
});
