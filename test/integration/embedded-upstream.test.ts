/**
 * The proxy over the embedded store (fauxqs, what `npm start` serves): the SSE-C data path must hold on a store
 * with its limits too (no signature checks, no bucket policies).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { startEmbeddedS3, type EmbeddedS3 } from '../../src/embedded-s3.ts';
import { errorCode, newKey, rawRequest, sse, ssecHeaders, startTestProxy, type TestProxy, type UpstreamInfo } from '../support/proxy.ts';

let store: EmbeddedS3;
let up: UpstreamInfo;
let t: TestProxy;
let s3: S3Client;

before(async () => {
  store = await startEmbeddedS3({ dir: mkdtempSync(join(tmpdir(), 'ssec-embedded-')) });
  up = { endpoint: store.url, accessKeyId: store.accessKeyId, secretAccessKey: store.secretAccessKey, region: store.region };
  t = await startTestProxy(up);
  s3 = t.client();
  await s3.send(new CreateBucketCommand({ Bucket: 'local' }));
});
after(async () => {
  await t?.close();
  await store?.stop();
});

test('SSE-C round trip, ranges (suffix too) and the wrong key over the embedded store', async () => {
  const key = newKey();
  const data = randomBytes(3 * 65536 + 123);
  await s3.send(new PutObjectCommand({ Bucket: 'local', Key: 'obj', Body: data, ...sse(key) }));
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'local', Key: 'obj', ...sse(key) }));
  assert.equal(head.ContentLength, data.length);
  const whole = await s3.send(new GetObjectCommand({ Bucket: 'local', Key: 'obj', ...sse(key) }));
  assert.ok(Buffer.from(await whole.Body!.transformToByteArray()).equals(data));
  for (const [range, a, b] of [
    ['bytes=70000-140000', 70000, 140000],
    ['bytes=-100', data.length - 100, data.length - 1],
    ['bytes=196000-', 196000, data.length - 1],
  ] as const) {
    const got = await s3.send(new GetObjectCommand({ Bucket: 'local', Key: 'obj', Range: range, ...sse(key) }));
    assert.equal(got.ContentRange, `bytes ${a}-${b}/${data.length}`, range);
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data.subarray(a, b + 1)), range);
  }
  const wrong = await rawRequest(t, up, { method: 'GET', path: '/local/obj', headers: ssecHeaders(newKey()) });
  assert.equal(wrong.status, 403);
  assert.equal(errorCode(wrong.body), 'AccessDenied');
});
