/**
 * The S3 double itself, with an SDK client straight to it: the S3 behaviour the fast tests rely on, and the
 * recording of a response body the client cut off.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, directClient } from '../support/proxy.ts';
import { startS3Double, type S3Double } from '../support/s3-double.ts';
import { rejectsWith } from './harness.ts';

const bucket = 'double';
let double: S3Double;
let s3: S3Client;

before(async () => {
  double = await startS3Double();
  s3 = directClient(double);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});
after(async () => {
  s3?.destroy();
  await double?.close();
});

test('PutObject, ranged GetObject, conditionals and metadata as S3 answers them', async () => {
  const body = Buffer.from('0123456789');
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a b/ü', Body: body, Metadata: { k: 'v' }, ContentType: 'text/x', Tagging: 't=1&u=2' }));
  assert.equal(put.ETag, `"${createHash('md5').update(body).digest('hex')}"`);
  const get = (Range: string) => s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a b/ü', Range }));
  for (const [range, text, cr] of [['bytes=2-4', '234', 'bytes 2-4/10'], ['bytes=7-', '789', 'bytes 7-9/10'], ['bytes=-3', '789', 'bytes 7-9/10'], ['bytes=8-99', '89', 'bytes 8-9/10']]) {
    const got = await get(range!);
    assert.equal(got.$metadata.httpStatusCode, 206);
    assert.equal(got.ContentRange, cr);
    assert.equal(await got.Body!.transformToString(), text);
  }
  await rejectsWith(get('bytes=10-'), 'InvalidRange', 416);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a b/ü' }));
  assert.deepEqual([head.ContentLength, head.ContentType, head.Metadata, head.TagCount], [10, 'text/x', { k: 'v' }, 2]);
  await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a b/ü', IfMatch: '"nope"' })), 'PreconditionFailed', 412);
  await assert.rejects(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a b/ü', IfNoneMatch: put.ETag })), (e: { $metadata: { httpStatusCode: number } }) => e.$metadata.httpStatusCode === 304);
  await rejectsWith(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'missing' })), 'NoSuchKey', 404);
  const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'a b/ü' }));
  assert.deepEqual(tags.TagSet, [{ Key: 't', Value: '1' }, { Key: 'u', Value: '2' }]);
});

test('CopyObject: url-encoded source, COPY and REPLACE directives, copy-to-self and source conditions', async () => {
  const source = `${bucket}/${encodeURIComponent('a b/ü')}`;
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copied', CopySource: source }));
  assert.deepEqual((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copied' }))).Metadata, { k: 'v' });
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copied', CopySource: source, MetadataDirective: 'REPLACE', Metadata: { x: 'y' } }));
  assert.deepEqual((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copied' }))).Metadata, { x: 'y' });
  await rejectsWith(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copied', CopySource: `${bucket}/copied` })), 'InvalidRequest', 400);
  await rejectsWith(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'c2', CopySource: source, CopySourceIfMatch: '"nope"' })), 'PreconditionFailed', 412);
});

test('multipart: part copies with a range, ListParts, the MD5-of-MD5s ETag, EntityTooSmall', async () => {
  const p1 = randomBytes(5 * 1024 * 1024);
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp', Metadata: { from: 'create' } }));
  const e1 = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId, PartNumber: 1, Body: p1 }))).ETag!;
  const copied = await s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp', UploadId, PartNumber: 2, CopySource: `${bucket}/copied`, CopySourceRange: 'bytes=1-3' }));
  const e2 = copied.CopyPartResult!.ETag!;
  const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp', UploadId }));
  assert.deepEqual(parts.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag]), [[1, p1.length, e1], [2, 3, e2]]);
  const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] } }));
  const md5s = Buffer.concat([e1, e2].map((e) => Buffer.from(e.replace(/"/g, ''), 'hex')));
  assert.equal(done.ETag, `"${createHash('md5').update(md5s).digest('hex')}-2"`);
  assert.ok((await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp' }))).Body)).equals(Buffer.concat([p1, Buffer.from('123')])));
  assert.deepEqual((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp' }))).Metadata, { from: 'create' });

  const small = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'small' }));
  const parts2 = [];
  for (const PartNumber of [1, 2]) parts2.push({ PartNumber, ETag: (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'small', UploadId: small.UploadId, PartNumber, Body: 'x' }))).ETag });
  await rejectsWith(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'small', UploadId: small.UploadId, MultipartUpload: { Parts: parts2 } })), 'EntityTooSmall', 400);
});

test('ListObjectsV2 pages through common prefixes and keys', async () => {
  for (const k of ['l/a/1', 'l/a/2', 'l/b', 'l/c/1', 'l/d']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }));
  const seen: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'l/', Delimiter: '/', MaxKeys: 2, ContinuationToken }));
    seen.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix!), ...(page.Contents ?? []).map((o) => `${o.Key}:${o.Size}`));
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  assert.deepEqual(seen.sort(), ['l/a/', 'l/b:3', 'l/c/', 'l/d:3']);
});

test('requests with another access key are refused', async () => {
  const other = directClient({ ...double, accessKeyId: 'SOMEONE' });
  await assert.rejects(other.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp' })), (e: { $metadata: { httpStatusCode: number } }) => e.$metadata.httpStatusCode === 403);
  await rejectsWith(other.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp' })), 'InvalidAccessKeyId', 403);
  other.destroy();
});

test('a response body the client cuts off is recorded as aborted, with the bytes the socket took', async () => {
  double.objects.put(bucket, 'big', randomBytes(32 * 1024 * 1024));
  double.resetRequests();
  const url = new URL(double.endpoint);
  const headers = { authorization: `AWS4-HMAC-SHA256 Credential=${double.accessKeyId}/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host: url.hostname, port: url.port, path: `/${bucket}/big`, headers, agent: false }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (e) => (e.message === 'socket hang up' ? undefined : reject(e)));
  });
  await double.idle();
  const [r] = double.requests;
  assert.equal(r!.op, 'GetObject');
  assert.equal(r!.status, 200);
  assert.equal(r!.aborted, true);
  assert.equal(r!.bodyBytesRequested, 32 * 1024 * 1024);
  assert.ok(r!.bodyBytesOut < r!.bodyBytesRequested);
});
