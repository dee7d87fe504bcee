/**
 * Issue 12 point 4: bucket policies with SSE-C conditions through the proxy, over Ceph RGW. AWS's documented
 * "require SSE-C" policy is enforced by the proxy (the store never sees the SSE-C headers), the rest of the
 * policy by the store as before; GetBucketPolicy answers the client's bytes; another replica (a second proxy
 * process) sees the policy within the documented cache time.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  GetBucketPolicyCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { startCli, type CliProxy } from '../support/cli.ts';
import { bodyBytes, directClient, newKey, rgwUpstream, sse, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';
import { POLICY_TTL_MS } from '../../src/policy/stored.ts';

let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;
const bucket = `policy-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const key = newKey();

/** AWS's documented policy requiring SSE-C on uploads, pretty-printed, plus a statement the store enforces. */
const requireSsec = `{
  "Version": "2012-10-17",
  "Id": "PutObjectPolicy",
  "Statement": [
    {
      "Sid": "RequireSSECObjectUploads",
      "Effect": "Deny",
      "Principal": "*",
      "Action": "s3:PutObject",
      "Resource": "arn:aws:s3:::${bucket}/*",
      "Condition": { "Null": { "s3:x-amz-server-side-encryption-customer-algorithm": "true" } }
    },
    {
      "Sid": "KeepArchive",
      "Effect": "Deny",
      "Principal": "*",
      "Action": "s3:DeleteObject",
      "Resource": "arn:aws:s3:::${bucket}/archive/*"
    }
  ]
}
`;

/** The S3 error code a rejected SDK call carries, or 'ok'. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
    return `${err.$metadata?.httpStatusCode} ${err.name}`;
  }
}

async function exists(name: string): Promise<boolean> {
  return (await outcome(directClient(up).send(new HeadObjectCommand({ Bucket: bucket, Key: name })))) === 'ok';
}

before(async () => {
  up = await rgwUpstream();
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'archive/old', Body: 'kept', ...sse(key) }));
  await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: requireSsec }));
});
after(async () => t?.close());

test('GetBucketPolicy answers the document byte for byte; the store holds no SSE-C condition', async () => {
  const got = await s3.send(new GetBucketPolicyCommand({ Bucket: bucket }));
  assert.equal(got.Policy, requireSsec);
  const stored = (await directClient(up).send(new GetBucketPolicyCommand({ Bucket: bucket }))).Policy!;
  assert.ok(!stored.includes('customer-algorithm'), stored);
  assert.ok(stored.includes('KeepArchive'));
});

test('an SSE-C PUT succeeds; a plain PUT is 403 AccessDenied and nothing is stored', async () => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sealed', Body: 'secret', ...sse(key) }));
  const back = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sealed', ...sse(key) }));
  assert.equal((await bodyBytes(back.Body)).toString(), 'secret');
  assert.equal(await outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: 'x' }))), '403 AccessDenied');
  assert.equal(await exists('plain'), false);
});

test('a copy without SSE-C for its destination is refused (with or without the source key); with it, it is done', async () => {
  const source = { CopySource: `${bucket}/sealed`, CopySourceSSECustomerAlgorithm: 'AES256', CopySourceSSECustomerKey: key.b64, CopySourceSSECustomerKeyMD5: key.md5 };
  assert.equal(await outcome(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy-plain', ...source }))), '403 AccessDenied');
  assert.equal(await outcome(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy-plain', CopySource: `${bucket}/archive/old` }))), '403 AccessDenied');
  assert.equal(await exists('copy-plain'), false);
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy-sealed', ...source, ...sse(key) }));
  assert.equal(await exists('copy-sealed'), true);
});

test('multipart: a plain CreateMultipartUpload is refused; an SSE-C upload completes', async () => {
  assert.equal(await outcome(s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp-plain' }))), '403 AccessDenied');
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp', ...sse(key) }));
  const part = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId: created.UploadId, PartNumber: 1, Body: 'part', ...sse(key) }));
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp', UploadId: created.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] }, ...sse(key) }));
  assert.equal(await exists('mp'), true);
});

test('the statements without SSE-C conditions are enforced by the store as before', async () => {
  assert.equal(await outcome(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'archive/old' }))), '403 AccessDenied');
  assert.equal(await exists('archive/old'), true);
  assert.equal(await outcome(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'copy-sealed' }))), 'ok');
});

test('another replica sees the policy within the cache time, and DeleteBucketPolicy lifts it everywhere', async () => {
  const other: CliProxy = await startCli(up);
  try {
    const c = other.client();
    // The first replica's cached policy is fresh (starting the other one can take longer than the cache time).
    assert.equal(await outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain-1', Body: 'x' }))), '403 AccessDenied');
    await c.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    // This replica's own change is seen at once; the other replica learns of it within POLICY_TTL_MS.
    assert.equal(await outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain-1', Body: 'x' }))), '403 AccessDenied', 'still cached');
    await new Promise((r) => setTimeout(r, POLICY_TTL_MS + 500));
    assert.equal(await outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain-1', Body: 'x' }))), 'ok');
    assert.equal(await outcome(c.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'archive/old' }))), 'ok');
    assert.equal(await outcome(c.send(new GetBucketPolicyCommand({ Bucket: bucket }))), '404 NoSuchBucketPolicy');

    // The other replica has seen "no policy"; a policy put through the first one reaches it within the cache time.
    assert.equal(await outcome(c.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain-2', Body: 'x' }))), 'ok');
    await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: requireSsec }));
    await new Promise((r) => setTimeout(r, POLICY_TTL_MS + 500));
    assert.equal(await outcome(c.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain-3', Body: 'x' }))), '403 AccessDenied');
    assert.equal(await exists('plain-3'), false);
    assert.equal((await c.send(new GetBucketPolicyCommand({ Bucket: bucket }))).Policy, requireSsec);
  } finally {
    await other.stop();
  }
});
