/**
 * A full client flow with a canary SSE-C key through the real CLI: every byte the process wrote (stdout and
 * stderr) is searched for the key in every encoding. The access log still says what happened.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { startCli } from '../support/cli.ts';
import { newKey, rgwUpstream, sse, ssecHeaders } from '../support/proxy.ts';

test('no trace of the customer key in anything the proxy writes, through puts, reads, errors, multipart, copies, presigned URLs', async () => {
  const up = await rgwUpstream();
  const cli = await startCli(up);
  const s3 = cli.client();
  const canary = newKey();
  const other = newKey();
  const bucket = `canary-${randomBytes(4).toString('hex')}`;
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const data = randomBytes(200_000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: data, ...sse(canary) }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'streamed', Body: Readable.from([data]), ContentLength: data.length, ...sse(canary) }));
    await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a', Range: 'bytes=5-99', ...sse(canary) }))).Body!.transformToByteArray();
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a', ...sse(canary) }));
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a', ...sse(other) })));
    await assert.rejects(s3.send(new PutObjectCommand({ Bucket: `${bucket}-missing`, Key: 'b', Body: 'x', ...sse(canary) })));
    const mpu = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp', ...sse(canary) }));
    const p1 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId: mpu.UploadId, PartNumber: 1, Body: data, ...sse(canary) }));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp', UploadId: mpu.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }] } }));
    await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: 'a',
        CopySource: `${bucket}/a`,
        CopySourceSSECustomerAlgorithm: 'AES256',
        CopySourceSSECustomerKey: canary.b64,
        CopySourceSSECustomerKeyMD5: canary.md5,
        ...sse(other),
      }),
    );
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'mp', ...sse(canary) }), { expiresIn: 60 });
    // minio-js style: the key in the query as well as in the headers.
    const withQueryKey = `${url}&SSECustomerKey=${encodeURIComponent(canary.b64)}`;
    await new Promise<void>((resolve) => {
      https.get(withQueryKey, { ca: cli.caPem, headers: ssecHeaders(canary) }, (res) => res.resume().on('end', resolve)).on('error', () => resolve());
    });
  } finally {
    await cli.stop();
  }
  const all = cli.output();
  const text = all.toString('latin1');
  for (const form of [canary.b64, canary.raw.toString('hex'), canary.raw.toString('base64url'), encodeURIComponent(canary.b64)]) {
    assert.ok(!text.includes(form), `key found in the process output (${form.slice(0, 6)}…)`);
  }
  assert.equal(all.indexOf(canary.raw), -1, 'raw key bytes in the process output');
  // The access log still tells what happened, as JSON lines.
  const lines = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const ops = new Set(lines.map((l) => l.op));
  for (const op of ['PutObject', 'GetObject', 'HeadObject', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'CopyObject']) {
    assert.ok(ops.has(op), `access log has ${op}`);
  }
  const line = lines.find((l) => l.op === 'PutObject')!;
  for (const field of ['requestId', 'bucket', 'key', 'status', 'bytesIn', 'bytesOut', 'ms', 'upstreamStatus', 'time', 'level', 'method', 'client', 'accessKeyId', 'userAgent', 'sse']) {
    assert.ok(field in line, `access log field ${field}`);
  }
  assert.equal(line.accessKeyId, up.accessKeyId);
  assert.equal(line.sse, 'sse-c');
  // The new fields carry no secret: not the client's secret key, nor the key in any form.
  assert.ok(!text.includes(up.secretAccessKey), 'the secret access key is in the process output');
  // 4xx lines name the S3 error code: a wrong key (the proxy's own refusal) and a missing bucket (the store's).
  const wrongKey = lines.find((l) => l.op === 'HeadObject' && l.status === 403)!;
  assert.equal(wrongKey.code, 'AccessDenied');
  const missing = lines.find((l) => l.op === 'PutObject' && l.bucket === `${bucket}-missing`)!;
  assert.equal(missing.code, 'NoSuchBucket');
});

test('SSEC_PROXY_LOG_LEVEL=warn: successful requests write no access line', async () => {
  const up = await rgwUpstream();
  const cli = await startCli(up, { SSEC_PROXY_LOG_LEVEL: 'warn' });
  const s3 = cli.client();
  const bucket = `quiet-${randomBytes(4).toString('hex')}`;
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: 'x', ...sse(newKey()) }));
  } finally {
    await cli.stop();
  }
  const lines = cli.output().toString().split('\n').filter((l) => l.startsWith('{'));
  assert.deepEqual(lines, []);
});
