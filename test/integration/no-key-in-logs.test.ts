/**
 * A full client flow with a canary SSE-C key through the real CLI: every byte the process wrote (stdout and
 * stderr) is searched for the key in every encoding. The access log still says what happened.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ensureDevCertificate } from '../../src/tls/dev-cert.ts';
import { freePort } from '../support/net.ts';
import { newKey, rgwUpstream, sse, ssecHeaders } from '../support/proxy.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

test('no trace of the customer key in anything the proxy writes, through puts, reads, errors, multipart, copies, presigned URLs', async () => {
  const up = await rgwUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'ssec-canary-'));
  const cert = await ensureDevCertificate(dir);
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'bin/s3-ssec-proxy.js')], {
    env: {
      ...process.env,
      SSEC_PROXY_LISTEN: `127.0.0.1:${port}`,
      SSEC_PROXY_STATE_DIR: dir,
      SSEC_PROXY_UPSTREAM_URL: up.endpoint,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: up.accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: up.secretAccessKey,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const written: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => written.push(c));
  child.stderr!.on('data', (c: Buffer) => written.push(c));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', () => Buffer.concat(written).toString().includes('listening on') && resolve());
    child.on('exit', (code) => reject(new Error(`proxy exited ${code}`)));
  });
  const agent = new https.Agent({ ca: cert.caPem, keepAlive: true });
  const s3 = new S3Client({
    endpoint: `https://127.0.0.1:${port}`,
    region: up.region,
    forcePathStyle: true,
    credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
  });
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
      https.get(withQueryKey, { ca: cert.caPem, headers: ssecHeaders(canary) }, (res) => res.resume().on('end', resolve)).on('error', () => resolve());
    });
  } finally {
    s3.destroy();
    agent.destroy();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  const all = Buffer.concat(written);
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
  for (const field of ['requestId', 'bucket', 'key', 'status', 'bytesIn', 'bytesOut', 'ms', 'upstreamStatus', 'time', 'level']) {
    assert.ok(field in line, `access log field ${field}`);
  }
});
